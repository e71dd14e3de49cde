"""A policy written as the TOML file an operator hands to `agent-ledger projections rebuild --policy FILE`.

The writer covers exactly the shapes a policy document has (scalars, lists, inline tables, arrays of tables) and
reads its own output back through `parse_policy_toml`: a file that would not mean the same policy (same policy
id) is refused, never written. Text only: no I/O here.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ledger.errors import ConfigError
from projections.policy import Policy, parse_policy_toml

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def policy_toml(policy: Policy, comment: str = "") -> str:
    """The policy as TOML text, after `comment` (each line prefixed with '# ')."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in policy.document.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{_key(key)} = {_value(value)}")
    for name, table in tables:
        lines += ["", f"[{_key(name)}]"]
        arrays = [(key, value) for key, value in table.items() if _is_array_of_tables(value)]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None and not _is_array_of_tables(v)]
        for key, items in arrays:
            for item in items:
                lines += ["", f"[[{_key(name)}.{_key(key)}]]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in item.items() if v is not None]
    text = "\n".join(lines) + "\n"
    if parse_policy_toml(text, "the written policy").policy_id != policy.policy_id:
        raise ConfigError(f"policy {policy.name} v{policy.version} does not survive being written as TOML")
    return text


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string (its escapes included) is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise ConfigError(f"a policy value of type {type(value).__name__} cannot be written as TOML")
