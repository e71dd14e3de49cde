"""A read-only SQL session over the audit data, optionally limited to one tenant's rows.

The session is an in-memory DuckDB with two views, `events` and `checkpoints`, over one source:
- `store`: the sink's DuckDB file attached read-only (only while no `consume audit` holds it);
- `segments`: the Parquet segments the sink publishes (readable while it writes; as fresh as its last publish).
`auto` takes the store when it is free, else the segments. With a tenant the `events` view holds only that
tenant's rows; checkpoints carry no tenant data (sizes and roots) and stay whole. After the views are made, DuckDB
is locked with external access off, and auditors' SQL passes `guard.check_read_only` first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal

import duckdb
from pydantic import TypeAdapter, ValidationError

from consumers.audit.guard import check_read_only
from consumers.audit.schema import TABLES, create_table
from consumers.audit.segments import SEGMENTS_DIR, read_manifest
from consumers.audit.store import STORE_FILE
from ledger.errors import ConfigError, QueryTimeout, UsageError, VerificationFailed
from schemas.envelope import TenantStr

Source = Literal["auto", "store", "segments"]
VIEWS = frozenset(TABLES)


def audit_dir(state_root: Path) -> Path:
    """Where a ledger's audit store and segments live: `<state>/audit`."""
    return state_root / "audit"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class AuditSession:
    """Views `events` and `checkpoints` over one source; `query` runs auditors' SQL, `execute` trusted SQL."""

    def __init__(
        self, directory: Path, *, tenant: str | None = None, source: Source = "auto", timeout_s: float | None = None
    ) -> None:
        """`timeout_s` bounds each auditor's query run under `time_limit()` (None: no bound)."""
        if tenant is not None:
            _check_tenant(tenant)
        if timeout_s is not None and timeout_s <= 0:
            raise UsageError(f"the audit time limit must be positive, not {timeout_s:g} s")
        self.directory = Path(directory)
        self.tenant = tenant
        self.timeout_s = timeout_s
        self.connection = duckdb.connect(":memory:")
        try:
            self.source = self._attach(source)
            self._lock_down()
        except BaseException:
            self.connection.close()
            raise

    def query(self, sql: str) -> duckdb.DuckDBPyRelation:
        """Auditors' SQL: refused (UsageError) unless it is one SELECT over the views."""
        check_read_only(self.connection, sql, VIEWS)
        try:
            return self.connection.sql(sql)
        except duckdb.Error as exc:
            raise UsageError(f"query failed: {_first_line(exc)}") from None

    @contextmanager
    def time_limit(self) -> Iterator[None]:
        """Stop whatever this session's connection runs inside the block once `timeout_s` has passed; a stopped
        query is a QueryTimeout (its answer is not computed: DuckDB evaluates a relation when it is fetched)."""
        if self.timeout_s is None:
            yield
            return
        timer = threading.Timer(self.timeout_s, self.connection.interrupt)
        timer.daemon = True
        timer.start()
        try:
            yield
        except duckdb.InterruptException:
            raise QueryTimeout(f"query stopped after {self.timeout_s:g} s, the audit time limit") from None
        finally:
            timer.cancel()

    def execute(self, sql: str, params: dict[str, object] | None = None) -> duckdb.DuckDBPyConnection:
        """Trusted SQL (saved queries, verification) over the same views. A failure here means the data could not
        be read as the audit tables (a damaged file, say): VerificationFailed, one line."""
        try:
            return self.connection.execute(sql, params or {})
        except duckdb.Error as exc:
            raise VerificationFailed(f"audit data ({self.source}) could not be read: {_first_line(exc)}") from None

    def _attach(self, source: Source) -> str:
        store = self.directory / STORE_FILE
        if source in ("auto", "store") and store.exists():
            try:
                self.connection.execute(f"ATTACH {_quoted(str(store))} AS audit_store (READ_ONLY)")
            except duckdb.Error as exc:
                held = "lock" in str(exc).lower()  # a running sink holds it: the segments are the way in
                if source == "store" or not held:
                    hint = "; while `consume audit` runs, use --source segments" if held else ""
                    raise ConfigError(
                        f"audit store {store} cannot be opened read-only: {_first_line(exc)}{hint}"
                    ) from None
            else:
                self._views({name: f"audit_store.main.{name}" for name in TABLES})
                return "store"
        if source == "store":
            raise ConfigError(f"no audit store at {store}; run `agent-ledger consume audit` first")
        segments = self.directory / SEGMENTS_DIR
        manifest = read_manifest(segments)
        if manifest is None:
            raise ConfigError(f"no audit data under {self.directory}; run `agent-ledger consume audit` first")
        relations = {}
        for name in TABLES:
            files = manifest.files(segments, name)
            if files:
                relations[name] = f"read_parquet([{', '.join(_quoted(str(path)) for path in files)}])"
            else:  # nothing published yet: an empty table of the same shape
                self.connection.execute(create_table(name, temporary=True, as_name=f"empty_{name}"))
                relations[name] = f"temp.main.empty_{name}"
        self._views(relations)
        self.connection.execute(f"SET allowed_directories=[{_quoted(str(segments.resolve()) + '/')}]")
        return "segments"

    def _views(self, relations: dict[str, str]) -> None:
        for name, relation in relations.items():
            where = f" WHERE tenant = {_quoted(self.tenant)}" if self.tenant is not None and name == "events" else ""
            self.connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {relation}{where}")

    def _lock_down(self) -> None:
        self.connection.execute("SET enable_external_access=false")
        self.connection.execute("SET lock_configuration=true")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> AuditSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_TENANT = TypeAdapter(TenantStr)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def _check_tenant(tenant: str) -> None:
    try:
        _TENANT.validate_python(tenant)
    except ValidationError:
        raise UsageError(f"'{tenant}' is not a tenant name") from None
