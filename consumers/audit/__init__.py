"""The audit side: a DuckDB store of every sealed event, its Parquet segments, read-only SQL and SQL verification.

`sink` feeds the store from the log (`agent-ledger consume audit`), `segments` publishes what it committed as
immutable Parquet files for readers, `session` opens a read-only, tenant-scoped SQL session over either, and
`verify`, `queries` and `guard` are what runs in such a session.
"""
