"""Bounded request bodies: refuse an oversized body from its Content-Length, or as it streams past the limit.

The intake routes read their body as raw bytes with `read_bounded`, so the ledger's own intake sees exactly
what was sent (guarantee 6: the refusal is recorded with those bytes). A body over the limit is never read
whole: `OversizedBody` carries what was read so far, for the record. `BodyLimit` bounds every other route the
same way before FastAPI parses it. Nothing here parses JSON or touches the ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.errors import OversizedSubmission


@dataclass
class OversizedBody(Exception):
    """A body over `limit`: `size` is its declared length or the bytes seen before reading stopped."""

    limit: int
    size: int
    prefix: bytes  # what was read before stopping (nothing when Content-Length already said too much)

    def refusal(self, what: str) -> OversizedSubmission:
        return OversizedSubmission(f"{what} is {self.size} bytes or more; the limit is {self.limit} bytes")


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


async def read_bounded(request: Request, limit: int) -> bytes:
    """The whole body, or `OversizedBody` as soon as it is known to exceed `limit`."""
    declared = declared_length(request.scope["headers"])
    if declared is not None and declared > limit:
        raise OversizedBody(limit, declared, b"")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise OversizedBody(limit, received, (b"".join(chunks) + chunk)[:limit])
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: any request body over `max_bytes` is answered 413 before it is read whole.

    Paths matching `exempt` (the intake routes) are left alone: they bound their own bodies with their own
    limits and record what they refuse.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt: re.Pattern[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            response = JSONResponse(
                {"error": "oversized", "message": f"body is {declared} bytes; the limit is {self.max_bytes} bytes"},
                status_code=413,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI passes an HTTPException raised while it reads the body on to the error handlers.
                    raise HTTPException(413, f"body is over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, bounded_receive, send)
