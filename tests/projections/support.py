"""Helpers for projection tests: real sequenced envelopes from an embedded ledger, and an in-memory fold.

`sequence(tmp_path, submissions)` appends the submissions through the real write path and returns the
envelopes in log order, so a projection is tested on exactly what the log holds (hashes, recorded_at, seq).
`Fold` keeps a projection's entities in a dict and applies events one by one, the way a rebuild does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from conftest import make_settings

from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger
from projections.base import Decision, Envelope, Projection, fold_event
from projections.policy import Policy

E = TypeVar("E")


def sequence(root: Path, submissions: Sequence[dict[str, Any]]) -> list[Envelope]:
    """Append every submission (each must be accepted) and return all envelopes of the log in order."""
    settings = make_settings(root)
    with Ledger.open(settings) as ledger:
        for submission in submissions:
            outcome = ledger.append_batch([submission])[0]
            if isinstance(outcome, SubmissionRefused):
                raise AssertionError(f"test submission refused: {outcome.reason_code}: {outcome}")
        return [record.envelope() for record in ledger.log.read(0)]


class Fold(Generic[E]):
    """A projection's entities in memory, folded event by event (what a rebuild does)."""

    def __init__(self, projection: Projection[E], policy: Policy) -> None:
        self.projection = projection
        self.policy = policy
        self.entities: dict[str, E] = {}
        self.decisions: list[Decision] = []

    def apply(self, events: Iterable[Envelope]) -> list[Decision]:
        """Apply events in order; return the decisions they produced (also kept in `self.decisions`)."""
        produced: list[Decision] = []
        for event in events:
            produced.extend(fold_event(self.projection, self.entities, event, self.policy))
        self.decisions.extend(produced)
        return produced

    def encoded(self) -> dict[str, dict[str, Any]]:
        """Every entity as JSON, for comparing two folds."""
        return {key: self.projection.encode(entity) for key, entity in sorted(self.entities.items())}
