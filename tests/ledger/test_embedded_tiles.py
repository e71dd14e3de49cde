"""Merkle tiles in the embedded store: every node reads back as the reference tree has it, across tile
boundaries and batch sizes; a file in the older one-row-per-node layout is upgraded on open; a tile that does
not end where the tree does is refused rather than extended."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import make_settings
from factories import step

from ledger.errors import ConfigError
from ledger.log.embedded import DB_FILE, TILE_WIDTH, EmbeddedLog
from ledger.merkle import MemoryNodes, leaf_hash
from ledger.sdk import Ledger


def _reference(log: EmbeddedLog) -> MemoryNodes:
    nodes = MemoryNodes()
    for record in log.read(0):
        nodes.append(leaf_hash(bytes.fromhex(record.envelope()["hash"][7:])))
    return nodes


def _perfect_nodes(size: int) -> list[tuple[int, int]]:
    return [(level, index) for level in range(size.bit_length()) for index in range(size >> level)]


def _append(tmp_path: Path, sizes: list[int]) -> Path:
    settings = make_settings(tmp_path)
    with Ledger.open(settings) as ledger:
        for count in sizes:
            ledger.append_batch([step() for _ in range(count)])
    return settings.data_dir


def test_every_node_reads_back_across_tile_boundaries(tmp_path: Path) -> None:
    data_dir = _append(tmp_path, [1, 37, 255, 1, 300, 70])  # 664 leaves: level 0 spans three tiles
    log = EmbeddedLog(data_dir, create=False)
    try:
        size = log.size(0)
        assert size == 664 > 2 * TILE_WIDTH
        reference = _reference(log)
        for level, index in _perfect_nodes(size):
            assert log.get_node(0, level, index) == reference.get_node(level, index), (level, index)
        with pytest.raises(ConfigError, match="missing"):
            log.get_node(0, 0, size)  # the leaf after the last one
    finally:
        log.close()


def test_a_file_with_one_row_per_node_is_upgraded_on_open(tmp_path: Path) -> None:
    data_dir = _append(tmp_path, [300, 20])
    log = EmbeddedLog(data_dir, create=False)
    reference, size = _reference(log), log.size(0)
    log.close()
    # Rewrite the file into the layout written before tiles.
    with sqlite3.connect(data_dir / DB_FILE) as db:
        db.execute(
            "CREATE TABLE ledger_merkle_nodes (partition INTEGER, level INTEGER, idx INTEGER,"
            " hash BLOB NOT NULL, PRIMARY KEY (partition, level, idx)) WITHOUT ROWID"
        )
        db.executemany(
            "INSERT INTO ledger_merkle_nodes VALUES (0,?,?,?)",
            [(level, index, reference.get_node(level, index)) for level, index in _perfect_nodes(size)],
        )
        db.execute("DROP TABLE ledger_merkle_tiles")

    with Ledger.open(make_settings(tmp_path)) as ledger:
        ledger.append(step())  # the sequencer resumes the tree where the old rows left it
    with Ledger.open(make_settings(tmp_path), read_only=True) as ledger:
        report = ledger.verify()  # raises VerificationFailed at the first node or checkpoint that disagrees
        assert report.events == size + 1 and report.sealed == {0: size + 1}
    with sqlite3.connect(data_dir / DB_FILE) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "ledger_merkle_nodes" not in tables and "ledger_merkle_tiles" in tables


def test_a_shortened_tile_is_refused_not_extended(tmp_path: Path) -> None:
    data_dir = _append(tmp_path, [40])
    with sqlite3.connect(data_dir / DB_FILE) as db:
        db.execute("UPDATE ledger_merkle_tiles SET hashes = substr(hashes, 1, 32 * 39) WHERE level = 0")
        db.execute("UPDATE ledger_merkle_tiles SET hashes = substr(hashes, 1, 32 * 19) WHERE level = 1")
    ledger = Ledger.open(make_settings(tmp_path))
    # The size now reads 39, so the next leaf goes to index 39; level 1 lost a node too, level 2 did not.
    with pytest.raises(ConfigError, match="does not end where the tree does"):
        ledger.append(step())
    with pytest.raises(ConfigError, match="holds 39 leaves but was checkpointed at 40"):
        ledger.close()  # and no checkpoint is signed over the shrunken tree
    log = EmbeddedLog(data_dir, create=False)
    try:
        assert [cp.tree_size for cp in log.checkpoints(0)] == [40]
    finally:
        log.close()
