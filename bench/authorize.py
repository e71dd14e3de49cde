"""Authorize latency: p99 under 5 ms in process, against a bare read of the same scope row.

Setup (not timed): a fresh embedded ledger with --agents agents, each granted tools by a human `scope.granted`
(`deploy.service` at sandbox, then at production; `ci.run_tests` at canary; `github.create_pull_request` at
production; `repo.read_file` at sandbox later) plus some tool history (successes, one failure), folded by
`Ledger.projections().catch_up()`. Ledger side: `ProjectionService.authorize(...)` timed per call
(`time.perf_counter` around each call) over a fixed mix of agents, tools and levels whose answers are allow,
deny and escalate: (a) the answer only (`record=False`), (b) the answer recorded as a `policy.decision` event
(`record=True`, one append each) and (c) a historical question (`at=` a time between the two grant phases).
Baseline, same run, same questions: a bare read of the agent's scope entity row from the same store
(`SELECT data FROM entities WHERE key=?` + `orjson.loads`), so the ratio says how much the decision costs
beyond the read. calls/s = calls / summed per-call latency; p50/p99/max and calls/s are medians over --repeat
runs. Repetitions rotate the order of the four sides.

    python bench/authorize.py [--calls 10000] [--repeat 3] [--agents 200] [--tmp-dir DIR] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
import orjson

from consumers.service import ProjectionService
from ledger.clock import utc_now
from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger
from projections.base import entity_key

TENANT = common.TENANT
P99_CEILING_MS = 5.0
DIGEST = "sha256:" + "ab" * 32
KINDS = ("baseline", "answer", "recorded", "historical")

# (tool, level) -> the answer now and at the time between the two grant phases (see `grants`).
QUESTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("deploy.service", "sandbox"): ("allow", "allow"),
    ("deploy.service", "canary"): ("allow", "deny"),
    ("deploy.service", "production"): ("escalate", "deny"),
    ("ci.run_tests", "canary"): ("allow", "allow"),
    ("ci.run_tests", "production"): ("deny", "deny"),
    ("github.create_pull_request", "production"): ("escalate", "escalate"),
    ("repo.read_file", "sandbox"): ("allow", "deny"),
    ("repo.read_file", "canary"): ("deny", "deny"),
    ("shell.exec", "sandbox"): ("deny", "deny"),
}
UNKNOWN_AGENT_SHARE = 0.05
"""Share of questions about an agent the ledger has never seen (no scope row: deny)."""


@dataclass(frozen=True)
class Question:
    agent_id: str
    tool: str
    level: str
    key: str  # the scope entity key the baseline reads


def agent_name(index: int) -> str:
    return f"a-agent-{index:05d}"


def grant(agent: str, tool: str, level: str) -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "stream": f"agent/{agent}",
        "type": "scope.granted",
        "actor": {"kind": "human", "id": "ops:alice"},
        "agent_id": agent,
        "payload": {"tool": tool, "level": level, "reason": "onboarding by the platform team"},
    }


def tool_call(agent: str, number: int, tool: str, level: str, ok: bool) -> list[dict[str, Any]]:
    """An agent's tool call and the tool's report of it (the evidence the scope fold counts)."""
    call_id = f"call-{agent}-{number}"
    context = {"tenant": TENANT, "stream": f"mission/m-{agent}", "agent_id": agent, "mission_id": f"m-{agent}"}
    requested = context | {
        "type": "tool.call.requested",
        "actor": {"kind": "agent", "id": agent},
        "payload": {"call_id": call_id, "tool": tool, "level": level, "arguments": {"service": "billing"}},
    }
    payload: dict[str, Any] = {"call_id": call_id, "tool": tool, "duration_ms": 900}
    if ok:
        payload["output_digest"] = DIGEST
    else:
        payload |= {"error_kind": "execution_error", "message": "rollout failed health checks", "retryable": False}
    result = context | {
        "type": "tool.call.completed" if ok else "tool.call.failed",
        "actor": {"kind": "tool", "id": f"tool:{tool}"},
        "payload": payload,
    }
    return [requested, result]


def grants(agents: int, phase: int) -> list[dict[str, Any]]:
    """Phase 1: the first grants. Phase 2 (after the historical mark): a wider grant, a new one, tool history."""
    submissions: list[dict[str, Any]] = []
    for index in range(agents):
        agent = agent_name(index)
        if phase == 1:
            submissions += [
                grant(agent, "deploy.service", "sandbox"),
                grant(agent, "ci.run_tests", "canary"),
                grant(agent, "github.create_pull_request", "production"),
            ]
        else:
            submissions += [grant(agent, "deploy.service", "production"), grant(agent, "repo.read_file", "sandbox")]
            # Three successes (below the policy's five to widen; canary is its ceiling anyway) and one failure
            # (below its two to narrow), so the stored scope carries counts, evidence ids and open-call state.
            for number in range(3):
                submissions += tool_call(agent, number, "ci.run_tests", "canary", ok=True)
            submissions += tool_call(agent, 3, "repo.read_file", "sandbox", ok=False)
    return submissions


def append_all(ledger: Ledger, submissions: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(submissions), 500):
        outcomes = ledger.append_batch(submissions[start : start + 500])
        refused = [outcome for outcome in outcomes if isinstance(outcome, SubmissionRefused)]
        if refused:
            raise SystemExit(f"authorize: {len(refused)} setup submissions were refused, e.g. {refused[0]}")


def setup(ledger: Ledger, agents: int) -> tuple[ProjectionService, str]:
    """Grant, record history and catch the projections up; returns the service and the historical mark."""
    append_all(ledger, grants(agents, 1))
    time.sleep(0.01)  # recorded_at has microsecond resolution: keep the mark strictly between the phases
    mark = utc_now()
    time.sleep(0.01)
    append_all(ledger, grants(agents, 2))
    service = ledger.projections()
    for _ in range(10):  # decisions appended by one projection are folded by the others on the next pass
        if service.catch_up() == 0:
            break
    return service, mark


def questions(count: int, agents: int, seed: int = 11) -> list[Question]:
    rng = random.Random(seed)
    asked = list(QUESTIONS)
    mix: list[Question] = []
    for _ in range(count):
        if rng.random() < UNKNOWN_AGENT_SHARE:
            agent = f"a-unknown-{rng.randrange(1_000):04d}"
        else:
            agent = agent_name(rng.randrange(agents))
        tool, level = rng.choice(asked)
        mix.append(Question(agent, tool, level, entity_key(TENANT, "agent", agent)))
    return mix


@dataclass
class Run:
    seconds: float  # summed per-call latency
    latencies_ms: list[float]
    answers: Counter[str]


def timed(mix: Sequence[Question], call: Callable[[Question], str | None], profiler: cProfile.Profile | None) -> Run:
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    clock = time.perf_counter
    if profiler is not None:
        profiler.enable()
    for question in mix:
        started = clock()
        answer = call(question)
        latencies.append(clock() - started)
        if answer is not None:
            answers[answer] += 1
    if profiler is not None:
        profiler.disable()
    return Run(sum(latencies), [latency * 1000 for latency in latencies], answers)


def sides(service: ProjectionService, mark: str) -> dict[str, Callable[[Question], str | None]]:
    scope_store = service.store("scope")

    def baseline(question: Question) -> None:
        with scope_store.read() as cursor:
            cursor.execute("SELECT data FROM entities WHERE key=?", (question.key,))
            row = cursor.fetchone()
        if row is not None:
            orjson.loads(row[0])

    def answer(question: Question) -> str:
        reply = service.authorize(TENANT, question.agent_id, question.tool, question.level, record=False)
        return reply.authorization.decision

    def recorded(question: Question) -> str:
        reply = service.authorize(TENANT, question.agent_id, question.tool, question.level, record=True)
        return reply.authorization.decision

    def historical(question: Question) -> str:
        reply = service.authorize(TENANT, question.agent_id, question.tool, question.level, at=mark, record=False)
        return reply.authorization.decision

    return {"baseline": baseline, "answer": answer, "recorded": recorded, "historical": historical}


def expected_answers(mix: Sequence[Question], agents: int, historical: bool) -> Counter[str]:
    known = {agent_name(index) for index in range(agents)}
    return Counter(QUESTIONS[(q.tool, q.level)][int(historical)] if q.agent_id in known else "deny" for q in mix)


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) the way bench/kafka_ingest.py computes its p99."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def latency_figures(runs: Sequence[Run]) -> dict[str, Any]:
    p50 = [percentile(run.latencies_ms, 50) for run in runs]
    p99 = [percentile(run.latencies_ms, 99) for run in runs]
    top = [max(run.latencies_ms) for run in runs]
    return {
        "p50_ms": round(common.median(p50), 4),
        "p99_ms": round(common.median(p99), 4),
        "max_ms": round(common.median(top), 4),
        "p50_ms_runs": [round(value, 4) for value in p50],
        "p99_ms_runs": [round(value, 4) for value in p99],
        "max_ms_runs": [round(value, 4) for value in top],
    }


def side_figures(path: str, calls: int, runs: Sequence[Run]) -> dict[str, Any]:
    figures = {"path": path, **common.rate_figures(calls, [run.seconds for run in runs]), **latency_figures(runs)}
    if runs[0].answers:
        figures["answers"] = dict(sorted(runs[0].answers.items()))
    return figures


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--calls", type=int, default=10_000, help="timed calls per side per run (default 10,000)")
    options.add_argument("--repeat", type=int, default=3, help="runs of each side; the median counts (default 3)")
    options.add_argument("--agents", type=int, default=200, help="agents with scope grants (default 200)")
    options.add_argument("--tmp-dir", type=Path, default=None, help="where the ledger goes (default: system tmp)")
    options.add_argument("--profile", type=Path, default=None, help="write cProfile stats of the answer calls here")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parser()
    args = options.parse_args(argv)
    if args.calls < 1 or args.repeat < 1 or args.agents < 1:
        options.error("--calls, --repeat and --agents must be positive")
    mix = questions(args.calls, args.agents)
    profiler = cProfile.Profile() if args.profile else None
    runs: dict[str, list[Run]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-authorize-", dir=args.tmp_dir) as work:
        settings = common.fresh_settings(Path(work) / "ledger")
        with Ledger.open(settings) as ledger:
            service, mark = setup(ledger, args.agents)
            setup_events = sum(1 for _ in ledger.records())
            calls = sides(service, mark)
            warm = mix[: min(len(mix), 200)]
            for kind in KINDS:  # open the stores, warm the caches and check the answers once
                timed(warm, calls[kind], None)
            with common.progress() as bar:
                task = bar.add_task("authorize vs bare read", total=args.repeat * len(KINDS))
                for repetition in range(args.repeat):
                    shift = repetition % len(KINDS)  # rotate so no side always runs first (or last)
                    for kind in KINDS[shift:] + KINDS[:shift]:
                        profiled = profiler if kind == "answer" else None
                        runs[kind].append(timed(mix, calls[kind], profiled))
                        bar.advance(task)
    if profiler is not None:
        profiler.dump_stats(args.profile)

    for kind, historical in (("answer", False), ("recorded", False), ("historical", True)):
        if runs[kind][0].answers != expected_answers(mix, args.agents, historical):
            raise SystemExit(f"authorize: unexpected {kind} answers {dict(runs[kind][0].answers)}; setup is wrong")

    figures = side_figures("ProjectionService.authorize(record=False)", args.calls, runs["answer"])
    figures["recorded"] = side_figures(
        "ProjectionService.authorize(record=True): the answer plus one policy.decision append",
        args.calls,
        runs["recorded"],
    )
    figures["historical"] = side_figures(
        "ProjectionService.authorize(at=<between the grant phases>, record=False)", args.calls, runs["historical"]
    )
    baseline = side_figures(
        "ConsumerStore.read(): SELECT data FROM entities WHERE key=? + orjson.loads (scope store)",
        args.calls,
        runs["baseline"],
    )
    p99 = figures["p99_ms"]
    common.print_result(
        "authorize",
        params={
            "calls": args.calls,
            "repeat": args.repeat,
            "agents": args.agents,
            "tmp_dir": str(args.tmp_dir or tempfile.gettempdir()),
            "setup_events": setup_events,
            "questions": [f"{tool}@{level}" for tool, level in QUESTIONS],
            "unknown_agent_share": UNKNOWN_AGENT_SHARE,
            "timed": "each call alone (perf_counter around it); setup, catch_up and a 200-call warm-up excluded",
            "events_per_s": "calls per second = calls / summed per-call latency",
        },
        figures=figures,
        baseline=baseline,
        targets={},
        extra={
            # The latency target is a ceiling, so `met` is completed here rather than by `print_result`.
            "targets": {"p99_ms_max": P99_CEILING_MS},
            "met": {"p99_ms_max": p99 < P99_CEILING_MS},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
