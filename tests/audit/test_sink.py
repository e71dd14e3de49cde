"""The audit sink: every event exactly once with the bytes that were hashed, checkpoints, and Parquet segments."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import orjson
import pytest
from audit_support import run_sink
from conftest import make_settings
from factories import step

from consumers.audit.segments import SEGMENTS_DIR, read_manifest
from consumers.audit.session import AuditSession
from consumers.audit.store import STORE_FILE
from ledger.canonical import EVENT_HASH_PREFIX
from ledger.config import Settings
from ledger.sdk import Ledger


def _append(settings: Settings, count: int, *, start: int = 0, tenant: str = "acme") -> None:
    submissions = [
        step(
            tenant=tenant,
            mission=f"m-{i % 4}",
            payload={"step_id": f"s-{i}", "summary": f"step {i} ü ✓", "status": "completed"},
        )
        for i in range(start, start + count)
    ]
    with Ledger.open(settings) as ledger:
        for first in range(0, count, 20):  # a checkpoint is due after every 40 events (the fixture's policy)
            ledger.append_batch(submissions[first : first + 20])
        ledger.seal()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, every_events=40)


def test_every_event_lands_once_with_its_hashed_bytes_and_the_checkpoints(settings: Settings, tmp_path: Path) -> None:
    _append(settings, 130)
    audit = tmp_path / "audit"
    with Ledger.open(settings, read_only=True) as ledger:
        assert run_sink(ledger.log, audit, batch_size=50) == 130
        assert run_sink(ledger.log, audit, batch_size=50) == 0  # resumes from its stored position
        stored = [record.envelope_bytes for record in ledger.log.read(0)]
        sizes = [cp.tree_size for cp in ledger.log.checkpoints(0)]
    with duckdb.connect(str(audit / STORE_FILE), read_only=True) as db:
        rows = db.execute("SELECT log_index, hash, canonical, payload FROM events ORDER BY log_index").fetchall()
        checkpoints = [row[0] for row in db.execute("SELECT tree_size FROM checkpoints ORDER BY 1").fetchall()]
        ((positions,),) = db.execute("SELECT log_index FROM consumer_positions").fetchall()
    assert [row[0] for row in rows] == list(range(130))
    assert positions == 129
    for (index, hash_, canonical, payload), record in zip(rows, stored, strict=True):
        # the stored record is the canonical bytes with "hash" spliced in; the sink keeps exactly what was hashed
        assert "sha256:" + hashlib.sha256(EVENT_HASH_PREFIX + canonical.encode()).hexdigest() == hash_
        event = orjson.loads(record)
        assert event.pop("hash") == hash_
        assert orjson.loads(canonical) == event
        assert orjson.loads(payload) == event["payload"]
        assert event["log"]["index"] == index
    assert checkpoints == sizes
    assert len(sizes) >= 4 and sizes[-1] == 130


def test_segments_hold_what_the_store_holds_and_grow_with_the_log(settings: Settings, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    _append(settings, 70)
    with Ledger.open(settings, read_only=True) as ledger:
        run_sink(ledger.log, audit, rows_per_segment=30)
    first = read_manifest(audit / SEGMENTS_DIR)
    assert first is not None
    assert [(s.kind, s.first, s.last, s.rows) for s in first.segments if s.kind == "events"] == [
        ("events", 0, 29, 30),
        ("events", 30, 59, 30),
        ("events", 60, 69, 10),
    ]
    _append(settings, 25, start=70)
    with Ledger.open(settings, read_only=True) as ledger:
        run_sink(ledger.log, audit, rows_per_segment=30)
    second = read_manifest(audit / SEGMENTS_DIR)
    assert second is not None
    assert second.segments[: len(first.segments)] == first.segments  # published segments are never rewritten
    query = "SELECT count(*), count(DISTINCT log_index), max(log_index), sum(length(canonical)) FROM events"
    with AuditSession(audit, source="segments") as segments, AuditSession(audit, source="store") as store:
        assert segments.source == "segments" and store.source == "store"
        assert segments.query(query).fetchall() == store.query(query).fetchall()
        assert segments.query(query).fetchall()[0][:3] == (95, 95, 94)
        assert (
            segments.query("SELECT tree_size FROM checkpoints ORDER BY 1").fetchall()
            == store.query("SELECT tree_size FROM checkpoints ORDER BY 1").fetchall()
        )


def test_a_tenant_session_sees_only_that_tenant(settings: Settings, tmp_path: Path) -> None:
    _append(settings, 20, tenant="acme")
    _append(settings, 15, start=20, tenant="globex")
    audit = tmp_path / "audit"
    with Ledger.open(settings, read_only=True) as ledger:
        run_sink(ledger.log, audit)
    for source in ("store", "segments"):
        with AuditSession(audit, tenant="globex", source=source) as session:
            assert session.query("SELECT DISTINCT tenant FROM events").fetchall() == [("globex",)]
            assert session.query("SELECT count(*) FROM events WHERE tenant = 'acme'").fetchall() == [(0,)]
            sneaky = (
                "SELECT count(*) FROM (SELECT * FROM events UNION ALL SELECT * FROM events) WHERE tenant <> 'globex'"
            )
            assert session.query(sneaky).fetchall() == [(0,)]
            with pytest.raises(Exception, match="not readable here"):
                session.query("SELECT count(*) FROM audit_store.main.events")
            with pytest.raises(Exception, match="table function 'read_parquet' is refused"):
                session.query(f"SELECT count(*) FROM read_parquet('{audit / SEGMENTS_DIR}/*.parquet')")
        with AuditSession(audit, source=source) as session:
            assert session.query("SELECT tenant, count(*) FROM events GROUP BY 1 ORDER BY 1").fetchall() == [
                ("acme", 20),
                ("globex", 15),
            ]
