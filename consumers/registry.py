"""Consumers by name: `agent-ledger consume NAME` and services look a consumer up here.

The projections of `projections/registry.py` (mission, memory, trust, scope) run as `ProjectionConsumer`s under
the shipped default policy until the log activates another. A name is also the consumer's store
file name, so it must stay stable (DESIGN guarantee 7: a renamed consumer would rebuild from zero). Lookups
never construct anything but the consumer object itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumers.audit.sink import AuditSink
from consumers.base import Consumer
from consumers.counts import EventCounts
from consumers.policy_files import default_policy
from consumers.projection import ProjectionConsumer
from ledger.errors import UsageError
from projections.base import Projection
from projections.registry import PROJECTIONS


def _projection(factory: Callable[[], Projection[Any]]) -> Callable[[], Consumer[Any]]:
    return lambda: ProjectionConsumer(factory(), default_policy())


CONSUMERS: dict[str, Callable[[], Consumer[Any]]] = {
    EventCounts.name: EventCounts,
    AuditSink.name: AuditSink,
    **{name: _projection(factory) for name, factory in PROJECTIONS.items()},
}


def known_consumers() -> list[str]:
    return sorted(CONSUMERS)


def consumer_for(name: str) -> Consumer[Any]:
    """A fresh consumer of that name, or a UsageError listing the known names."""
    factory = CONSUMERS.get(name)
    if factory is None:
        raise UsageError(f"unknown consumer '{name}' (known: {', '.join(known_consumers())})")
    return factory()
