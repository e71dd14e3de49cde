"""Where projection stores live, and how a rebuilt set replaces the live one in one atomic step.

The four projection stores of a ledger sit together in a generation directory. `<state>/projections` is a
symlink to the live generation and `<state>/shadow` to the latest rebuild; promotion renames a new symlink over
`projections`, so every reader sees either the old four stores or the new four, never a mix. A shared lock on
`<state>/projections.lock` is held by every running projection consumer; promotion takes it exclusively, so it
never swaps stores from under a writer.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError
from ledger.files import replace_file

LIVE = "projections"
SHADOW = "shadow"
LOCK = "projections.lock"


def state_root_of(data_dir: Path, state: Path | None = None) -> Path:
    """Where a ledger's consumer stores live: `state` when given, else `<data>/consumers`."""
    return state if state is not None else data_dir / "consumers"


def live_dir(state_root: Path) -> Path:
    """The live generation (created empty on first use)."""
    return _generation(state_root, LIVE, "gen-initial")


def shadow_dir(state_root: Path) -> Path | None:
    """The latest rebuild's generation, if there is one that is not live."""
    link = state_root / SHADOW
    if not link.is_symlink():
        return None
    target = link.resolve()
    return target if target.is_dir() and target != (state_root / LIVE).resolve() else None


def new_generation(state_root: Path, name: str) -> Path:
    """A fresh, empty generation directory (an older one of the same name is refused, not overwritten)."""
    path = state_root / name
    if path.exists():
        raise ConfigError(f"{path} exists already; a rebuild of this log and policy was made before")
    path.mkdir(parents=True)
    return path


def write_json(path: Path, value: dict[str, Any]) -> None:
    """A JSON file of a generation (its manifest, its promotion record), replaced atomically."""
    replace_file(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644)


def point(state_root: Path, link_name: str, generation: Path) -> None:
    """Atomically make `<state>/<link_name>` point at `generation`."""
    temporary = state_root / f".{link_name}.{os.getpid()}.tmp"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(generation.name)
    os.replace(temporary, state_root / link_name)


@contextmanager
def consumer_lock(state_root: Path) -> Iterator[None]:
    """Held (shared) by a running projection consumer."""
    with _lock(state_root, fcntl.LOCK_SH, "a promotion is switching the projection stores; try again"):
        yield


@contextmanager
def promotion_lock(state_root: Path) -> Iterator[None]:
    """Held (exclusive) while promoting; refused while any projection consumer runs."""
    busy = "projection consumers are running on these stores; stop them (agent-ledger consume ...) and promote again"
    with _lock(state_root, fcntl.LOCK_EX, busy):
        yield


def _generation(state_root: Path, link_name: str, initial: str) -> Path:
    link = state_root / link_name
    if link.is_symlink():
        return link.resolve()
    if link.exists():
        raise ConfigError(f"{link} should be a symlink to a generation of projection stores")
    state_root.mkdir(parents=True, exist_ok=True)
    (state_root / initial).mkdir(exist_ok=True)
    point(state_root, link_name, state_root / initial)
    return link.resolve()


@contextmanager
def _lock(state_root: Path, mode: int, busy: str) -> Iterator[None]:
    state_root.mkdir(parents=True, exist_ok=True)
    with open(state_root / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
