"""Immutable Parquet segments of the audit store, so auditors can query while the sink writes.

DuckDB lets only one process open a database file for writing, so the sink publishes what it has committed as
Parquet files: `events-p<partition>-<first>-<last>.parquet` by log index, `checkpoints-p<partition>-<first>-<last>`
by tree size. A file is written under a temporary name and renamed; then `manifest.json`, the list readers use, is
replaced atomically. Readers therefore see whole segments only, and always a prefix of each partition. A segment's
name is fixed by its range, so publishing again after a crash rewrites the same file with the same rows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ledger.errors import ConfigError
from ledger.files import replace_file

SEGMENTS_DIR = "segments"  # beside the store file
MANIFEST = "manifest.json"
KINDS = {"events": "log_index", "checkpoints": "tree_size"}  # segment kind -> the column its range is over


@dataclass(frozen=True)
class Segment:
    kind: str  # "events" or "checkpoints"
    partition: int
    first: int  # first log_index (events) or tree_size (checkpoints) in the file
    last: int
    rows: int

    @property
    def file(self) -> str:
        return f"{self.kind}-p{self.partition}-{self.first:012d}-{self.last:012d}.parquet"


@dataclass(frozen=True)
class Manifest:
    log_id: str
    segments: tuple[Segment, ...] = ()

    def files(self, directory: Path, kind: str) -> list[Path]:
        return [directory / segment.file for segment in self.segments if segment.kind == kind]

    def last(self, kind: str, partition: int) -> int:
        """The end of what is published for (kind, partition); -1 when nothing is."""
        ends = [s.last for s in self.segments if s.kind == kind and s.partition == partition]
        return max(ends, default=-1)


def read_manifest(directory: Path) -> Manifest | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        raw: dict[str, Any] = orjson.loads(path.read_bytes())
        return Manifest(raw["log_id"], tuple(Segment(**segment) for segment in raw["segments"]))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not an audit segment manifest: {exc}") from None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically (write, fsync, rename), after every file it names is in place."""
    body = {"log_id": manifest.log_id, "segments": [asdict(segment) for segment in manifest.segments]}
    replace_file(directory / MANIFEST, orjson.dumps(body, option=orjson.OPT_INDENT_2), 0o644)


class SegmentPublisher:
    """Publishes the store's committed rows past the manifest, at most every `interval_s` unless told to flush."""

    def __init__(
        self,
        connection: Any,  # the store's duckdb connection, used by the thread that commits batches
        directory: Path,
        log_id: str,
        *,
        rows_per_segment: int = 250_000,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rows_per_segment < 1:
            raise ConfigError(f"rows per segment must be at least 1, not {rows_per_segment}")
        self.connection = connection
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = read_manifest(self.directory)
        if existing is not None and existing.log_id != log_id:
            raise ConfigError(f"{self.directory} holds segments of log {existing.log_id}, not {log_id}")
        self.manifest = existing or Manifest(log_id)
        self.rows_per_segment = rows_per_segment
        self.interval_s = interval_s
        self._clock = clock
        self._last_publish = clock()

    def due(self) -> bool:
        return self._clock() - self._last_publish >= self.interval_s

    def publish(self) -> list[Segment]:
        """Write every committed row not yet in a segment; return the new segments."""
        self._last_publish = self._clock()
        new: list[Segment] = []
        for kind, column in KINDS.items():
            ends = self.connection.execute(f"SELECT partition, max({column}) FROM {kind} GROUP BY partition").fetchall()
            for partition, end in sorted(ends):
                new.extend(self._publish_range(kind, column, int(partition), int(end)))
        if new:
            self.manifest = Manifest(self.manifest.log_id, (*self.manifest.segments, *new))
            write_manifest(self.directory, self.manifest)
        return new

    def _publish_range(self, kind: str, column: str, partition: int, end: int) -> list[Segment]:
        published: list[Segment] = []
        start = self.manifest.last(kind, partition) + 1
        while start <= end:
            # A checkpoint range is sparse (tree sizes), so the segment is cut by rows, then named by what it holds.
            ((count, last),) = self.connection.execute(
                f"SELECT count(*), max({column}) FROM (SELECT {column} FROM {kind} WHERE partition={partition}"
                f" AND {column} >= {start} ORDER BY {column} LIMIT {self.rows_per_segment})"
            ).fetchall()
            segment = Segment(kind, partition, start, int(last), int(count))
            self._write(segment, column)
            published.append(segment)
            start = int(last) + 1
        return published

    def _write(self, segment: Segment, column: str) -> None:
        final = self.directory / segment.file
        temporary = self.directory / f".{segment.file}.tmp"
        target = str(temporary).replace("'", "''")
        self.connection.execute(
            f"COPY (SELECT * FROM {segment.kind} WHERE partition={segment.partition} AND {column}"
            f" BETWEEN {segment.first} AND {segment.last} ORDER BY {column}) TO '{target}'"
            # zstd at level 1 without string dictionaries: about twice as fast to write as the defaults for these
            # rows (mostly unique canonical text), and smaller
            " (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, STRING_DICTIONARY_PAGE_SIZE_LIMIT 1,"
            " ROW_GROUP_SIZE 122880)"
        )
        with open(temporary, "rb") as handle:  # the manifest may name it only once it is on disk
            os.fsync(handle.fileno())
        os.replace(temporary, final)
