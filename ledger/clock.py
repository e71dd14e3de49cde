"""Timestamps and generated identifiers for the write side.

Every timestamp in an envelope has one form, RFC 3339 UTC with microseconds ("YYYY-MM-DDTHH:MM:SS.ffffffZ");
this module formats and normalises to it and mints UUIDv7 event ids. Only the write side reads the wall clock:
projections never import this module (DESIGN guarantee 8).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import UTC, datetime

from ledger.errors import SchemaViolation

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime in the envelope's UTC microsecond form."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def utc_now() -> str:
    return format_timestamp(datetime.now(UTC))


def normalise_timestamp(text: str, field: str = "occurred_at") -> str:
    """Accept any RFC 3339 timestamp with an offset and return the canonical UTC form."""
    if _CANONICAL.fullmatch(text):  # already canonical: only check that the date exists
        try:
            datetime.fromisoformat(text[:-1])
        except ValueError:
            raise SchemaViolation(f"{field} {text!r} is not an RFC 3339 timestamp") from None
        return text
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except (TypeError, ValueError):
        raise SchemaViolation(f"{field} {text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise SchemaViolation(f"{field} {text!r} must be an RFC 3339 timestamp with a UTC offset, e.g. 'Z'")
    return format_timestamp(moment)


def parse_timestamp(text: str) -> datetime:
    """Parse a canonical envelope timestamp."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
