"""A policy's id is the sha256 of the RFC 8785 canonical JSON of its validated document (defaults filled in).

So the same policy written differently (key order, comments) has one id, and any change
of content gives another. The reference `rfc8785` encoder checks the ledger's own canonical encoder here.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import rfc8785

from consumers.policy_files import default_policy, load_policy

DEFAULT = Path("policies/default.toml")


def test_the_id_is_the_sha256_of_the_reference_canonical_json_of_the_document() -> None:
    policy = default_policy()
    expected = "sha256:" + hashlib.sha256(rfc8785.dumps(policy.document)).hexdigest()
    assert policy.policy_id == expected
    # The document is the validated file with its defaults filled in, not the file's text.
    assert policy.document["name"] == tomllib.loads(DEFAULT.read_text())["name"]


def test_the_same_content_written_differently_has_the_same_id(tmp_path: Path) -> None:
    text = DEFAULT.read_text()
    header, rest = text.split("\n[missions]", 1)
    lines = [line for line in header.splitlines() if line and not line.startswith("#")]
    # Top-level keys reversed, every comment dropped, a new comment added, tables unchanged.
    rewritten = "\n".join(["# rewritten by hand", *reversed(lines), "", "[missions]" + rest])
    path = tmp_path / "rewritten.toml"
    path.write_text(rewritten)
    assert path.read_text() != text
    assert load_policy(path).policy_id == default_policy().policy_id


def test_any_change_of_content_changes_the_id(tmp_path: Path) -> None:
    path = tmp_path / "changed.toml"
    path.write_text(DEFAULT.read_text().replace("half_life_days = 30.0", "half_life_days = 31.0"))
    changed = load_policy(path)
    assert changed.trust.half_life_days == 31.0
    assert changed.policy_id != default_policy().policy_id
