"""The real server: `agent-ledger serve` as a process, over real HTTP on a loopback port.

An acknowledged append survives `kill -9` (the receipt is there after a restart, and is then sealed by the
restarted server's sealer); SIGTERM stops it cleanly with a final checkpoint; the default address is loopback;
a port in use is one line on stderr; and a chunked body over the limit is answered 413 while it is still
being sent, from a server that never read it whole.
"""

from __future__ import annotations

import select
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from api_support import TENANT, api_settings
from factories import step
from serve_process import ServeProcess

from ledger.apikeys import ApiKeyStore
from ledger.cli.main import main
from ledger.config import Settings
from ledger.sdk import Ledger


def read_answer(connection: socket.socket) -> bytes:
    """One HTTP answer with a Content-Length body (headers and body may arrive in separate packets)."""
    connection.setblocking(True)
    connection.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < content_length(answer):
        received = connection.recv(65536)
        if not received:
            break
        answer += received
    return answer


def content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def producer_headers(settings: Settings) -> dict[str, str]:
    _, token = ApiKeyStore(settings.key_dir).create(TENANT, "producer")
    return {"Authorization": f"Bearer {token}"}


def test_receipt_survives_kill_9_and_a_restart(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    headers = producer_headers(settings)
    env = {"AGENT_LEDGER_CHECKPOINT_EVERY": "1000", "AGENT_LEDGER_CHECKPOINT_MS": "300"}
    server = ServeProcess(settings.data_dir, settings.key_dir, env=env).wait_ready()
    try:
        receipts = [
            httpx.post(
                f"{server.url}/v1/tenants/{TENANT}/events",
                content=orjson.dumps(step(event_id=f"k-{n}")),
                headers=headers,
            )
            for n in range(3)
        ]
        assert [answer.status_code for answer in receipts] == [201, 201, 201]
    finally:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    restarted = ServeProcess(settings.data_dir, settings.key_dir, env=env).wait_ready()
    try:
        deadline = time.monotonic() + 30
        while True:
            answer = httpx.get(f"{restarted.url}/v1/tenants/{TENANT}/receipts/k-2", headers=headers)
            assert answer.status_code == 200, answer.text
            if "checkpoint" in answer.json() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer.json()["hash"] == receipts[2].json()["hash"]
        assert "checkpoint" in answer.json(), "the restarted server's sealer did not seal the tail"
    finally:
        assert restarted.stop() == 0


def test_sigterm_stops_cleanly_with_a_final_checkpoint(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    headers = producer_headers(settings)
    env = {"AGENT_LEDGER_CHECKPOINT_EVERY": "1000", "AGENT_LEDGER_CHECKPOINT_MS": "3600000"}
    server = ServeProcess(settings.data_dir, settings.key_dir, env=env).wait_ready()
    try:
        batch = [step() for _ in range(4)]
        answer = httpx.post(
            f"{server.url}/v1/tenants/{TENANT}/events/batch", content=orjson.dumps(batch), headers=headers
        )
        assert answer.json()["appended"] == 4
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert not any("Traceback" in line for line in server.stderr_lines), server.stderr_lines

    with Ledger.open(settings, read_only=True) as ledger:
        assert ledger.checkpoints()[-1].tree_size == 4  # sealed on shutdown, not by the hour-long timer
        ledger.verify()


def test_it_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    server = ServeProcess(settings.data_dir, settings.key_dir).wait_ready()
    try:
        assert urlsplit(server.url).hostname == "127.0.0.1"
        assert httpx.get(f"{server.url}/healthz").json() == {
            "status": "ok",
            "backend": "embedded",
            "workers": "running",
        }
    finally:
        server.stop()


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServeProcess(settings.data_dir, settings.key_dir, "--port", str(port))
        code = server.wait()

    assert code == 2
    assert server.stderr_lines == [f"agent-ledger: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_chunked_body_over_the_limit_is_refused_while_it_is_still_being_sent(tmp_path: Path) -> None:
    settings = api_settings(tmp_path)
    headers = producer_headers(settings)
    server = ServeProcess(settings.data_dir, settings.key_dir).wait_ready()
    endless = 256 * 1024 * 1024
    sent = 0
    try:
        host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
        with socket.create_connection((host, port)) as connection:
            request = (
                f"POST /v1/tenants/{TENANT}/events HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {headers['Authorization']}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            connection.sendall(request.encode())
            chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB chunks, never a last chunk
            connection.setblocking(False)
            answer, pending = b"", b""
            while sent < endless:
                readable, writable, _ = select.select([connection], [connection], [], 10)
                if readable:
                    answer = read_answer(connection)
                    break
                if writable:
                    pending = pending or chunk
                    try:
                        written = connection.send(pending)
                    except BlockingIOError:
                        continue
                    sent, pending = sent + written, pending[written:]
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"error":"oversized"' in answer
        assert sent < endless
    finally:
        server.stop()

    with Ledger.open(settings, read_only=True) as ledger:
        (refusal,) = ledger.rejections()
        assert refusal.reason_code == "oversized" and refusal.tenant == TENANT
        assert len(refusal.raw) == settings.limits.max_submission_bytes


def test_a_non_positive_audit_time_limit_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = api_settings(tmp_path)
    store = ["--data", str(settings.data_dir), "--keys", str(settings.key_dir)]
    for bad in ("0", "-5"):
        code = main(["serve", *store, "--audit-timeout", bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "--audit-timeout must be positive" in err[0], err
