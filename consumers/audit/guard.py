"""The read-only gate for auditors' SQL: one SELECT over the audit views, nothing else.

DuckDB parses the statement (`json_serialize_sql` serialises SELECT statements only), and the parse tree is
walked: every table named must be one of the session's views or a CTE of the query, unqualified, and the only
table functions allowed generate values (`range`, `unnest`, ...). So a query cannot write, attach, read files,
or reach another tenant's rows past the session's views. The session also locks DuckDB's configuration with
external access off, as a second wall.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import orjson

from ledger.errors import UsageError

VALUE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})


def check_read_only(connection: duckdb.DuckDBPyConnection, sql: str, views: frozenset[str]) -> None:
    """Raise a UsageError (exit 2) naming what is refused unless `sql` is one SELECT reading only `views`."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise UsageError(f"give exactly one SQL statement, not {len(statements)}")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise UsageError(f"the audit store is read-only: {kind} statements are refused (SELECT only)")
    ((serialised,),) = connection.execute("SELECT json_serialize_sql($sql)", {"sql": sql}).fetchall()
    tree: dict[str, Any] = orjson.loads(serialised)
    if tree.get("error"):
        raise UsageError(f"refused: {tree.get('error_message', 'not a plain SELECT')}")
    ctes = {name.lower() for name in _cte_names(tree)}
    for node in _nodes(tree):
        node_type = node.get("type")
        if node_type == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            qualified = node.get("schema_name") or node.get("catalog_name")
            if qualified or (name.lower() not in views and name.lower() not in ctes):
                shown = ".".join(part for part in (node.get("catalog_name"), node.get("schema_name"), name) if part)
                raise UsageError(f"table '{shown}' is not readable here; query {_listed(views)}")
        elif node_type == "TABLE_FUNCTION":
            function = str((node.get("function") or {}).get("function_name", "?"))
            if function.lower() not in VALUE_FUNCTIONS:
                raise UsageError(f"table function '{function}' is refused; query {_listed(views)}")


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _cte_names(tree: dict[str, Any]) -> Iterator[str]:
    for node in _nodes(tree):
        for entry in (node.get("cte_map") or {}).get("map", []):
            if isinstance(entry, dict) and isinstance(entry.get("key"), str):
                yield entry["key"]


def _listed(views: frozenset[str]) -> str:
    return " and ".join(sorted(views))


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]
