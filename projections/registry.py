"""The four projections by name: what `agent-ledger consume NAME`, rebuilds and the SDK fold the log into.

A name is also the projection's store file name, so it must stay stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections.base import Projection
from projections.memory import MemoryProjection
from projections.missions import MissionProjection
from projections.scope import ScopeProjection
from projections.trust import TrustProjection

PROJECTIONS: dict[str, Callable[[], Projection[Any]]] = {
    MissionProjection.name: MissionProjection,
    MemoryProjection.name: MemoryProjection,
    TrustProjection.name: TrustProjection,
    ScopeProjection.name: ScopeProjection,
}


def all_projections() -> list[Projection[Any]]:
    """A fresh instance of each projection, in a fixed order."""
    return [PROJECTIONS[name]() for name in sorted(PROJECTIONS)]
