"""Projection consumers of a Kafka ledger killed with SIGKILL mid-catch-up, then restarted: exactly-once.

`agent-ledger consume scope` and `consume trust` fold a few thousand tool-call events of several agents (each
granted a tool by a human, then widened after successes and narrowed after failures) and append their
decisions from an outbox through `ledger.intake`, so each gets its receipts from a running sequencer. Each is
killed with `kill -9` twice while catching up (the first time, as a rule, with decisions committed to its
outbox and not yet marked appended), then finishes with `--once`. Afterwards:

- right after each kill, the store holds exactly the fold of the events up to its stored positions (state,
  outbox and position committed together);
- its final entities equal a clean in-memory fold of the events in the log (derived echoes are no evidence) and
  a second consumer built from zero, and its positions are the end of every partition;
- every decision is in `ledger.events` exactly once, and the log holds exactly the outbox's rows, all appended.

Every event of one agent is on its own stream `agent/<id>`, so an agent's fold order is its partition's order,
whichever way a runner interleaves the partitions' batches: "equal to a clean fold" is then an exact claim.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from conftest import make_settings
from kafka_support import BOOTSTRAP, SequencerThread, fresh_topics, requires_kafka, wait_sealed

from consumers.policy_files import default_policy
from consumers.projection import encode_entity
from consumers.registry import consumer_for
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.errors import SubmissionRefused
from ledger.log.base import LogBackend
from ledger.sdk import Ledger
from projections.registry import PROJECTIONS

pytestmark = requires_kafka

_support = importlib.util.spec_from_file_location(
    "projection_support", Path(__file__).parents[1] / "projections/support.py"
)
assert _support is not None and _support.loader is not None
support = importlib.util.module_from_spec(_support)
_support.loader.exec_module(support)
Fold = support.Fold

CLI = [sys.executable, "-m", "ledger.cli.main"]
NAMES = ("scope", "trust")
TENANTS = ("acme", "globex")
TOOLS = ("deploy.service", "db.migrate", "ci.run_tests")
AGENTS = 9
CYCLES = 22  # per agent: 5 successes (scope widens to canary), then 2 failures (it narrows back to sandbox)
BATCH = 8  # events per consumer transaction while it is being killed: hundreds of batches, each publishing
LAST_BATCH = 100  # the last run's (a caught-up partition costs each round a poll of the broker)
POLICY = default_policy()
DIGEST = "sha256:" + "cd" * 32
DECIDED = {  # the kinds of decisions the workload makes each projection take
    "scope": {("scope.widened", None), ("scope.narrowed", None), ("scope.revoked", None)},
    "trust": {("trust.changed", "reliability"), ("trust.changed", "safety")},
}


# -- the workload -------------------------------------------------------------------------------------------


def agent_story(n: int) -> list[dict[str, Any]]:
    """One agent's submissions, all on its stream: a human grant, then cycles of tool calls and their results.
    Every third agent also has a call denied by the gateway at the sandbox level (revoked), then is re-granted."""
    tenant, agent, tool = TENANTS[n % 2], f"agent-{n}", TOOLS[n % 3]
    base = {"tenant": tenant, "stream": f"agent/{agent}", "agent_id": agent}
    story = [grant(base, tool)]
    calls = 0
    for cycle in range(CYCLES):
        for ok in [True] * 5 + [False] * 2:
            call_id = f"{agent}-call-{calls}"
            calls += 1
            story.extend(tool_call(base, tool, call_id, ok, mission=f"m-{n}-{cycle}"))
        if n % 3 == 0 and cycle == CYCLES // 2:  # now at sandbox: a denied attempt revokes, a human grants again
            story.append(denied_call(base, tool, f"{agent}-call-{calls}"))
            calls += 1
            story.append(grant(base, tool))
    return story


def grant(base: dict[str, Any], tool: str) -> dict[str, Any]:
    return base | {
        "type": "scope.granted",
        "actor": {"kind": "human", "id": "ops:alice"},
        "payload": {"tool": tool, "level": "sandbox", "reason": "onboarding by the platform team"},
    }


def denied_call(base: dict[str, Any], tool: str, call_id: str) -> dict[str, Any]:
    """The tool gateway denies an attempted call above the agent's grant: a violation."""
    return base | {
        "event_id": f"{call_id}-denied",
        "type": "policy.decision",
        "actor": {"kind": "policy", "id": "policy:gateway"},
        "payload": {
            "decision": "deny",
            "tool": tool,
            "level": "production",
            "call_id": call_id,
            "rule": "scope.above_grant",
            "policy_id": POLICY.policy_id,
            "policy_version": POLICY.version,
            "reason": "above grant",
        },
    }


def tool_call(base: dict[str, Any], tool: str, call_id: str, ok: bool, *, mission: str) -> list[dict[str, Any]]:
    context = base | {"mission_id": mission}
    requested = context | {
        "type": "tool.call.requested",
        "actor": {"kind": "agent", "id": base["agent_id"]},
        "payload": {"call_id": call_id, "tool": tool, "level": "sandbox", "arguments": {"service": "billing"}},
    }
    result: dict[str, Any] = context | {
        "event_id": f"{call_id}-{'ok' if ok else 'failed'}",
        "type": "tool.call.completed" if ok else "tool.call.failed",
        "actor": {"kind": "tool", "id": f"tool:{tool}"},
        "payload": {"call_id": call_id, "tool": tool, "duration_ms": 900},
    }
    if ok:
        result["payload"] |= {"output_digest": DIGEST}
    else:
        result["payload"] |= {"error_kind": "execution_error", "message": "health checks failed", "retryable": False}
    return [requested, result]


def workload() -> list[dict[str, Any]]:
    """The agents' stories interleaved, so every batch of a partition touches several agents."""
    stories = [agent_story(n) for n in range(AGENTS)]
    longest = max(len(story) for story in stories)
    return [story[i] for i in range(longest) for story in stories if i < len(story)]


# -- reading a consumer's store (another process may be writing it) -----------------------------------------


@dataclass
class StoreState:
    positions: dict[int, tuple[int, int]]  # partition -> (position, log_index)
    entities: dict[str, Any]
    outbox: list[tuple[str, str, bytes, str]]  # (event_id, tenant, submission, state)
    policies: list[tuple[Any, ...]]

    @property
    def applied(self) -> int:
        return sum(log_index + 1 for _, log_index in self.positions.values())

    def outbox_ids(self) -> Counter[tuple[str, str]]:
        return Counter((tenant, event_id) for event_id, tenant, *_ in self.outbox)


def read_store(path: Path) -> StoreState | None:
    """The store's tables in one read transaction, or None before the consumer created them."""
    if not path.exists():
        return None
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.execute("BEGIN")
        positions = {
            int(p): (int(pos), int(index))
            for p, pos, index in connection.execute("SELECT partition, position, log_index FROM consumer_positions")
        }
        entities = {key: orjson.loads(data) for key, data in connection.execute("SELECT key, data FROM entities")}
        outbox = list(connection.execute("SELECT event_id, tenant, submission, state FROM outbox ORDER BY id"))
        policies = list(connection.execute("SELECT * FROM policies ORDER BY 1, 2"))
        policies += list(connection.execute("SELECT * FROM active_policies ORDER BY 1"))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        connection.close()
    return StoreState(positions, entities, outbox, policies)


def progress(path: Path) -> tuple[int, int] | None:
    """(events applied, decisions pending in the outbox), cheaply, or None before the consumer made its tables."""
    if not path.exists():
        return None
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.execute("BEGIN")
        (applied,) = connection.execute("SELECT COALESCE(SUM(log_index + 1), 0) FROM consumer_positions").fetchone()
        (pending,) = connection.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        connection.close()
    return int(applied), int(pending)


# -- the consumer processes -----------------------------------------------------------------------------------


class ConsumerProcess:
    """`agent-ledger consume NAME --once` against the Kafka ledger, output to files (no pipe to fill up)."""

    def __init__(
        self,
        name: str,
        state_root: Path,
        data: Path,
        prefix: str,
        log_dir: Path,
        run: int,
        batch: int = BATCH,
        *,
        keys: Path,
    ) -> None:
        self.name = name
        self.store = state_root / "projections" / f"{name}.sqlite"
        self.out = log_dir / f"{name}-{run}.out"
        self.err = log_dir / f"{name}-{run}.err"
        command = [*CLI, "consume", name, "--once", "--batch-size", str(batch), "--state", str(state_root)]
        # The ledger key signs the decisions it appends through ledger.intake (docs/kafka.md, producer auth).
        command += ["--data", str(data), "--keys", str(keys), "--kafka", BOOTSTRAP, "--topic-prefix", prefix]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, text=True)

    def output(self) -> str:
        return f"stdout: {self.out.read_text()}\nstderr: {self.err.read_text()[-4000:]}"

    def kill_9(self) -> None:
        assert self.process.poll() is None, f"{self.name} finished before it could be killed\n{self.output()}"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.returncode == -signal.SIGKILL

    def finish(self, timeout_s: float = 180) -> str:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"{self.name} did not finish in {timeout_s} s\n{self.output()}") from None
        assert self.process.returncode == 0, self.output()
        return self.out.read_text()


def kill_when(runs: list[ConsumerProcess], ready: Callable[[str, int, int], bool], timeout_s: float = 150) -> None:
    """Poll the consumers' stores; kill -9 each once `ready(name, applied, pending)`, all within the timeout."""
    alive = list(runs)
    deadline = time.monotonic() + timeout_s
    while alive:
        assert time.monotonic() < deadline, f"not killed in time: {[run.name for run in alive]}"
        for run in list(alive):
            assert run.process.poll() is None, f"{run.name} exited early\n{run.output()}"
            found = progress(run.store)
            if found is not None and ready(run.name, *found):
                run.kill_9()
                alive.remove(run)
        time.sleep(0.01)


# -- what the log holds -------------------------------------------------------------------------------------


def log_events(log: LogBackend) -> dict[int, list[dict[str, Any]]]:
    return {p: [record.envelope() for record in log.read(p)] for p in range(log.partition_count)}


def clean_fold(name: str, events: dict[int, list[dict[str, Any]]], upto: dict[int, tuple[int, int]]) -> Any:
    """An in-memory fold (tests/projections/support.py) of each partition up to `upto`'s log index, derived echoes
    left out as the projection leaves them out. Partition by partition: no agent's events span two partitions."""
    fold = Fold(PROJECTIONS[name](), POLICY)
    for partition, envelopes in sorted(events.items()):
        stop = upto[partition][1] + 1 if partition in upto else 0
        fold.apply(event for event in envelopes[:stop] if not event["event_id"].startswith("derived:"))
    return fold


def assert_store_is_the_fold(name: str, state: StoreState, events: dict[int, list[dict[str, Any]]]) -> Any:
    """State, outbox and positions moved together: the store is exactly the fold of what it says it applied."""
    fold = clean_fold(name, events, state.positions)
    assert state.entities == {key: orjson.loads(encode_entity(data)) for key, data in fold.encoded().items()}
    derived = {key: n for key, n in state.outbox_ids().items() if key[1].startswith("derived:")}
    decided = Counter((d.tenant, d.event_id) for d in fold.decisions)
    assert max(decided.values(), default=1) == 1  # a decision's id names it: no two decisions share one
    assert derived == decided
    return fold


def test_kill_9_of_projection_consumers_on_kafka_appends_every_decision_exactly_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, interval_ms=200)
    topics = fresh_topics(partitions=3)
    submissions = workload()
    assert 2_500 <= len(submissions) <= 3_500
    sequencer = SequencerThread(settings, topics, tmp_path / "sequencer")
    state_root, logs = tmp_path / "consumers", tmp_path / "logs"
    logs.mkdir()
    try:
        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics) as ledger:
            for start in range(0, len(submissions), 500):
                outcomes = ledger.append_batch(submissions[start : start + 500])
                refused = [o for o in outcomes if isinstance(o, SubmissionRefused)]
                assert not refused, refused[:3]
            wait_sealed(ledger)
        total = len(submissions)

        with Ledger.open(settings, kafka=BOOTSTRAP, topics=topics, read_only=True) as reader:
            log = reader.log
            data, keys, prefix = settings.data_dir, settings.key_dir, topics.prefix

            # 1. Killed early on with decisions committed to the outbox and not yet marked appended (maybe sent
            #    already). Trust decides mostly early, while evidence is thin: failing that, killed at a quarter.
            runs = [ConsumerProcess(name, state_root, data, prefix, logs, 1, keys=keys) for name in NAMES]
            kill_when(
                runs, lambda _, applied, pending: applied >= total // 20 and (pending > 0 or applied >= total // 4)
            )
            # 2. Restarted, and killed again wherever it happens to be, further on.
            stood, events = {run.name: read_store(run.store) for run in runs}, log_events(log)
            for name, state in stood.items():
                assert state is not None and total // 20 <= state.applied < total, name
                assert_store_is_the_fold(name, state, events)
            runs = [ConsumerProcess(name, state_root, data, prefix, logs, 2, keys=keys) for name in NAMES]
            applied_before = {name: state.applied for name, state in stood.items() if state is not None}
            kill_when(runs, lambda name, applied, _: applied >= applied_before[name] + total // 3)
            events = log_events(log)
            for run in runs:
                state = read_store(run.store)
                assert state is not None and applied_before[run.name] < state.applied < total, run.name
                assert_store_is_the_fold(run.name, state, events)

            # 3. Restarted once more, with larger batches: it catches up to the end of the log, its own decisions'
            #    echoes included.
            runs = [ConsumerProcess(name, state_root, data, prefix, logs, 3, LAST_BATCH, keys=keys) for name in NAMES]
            for run in runs:
                run.finish()
            # 4. The two ran side by side, so the first to finish may not have seen the other's last decisions.
            #    With both stopped the log is quiet: one more pass each, one after the other, ends at the end.
            summaries = {}
            for name in NAMES:
                summaries[name] = ConsumerProcess(
                    name, state_root, data, prefix, logs, 4, LAST_BATCH, keys=keys
                ).finish()
            events = log_events(log)
            in_log = Counter((e["tenant"], e["event_id"]) for envelopes in events.values() for e in envelopes)
            assert max(in_log.values()) == 1  # no event of any kind twice in ledger.events
            for name in NAMES:
                check_final(name, summaries[name], state_root, log, events, in_log, tmp_path)
            assert sum(in_log.values()) - total == len(
                {key for name in NAMES for key in outbox_keys(state_root, name)}
            )  # the log holds the workload and the consumers' outbox rows, nothing else
    finally:
        sequencer.stop()
    assert sequencer.error is None, sequencer.error


def outbox_keys(state_root: Path, name: str) -> set[tuple[str, str]]:
    state = read_store(state_root / "projections" / f"{name}.sqlite")
    assert state is not None
    return set(state.outbox_ids())


def check_final(
    name: str,
    summary: str,
    state_root: Path,
    log: LogBackend,
    events: dict[int, list[dict[str, Any]]],
    in_log: Counter[tuple[str, str]],
    tmp_path: Path,
) -> None:
    assert summary.startswith(f"{name}: applied ") and "; lag 0; " in summary, summary
    state = read_store(state_root / "projections" / f"{name}.sqlite")
    assert state is not None

    # The stored positions are the end of every partition.
    ends = {p: (log.end_position(p), log.size(p) - 1) for p in range(log.partition_count)}
    assert state.positions == ends

    # Its state is a clean fold of the log, and so is its outbox: every decision once, each one appended once.
    fold = assert_store_is_the_fold(name, state, events)
    assert {(d.type, d.payload.get("dimension")) for d in fold.decisions} == DECIDED[name]  # the workload's aim
    assert {row[3] for row in state.outbox} == {"appended"}
    outbox = state.outbox_ids()
    assert all(in_log[key] == 1 for key in outbox)  # each row of the outbox is in ledger.events exactly once
    mine = {key for key in in_log if key[1].startswith(f"derived:{name}:")}
    assert mine == {key for key in outbox if key[1].startswith("derived:")}  # and no decision not in the outbox
    assert len(mine) == len(fold.decisions)
    # each tenant's default policy entered the log once, queued in the outbox with the tenant's first decisions
    for tenant in TENANTS:
        for kind in ("policy.published", "policy.activated"):
            found = [
                (e["tenant"], e["event_id"])
                for p in events.values()
                for e in p
                if (e["tenant"], e["type"]) == (tenant, kind)
            ]
            assert len(found) == 1 and found[0] in outbox, (kind, found)

    # A second consumer from zero into its own store (nothing published) ends in the same state.
    clean = ConsumerRunner(log, consumer_for(name), ConsumerStore(tmp_path / f"clean-{name}.sqlite"), batch_size=500)
    clean.catch_up()
    clean.store.close()
    rebuilt = read_store(tmp_path / f"clean-{name}.sqlite")
    assert rebuilt is not None
    assert (rebuilt.positions, rebuilt.policies) == (state.positions, state.policies)
    differing = sorted(
        key
        for key in rebuilt.entities.keys() | state.entities.keys()
        if rebuilt.entities.get(key) != state.entities.get(key)
    )
    assert not differing, (differing, [(rebuilt.entities.get(k), state.entities.get(k)) for k in differing[:1]])
    assert {row[:3] for row in rebuilt.outbox} == {row[:3] for row in state.outbox}
