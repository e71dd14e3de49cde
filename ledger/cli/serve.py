"""`agent-ledger serve`: the HTTP API on uvicorn, with the in-process sealer and consumers when embedded.

It binds 127.0.0.1 unless `--host` names another address; nothing else (no environment variable, no config
file) can expose it beyond this machine. The listening socket is bound before the app starts, so a port in use
is one line on stderr (exit 2), and the line announcing the URL is printed only once the port is ours. On
SIGINT/SIGTERM it finishes the requests in flight, stops the workers and closes the ledger, which seals a
last signed checkpoint. With `--kafka` it appends through `ledger.intake`; sequencers and consumers run apart.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from ledger.api.app import create_app
from ledger.api.service import HttpLimits, Service
from ledger.cli.common import add_store_options, kafka_from, settings_from, warn
from ledger.errors import UsageError

LOOPBACK = "127.0.0.1"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="HTTP API (+ in-process sealer and consumers when embedded)",
        description="Serve the HTTP API (docs/http.md). Requests need an API key: agent-ledger keys api create.",
    )
    add_store_options(parser)  # --data, --keys, --kafka, --topic-prefix
    parser.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default {LOOPBACK}); any other address must be given here explicitly",
    )
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    parser.add_argument("--max-payload-bytes", type=int, default=None, help="payload size limit (default 65536)")
    parser.add_argument(
        "--max-batch-bytes",
        type=int,
        default=HttpLimits.max_batch_bytes,
        help=f"body limit of POST .../events/batch (default {HttpLimits.max_batch_bytes})",
    )
    parser.add_argument(
        "--max-batch-items",
        type=int,
        default=HttpLimits.max_batch_items,
        help=f"submissions per batch (default {HttpLimits.max_batch_items})",
    )
    parser.add_argument(
        "--audit-timeout",
        type=float,
        default=HttpLimits.audit_query_s,
        metavar="SECONDS",
        help=f"stop an auditor's query after this long, answering 408 (default {HttpLimits.audit_query_s:g})",
    )
    parser.add_argument(
        "--no-workers",
        action="store_true",
        help="embedded: run no sealer or consumers here (when `agent-ledger consume` runs beside the server)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log level; info adds an access log line per request (default warning)",
    )
    parser.set_defaults(run=run)


def bind_host(requested: str | None) -> str:
    """The address to listen on: loopback unless one was named explicitly with --host."""
    if requested is None:
        return LOOPBACK
    if not requested.strip():
        raise UsageError("--host needs an address, e.g. 127.0.0.1 or 0.0.0.0")
    return requested.strip()


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    return all(ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in resolved)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); a port in use or an address not on this machine is a UsageError."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        # proto must be IPPROTO_TCP, not 0 (as socket.create_server leaves it): asyncio sets TCP_NODELAY only on
        # such sockets, and without it every keep-alive request waits out a 40 ms delayed ACK.
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        return sock
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}") from None


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _run_until_signalled(server: uvicorn.Server, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM. uvicorn shuts down gracefully on them and then re-raises the signal to
    whatever handler was there before; this one only notes it, so the ledger is still closed (and sealed)."""

    def noted(signum: int, frame: FrameType | None) -> None:
        warn(f"stopping on {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, noted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    if args.max_batch_bytes < 1 or args.max_batch_items < 1:
        raise UsageError("--max-batch-bytes and --max-batch-items must be positive")
    host = bind_host(args.host)
    exposed = not is_loopback(host)
    bootstrap, topics = kafka_from(args)
    settings = settings_from(args)
    if args.audit_timeout <= 0:
        raise UsageError(f"--audit-timeout must be positive, not {args.audit_timeout:g}")
    limits = HttpLimits(
        max_batch_bytes=args.max_batch_bytes, max_batch_items=args.max_batch_items, audit_query_s=args.audit_timeout
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("agent_ledger").setLevel(logging.INFO)
    sock = listen(host, args.port)
    try:
        service = Service.open(settings, kafka=bootstrap, topics=topics, http_limits=limits)
    except BaseException:
        sock.close()
        raise
    try:
        workers = bootstrap is None and not args.no_workers
        app = create_app(service, workers=workers)
        config = uvicorn.Config(
            app, log_level=args.log_level, lifespan="on", timeout_graceful_shutdown=30, server_header=False
        )
        server = uvicorn.Server(config)
        where = f"Kafka {bootstrap}" if bootstrap else f"embedded store {settings.data_dir}"
        extras = "; sealer and consumers in process" if workers else ""
        warn(f"serving {url_of(sock)} ({where}{extras})")
        if exposed:
            warn(f"{host} is reachable from other machines: only API keys protect it; put TLS in front of it")
        _run_until_signalled(server, sock)
        return 0 if server.started else 1
    finally:
        sock.close()
        service.close()
