"""Group commit: concurrent appends share one sealed batch, and each caller still gets exactly its own outcome.

Against a fake writer: callers queued behind a slow commit are sealed together, per tenant, in arrival order, and
a failed commit fails only the callers in it. Against the real embedded ledger: an `expected_seq` race and a
resent `event_id` among concurrent requests have one winner, and every loser is refused and recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from api_support import TENANT, api_settings
from factories import step

from ledger.api.group_commit import GroupCommit
from ledger.api.service import Service
from ledger.errors import DuplicateEventId, StaleExpectedSeq
from ledger.sequencer import Outcome, RawSubmission
from schemas.envelope import Receipt


class FakeWriter:
    """Echoes each submission back as its 'outcome'; the first commit is slow so that others queue behind it."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.commits: list[tuple[str, list[RawSubmission]]] = []
        self.fail_on = fail_on

    def __call__(self, raws: Sequence[RawSubmission], tenant: str) -> list[Outcome]:
        if not self.commits:
            time.sleep(0.2)
        self.commits.append((tenant, list(raws)))
        if self.fail_on is not None and self.fail_on in raws:
            raise OSError("disk full")
        return list(raws)  # type: ignore[arg-type]  # the fake's outcomes are the submissions themselves


def run_concurrently(group: GroupCommit, calls: list[tuple[list[RawSubmission], str]]) -> list[object]:
    results: list[object] = [None] * len(calls)

    def call(slot: int) -> None:
        raws, tenant = calls[slot]
        try:
            results[slot] = group.append(raws, tenant)
        except OSError as error:
            results[slot] = error

    threads = [threading.Thread(target=call, args=(slot,)) for slot in range(len(calls))]
    threads[0].start()
    time.sleep(0.05)  # the first caller is committing; the rest queue behind it
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_callers_queued_behind_a_commit_are_sealed_together_and_get_their_own_outcomes() -> None:
    writer = FakeWriter()
    calls: list[tuple[list[RawSubmission], str]] = [([f"s-{n}-a", f"s-{n}-b"], "acme") for n in range(12)]

    results = run_concurrently(GroupCommit(writer), calls)

    assert results == [raws for raws, _ in calls]
    assert len(writer.commits) < len(calls)
    assert sorted(raw for _, raws in writer.commits for raw in raws) == sorted(r for raws, _ in calls for r in raws)


def test_a_group_is_sealed_per_tenant() -> None:
    writer = FakeWriter()
    calls: list[tuple[list[RawSubmission], str]] = [([f"s-{n}"], "acme" if n % 2 else "globex") for n in range(9)]

    results = run_concurrently(GroupCommit(writer), calls)

    assert results == [raws for raws, _ in calls]
    for tenant, raws in writer.commits:
        assert all(calls[int(str(raw)[2:])][1] == tenant for raw in raws)


def test_a_group_never_exceeds_its_size_but_always_takes_one_caller() -> None:
    writer = FakeWriter()
    calls: list[tuple[list[RawSubmission], str]] = [([f"s-{n}-{i}" for i in range(3)], "acme") for n in range(10)]

    results = run_concurrently(GroupCommit(writer, max_group=4), calls)

    assert results == [raws for raws, _ in calls]
    assert all(len(raws) == 3 for _, raws in writer.commits)  # 3 + 3 > 4: one caller per commit


def test_a_failed_commit_fails_its_callers_only() -> None:
    writer = FakeWriter(fail_on="s-5")
    calls: list[tuple[list[RawSubmission], str]] = [([f"s-{n}"], "acme") for n in range(8)]

    results = run_concurrently(GroupCommit(writer), calls)

    failed = [slot for slot, result in enumerate(results) if isinstance(result, OSError)]
    assert 5 in failed and 0 not in failed
    assert all(results[slot] == calls[slot][0] for slot in range(8) if slot not in failed)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    opened = Service.open(api_settings(tmp_path))
    yield opened
    opened.close()


def race(service: Service, submissions: list[dict[str, object]]) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(submissions)
    start = threading.Barrier(len(submissions))

    def append(slot: int) -> None:
        start.wait()
        (outcomes[slot],) = service.append_batch([submissions[slot]], tenant=TENANT)

    threads = [threading.Thread(target=append, args=(slot,)) for slot in range(len(submissions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def test_an_expected_seq_race_among_concurrent_requests_has_one_winner(service: Service) -> None:
    outcomes = race(service, [step(mission="handoff", expected_seq=0) for _ in range(16)])

    assert sum(isinstance(outcome, Receipt) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, StaleExpectedSeq) for outcome in outcomes) == 15
    assert [r.reason_code for r in service.ledger.rejections()].count("stale_expected_seq") == 15


def test_one_event_id_sent_by_concurrent_requests_is_appended_once(service: Service) -> None:
    outcomes = race(
        service, [step(event_id="same", payload={"step_id": "s", "summary": "x", "status": "completed"})] * 8
    )

    (receipt,) = [outcome for outcome in outcomes if isinstance(outcome, Receipt)]
    duplicates = [outcome for outcome in outcomes if isinstance(outcome, DuplicateEventId)]
    assert len(duplicates) == 7
    assert all(duplicate.original_receipt["hash"] == receipt.hash for duplicate in duplicates)
    assert service.ledger.log.size(0) == 1
