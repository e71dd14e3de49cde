"""Determinism (guarantee 8) as a property: the same log folds to the same state and the same decisions, every
time, and the consumer's batch boundaries change nothing: state stored batch by batch equals an in-memory fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from agent_events import close_requested, evidence, grant, memory_written, mission_opened, tool_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Fold, sequence

from consumers.policy_files import default_policy
from consumers.projection import ProjectionConsumer
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.log.embedded import EmbeddedLog
from projections.missions import MissionProjection, derive_status
from projections.registry import all_projections

POLICY = default_policy()
AGENTS = ("a-1", "a-2")
TOOLS = ("deploy.service", "ci.run_tests")


def step_submissions(step: tuple[str, int, int]) -> list[dict[str, Any]]:
    kind, agent_index, tool_index = step
    agent, tool = AGENTS[agent_index], TOOLS[tool_index]
    mission = f"m-{agent_index}"
    if kind == "grant":
        return [grant(agent, tool, ("sandbox", "canary")[tool_index])]
    if kind in ("ok", "fail"):
        return tool_call(agent, tool, kind == "ok", mission=mission)
    if kind == "open":
        return mission_opened(mission, agent)
    if kind == "close":
        return [close_requested(mission, agent)]
    if kind == "evidence":
        return [evidence(mission, agent, "ev-cited")]
    return [memory_written(f"mem-{agent_index}-{tool_index}", agent, mission=mission)]


STEPS = st.lists(
    st.tuples(
        st.sampled_from(("grant", "ok", "ok", "fail", "open", "close", "evidence", "memory")),
        st.integers(0, len(AGENTS) - 1),
        st.integers(0, len(TOOLS) - 1),
    ),
    min_size=3,
    max_size=30,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, batch_size=st.integers(1, 9))
def test_the_same_log_folds_to_the_same_state_whatever_the_batches(
    tmp_path_factory: Any, steps: list[tuple[str, int, int]], batch_size: int
) -> None:
    root: Path = tmp_path_factory.mktemp("log")
    events = sequence(root, [submission for step in steps for submission in step_submissions(step)])
    log = EmbeddedLog(root / "ledger", create=False)
    try:
        for projection in all_projections():
            first, second = Fold(projection, POLICY), Fold(projection, POLICY)
            first.apply(events)
            second.apply(events)
            assert first.encoded() == second.encoded()
            assert first.decisions == second.decisions
            if isinstance(projection, MissionProjection):  # status kept incrementally equals a full derivation
                assert all(m.status == derive_status(m) for m in first.entities.values())

            consumer = ProjectionConsumer(projection, POLICY)  # no publisher: decisions stay in the outbox
            with ConsumerStore(root / f"{projection.name}.sqlite") as store:
                ConsumerRunner(log, consumer, store, batch_size=batch_size).catch_up()
                with store.read() as cursor:
                    cursor.execute("SELECT key, data FROM entities ORDER BY key")
                    stored = {key: orjson.loads(data) for key, data in cursor.fetchall()}
                    cursor.execute("SELECT event_id FROM outbox WHERE event_id LIKE 'derived:%' ORDER BY id")
                    queued = [row[0] for row in cursor.fetchall()]
            assert stored == orjson.loads(orjson.dumps(first.encoded()))
            assert queued == [decision.event_id for decision in first.decisions]
    finally:
        log.close()
