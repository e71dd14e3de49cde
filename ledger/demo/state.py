"""Snapshots of the live trust scores and scope levels, read from the projection stores for the summary tables.

It reads each entity's `summary` (the facts `projections diff` compares) from the live generation's stores,
without any lock a running consumer needs. Reads only; never prints.
"""

from __future__ import annotations

from pathlib import Path

from consumers.generations import live_dir
from consumers.projection import read_entities
from consumers.rebuild import store_path
from ledger.demo.summary import StateSnapshot
from projections.registry import PROJECTIONS


def snapshot(state_root: Path) -> StateSnapshot:
    """Trust per (tenant, agent) and dimension, and scope level per (tenant, agent) and tool, as live now."""
    generation = live_dir(state_root)
    found = StateSnapshot()
    trust, scope = PROJECTIONS["trust"](), PROJECTIONS["scope"]()
    for key, data in read_entities(store_path(generation, "trust")):
        scores = trust.summary(trust.decode(data))
        found.trust[_agent(key)] = {dimension: float(score or 0.0) for dimension, score in scores.items()}
    for key, data in read_entities(store_path(generation, "scope")):
        levels = scope.summary(scope.decode(data))
        found.scopes[_agent(key)] = {
            name.removeprefix("tool:"): None if level is None else str(level) for name, level in levels.items()
        }
    return found


def _agent(key: str) -> tuple[str, str]:
    """`<tenant>/agent/<agent_id>` -> (tenant, agent_id)."""
    tenant, _, agent_id = key.split("/", 2)
    return tenant, agent_id
