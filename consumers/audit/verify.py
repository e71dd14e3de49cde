"""Verification inside DuckDB: every hash recomputed from the stored canonical bytes, every chain link and every
log index checked with SQL, in one pass over the events.

It checks what `agent-ledger verify` checks of each event, in the same order (hash, then index continuity, then
the stream chain), and names the first bad event by (partition, log index). It also checks that each typed column
says what the hashed bytes say, so an edited column cannot hide behind a good hash. Then, as `verify` does, each
stored checkpoint's signature is checked and its Merkle root recomputed from the stored hashes (in Python: RFC 9162
trees are not a SQL shape), and events after the last checkpoint are unsealed, refused unless allowed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from consumers.audit.session import AuditSession
from ledger.canonical import EVENT_HASH_PREFIX
from ledger.checkpoint import open_checkpoint
from ledger.errors import LedgerError
from ledger.keys import VerifierKey
from ledger.merkle import CompactRange, leaf_hash
from schemas.envelope import SPEC, ZERO_HASH

# (path in the hashed bytes, the column that must say the same), in one json_extract_string call: DuckDB parses
# each canonical text once for all of them.
_FIELDS = (
    ("$.spec", f"'{SPEC}'"),
    ("$.tenant", "tenant"),
    ("$.stream", "stream"),
    ("$.seq", "CAST(seq AS VARCHAR)"),
    ("$.prev_hash", "prev_hash"),
    ("$.event_id", "event_id"),
    ("$.type", "type"),
    ("$.schema_version", "CAST(schema_version AS VARCHAR)"),
    ("$.actor.kind", "actor_kind"),
    ("$.actor.id", "actor_id"),
    ("$.agent_id", "agent_id"),
    ("$.mission_id", "mission_id"),
    ("$.causation_id", "causation_id"),
    ("$.correlation.trace_id", "trace_id"),
    ("$.correlation.span_id", "span_id"),
    ("$.log.log_id", "log_id"),
    ("$.log.partition", "CAST(partition AS VARCHAR)"),
    ("$.log.index", "CAST(log_index AS VARCHAR)"),
    ("$.hash", "NULL"),  # the hashed bytes are the event without its hash
)
# Compared after the list: the payload as normalised JSON text, the times as instants.
_AFTER = ("$.payload", "$.occurred_at", "$.recorded_at")
_N = len(_FIELDS)
_PATHS = ", ".join(f"'{path}'" for path in (*(path for path, _ in _FIELDS), *_AFTER))
_COLUMNS = ", ".join(column for _, column in _FIELDS)
_PREFIX = EVENT_HASH_PREFIX.decode().rstrip("\n")
# The event hash recomputed from the hashed bytes of a row (DESIGN hashing contract), as DuckDB SQL.
COMPUTED_HASH_SQL = f"'sha256:' || sha256('{_PREFIX}' || chr(10) || canonical)"

CHECK_SQL = f"""
WITH hashed AS (
    SELECT *, json_extract_string(canonical, [{_PATHS}]) AS said FROM events
), rows AS (
    -- per-row checks first, so the window sorts below carry narrow rows, not the payload and canonical text
    SELECT partition, log_index, tenant, stream, seq, hash, prev_hash,
        {COMPUTED_HASH_SQL} AS computed,
        said[1:{_N}] IS DISTINCT FROM [{_COLUMNS}]
            OR said[{_N + 1}] IS DISTINCT FROM json(payload)
            OR CAST(said[{_N + 2}] AS TIMESTAMPTZ) IS DISTINCT FROM occurred_at
            OR CAST(said[{_N + 3}] AS TIMESTAMPTZ) IS DISTINCT FROM recorded_at
            AS columns_differ
    FROM hashed
), checked AS (
    SELECT *,
        lag(log_index) OVER (PARTITION BY partition ORDER BY log_index) AS prev_index,
        lag(seq) OVER stream_order AS prev_seq,
        lag(hash) OVER stream_order AS prev_stream_hash
    FROM rows
    WINDOW stream_order AS (PARTITION BY tenant, stream ORDER BY seq, partition, log_index)
)
SELECT partition, log_index, tenant, stream, seq, CASE
    WHEN computed IS DISTINCT FROM hash THEN 'hash mismatch: the stored hash is not the hash of its canonical bytes'
    WHEN columns_differ THEN 'a typed column differs from the hashed canonical bytes'
    WHEN $indexes AND prev_index IS NULL AND log_index <> 0
        THEN 'gap: log index ' || CASE WHEN log_index = 1 THEN '0' ELSE '0..' || (log_index - 1) END || ' missing'
    WHEN $indexes AND log_index = prev_index THEN 'log index repeated'
    WHEN $indexes AND log_index <> prev_index + 1
        THEN 'gap: log index ' || (prev_index + 1)
            || CASE WHEN log_index - prev_index > 2 THEN '..' || (log_index - 1) ELSE '' END || ' missing'
    WHEN prev_seq IS NULL AND seq <> 1 THEN 'gap: the stream starts at seq ' || seq || ', not 1'
    WHEN prev_seq IS NULL AND prev_hash <> '{ZERO_HASH}' THEN 'chain broken: seq 1 must have the zero prev_hash'
    WHEN seq = prev_seq THEN 'fork: two events with seq ' || seq
    WHEN seq <> prev_seq + 1 THEN 'gap: seq ' || (prev_seq + 1) || ' missing from the stream'
    WHEN prev_hash <> prev_stream_hash THEN 'chain broken: prev_hash is not the hash of seq ' || prev_seq
END AS problem
FROM checked
WHERE problem IS NOT NULL
ORDER BY partition, log_index
LIMIT $limit
"""

COUNT_SQL = "SELECT count(*), count(DISTINCT (tenant, stream)), count(DISTINCT partition) FROM events"


@dataclass(frozen=True)
class Problem:
    partition: int
    log_index: int
    tenant: str
    stream: str
    seq: int
    reason: str

    def line(self) -> str:
        if self.tenant:
            where = (
                f"partition {self.partition} log index {self.log_index} ({self.tenant}/{self.stream} seq {self.seq})"
            )
            return f"{where}: {self.reason}"
        return f"partition {self.partition}: {self.reason}" if self.partition >= 0 else self.reason


@dataclass(frozen=True)
class SqlVerifyReport:
    events: int
    streams: int
    partitions: int
    checkpoints: int
    indexes_checked: bool  # a tenant's events are not a contiguous part of the log: no index or root checks
    roots_checked: int  # checkpoints whose Merkle root was recomputed from the stored hashes
    unsealed: int  # events after the last stored checkpoint of their partition
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_sql(
    session: AuditSession,
    verifier: VerifierKey | None = None,
    *,
    merkle: bool = True,
    allow_unsealed: bool = False,
    limit: int = 20,
) -> SqlVerifyReport:
    """Run the checks. A tenant-scoped session checks that tenant's hashes, columns and chains only."""
    whole = session.tenant is None
    rows = session.execute(CHECK_SQL, {"indexes": whole, "limit": limit}).fetchall()
    problems = [Problem(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5])) for r in rows]
    ((events, streams, partitions),) = session.execute(COUNT_SQL).fetchall()
    checkpoints = _checkpoints(session)
    if verifier is not None:
        problems.extend(_signature_problems(checkpoints, verifier))
    roots = unsealed = 0
    if whole and not problems:
        ends = dict(session.execute("SELECT partition, max(log_index) + 1 FROM events GROUP BY 1").fetchall())
        for partition, end in sorted(ends.items()):
            sealed = [cp for cp in checkpoints if cp[0] == partition]
            unsealed += int(end) - (sealed[-1][1] if sealed else 0)
            if merkle:
                roots += _check_roots(session, int(partition), sealed, problems)
        if unsealed and not allow_unsealed and not problems:
            problems.append(
                Problem(-1, -1, "", "", 0, f"{unsealed} events after the last stored checkpoint are unsealed")
            )
    return SqlVerifyReport(
        int(events), int(streams), int(partitions), len(checkpoints), whole, roots, unsealed, problems
    )


Stored = tuple[int, int, str, str, str]  # partition, tree_size, origin, root_hash (base64), note


def _checkpoints(session: AuditSession) -> list[Stored]:
    rows = session.execute(
        "SELECT partition, tree_size, origin, root_hash, note FROM checkpoints ORDER BY partition, tree_size"
    ).fetchall()
    return [(int(p), int(size), str(origin), str(root), str(note)) for p, size, origin, root, note in rows]


def _signature_problems(checkpoints: list[Stored], verifier: VerifierKey) -> list[Problem]:
    """Each stored checkpoint must be signed by the verifier key and say what its columns say."""
    problems = []
    for partition, tree_size, origin, root_hash, note in checkpoints:
        try:
            checkpoint = open_checkpoint(note, verifier, expected_origin=origin)
        except LedgerError as exc:
            reason = f"checkpoint of tree size {tree_size}: {exc}"
        else:
            if checkpoint.size == tree_size and base64.b64encode(checkpoint.root_hash).decode() == root_hash:
                continue
            reason = f"checkpoint of tree size {tree_size}: its columns differ from the signed note"
        problems.append(Problem(partition, tree_size - 1, "", "", 0, reason))
    return problems


def _check_roots(session: AuditSession, partition: int, sealed: list[Stored], problems: list[Problem]) -> int:
    """Recompute the partition's tree from its stored hashes, in log order, and compare each checkpoint's root."""
    if not sealed:
        return 0
    tree = CompactRange()
    pending = iter(sealed)
    current = next(pending)
    result = session.execute(
        "SELECT from_hex(substr(hash, 8)) FROM events WHERE partition = $p AND log_index < $n ORDER BY log_index",
        {"p": partition, "n": sealed[-1][1]},
    )
    checked = 0
    while batch := result.fetchmany(65_536):
        for (digest,) in batch:
            tree.append(leaf_hash(digest))
            while tree.size == current[1]:
                if base64.b64encode(tree.root()).decode() != current[3]:
                    problems.append(
                        Problem(
                            partition,
                            current[1] - 1,
                            "",
                            "",
                            0,
                            f"Merkle root of the stored events differs from the signed checkpoint of tree size"
                            f" {current[1]}",
                        )
                    )
                    return checked
                checked += 1
                current = next(pending, (partition, -1, "", "", ""))
    return checked
