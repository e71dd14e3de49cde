"""SQL verification inside DuckDB: tamper with the audit store file itself and watch it name the damage.

Every case edits `audit.duckdb` after the sink closed it (DuckDB recomputes its own block checksums, so this is
what someone with write access to the file can do), then verifies it again. The last test tampers with the
ledger's SQLite file instead and shows `agent-ledger verify` and the SQL verification name the same event.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import sqlite3
from pathlib import Path

import duckdb
import orjson
import pytest
from audit_support import run_sink
from conftest import make_settings
from factories import step

from consumers.audit.session import AuditSession
from consumers.audit.store import STORE_FILE
from consumers.audit.verify import SqlVerifyReport, verify_sql
from ledger.canonical import EVENT_HASH_PREFIX, canonical_bytes
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.config import Settings
from ledger.errors import LedgerError, VerificationFailed
from ledger.keys import SignerKey, VerifierKey, load_verifier
from ledger.sdk import Ledger

EVENTS = 60


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    root = tmp_path_factory.mktemp("sqlverify")
    settings = make_settings(root, every_events=20)
    with Ledger.open(settings) as ledger:
        for first in range(0, EVENTS, 10):
            ledger.append_batch(
                [
                    step(
                        mission=f"m-{i % 4}",
                        payload={"step_id": f"s-{i}", "summary": f"step {i:03d}", "status": "completed"},
                    )
                    for i in range(first, first + 10)
                ]
            )
        ledger.seal()
        run_sink(ledger.log, root / "audit")
    return settings, root / "audit"


@pytest.fixture
def audit(built: tuple[Settings, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "audit"
    shutil.copytree(built[1], copy)
    return copy


@pytest.fixture
def verifier(built: tuple[Settings, Path]) -> VerifierKey:
    return load_verifier(built[0].verifier_key_path)


def run(audit: Path, verifier: VerifierKey, **options: bool) -> SqlVerifyReport:
    with AuditSession(audit, source="store") as session:
        return verify_sql(session, verifier, **options)


def tamper(audit: Path, *statements: str) -> None:
    with duckdb.connect(str(audit / STORE_FILE)) as db:
        for statement in statements:
            db.execute(statement)


def first(audit: Path, verifier: VerifierKey) -> tuple[int, str]:
    report = run(audit, verifier)
    assert not report.ok
    return report.problems[0].log_index, report.problems[0].reason


def test_an_untouched_store_verifies_with_every_root_recomputed(audit: Path, verifier: VerifierKey) -> None:
    report = run(audit, verifier)
    assert report.ok, report.problems
    assert (report.events, report.streams, report.unsealed) == (EVENTS, 4, 0)
    assert report.roots_checked == report.checkpoints >= 3


def test_a_changed_payload_byte_in_the_hashed_bytes(audit: Path, verifier: VerifierKey) -> None:
    tamper(audit, "UPDATE events SET canonical = replace(canonical, 'step 007', 'step 008') WHERE log_index = 7")
    assert first(audit, verifier) == (7, "hash mismatch: the stored hash is not the hash of its canonical bytes")


def test_a_changed_stored_hash(audit: Path, verifier: VerifierKey) -> None:
    tamper(audit, f"UPDATE events SET hash = 'sha256:{'ab' * 32}' WHERE log_index = 9")
    assert first(audit, verifier)[0] == 9


def test_a_typed_column_that_no_longer_says_what_was_hashed(audit: Path, verifier: VerifierKey) -> None:
    tamper(audit, "UPDATE events SET tenant = 'globex' WHERE log_index = 11")
    assert first(audit, verifier) == (11, "a typed column differs from the hashed canonical bytes")
    tamper(audit, "UPDATE events SET tenant = 'acme' WHERE log_index = 11")
    tamper(audit, """UPDATE events SET payload = '{"status":"failed"}' WHERE log_index = 12""")
    assert first(audit, verifier) == (12, "a typed column differs from the hashed canonical bytes")


def test_a_deleted_row_is_a_gap(audit: Path, verifier: VerifierKey) -> None:
    tamper(audit, "DELETE FROM events WHERE log_index = 13")
    assert first(audit, verifier) == (14, "gap: log index 13 missing")


def test_a_repeated_row(audit: Path, verifier: VerifierKey) -> None:
    tamper(audit, "INSERT INTO events SELECT * FROM events WHERE log_index = 5")
    assert first(audit, verifier) == (5, "log index repeated")


def test_two_rows_swapped_in_the_log(audit: Path, verifier: VerifierKey) -> None:
    tamper(
        audit,
        "UPDATE events SET log_index = -1 WHERE log_index = 20",
        "UPDATE events SET log_index = 20 WHERE log_index = 21",
        "UPDATE events SET log_index = 21 WHERE log_index = -1",
    )
    assert first(audit, verifier) == (20, "a typed column differs from the hashed canonical bytes")


def _forged(audit: Path, index: int, *, replace: bool) -> None:
    """A self-consistent forged event: right prev_hash, right hash over its own canonical bytes, right columns.

    `replace`: the event at `index` is rewritten; otherwise a new event follows the last one in its stream.
    """
    with duckdb.connect(str(audit / STORE_FILE)) as db:
        where = f"log_index = {index}" if replace else "log_index = (SELECT max(log_index) FROM events)"
        ((canonical, original),) = db.execute(f"SELECT canonical, hash FROM events WHERE {where}").fetchall()
        event = orjson.loads(canonical)
        if not replace:
            event.update(seq=event["seq"] + 1, prev_hash=original, event_id=f"forged-{index}")
            event["log"]["index"] = index
        event["payload"] = {**event["payload"], "summary": "nothing to see here"}
        forged = canonical_bytes(event)
        db.execute(
            "INSERT INTO events SELECT * REPLACE ("
            "  $index AS log_index, $seq AS seq, $prev AS prev_hash, $hash AS hash, $id AS event_id,"
            "  $payload::JSON AS payload, $canonical AS canonical)"
            " FROM events WHERE hash = $original",
            {
                "index": index,
                "seq": event["seq"],
                "prev": event["prev_hash"],
                "hash": "sha256:" + hashlib.sha256(EVENT_HASH_PREFIX + forged).hexdigest(),
                "id": event["event_id"],
                "payload": orjson.dumps(event["payload"], option=orjson.OPT_SORT_KEYS).decode(),
                "canonical": forged.decode(),
                "original": original,
            },
        )
        if replace:
            db.execute("DELETE FROM events WHERE hash = $original", {"original": original})


def test_a_forged_row_with_a_valid_looking_hash_appended(audit: Path, verifier: VerifierKey) -> None:
    _forged(audit, EVENTS, replace=False)
    report = run(audit, verifier)
    assert [problem.line() for problem in report.problems] == ["1 events after the last stored checkpoint are unsealed"]
    assert run(audit, verifier, allow_unsealed=True).ok  # exactly what `verify --allow-unsealed` would accept


def test_a_sealed_stream_tail_rewritten_consistently_breaks_the_merkle_root(audit: Path, verifier: VerifierKey) -> None:
    with duckdb.connect(str(audit / STORE_FILE), read_only=True) as db:
        ((tail,),) = db.execute("SELECT max(log_index) FROM events WHERE stream = 'mission/m-1'").fetchall()
    _forged(audit, tail, replace=True)
    report = run(audit, verifier)
    assert len(report.problems) == 1, report.problems
    assert "Merkle root of the stored events differs from the signed checkpoint" in report.problems[0].reason
    # without the root check nothing in the rows themselves gives it away: that is why the roots are recomputed
    assert run(audit, verifier, merkle=False).ok


def test_a_checkpoint_signed_by_another_key(audit: Path, verifier: VerifierKey) -> None:
    with duckdb.connect(str(audit / STORE_FILE)) as db:
        ((size, origin, root),) = db.execute(
            "SELECT tree_size, origin, root_hash FROM checkpoints ORDER BY tree_size LIMIT 1"
        ).fetchall()
        other = SignerKey.generate("test-ledger")  # same name, another key
        note = sign_checkpoint(Checkpoint(origin, size, base64.b64decode(root)), other)
        db.execute("UPDATE checkpoints SET note = $note WHERE tree_size = $size", {"note": note, "size": size})
    index, reason = first(audit, verifier)
    assert index == size - 1 and reason.startswith(f"checkpoint of tree size {size}:")


def test_the_sql_verification_and_verify_name_the_same_event(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, every_events=1000)
    with Ledger.open(settings) as ledger:
        ledger.append_batch(
            [
                step(
                    mission=f"m-{i % 3}",
                    payload={"step_id": f"s-{i}", "summary": f"step {i:03d}", "status": "completed"},
                )
                for i in range(40)
            ]
        )
    with sqlite3.connect(settings.data_dir / "ledger.sqlite") as db:
        (state,) = db.execute("SELECT state FROM stored_events WHERE rowid = 18").fetchone()
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = 18", (state.replace(b"step 017", b"step 071"),))
    verifier = load_verifier(settings.verifier_key_path)
    with Ledger.open(settings, read_only=True) as ledger:
        with pytest.raises(VerificationFailed, match=r"^log index 17 \(acme/mission/m-2 seq 6"):
            ledger.verify(verifier)
        run_sink(ledger.log, tmp_path / "audit")
    report = run(tmp_path / "audit", verifier)
    assert (report.problems[0].log_index, report.problems[0].stream, report.problems[0].seq) == (17, "mission/m-2", 6)
    assert report.problems[0].reason.startswith("hash mismatch")


def test_a_damaged_store_file_is_one_clear_error(audit: Path, verifier: VerifierKey) -> None:
    path = audit / STORE_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a truncated file
    with pytest.raises(LedgerError) as caught:  # ConfigError or VerificationFailed: one line, exit 2 or 1
        run(audit, verifier)
    assert str(caught.value).count("\n") == 0
    assert STORE_FILE in str(caught.value) or "could not be read" in str(caught.value)
