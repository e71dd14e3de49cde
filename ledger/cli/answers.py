"""How `agent-ledger audit` writes an answer: a table on the terminal, or CSV, JSON or Parquet for tools.

JSON is one array of objects (times as RFC 3339 text, JSON columns as JSON); CSV has a header row; Parquet is
written from the Arrow form of the answer, with DuckDB's types, and needs `--output`.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import duckdb
import orjson
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from ledger.errors import UsageError

FORMATS = ("table", "csv", "json", "parquet")
TABLE_ROWS = 1000  # a terminal table beyond this is unreadable; the other formats write everything


def write_answer(relation: duckdb.DuckDBPyRelation, fmt: str, output: Path | None) -> int:
    """Write the answer in `fmt` to `output` (or stdout); return the number of rows."""
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet needs --output FILE")
        table = relation.to_arrow_table()
        pq.write_table(table, output)
        return int(table.num_rows)
    columns = list(relation.columns)
    json_columns = {name for name, kind in zip(columns, relation.types, strict=True) if str(kind) == "JSON"}
    rows = relation.fetchall()
    with _opened(output) as stream:
        if fmt == "csv":
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([[_text(value) for value in row] for row in rows])
        elif fmt == "json":
            objects = [
                {name: _json_value(value, name in json_columns) for name, value in zip(columns, row, strict=True)}
                for row in rows
            ]
            stream.write(orjson.dumps(objects, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            _table(columns, rows, stream)
    return len(rows)


def _table(columns: list[str], rows: list[tuple[Any, ...]], stream: IO[str]) -> None:
    table = Table(*columns, show_lines=False)
    for row in rows[:TABLE_ROWS]:
        table.add_row(*(_text(value) for value in row))
    console = Console(file=stream, width=max(80, Console().width))
    console.print(table)
    more = len(rows) - TABLE_ROWS
    console.print(f"{len(rows)} rows" + (f" ({more} not shown; use --format csv, json or parquet)" if more > 0 else ""))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _time(value)
    return str(value)


def _json_value(value: Any, is_json: bool) -> Any:
    if is_json and isinstance(value, str):
        return orjson.loads(value)
    if isinstance(value, datetime):
        return _time(value)
    return value


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class _opened:
    """stdout, or a file opened for writing; closed only if it was opened here."""

    def __init__(self, output: Path | None) -> None:
        self.output = output
        self.stream: IO[str] = sys.stdout

    def __enter__(self) -> IO[str]:
        if self.output is not None:
            self.stream = open(self.output, "w", encoding="utf-8", newline="")
        return self.stream

    def __exit__(self, *_: object) -> None:
        if self.output is not None:
            self.stream.close()
