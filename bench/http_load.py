"""Events appended per second over HTTP (`agent-ledger serve`, embedded), against the in-process SDK.

Ledger side: a real `agent-ledger serve` process on a free 127.0.0.1 port over a fresh data dir, with a producer
API key; --clients threads, each with its own keep-alive httpx client, append a fixed share of the workload,
first one event per request (POST .../events), then on a fresh server --batch-size events per request
(POST .../events/batch). Figure = events / wall time of all clients, plus p50 / p99 request latency.
Baseline, same run, same submission bytes: `Ledger.append` and `Ledger.append_batch` in this process, one call
at a time, on a fresh data dir. Loopback only; each side runs on its own fresh store; repetitions alternate order.

    python bench/http_load.py [--events 20000] [--repeat 3] [--clients 8] [--batch-size 50] [--workers]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
import httpx

from ledger.apikeys import ApiKeyStore
from ledger.config import Settings
from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger

TARGETS: dict[str, float] = {}
"""The issue sets no speed target for HTTP: the figures are reported against the in-process SDK only."""
READY_TIMEOUT_S = 60.0
ANNOUNCED = re.compile(r"serving (http://\S+)")


class BenchFailed(RuntimeError):
    """The run cannot produce a figure (the server died or refused a submission)."""


@dataclass(frozen=True)
class Run:
    """One timed side of one repetition: wall seconds and the latency of each call."""

    seconds: float
    latencies_ms: list[float]


# -- the server ------------------------------------------------------------------------------------------------


@contextmanager
def serve(settings: Settings, *, workers: bool) -> Iterator[str]:
    """`agent-ledger serve` on a free loopback port over `settings`' data dir; yields its URL."""
    command = [sys.executable, "-m", "ledger.cli.main", "serve", "--data", str(settings.data_dir)]
    command += ["--keys", str(settings.key_dir), "--host", "127.0.0.1", "--port", "0"]
    if not workers:
        command.append("--no-workers")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_LEDGER_")}
    log_path = settings.data_dir.parent / "serve.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    try:
        url = _wait_ready(process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchFailed(f"agent-ledger serve exited {process.returncode}: {log_path.read_text()[-2000:]}")
        found = ANNOUNCED.search(log_path.read_text())
        if found:
            try:
                if httpx.get(f"{found.group(1)}/healthz", timeout=2).status_code == 200:
                    return found.group(1)
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise BenchFailed(f"agent-ledger serve was not ready in {READY_TIMEOUT_S:.0f} s: {log_path.read_text()[-2000:]}")


# -- the two sides -----------------------------------------------------------------------------------------------


def request_bodies(submissions: Sequence[bytes], batch_size: int) -> list[bytes]:
    """One body per request: the submission itself, or a JSON array of `batch_size` of them."""
    if batch_size == 1:
        return list(submissions)
    return [b"[" + b",".join(batch) + b"]" for batch in common.batches(submissions, batch_size)]


def run_http(url: str, token: str, bodies: Sequence[bytes], batch_size: int, clients: int) -> Run:
    """All `bodies` posted by `clients` threads (client i sends bodies i, i+clients, ...); wall time of all."""
    path = f"{url}/v1/tenants/{common.TENANT}/events" + ("/batch" if batch_size > 1 else "")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    start = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        with httpx.Client(headers=headers, timeout=120) as session:
            mine = bodies[number::clients]
            start.wait()
            for body in mine:
                sent = time.perf_counter()
                answer = session.post(path, content=body)
                latencies[number].append((time.perf_counter() - sent) * 1000)
                if answer.status_code not in (200, 201) or (batch_size > 1 and answer.json()["refused"]):
                    failures.append(f"{answer.status_code} {answer.text[:300]}")
                    return

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise BenchFailed(f"the server refused a request: {failures[0]}")
    return Run(seconds, [latency for per_client in latencies for latency in per_client])


def run_sdk(settings: Settings, submissions: Sequence[bytes], batch_size: int) -> Run:
    """The same submissions through `Ledger.append` / `append_batch` in this process, one call at a time."""
    latencies: list[float] = []
    with Ledger.open(settings) as ledger:
        started = time.perf_counter()
        for batch in common.batches(submissions, batch_size):
            sent = time.perf_counter()
            outcomes = [ledger.append(batch[0])] if batch_size == 1 else ledger.append_batch(batch)
            latencies.append((time.perf_counter() - sent) * 1000)
            if any(isinstance(outcome, SubmissionRefused) for outcome in outcomes):
                raise BenchFailed("the SDK refused a submission; the workload is invalid")
        seconds = time.perf_counter() - started
    return Run(seconds, latencies)


def percentiles(latencies_ms: Sequence[float]) -> tuple[float, float]:
    if len(latencies_ms) < 2:
        return (latencies_ms[0], latencies_ms[0]) if latencies_ms else (0.0, 0.0)
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return cuts[49], cuts[98]


def side_figures(path: str, events: int, runs: Sequence[Run]) -> dict[str, Any]:
    """events/s per run and their median, plus the median over runs of each run's p50 / p99 latency."""
    cuts = [percentiles(run.latencies_ms) for run in runs]
    return {
        "path": path,
        **common.rate_figures(events, [run.seconds for run in runs]),
        "p50_ms": round(common.median([p50 for p50, _ in cuts]), 3),
        "p99_ms": round(common.median([p99 for _, p99 in cuts]), 3),
        "p99_ms_runs": [round(p99, 3) for _, p99 in cuts],
        "requests_per_run": len(runs[0].latencies_ms),
    }


# -- main ------------------------------------------------------------------------------------------------------


def measure(
    args: Any, submissions: Sequence[bytes], batch_size: int, tick: Callable[[], None]
) -> tuple[list[Run], list[Run]]:
    """`args.repeat` runs of each side at `batch_size`, each on a fresh store; returns (http runs, sdk runs)."""
    bodies = request_bodies(submissions, batch_size)
    http_runs: list[Run] = []
    sdk_runs: list[Run] = []
    for repetition in range(args.repeat):
        order = ("sdk", "http") if repetition % 2 == 0 else ("http", "sdk")
        for side in order:
            with tempfile.TemporaryDirectory(prefix=f"bench-http-{side}-", dir=args.tmp_dir) as work_dir:
                settings = common.fresh_settings(Path(work_dir) / "ledger")
                if side == "sdk":
                    sdk_runs.append(run_sdk(settings, submissions, batch_size))
                else:
                    _, token = ApiKeyStore(settings.key_dir).create(common.TENANT, "producer", "bench")
                    with serve(settings, workers=args.workers) as url:
                        http_runs.append(run_http(url, token, bodies, batch_size, args.clients))
            tick()
    return http_runs, sdk_runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = common.run_parser(__doc__, events=20_000, repeat=3, tmp="the fresh stores", profiled="(unused)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--batch-size", type=int, default=50, help="events per batch request (default 50)")
    parser.add_argument(
        "--workers", action="store_true", help="run the server's in-process sealer and consumers (default off)"
    )
    args = parser.parse_args(argv)
    if min(args.events, args.repeat, args.clients, args.batch_size, args.missions) < 1:
        parser.error("--events, --repeat, --clients, --batch-size and --missions must be positive")
    if args.batch_size > 1000:
        parser.error("--batch-size is at most 1000 (the server's default --max-batch-items)")

    submissions = common.submissions(args.events, missions=args.missions)
    try:
        with common.progress() as bar:
            task = bar.add_task("http load", total=args.repeat * 4)
            single_http, single_sdk = measure(args, submissions, 1, lambda: bar.advance(task))
            batch_http, batch_sdk = measure(args, submissions, args.batch_size, lambda: bar.advance(task))
    except BenchFailed as failure:
        print(f"http_load: {failure}", file=sys.stderr)
        return 1

    figures = side_figures(f"HTTP POST /events, {args.clients} clients", args.events, single_http)
    baseline = side_figures("Ledger.append in process, 1 caller", args.events, single_sdk)
    batch_figures = side_figures(
        f"HTTP POST /events/batch of {args.batch_size}, {args.clients} clients", args.events, batch_http
    )
    batch_baseline = side_figures(f"Ledger.append_batch of {args.batch_size} in process", args.events, batch_sdk)
    sizes = sorted(len(submission) for submission in submissions)
    common.print_result(
        "http_load",
        params={
            "events": args.events,
            "repeat": args.repeat,
            "clients": args.clients,
            "batch_size": args.batch_size,
            "missions": args.missions,
            "server_workers": args.workers,
            "tmp_dir": str(args.tmp_dir or tempfile.gettempdir()),
            "submission_bytes_median": sizes[len(sizes) // 2],
            "event_types": list(common.CYCLE),
            "timed": "first request to last answer of all clients; server start and key creation excluded",
            "latency": "per request (HTTP) or per call (SDK), client side",
        },
        figures=figures,
        baseline=baseline,
        targets=TARGETS,
        extra={
            "batch": {
                "figures": batch_figures,
                "baseline": batch_baseline,
                "ratio": round(batch_figures["events_per_s"] / batch_baseline["events_per_s"], 4),
            }
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
