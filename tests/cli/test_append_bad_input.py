"""Bad input through the real `agent-ledger append` command: exit 2, one clear line, and a recorded refusal.

Covers malformed JSON, an unknown type, a schema violation, the wrong tenant, an oversized payload, a forged
sequencer field, a stale `expected_seq` and a duplicate `event_id` (which prints the original receipt).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from factories import step

from ledger.config import Settings
from ledger.sdk import Ledger


def agent_ledger(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.main",
            *args,
            "--data",
            str(settings.data_dir),
            "--keys",
            str(settings.key_dir),
        ],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def append_line(settings: Settings, line: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return agent_ledger(settings, "append", "--file", "-", *extra, stdin=line + "\n")


def recorded_reasons(settings: Settings) -> list[str]:
    with Ledger.open(settings, read_only=True) as ledger:
        return [r.reason_code for r in ledger.rejections()]


def assert_refused(result: subprocess.CompletedProcess[str], reason: str, fragment: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    refusal = [line for line in result.stderr.splitlines() if "refused (" in line]
    assert len(refusal) == 1, result.stderr
    assert f"refused ({reason})" in refusal[0] and fragment in refusal[0], refusal[0]


ARGS = [
    "--tenant",
    "acme",
    "--stream",
    "mission/m-1",
    "--type",
    "mission.step.recorded",
    "--actor",
    "agent:a-1",
    "--agent-id",
    "a-1",
    "--mission-id",
    "m-1",
]


@pytest.mark.parametrize(
    ("line", "reason", "fragment"),
    [
        ('{"tenant": "acme", "stream": ', "malformed_json", "malformed JSON"),
        ("[1, 2]", "malformed_json", "must be a JSON object"),
        (
            orjson.dumps(step(type="tool.call.complete")).decode(),
            "unknown_type",
            "did you mean 'tool.call.completed'",
        ),
        (orjson.dumps(step(schema_version=7)).decode(), "unknown_schema_version", "no schema_version 7"),
        (
            orjson.dumps(step(payload={"summary": "x", "status": "done"})).decode(),
            "schema_violation",
            "'step_id'",
        ),
        (orjson.dumps(step(actor={"kind": "tool", "id": "t"})).decode(), "schema_violation", "actor"),
        (orjson.dumps({**step(), "hash": "sha256:" + "0" * 64}).decode(), "sequencer_field", "field 'hash'"),
        (orjson.dumps({**step(), "seq": 1}).decode(), "sequencer_field", "field 'seq'"),
        (orjson.dumps({**step(), "colour": "red"}).decode(), "schema_violation", "unexpected field 'colour'"),
    ],
    ids=[
        "truncated",
        "not-an-object",
        "unknown-type",
        "unknown-version",
        "schema-violation",
        "wrong-actor-kind",
        "forged-hash",
        "forged-seq",
        "extra-field",
    ],
)
def test_bad_line_is_refused_with_reason_and_recorded(
    settings: Settings, line: str, reason: str, fragment: str
) -> None:
    result = append_line(settings, line)
    assert_refused(result, reason, fragment)
    assert recorded_reasons(settings) == [reason]
    with Ledger.open(settings, read_only=True) as ledger:
        assert ledger.log.size(0) == 0


def test_malformed_payload_argument_is_refused_and_recorded_as_given(settings: Settings) -> None:
    result = agent_ledger(settings, "append", *ARGS, "--payload", '{"step_id": "s-1", ')
    assert_refused(result, "malformed_json", "malformed JSON")
    with Ledger.open(settings, read_only=True) as ledger:
        (rejection,) = ledger.rejections()
    assert b'"payload":{"step_id": "s-1", }' in rejection.raw


def test_wrong_tenant_is_refused(settings: Settings) -> None:
    result = append_line(settings, orjson.dumps(step(tenant="globex")).decode(), "--tenant", "acme")
    assert_refused(result, "wrong_tenant", "this producer writes 'acme'")
    assert recorded_reasons(settings) == ["wrong_tenant"]


def test_oversized_payload_is_refused_with_the_configured_limit(settings: Settings) -> None:
    big = step(payload={"step_id": "s-big", "summary": "x" * 1500, "status": "completed"})
    result = append_line(settings, orjson.dumps(big).decode(), "--max-payload-bytes", "1000")
    assert_refused(result, "oversized", "the limit is 1000 bytes")
    assert recorded_reasons(settings) == ["oversized"]


def test_stale_expected_seq_is_refused(settings: Settings) -> None:
    ok = agent_ledger(
        settings,
        "append",
        *ARGS,
        "--payload",
        '{"step_id":"s-1","summary":"a","status":"completed"}',
        "--expected-seq",
        "0",
    )
    assert ok.returncode == 0, ok.stderr
    result = agent_ledger(
        settings,
        "append",
        *ARGS,
        "--payload",
        '{"step_id":"s-2","summary":"b","status":"completed"}',
        "--expected-seq",
        "0",
    )
    assert_refused(result, "stale_expected_seq", "is at seq 1, not the expected_seq 0")
    assert recorded_reasons(settings) == ["stale_expected_seq"]


def test_duplicate_event_id_prints_the_original_receipt(settings: Settings) -> None:
    payload = '{"step_id":"s-1","summary":"a","status":"completed"}'
    first = agent_ledger(settings, "append", *ARGS, "--payload", payload, "--event-id", "evt-1")
    assert first.returncode == 0, first.stderr
    again = agent_ledger(settings, "append", *ARGS, "--payload", payload, "--event-id", "evt-1")
    assert_refused(again, "duplicate_event_id", "original receipt returned")
    original, repeated = orjson.loads(first.stdout), orjson.loads(again.stdout)
    assert (repeated["hash"], repeated["seq"], repeated["duplicate"]) == (original["hash"], 1, True)
    assert recorded_reasons(settings) == ["duplicate_event_id"]


def test_a_file_with_good_and_bad_lines_appends_the_good_ones(settings: Settings, tmp_path: Path) -> None:
    lines = [orjson.dumps(step()).decode(), "{oops", orjson.dumps(step()).decode()]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = agent_ledger(settings, "append", "--file", str(path), "--batch-size", "2")
    assert result.returncode == 2
    assert "line 2: refused (malformed_json)" in result.stderr
    assert "appended 2, refused 1" in result.stderr
    assert [orjson.loads(line)["seq"] for line in result.stdout.splitlines()] == [1, 2]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["append", "--tenant", "acme"], "append needs --stream, --type, --actor"),
        ([*["append"], *ARGS[:6], "--actor", "agent"], "must be KIND:ID"),
        (["append", "--file", "/nonexistent/x.jsonl"], "no such file"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(settings: Settings, args: list[str], fragment: str) -> None:
    result = agent_ledger(settings, *args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and fragment in result.stderr, result.stderr


def test_missing_signing_key_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.main",
            "append",
            "--data",
            str(tmp_path / "d"),
            *ARGS,
            "--payload",
            "{}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no signing key" in result.stderr and "agent-ledger keys generate" in result.stderr
