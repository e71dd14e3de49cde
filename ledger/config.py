"""Where an embedded ledger lives and how it is tuned: data dir, key files, limits, checkpoint cadence.

The CLI, the SDK and the tests build one `Settings` and pass it down; nothing else reads the environment.
Environment: AGENT_LEDGER_DATA (data dir, default ./.agent-ledger), AGENT_LEDGER_KEYS (key dir, default
<data>/keys), AGENT_LEDGER_MAX_PAYLOAD_BYTES, AGENT_LEDGER_CHECKPOINT_EVERY, AGENT_LEDGER_CHECKPOINT_MS,
AGENT_LEDGER_PRODUCER_KEY (the key a Kafka producer signs intake records with; default the ledger key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import UsageError
from ledger.intake import Limits
from ledger.keys import PRIVATE_KEY_FILENAME, VERIFIER_KEY_FILENAME
from ledger.sequencer import CheckpointPolicy


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a whole number") from None
    if number <= 0:
        raise UsageError(f"{name} must be positive, not {number}")
    return number


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("AGENT_LEDGER_DATA") or ".agent-ledger"))
    keys_dir: Path | None = None
    limits: Limits = field(
        default_factory=lambda: Limits(
            max_payload_bytes=_env_int("AGENT_LEDGER_MAX_PAYLOAD_BYTES", Limits.max_payload_bytes)
        )
    )
    checkpoint_policy: CheckpointPolicy = field(
        default_factory=lambda: CheckpointPolicy(
            every_events=_env_int("AGENT_LEDGER_CHECKPOINT_EVERY", CheckpointPolicy.every_events),
            interval_ms=_env_int("AGENT_LEDGER_CHECKPOINT_MS", CheckpointPolicy.interval_ms),
        )
    )
    producer_key: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["AGENT_LEDGER_PRODUCER_KEY"]) if os.environ.get("AGENT_LEDGER_PRODUCER_KEY") else None
        )
    )

    def __post_init__(self) -> None:  # accept str paths from SDK callers
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.keys_dir is not None:
            object.__setattr__(self, "keys_dir", Path(self.keys_dir))
        if self.producer_key is not None:
            object.__setattr__(self, "producer_key", Path(self.producer_key))

    @property
    def key_dir(self) -> Path:
        if self.keys_dir is not None:
            return self.keys_dir
        env = os.environ.get("AGENT_LEDGER_KEYS")
        return Path(env) if env else self.data_dir / "keys"

    @property
    def private_key_path(self) -> Path:
        return self.key_dir / PRIVATE_KEY_FILENAME

    @property
    def verifier_key_path(self) -> Path:
        return self.key_dir / VERIFIER_KEY_FILENAME
