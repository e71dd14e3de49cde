"""What the demo story must show on either engine, stated once for the tests of both."""

from __future__ import annotations

# The bad inputs the story plants: every one refused and recorded with this reason.
EXPECTED_REFUSALS = {
    "duplicate_event_id",
    "malformed_json",
    "unknown_type",
    "schema_violation",
    "oversized",
    "sequencer_field",
    "wrong_tenant",
    "stale_expected_seq",
}
