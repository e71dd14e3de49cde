"""Shared fixtures: a fresh embedded ledger with its own signing key, and submission factories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.keys import SignerKey, write_key_pair
from ledger.sdk import Ledger
from ledger.sequencer import CheckpointPolicy


@pytest.fixture(autouse=True)
def _embedded_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """AGENT_LEDGER_KAFKA tells the suite where the broker is (tests/kafka_support.py reads it at import); it must
    not also switch every CLI subprocess to Kafka: tests that want Kafka pass --kafka or kafka= explicitly."""
    monkeypatch.delenv("AGENT_LEDGER_KAFKA", raising=False)


def make_settings(root: Path, *, every_events: int = 50, interval_ms: int = 3_600_000) -> Settings:
    data_dir = root / "ledger"
    settings = Settings(
        data_dir=data_dir,
        keys_dir=root / "keys",
        checkpoint_policy=CheckpointPolicy(every_events=every_events, interval_ms=interval_ms),
    )
    if not settings.private_key_path.exists():
        write_key_pair(settings.key_dir, SignerKey.generate("test-ledger"))
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with Ledger.open(settings) as opened:
        yield opened
