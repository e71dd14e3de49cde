"""Consumers by name: `agent-ledger consume NAME` and services look a consumer up here.

Each later consumer (mission, memory, trust, scope, audit) adds one entry. A name is also the consumer's store
file name, so it must stay stable (DESIGN guarantee 7: a renamed consumer would rebuild from zero). Lookups
never construct anything but the consumer object itself.
"""

from __future__ import annotations

from collections.abc import Callable

from consumers.base import Consumer
from consumers.counts import EventCounts
from ledger.errors import UsageError

CONSUMERS: dict[str, Callable[[], Consumer]] = {
    EventCounts.name: EventCounts,
}


def known_consumers() -> list[str]:
    return sorted(CONSUMERS)


def consumer_for(name: str) -> Consumer:
    """A fresh consumer of that name, or a UsageError listing the known names."""
    factory = CONSUMERS.get(name)
    if factory is None:
        raise UsageError(f"unknown consumer '{name}' (known: {', '.join(known_consumers())})")
    return factory()
