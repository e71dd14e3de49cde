"""Tamper tests: edit the SQLite file behind the ledger's back; `agent-ledger verify` must name the damage.

Each case really changes the stored file (raw bytes or SQL on the database file), then runs the real
`agent-ledger verify` command and expects exit 1 with a one-line reason naming the first bad event.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import make_settings
from factories import step

from ledger.canonical import canonical_bytes, event_hash
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.config import Settings
from ledger.keys import SignerKey
from ledger.sdk import Ledger

EVENTS = 30


@pytest.fixture
def sealed(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path, every_events=1000)
    with Ledger.open(settings) as ledger:
        ledger.append_batch(
            [
                step(
                    mission=f"m-{i % 3}",
                    payload={
                        "step_id": f"s-{i}",
                        "summary": f"unique-summary-{i:03d}",
                        "status": "completed",
                    },
                )
                for i in range(EVENTS)
            ]
        )
    db = settings.data_dir / "ledger.sqlite"
    with sqlite3.connect(db) as connection:  # fold the WAL into the main file so raw edits hit real bytes
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return settings


def verify(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ledger.cli.main",
            "verify",
            "--data",
            str(settings.data_dir),
            "--keys",
            str(settings.key_dir),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def failure(settings: Settings, *extra: str) -> str:
    result = verify(settings, *extra)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def db(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.data_dir / "ledger.sqlite")


def state(connection: sqlite3.Connection, rowid: int) -> dict[str, object]:
    value: dict[str, object] = orjson.loads(
        connection.execute("SELECT state FROM stored_events WHERE rowid=?", (rowid,)).fetchone()[0]
    )
    return value


def test_untouched_ledger_verifies(sealed: Settings) -> None:
    result = verify(sealed)
    assert result.returncode == 0, result.stderr
    assert f"verified {EVENTS} events" in result.stdout


def test_payload_byte_changed_in_the_sqlite_file_is_detected(sealed: Settings) -> None:
    path = sealed.data_dir / "ledger.sqlite"
    raw = path.read_bytes()
    target = b"unique-summary-017"
    assert raw.count(target) == 1
    path.write_bytes(raw.replace(target, b"unique-summary-917"))
    message = failure(sealed)
    assert "log index 17" in message and "stored hash does not match its content" in message


def test_stored_hash_changed_is_detected(sealed: Settings) -> None:
    with db(sealed) as connection:
        event = state(connection, 6)
        event["hash"] = "sha256:" + "ab" * 32
        connection.execute("UPDATE stored_events SET state=? WHERE rowid=6", (canonical_bytes(event),))
    message = failure(sealed)
    assert "log index 5" in message and "stored hash does not match" in message


def test_deleted_row_is_detected(sealed: Settings) -> None:
    with db(sealed) as connection:
        connection.execute("DELETE FROM stored_events WHERE rowid=11")
    message = failure(sealed)
    assert "found at log index 10 but sealed at" in message and "'index': 11" in message


def test_last_rows_deleted_are_detected_against_the_checkpoint(sealed: Settings) -> None:
    with db(sealed) as connection:
        connection.execute(f"DELETE FROM stored_events WHERE rowid>{EVENTS - 2}")
    message = failure(sealed)
    assert f"covers {EVENTS} events but the log holds only {EVENTS - 2}" in message


def test_swapped_rows_are_detected(sealed: Settings) -> None:
    with db(sealed) as connection:
        a, b = (connection.execute("SELECT state FROM stored_events WHERE rowid=?", (r,)).fetchone()[0] for r in (4, 9))
        connection.execute("UPDATE stored_events SET state=? WHERE rowid=4", (b,))
        connection.execute("UPDATE stored_events SET state=? WHERE rowid=9", (a,))
    message = failure(sealed)
    assert "found at log index 3 but sealed at" in message


def test_forged_row_with_a_valid_looking_hash_is_detected(sealed: Settings) -> None:
    with db(sealed) as connection:
        last = state(connection, EVENTS)
        forged = {
            **last,
            "seq": int(last["seq"]) + 1,
            "prev_hash": last["hash"],  # type: ignore[call-overload]
            "event_id": "forged-1",
            "payload": {"step_id": "x", "summary": "approve all", "status": "completed"},
            "log": {**last["log"], "index": EVENTS},
        }  # type: ignore[dict-item]
        forged.pop("hash")
        forged["hash"] = event_hash(forged)
        row = connection.execute("SELECT originator_id FROM stored_events WHERE rowid=?", (EVENTS,)).fetchone()
        connection.execute(
            "INSERT INTO stored_events VALUES (?,?,?,?)",
            (row[0], forged["seq"], forged["type"], canonical_bytes(forged)),
        )
    message = failure(sealed)
    assert f"from log index {EVENTS} on are not covered by a signed checkpoint" in message


def test_inserted_row_in_the_middle_is_detected(sealed: Settings) -> None:
    with db(sealed) as connection:
        rows = connection.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
        ).fetchall()
        connection.execute("DELETE FROM stored_events")
        forged = {**orjson.loads(rows[14][3]), "event_id": "inserted"}
        for position, row in enumerate(rows):
            if position == 15:
                connection.execute(
                    "INSERT INTO stored_events VALUES (?,?,?,?)",
                    (row[0], 999, row[2], canonical_bytes(forged)),
                )
            connection.execute("INSERT INTO stored_events VALUES (?,?,?,?)", row)
    message = failure(sealed)
    assert "log index 15" in message


def test_checkpoint_signed_by_another_key_is_detected(sealed: Settings) -> None:
    with db(sealed) as connection:
        size, note = connection.execute("SELECT tree_size, note FROM ledger_checkpoints").fetchone()
        forger = SignerKey.generate("test-ledger")  # same name, different key
        body = note.split("\n\n")[0] + "\n"
        forged = sign_checkpoint(Checkpoint.parse(body), forger)
        connection.execute("UPDATE ledger_checkpoints SET note=? WHERE tree_size=?", (forged, size))
    message = failure(sealed)
    assert f"checkpoint of tree size {size}" in message and "not signed by test-ledger+" in message


def test_removed_checkpoints_leave_the_log_unsealed_and_fail(sealed: Settings) -> None:
    with db(sealed) as connection:
        connection.execute("DELETE FROM ledger_checkpoints")
    result = verify(sealed)
    assert result.returncode == 1 and "not covered by a signed checkpoint" in result.stderr


def test_pinned_verifier_key_defeats_a_swapped_public_key_file(sealed: Settings) -> None:
    pinned = (sealed.key_dir / "ledger.pub").read_text().strip()
    attacker = SignerKey.generate("test-ledger")
    with db(sealed) as connection:
        size, note = connection.execute("SELECT tree_size, note FROM ledger_checkpoints").fetchone()
        body = note.split("\n\n")[0] + "\n"
        connection.execute(
            "UPDATE ledger_checkpoints SET note=? WHERE tree_size=?",
            (sign_checkpoint(Checkpoint.parse(body), attacker), size),
        )
    (sealed.key_dir / "ledger.pub").write_text(attacker.verifier().text() + "\n")
    assert verify(sealed).returncode == 0  # the attacker also replaced the key file next to the data...
    assert "not signed by" in failure(sealed, "--verifier-key", pinned)  # ...which a pinned key catches
