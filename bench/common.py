"""Shared pieces of the benchmarks: workload, timing statistics, machine facts, the JSON result and progress.

The workload is a realistic agent trace: many missions written round-robin, each repeating the cycle
model output -> tool call requested -> tool call completed -> step recorded -> memory written, built from the
one valid example per type in `schemas/examples.py` with every id, digest and text varied per event.
Every benchmark prints one JSON object on stdout; progress goes to stderr only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import shlex
import sqlite3
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.config import Settings
from ledger.intake import Limits
from ledger.keys import SignerKey, write_key_pair
from ledger.sequencer import CheckpointPolicy
from schemas.envelope import Submission
from schemas.examples import EXAMPLES
from schemas.registry import parse_payload, spec_for

TENANT = "acme"
CYCLE = (
    "model.output.recorded",
    "tool.call.requested",
    "tool.call.completed",
    "mission.step.recorded",
    "memory.written",
)
"""The order of event types inside every mission: one agent turn."""

_TOOLS = ("github.create_pull_request", "ci.run_tests", "repo.read_file", "repo.search", "jira.update_issue")
_MODELS = ("anthropic/claude-sonnet-4-5", "openai/gpt-4.1", "google/gemini-2.5-pro")
_VERBS = (
    "Reproduced",
    "Isolated",
    "Patched",
    "Benchmarked",
    "Reviewed",
    "Refactored",
    "Documented",
    "Tested",
)
_OBJECTS = (
    "the race between the ledger write and the assertion in the checkout suite",
    "the retry loop of the payment gateway client when the upstream returns 503",
    "the flaky fixture that seeds the inventory database before each test",
    "the slow query behind the monthly invoice report for enterprise tenants",
    "the cache invalidation of the session store after a password reset",
    "the timezone handling of the nightly settlement batch",
)
_OUTCOMES = (
    "The change is small and keeps every existing assertion.",
    "CI is green on three consecutive runs; waiting for the full matrix.",
    "The root cause is confirmed by a failing test that now passes.",
    "Two callers needed the same fix; both are covered by new tests.",
)


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _event_id(rng: random.Random, index: int) -> str:
    """A UUIDv7-shaped idempotency key, unique per event and reproducible from the seed."""
    millis = 1_738_000_000_000 + index
    rand = rng.getrandbits(74)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}. {rng.choice(_OUTCOMES)}"


def _payload(kind: str, rng: random.Random, mission: str, turn: int, agent: str, request_id: str | None) -> Any:
    payload = dict(EXAMPLES[kind].payload)
    call_id = f"call-{mission}-{turn}"
    tool = _TOOLS[turn % len(_TOOLS)]
    if kind == "model.output.recorded":
        model = _MODELS[turn % len(_MODELS)]
        payload.update(
            model=model,
            output_digest=_sha(f"{mission}/{turn}/output/{rng.random()}"),
            summary=f"Plan for turn {turn}: {_sentence(rng)}",
            input_digest=_sha(f"{mission}/{turn}/prompt"),
            tokens_in=rng.randrange(2_000, 60_000),
            tokens_out=rng.randrange(100, 4_000),
            latency_ms=rng.randrange(300, 20_000),
        )
    elif kind == "tool.call.requested":
        arguments = {
            "repo": f"acme/service-{mission}",
            "branch": f"fix/{mission}-turn-{turn}",
            "query": rng.choice(_OBJECTS),
        }
        payload.update(
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            arguments_digest=_sha(orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()),
            level=rng.choice(("sandbox", "canary", "production")),
            requires_approval=tool == "github.create_pull_request",
            purpose=_sentence(rng)[:160],
        )
    elif kind == "tool.call.completed":
        payload.update(
            call_id=call_id,
            tool=tool,
            output_digest=_sha(f"{call_id}/output/{rng.random()}"),
            output_summary=f"{tool} finished for turn {turn}: {rng.choice(_OUTCOMES)}",
            output_uri=f"https://artifacts.example/acme/{mission}/{call_id}.json",
            output_bytes=rng.randrange(200, 500_000),
            duration_ms=rng.randrange(20, 90_000),
        )
    elif kind == "mission.step.recorded":
        payload.update(
            step_id=f"s-{turn}",
            summary=f"{_sentence(rng)} {_sentence(rng)}",
            status=rng.choice(("in_progress", "completed", "completed", "failed")),
            criterion_ids=["c-green", "c-reviewed"][: 1 + turn % 2],
        )
    elif kind == "memory.written":
        payload.update(
            memory_id=f"mem-{mission}-{turn}",
            key=f"acme/service-{mission}/turn-{turn}",
            content=f"{_sentence(rng)} Remember to check {rng.choice(_OBJECTS)} first.",
            shared_with=[agent, "a-reviewer-2"],
            source_event_ids=[request_id] if request_id else [],
        )
    return payload


def submissions(count: int, *, missions: int = 200, seed: int = 7, tenant: str = TENANT) -> list[bytes]:
    """`count` schema-valid submissions as JSON bytes, round-robin over `missions` mission streams."""
    return list(iter_submissions(count, missions=missions, seed=seed, tenant=tenant))


def iter_submissions(count: int, *, missions: int = 200, seed: int = 7, tenant: str = TENANT) -> Iterator[bytes]:
    """`submissions`, one at a time (a 10,000,000-event log does not fit in memory as a list)."""
    rng = random.Random(seed)
    requested: dict[int, str] = {}  # mission -> event_id of its open tool.call.requested
    for index in range(count):
        slot = index % missions
        turn, position = divmod(index // missions, len(CYCLE))
        kind = CYCLE[position]
        mission = f"m-{slot:04d}"
        agent = f"a-coder-{slot % 37}"
        event_id = _event_id(rng, index)
        example = EXAMPLES[kind]
        actor_id = _MODELS[turn % len(_MODELS)] if example.actor_kind == "model" else example.actor_id
        if example.actor_kind == "agent":
            actor_id = agent
        submission = {
            "event_id": event_id,
            "tenant": tenant,
            "stream": f"mission/{mission}",
            "type": kind,
            "schema_version": example.version,
            "actor": {"kind": example.actor_kind, "id": actor_id},
            "agent_id": agent,
            "mission_id": mission,
            "causation_id": requested.get(slot) if kind == "tool.call.completed" else None,
            "correlation": {
                "trace_id": f"{rng.getrandbits(128):032x}",
                "span_id": f"{rng.getrandbits(64):016x}",
            },
            "occurred_at": f"2025-02-01T{(index // 3_600_000) % 24:02d}:{(index // 60_000) % 60:02d}:"
            f"{(index // 1000) % 60:02d}.{index % 1000:03d}000Z",
            "payload": _payload(kind, rng, mission, turn, agent, requested.get(slot)),
        }
        if kind == "tool.call.requested":
            requested[slot] = event_id
        yield orjson.dumps({key: value for key, value in submission.items() if value is not None})


def check_submission(fields: dict[str, Any]) -> None:
    """The pydantic checks of a submission and of its payload, and nothing else: the validation the contract
    requires of every sequencer (the floors of `embedded_append.py` and `kafka_relay.py`)."""
    submission = Submission.model_validate(fields)
    parse_payload(spec_for(submission.type, submission.schema_version), submission.payload)


def stream_of(submission: bytes) -> tuple[str, str, str]:
    """(tenant, stream, type) of an encoded submission, for baselines that store it raw."""
    fields = orjson.loads(submission)
    return fields["tenant"], fields["stream"], fields["type"]


def fresh_settings(data_dir: Path) -> Settings:
    """Settings for a new ledger in `data_dir` with a generated key, ignoring AGENT_LEDGER_* variables."""
    settings = Settings(
        data_dir=data_dir,
        keys_dir=data_dir / "keys",
        limits=Limits(),
        checkpoint_policy=CheckpointPolicy(),
    )
    write_key_pair(settings.key_dir, SignerKey.generate("bench"))
    return settings


def batches(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_parser(doc: str, *, events: int, repeat: int, tmp: str, profiled: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: size, repetitions, streams, scratch dir and profile output."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--events", type=int, default=events, help=f"events per run (default {events:,})")
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"runs of each side; the median counts (default {repeat})"
    )
    parser.add_argument("--missions", type=int, default=200, help="mission streams, round-robin (default 200)")
    parser.add_argument("--tmp-dir", type=Path, default=None, help=f"where {tmp} go (default: system tmp)")
    parser.add_argument("--profile", type=Path, default=None, help=f"write cProfile stats of {profiled} here")
    return parser


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        "eventsourcing": _version("eventsourcing"),
        "orjson": _version("orjson"),
        "pydantic": _version("pydantic"),
        "loadavg_1m": None if load is None else round(load[0], 2),
    }


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def rate_figures(events: int, seconds: Sequence[float]) -> dict[str, Any]:
    """events/s of each run and their median (the figure compared against targets)."""
    rates = [events / elapsed for elapsed in seconds]
    return {
        "events_per_s": round(median(rates), 1),
        "events_per_s_runs": [round(rate, 1) for rate in rates],
        "seconds_runs": [round(elapsed, 4) for elapsed in seconds],
        "events": events,
    }


def print_result(
    benchmark: str,
    *,
    params: dict[str, Any],
    figures: dict[str, Any],
    baseline: dict[str, Any],
    targets: dict[str, float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the result object on stdout; `met` compares each target with the figure of the same name."""
    ratio = figures["events_per_s"] / baseline["events_per_s"] if baseline["events_per_s"] else 0.0
    observed = {"events_per_s": figures["events_per_s"], "ratio": ratio}
    result: dict[str, Any] = {
        "benchmark": benchmark,
        "command": command_line(),
        "machine": machine(),
        "params": params,
        "figures": figures,
        "baseline": baseline,
        "ratio": round(ratio, 4),
        "targets": targets,
        "met": {name: observed[name] >= target for name, target in targets.items()},
        **(extra or {}),
    }
    sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()
    return result


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr, drawn only when stderr is a terminal."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    ) as bar:
        yield bar
