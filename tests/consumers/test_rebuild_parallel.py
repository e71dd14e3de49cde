"""A rebuild shared out over processes writes exactly what one process writes, and fails whole.

Each process reads the same log range through its own reader (`LogBackend.reader_opener`) and writes its own
projection stores; the table dumps must equal those of a single-process rebuild. A child that reads something
else is an error, and the half-written generation is removed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_events import close_requested, grant, memory_written, mission_opened, tool_call
from conftest import make_settings

from consumers.policy_files import default_policy
from consumers.rebuild import rebuild, store_path
from consumers.store import ConsumerStore
from ledger.errors import VerificationFailed
from ledger.log.base import LogBackend, LogRecord
from ledger.log.embedded import EmbeddedLog
from ledger.sdk import Ledger
from projections.registry import all_projections


def a_busy_log(tmp_path: Path) -> Path:
    settings = make_settings(tmp_path)
    with Ledger.open(settings) as ledger:
        for n in range(12):
            agent, mission = f"a-{n % 3}", f"m-{n}"
            batch = [grant(agent, "ci.run_tests", "sandbox"), *mission_opened(mission, agent)]
            batch += [s for k in range(6) for s in tool_call(agent, "ci.run_tests", k % 4 != 0, mission=mission)]
            batch += [memory_written(f"mem-{n}", agent, mission=mission), close_requested(mission, agent)]
            outcomes = ledger.append_batch(batch)
            assert not [o for o in outcomes if isinstance(o, Exception)]
    return settings.data_dir


def dumps(state_root: Path, generation: str) -> dict[str, str]:
    dumped = {}
    for projection in all_projections():
        with ConsumerStore(store_path(state_root / generation, projection.name)) as store:
            dumped[projection.name] = store.dump()
    return dumped


def test_two_processes_write_the_same_stores_as_one(tmp_path: Path) -> None:
    log = EmbeddedLog(a_busy_log(tmp_path), create=False)
    try:
        alone = rebuild(log, tmp_path / "one", default_policy(), all_projections(), workers=1)
        shared = rebuild(log, tmp_path / "two", default_policy(), all_projections(), workers=2)
    finally:
        log.close()
    assert shared.events == alone.events > 100
    assert shared.entities == alone.entities and all(alone.entities.values())
    assert shared.tenants == alone.tenants == ["acme"]
    one, two = dumps(tmp_path / "one", alone.generation), dumps(tmp_path / "two", shared.generation)
    assert one == two


class DroppingLog(EmbeddedLog):
    """A reader that silently loses the event at log index 10."""

    def read(self, partition: int, start: int = 0, limit: int | None = None) -> Iterator[LogRecord]:
        return (r for r in super().read(partition, start, limit) if r.envelope()["log"]["index"] != 10)


class SkewedLog(EmbeddedLog):
    """A log whose other readers are `DroppingLog`s: what another process reads is not what this one reads."""

    def reader_opener(self) -> Callable[[], LogBackend]:
        return functools.partial(DroppingLog, self.data_dir, create=False, log_id=self.log_id)


def test_a_process_that_reads_another_log_fails_the_rebuild_and_leaves_no_generation(tmp_path: Path) -> None:
    log = SkewedLog(a_busy_log(tmp_path), create=False)
    try:
        with pytest.raises(VerificationFailed, match="log index 11 where 10 was due"):
            rebuild(log, tmp_path / "state", default_policy(), all_projections(), workers=2)
    finally:
        log.close()
    assert not list((tmp_path / "state").glob("gen-*")), "a failed rebuild must not leave a generation behind"
    assert not (tmp_path / "state" / "shadow").exists()
