"""Bounded bodies: an oversized body is refused as soon as it is known, never read whole.

`read_bounded` is driven with an endless ASGI body that counts what it handed out; `BodyLimit` guards the
routes that let FastAPI parse their body (authorize, audit, ...), from Content-Length and while streaming.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.types import Message

from ledger.api.errors import install_error_handlers
from ledger.api.raw_body import BodyLimit, OversizedBody, read_bounded

CHUNK = 1024


def endless_request(handed_out: list[int], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    async def receive() -> Message:
        handed_out.append(CHUNK)
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers or []}, receive)


def test_streaming_body_stops_one_chunk_past_the_limit() -> None:
    handed_out: list[int] = []

    with pytest.raises(OversizedBody) as refused:
        asyncio.run(read_bounded(endless_request(handed_out), 10 * CHUNK))

    assert sum(handed_out) == 11 * CHUNK  # an endless body, and only 11 KiB of it was ever read
    assert refused.value.limit == 10 * CHUNK and len(refused.value.prefix) == 10 * CHUNK


def test_declared_length_over_the_limit_reads_nothing() -> None:
    handed_out: list[int] = []
    request = endless_request(handed_out, [(b"content-length", str(1 << 30).encode())])

    with pytest.raises(OversizedBody) as refused:
        asyncio.run(read_bounded(request, 10 * CHUNK))

    assert handed_out == [] and refused.value.size == 1 << 30 and refused.value.prefix == b""


def test_body_at_the_limit_is_read_whole() -> None:
    sent = [b"a" * CHUNK, b"b" * CHUNK, b""]

    async def receive() -> Message:
        body = sent.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(sent)}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)

    assert asyncio.run(read_bounded(request, 2 * CHUNK)) == b"a" * CHUNK + b"b" * CHUNK


class Question(BaseModel):
    text: str


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=100, exempt=re.compile(r"^/raw$"))

    @app.post("/ask")
    def ask(question: Question) -> dict[str, int]:
        return {"length": len(question.text)}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    with TestClient(app) as client:
        yield client


def test_other_routes_get_413_from_content_length(guarded: TestClient) -> None:
    answer = guarded.post("/ask", json={"text": "t" * 200})

    assert answer.status_code == 413 and answer.json()["error"] == "oversized"


def test_other_routes_get_413_while_streaming(guarded: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        yield b"t" * 200
        yield b'"}'

    answer = guarded.post("/ask", content=chunks(), headers={"content-type": "application/json"})

    assert answer.status_code == 413 and answer.json()["error"] == "oversized"


def test_small_bodies_and_exempt_routes_pass(guarded: TestClient) -> None:
    assert guarded.post("/ask", json={"text": "short"}).json() == {"length": 5}
    assert guarded.post("/raw", content=b"r" * 500).json() == {"length": 500}
