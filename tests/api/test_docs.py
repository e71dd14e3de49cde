"""docs/http.md says what the server does: its role matrix is `PERMISSIONS`, and every metric it names is served."""

from __future__ import annotations

import re
from pathlib import Path

from api_support import open_api
from factories import step

from ledger.api.auth import PERMISSIONS
from ledger.apikeys import ROLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def test_the_role_matrix_in_the_docs_is_the_one_the_server_enforces() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", DOC.read_text(), flags=re.MULTILINE)
    documented = {
        permission: frozenset(role for role, cell in zip(ROLES, cells.split(" | "), strict=True) if cell == "yes")
        for permission, cells in rows
        if permission in PERMISSIONS
    }

    assert documented == PERMISSIONS


def test_every_documented_metric_is_served(tmp_path: Path) -> None:
    documented = set(re.findall(r"^\| `(agent_ledger_\w+)` \|", DOC.read_text(), flags=re.MULTILINE))
    with open_api(tmp_path) as api:
        api.post_event(step())
        api.post_event(b"{")
        api.service.projections.catch_up()
        served = api.client.get("/metrics", headers=api.auth("operator")).text

    assert len(documented) == 6
    for metric in documented:
        assert re.search(rf"^{metric}(\{{| )", served, flags=re.MULTILINE), metric
