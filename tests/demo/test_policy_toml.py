"""The demo writes its stricter policy as a TOML file: what it writes reads back as the same policy (same id)."""

from __future__ import annotations

from pathlib import Path

from consumers.policy_files import default_policy, load_policy
from ledger.demo.policy_change import stricter_policy, write_policy_file
from ledger.demo.policy_toml import policy_toml
from projections.policy import parse_policy, parse_policy_toml


def test_the_written_stricter_policy_reads_back_as_the_same_policy(tmp_path: Path) -> None:
    path = write_policy_file(tmp_path)
    assert load_policy(path).policy_id == stricter_policy().policy_id != default_policy().policy_id
    assert path.read_text().startswith("# Derived from default.toml")


def test_quotes_unicode_and_inline_tables_survive_the_round_trip() -> None:
    document = default_policy().document | {
        "description": 'Strict "enough" — ünïcode, a back\\slash\nand a new line',
        "memory": {"default_ttl_days": 7.5, "max_items": 3},
    }
    policy = parse_policy(document)
    text = policy_toml(policy, "two\nlines")
    assert text.startswith("# two\n# lines\n")
    assert parse_policy_toml(text, "test").document == policy.document
