"""Saved audit queries: the auditors' common questions (`agent-ledger audit --saved NAME`) as named SQL.

Each query runs in an `AuditSession` over its views, with named `$params`, so it sees only the rows the session
may see: one tenant's with `--tenant` (DESIGN guarantee 9), and every join stays within a tenant. The meanings
mirror the projections (`projections/missions.py`, `projections/scope.py`); `docs/audit-queries.md` says exactly
what each counts. A query reads the log's facts, never a projection's state, and never writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from consumers.audit.session import AuditSession
from ledger.errors import UsageError

# How the queries stay fast on a large store (measured with DuckDB 2.0 on 10,000,000 events):
# - "Before" between two events is (recorded_at, partition, log_index) order: the sequencer's clock across
#   partitions, the log order within one (embedded has a single partition, so there it is exactly log order).
# - The payload column is most of the cost of a scan: DuckDB decompresses it per vector of 2048 rows. So each
#   query reads it in one scan, for the event types it needs, and parses each payload once (one
#   json_extract_string with a list of paths); the rest works on that small projection, materialised.
# - Types are picked with `type = ANY([...])`, not `type IN (...)`: DuckDB plans the former as a semi join
#   whose filter reaches the scan, so payloads of other types are never read; an IN list is applied only after
#   every row's payload has been read.


@dataclass(frozen=True)
class SavedQuery:
    """A named question: its SQL over the audit views and the `$params` a user must give."""

    name: str
    title: str
    description: str
    sql: str
    params: tuple[str, ...] = ()
    session_params: tuple[str, ...] = ()
    """Parameters the session supplies, not the user: `whole_log` is false in a tenant-scoped session."""


CALLS_WITHOUT_RESULT = SavedQuery(
    name="calls-without-result",
    title="Tool calls without a result",
    description=(
        "Every tool.call.requested for which no tool.call.completed or tool.call.failed with the same call_id "
        "exists in the same tenant (at any position in the log). One row per request, in log order."
    ),
    sql="""
WITH calls AS MATERIALIZED (
    SELECT tenant, type = 'tool.call.requested' AS is_request, event_id, agent_id, mission_id, occurred_at,
        recorded_at, partition, log_index, json_extract_string(payload, ['$.call_id', '$.tool', '$.level']) AS said
    FROM events
    WHERE type = ANY(['tool.call.requested', 'tool.call.completed', 'tool.call.failed'])
)
SELECT requested.tenant, said[1] AS call_id, said[2] AS tool, said[3] AS level, agent_id, mission_id,
    event_id AS requested_event_id, occurred_at, recorded_at, partition, log_index
FROM calls AS requested
ANTI JOIN (SELECT tenant, said[1] AS call_id FROM calls WHERE NOT is_request) AS answer
    ON answer.tenant = requested.tenant AND answer.call_id = requested.said[1]
WHERE requested.is_request
ORDER BY recorded_at, partition, log_index
""",
)

CALLS_WITHOUT_APPROVAL = SavedQuery(
    name="calls-without-approval",
    title="Tool calls that ran without a needed approval",
    description=(
        "Every tool.call.completed whose call (same call_id, same tenant) needed a human approval and did not "
        "have one when it completed. A call needs approval when its tool.call.requested says "
        "requires_approval, when a policy.decision escalated it (by call_id, or by request_event_id naming its "
        "request), or when an approval.requested or approval.denied names it (at any time). An approval event "
        "names a call through the call_id of the approval.requested with its approval_id, else its own call_id. "
        "The call had its approval when the latest approval.granted or approval.denied about it recorded "
        "before the completion is a grant whose valid_until, if any, is after the completion's recorded_at."
    ),
    sql="""
WITH picked AS MATERIALIZED (
    SELECT *
    FROM (
        SELECT tenant, type, event_id, agent_id, mission_id, recorded_at, partition, log_index,
            (recorded_at, partition, log_index) AS log_order,
            json_extract_string(payload, ['$.call_id', '$.tool', '$.requires_approval', '$.decision',
                '$.request_event_id', '$.rule', '$.approval_id', '$.valid_until']) AS said
        FROM events
        WHERE type = ANY(['tool.call.requested', 'tool.call.completed', 'policy.decision', 'approval.requested',
            'approval.granted', 'approval.denied'])
    )
    -- Only what can matter is kept: requests asking for approval, escalations, completions, approval events.
    WHERE CASE type
        WHEN 'tool.call.requested' THEN said[3] = 'true'
        WHEN 'policy.decision' THEN said[4] = 'escalate'
        ELSE true
    END
), escalated AS (
    SELECT tenant, said[1] AS call_id, said[5] AS request_event_id, said[6] AS rule
    FROM picked WHERE type = 'policy.decision'
), escalated_requests AS (
    -- An escalation may name its call only by its request: those few requests are looked up by event_id.
    SELECT requested.tenant, requested.event_id, requested.payload ->> 'call_id' AS call_id
    FROM events AS requested
    SEMI JOIN escalated ON escalated.tenant = requested.tenant AND escalated.request_event_id = requested.event_id
        AND escalated.call_id IS NULL
    WHERE requested.type = 'tool.call.requested'
), approvals AS MATERIALIZED (
    -- The call an approval event is about: the call_id of the first approval.requested with its approval_id,
    -- else its own call_id, as the mission projection links them.
    SELECT answer.tenant, coalesce(linked.call_id, answer.said[1]) AS call_id, answer.type,
        answer.said[8] AS valid_until_text, CAST(answer.said[8] AS TIMESTAMPTZ) AS valid_until, answer.log_order
    FROM picked AS answer
    LEFT JOIN (
        SELECT tenant, said[7] AS approval_id, arg_min(said[1], log_order) AS call_id
        FROM picked WHERE type = 'approval.requested' AND said[1] IS NOT NULL
        GROUP BY tenant, said[7]
    ) AS linked ON linked.tenant = answer.tenant AND linked.approval_id = answer.said[7]
    WHERE answer.type = ANY(['approval.requested', 'approval.granted', 'approval.denied'])
), needed AS (
    SELECT tenant, call_id, string_agg(DISTINCT why, '; ' ORDER BY why) AS needed_because
    FROM (
        SELECT tenant, said[1] AS call_id, 'requires_approval' AS why FROM picked WHERE type = 'tool.call.requested'
        UNION ALL
        SELECT escalated.tenant, coalesce(escalated.call_id, escalated_requests.call_id), 'escalated by rule ' || rule
        FROM escalated
        LEFT JOIN escalated_requests ON escalated_requests.tenant = escalated.tenant
            AND escalated_requests.event_id = escalated.request_event_id
        UNION ALL
        SELECT tenant, call_id, type FROM approvals WHERE type <> 'approval.granted'
    )
    WHERE call_id IS NOT NULL
    GROUP BY tenant, call_id
), pairs AS (
    -- Each completion of a call that needed approval, beside every approval event about that call.
    SELECT done.tenant, done.said[1] AS call_id, done.said[2] AS tool, done.agent_id, done.mission_id,
        needed.needed_because, done.event_id, done.recorded_at, done.partition, done.log_index,
        answer.type AS answer_type, answer.valid_until, answer.valid_until_text, answer.log_order AS answer_order,
        answer.log_order < done.log_order AS before
    FROM picked AS done
    JOIN needed ON needed.tenant = done.tenant AND needed.call_id = done.said[1]
    LEFT JOIN approvals AS answer ON answer.tenant = done.tenant AND answer.call_id = done.said[1]
    WHERE done.type = 'tool.call.completed'
), judged AS (
    SELECT tenant, call_id, tool, agent_id, mission_id, needed_because, event_id, recorded_at, partition,
        log_index,
        -- The latest answer before the completion decides, as the latest approval event does in the projection.
        arg_max(answer_type, answer_order) FILTER (WHERE answer_type <> 'approval.requested' AND before)
            AS last_answer,
        arg_max(valid_until, answer_order) FILTER (WHERE answer_type <> 'approval.requested' AND before)
            AS valid_until,
        arg_max(valid_until_text, answer_order) FILTER (WHERE answer_type <> 'approval.requested' AND before)
            AS valid_until_text,
        coalesce(bool_or(answer_type = 'approval.requested' AND before), false) AS asked_before,
        coalesce(bool_or(answer_type = 'approval.granted' AND NOT before), false) AS granted_after
    FROM pairs
    GROUP BY ALL
)
SELECT tenant, call_id, tool, agent_id, mission_id, needed_because,
    CASE
        WHEN last_answer = 'approval.granted' THEN 'granted, but it expired at ' || valid_until_text
        WHEN last_answer = 'approval.denied' THEN 'denied'
        WHEN granted_after THEN 'granted only after completion'
        WHEN asked_before THEN 'requested, not answered before completion'
        ELSE 'never requested'
    END AS approval,
    event_id AS completed_event_id, recorded_at AS completed_at, partition, log_index
FROM judged
WHERE last_answer IS DISTINCT FROM 'approval.granted' OR valid_until <= recorded_at
ORDER BY recorded_at, partition, log_index
""",
)

MISSIONS_CLOSED_WITHOUT_EVIDENCE = SavedQuery(
    name="missions-closed-without-evidence",
    title="Missions closed as completed without the evidence their criteria ask for",
    description=(
        "Every mission.closed with status completed, once per criterion (of the mission's latest "
        "mission.criteria.set recorded before the close) that lacks evidence, judged from the evidence.attached "
        "events of that mission and criterion recorded before the close. An evidence counts when its kind is "
        "one the criterion accepts (evidence_kinds; empty accepts any) and, for kind human_approval, when it "
        "cites an approval.granted of the same mission recorded before the close. problem is 'no evidence' "
        "(none attached), 'no evidence that counts' (attached, but none counts), 'no granted approval' (the "
        "criterion requires_approval and no human_approval evidence cites a granted approval), or 'no done "
        "criteria' (no mission.criteria.set before the close; criterion_id is then NULL)."
    ),
    sql="""
WITH picked AS MATERIALIZED (
    SELECT tenant, mission_id, type, event_id, actor_kind, actor_id, recorded_at, partition, log_index,
        (recorded_at, partition, log_index) AS log_order, payload
    FROM events
    WHERE type = ANY(['mission.closed', 'mission.criteria.set', 'evidence.attached', 'approval.granted'])
        AND mission_id IS NOT NULL
), closed AS MATERIALIZED (
    SELECT tenant, mission_id, event_id, actor_kind || ':' || actor_id AS closed_by, recorded_at, partition,
        log_index, log_order AS closed_order
    FROM picked
    WHERE type = 'mission.closed' AND payload ->> 'status' = 'completed'
), latest_criteria AS MATERIALIZED (
    -- A mission.criteria.set replaces the earlier list, so only the latest one before the close applies.
    SELECT closed.partition, closed.log_index, arg_max(criteria_set.payload, criteria_set.log_order) AS criteria_set
    FROM closed
    JOIN picked AS criteria_set ON criteria_set.type = 'mission.criteria.set'
        AND criteria_set.tenant = closed.tenant AND criteria_set.mission_id = closed.mission_id
        AND criteria_set.log_order < closed.closed_order
    GROUP BY closed.partition, closed.log_index
), criteria_lists AS (
    SELECT closed.*, from_json(latest_criteria.criteria_set -> 'criteria',
        '[{"criterion_id": "VARCHAR", "requires_approval": "BOOLEAN", "evidence_kinds": ["VARCHAR"]}]') AS criteria
    FROM closed JOIN latest_criteria USING (partition, log_index)
), expected AS (
    SELECT * EXCLUDE (criteria, criterion), criterion.criterion_id,
        coalesce(criterion.requires_approval, false) AS requires_approval,
        coalesce(criterion.evidence_kinds, []) AS evidence_kinds
    FROM (SELECT *, unnest(criteria) AS criterion, generate_subscripts(criteria, 1) AS position FROM criteria_lists)
), attached AS (
    SELECT evidence.tenant, evidence.mission_id, evidence.said[1] AS criterion_id, evidence.said[2] AS kind,
        evidence.log_order AS attached_order, cited.log_order AS grant_order
    FROM (
        SELECT *, json_extract_string(payload, ['$.criterion_id', '$.kind', '$.evidence_event_id']) AS said
        FROM picked WHERE type = 'evidence.attached'
    ) AS evidence
    LEFT JOIN picked AS cited ON cited.type = 'approval.granted' AND cited.tenant = evidence.tenant
        AND cited.mission_id = evidence.mission_id AND cited.event_id = evidence.said[3]
), judged AS (
    SELECT expected.tenant, expected.mission_id, expected.event_id, expected.closed_by, expected.recorded_at,
        expected.partition, expected.log_index, expected.position, expected.criterion_id,
        expected.requires_approval, expected.evidence_kinds,
        count(attached.kind) AS attached,
        coalesce(list(DISTINCT attached.kind ORDER BY attached.kind) FILTER (WHERE attached.kind IS NOT NULL), [])
            AS attached_kinds,
        -- The mission projection's evidence_counts: an accepted kind, and a human approval must cite a grant.
        coalesce(bool_or(
            (len(expected.evidence_kinds) = 0 OR list_contains(expected.evidence_kinds, attached.kind))
            AND (attached.kind <> 'human_approval' OR attached.grant_order < expected.closed_order)
        ), false) AS counted,
        coalesce(bool_or(attached.kind = 'human_approval' AND attached.grant_order < expected.closed_order), false)
            AS approved
    FROM expected
    LEFT JOIN attached ON attached.tenant = expected.tenant AND attached.mission_id = expected.mission_id
        AND attached.criterion_id = expected.criterion_id AND attached.attached_order < expected.closed_order
    GROUP BY ALL
)
SELECT * EXCLUDE (position) FROM (
    SELECT tenant, mission_id, event_id AS closed_event_id, recorded_at AS closed_at, closed_by, criterion_id,
        CASE WHEN attached = 0 THEN 'no evidence' WHEN NOT counted THEN 'no evidence that counts'
            ELSE 'no granted approval' END AS problem,
        evidence_kinds AS accepted_kinds, attached_kinds, partition, log_index, position
    FROM judged
    WHERE NOT counted OR (requires_approval AND NOT approved)
    UNION ALL
    SELECT tenant, mission_id, event_id, recorded_at, closed_by, NULL, 'no done criteria', NULL, NULL, partition,
        log_index, 0
    FROM closed ANTI JOIN latest_criteria USING (partition, log_index)
)
ORDER BY closed_at, partition, log_index, position
""",
)

SCOPE_CHANGES = SavedQuery(
    name="scope-changes",
    title="Scope changes of one agent, with their causes",
    description=(
        "Every scope.granted, scope.narrowed, scope.widened and scope.revoked whose agent_id is the agent, in "
        "log order, with what caused it: the causation_id and the evidence_event_ids its payload cites, each "
        "joined to the type of that event in the same tenant (NULL when the cited event is not in the store)."
    ),
    params=("agent",),
    sql="""
WITH changes AS MATERIALIZED (
    SELECT tenant, type, event_id, actor_kind || ':' || actor_id AS actor, causation_id, occurred_at, recorded_at,
        partition, log_index,
        json_extract_string(payload, ['$.tool', '$.level', '$.previous_level', '$.reason', '$.policy_version'])
            AS said,
        coalesce(CAST(payload -> 'evidence_event_ids' AS VARCHAR[]), []) AS evidence_event_ids
    FROM events
    WHERE type = ANY(['scope.granted', 'scope.narrowed', 'scope.widened', 'scope.revoked']) AND agent_id = $agent
), cited AS (
    SELECT tenant, causation_id AS event_id FROM changes WHERE causation_id IS NOT NULL
    UNION
    SELECT tenant, unnest(evidence_event_ids) FROM changes
), causes AS MATERIALIZED (
    -- One more scan, of the id columns only, for the few events the changes cite.
    SELECT events.tenant, events.event_id, any_value(events.type) AS type
    FROM events SEMI JOIN cited ON cited.tenant = events.tenant AND cited.event_id = events.event_id
    GROUP BY events.tenant, events.event_id
), evidence AS (
    SELECT citation.partition, citation.log_index, list(causes.type ORDER BY citation.position) AS evidence_types
    FROM (
        SELECT partition, log_index, tenant, unnest(evidence_event_ids) AS event_id,
            generate_subscripts(evidence_event_ids, 1) AS position
        FROM changes
    ) AS citation
    LEFT JOIN causes ON causes.tenant = citation.tenant AND causes.event_id = citation.event_id
    GROUP BY citation.partition, citation.log_index
)
SELECT changes.tenant, changes.recorded_at, changes.occurred_at, changes.type, said[1] AS tool, said[2] AS level,
    said[3] AS previous_level, said[4] AS reason, actor, CAST(said[5] AS BIGINT) AS policy_version,
    changes.causation_id, cause.type AS causation_type, changes.evidence_event_ids,
    coalesce(evidence.evidence_types, []) AS evidence_types, changes.event_id, changes.partition, changes.log_index
FROM changes
LEFT JOIN causes AS cause ON cause.tenant = changes.tenant AND cause.event_id = changes.causation_id
LEFT JOIN evidence USING (partition, log_index)
ORDER BY changes.recorded_at, changes.partition, changes.log_index
""",
)

DECISIONS_BY_POLICY = SavedQuery(
    name="decisions-by-policy",
    title="Policy decisions by policy and verdict",
    description=(
        "Every policy.decision, counted per tenant, policy (policy_id and policy_version as the decision "
        "names them) and decision (allow, deny, escalate), with the first and last recorded_at. policy_name "
        "is the name of the policy.published with that policy_id in the tenant, NULL when none is stored."
    ),
    sql="""
WITH counted AS (
    SELECT tenant, said[1] AS policy_id, CAST(said[2] AS BIGINT) AS policy_version, said[3] AS decision,
        count(*) AS decisions, min(recorded_at) AS first_recorded_at, max(recorded_at) AS last_recorded_at
    FROM (
        SELECT tenant, recorded_at, json_extract_string(payload, ['$.policy_id', '$.policy_version', '$.decision'])
            AS said
        FROM events WHERE type = 'policy.decision'
    )
    GROUP BY ALL
), names AS (
    SELECT tenant, said[1] AS policy_id, min(said[2]) AS policy_name
    FROM (
        SELECT tenant, json_extract_string(payload, ['$.policy_id', '$.name']) AS said
        FROM events WHERE type = 'policy.published'
    )
    GROUP BY ALL
)
SELECT counted.tenant, counted.policy_id, policy_version, policy_name, decision, decisions, first_recorded_at,
    last_recorded_at
FROM counted LEFT JOIN names USING (tenant, policy_id)
ORDER BY counted.tenant, policy_name NULLS LAST, policy_version, counted.policy_id, decision
""",
)

GAPS_AND_FORKS = SavedQuery(
    name="gaps-and-forks",
    title="Gaps, repeats and forks in the stored log",
    description=(
        "A cheap structural check of the stored rows (no hash is recomputed: `agent-ledger verify` and "
        "`audit --verify` do that). Per partition, log_index must run 0, 1, 2, ... up to the latest stored "
        "checkpoint's tree size: 'index gap' (indexes missing before this row, or at the end of the partition) "
        "and 'index repeated' (every event holding that index). Per (tenant, stream), seq must run 1, 2, 3, ... "
        "and each prev_hash must be the previous event's hash (the zero hash for seq 1): 'seq gap', 'fork' (an "
        "event with the seq of an earlier one) and 'broken link', the first that applies. In a tenant-scoped "
        "session the other tenants' rows fill the index sequence, so only repeats of an index are reported "
        "there. One row per problem, in log order."
    ),
    session_params=("whole_log",),
    sql="""
WITH index_suspects AS (
    SELECT partition, log_index, NULL::UBIGINT AS stream_key, NULL::BIGINT AS seq,
        CASE WHEN log_index = prev_index THEN 'index repeated' ELSE 'index gap' END AS problem,
        CASE WHEN log_index = prev_index THEN 'log index ' || log_index || ' is held by more than one event'
            ELSE 'log index ' || coalesce(prev_index + 1, 0)
                || CASE WHEN log_index > coalesce(prev_index + 2, 1) THEN '..' || (log_index - 1) ELSE '' END
                || ' missing'
        END AS detail
    FROM (
        SELECT partition, log_index, lag(log_index) OVER (PARTITION BY partition ORDER BY log_index) AS prev_index
        FROM events
    )
    WHERE log_index = prev_index OR ($whole_log AND log_index <> coalesce(prev_index + 1, 0))
), chain_suspects AS (
    SELECT partition, log_index, stream_key, seq,
        CASE WHEN seq = prev_seq THEN 'fork' WHEN seq <> coalesce(prev_seq + 1, 1) THEN 'seq gap'
            ELSE 'broken link' END AS problem,
        CASE WHEN seq = prev_seq THEN 'seq ' || seq || ' appears again'
            WHEN seq <> coalesce(prev_seq + 1, 1) THEN 'seq ' || coalesce(prev_seq + 1, 1)
                || CASE WHEN seq > coalesce(prev_seq + 2, 2) THEN '..' || (seq - 1) ELSE '' END || ' missing'
            WHEN prev_seq IS NULL THEN 'seq 1 must have the zero prev_hash'
            ELSE 'prev_hash is not the hash of seq ' || prev_seq
        END AS detail
    FROM (
        SELECT partition, log_index, stream_key, seq, prev_key, lag(seq) OVER chain AS prev_seq,
            coalesce(lag(hash_key) OVER chain, hash('sha256:' || repeat('0', 64))) AS expected_prev_key
        FROM (
            -- 64-bit keys, not the strings, go through the sort (most of this query's cost). A collision of
            -- two stream keys merges their rows and shows as forks; one of hash keys could hide a broken link
            -- only from this cheap check, never from `agent-ledger verify`.
            SELECT partition, log_index, seq, hash(tenant, stream) AS stream_key, hash(prev_hash) AS prev_key,
                hash(hash) AS hash_key
            FROM events
        )
        -- A stream lives in one partition, so log_index alone orders two events claiming one seq.
        WINDOW chain AS (PARTITION BY stream_key ORDER BY seq, log_index)
    )
    WHERE seq = prev_seq OR seq <> coalesce(prev_seq + 1, 1) OR prev_key <> expected_prev_key
), suspects AS (
    SELECT * FROM index_suspects
    UNION ALL
    SELECT * FROM chain_suspects
)
-- Names and seqs are read back only for the few suspect rows.
SELECT events.partition, events.log_index, events.tenant, events.stream, events.seq, suspects.problem,
    suspects.detail
FROM events
JOIN suspects ON suspects.partition = events.partition AND suspects.log_index = events.log_index
    AND (suspects.stream_key IS NULL
        OR (suspects.stream_key = hash(events.tenant, events.stream) AND suspects.seq = events.seq))
UNION ALL
-- Indexes missing at the end of a partition show only against what a signed checkpoint covers.
SELECT partition, NULL, NULL, NULL, NULL, 'index gap', 'log index ' || next_index
    || CASE WHEN tree_size > next_index + 1 THEN '..' || (tree_size - 1) ELSE '' END
    || ' missing (the checkpoint of tree size ' || tree_size || ' covers it)'
FROM (SELECT partition, max(tree_size) AS tree_size FROM checkpoints GROUP BY partition) AS covered
LEFT JOIN (SELECT partition, max(log_index) + 1 AS next_index FROM events GROUP BY partition) AS stored
    USING (partition)
WHERE $whole_log AND tree_size > coalesce(next_index, 0)
ORDER BY partition, log_index NULLS LAST, problem, tenant, stream, seq
""",
)

MISSION_TIMELINE = SavedQuery(
    name="mission-timeline",
    title="Every event of one mission, in order",
    description=(
        "Every event whose envelope mission_id is the mission (on any stream), per tenant in log order, with "
        "its actor and a one-line summary taken from the payload (at most 200 characters)."
    ),
    params=("mission",),
    sql="""
SELECT tenant, occurred_at, recorded_at, type, actor_kind || ':' || actor_id AS actor, agent_id,
    left(CASE type
        WHEN 'mission.opened' THEN said[1] || ' (owner ' || said[2] || ')'
        WHEN 'mission.criteria.set' THEN 'criteria ' || array_to_string(
            json_extract_string(payload, '$.criteria[*].criterion_id'), ', ')
        WHEN 'mission.step.recorded' THEN said[3] || ' ' || said[4] || ': ' || said[5]
        WHEN 'mission.close.requested' THEN 'close as ' || said[4] || ': ' || said[5]
        WHEN 'mission.closed' THEN 'closed as ' || said[4] || ': ' || said[5]
        WHEN 'mission.close.refused' THEN 'refused: ' || array_to_string(
            json_extract_string(payload, '$.reasons[*]'), ' ')
        WHEN 'tool.call.requested' THEN said[6] || ' ' || said[7] || ' at ' || said[8]
            || CASE WHEN said[9] = 'true' THEN ', requires approval' ELSE '' END
        WHEN 'tool.call.completed' THEN said[6] || ' completed' || coalesce(': ' || said[10], '')
        WHEN 'tool.call.failed' THEN said[6] || ' failed (' || said[11] || '): ' || said[12]
        WHEN 'policy.decision' THEN said[13] || ' ' || coalesce(said[6] || ' ', '') || said[7] || ' by rule '
            || said[14] || ': ' || said[15]
        WHEN 'approval.requested' THEN said[16] || coalesce(' for ' || said[6], '') || ': ' || said[17]
        WHEN 'approval.granted' THEN said[16] || ' granted' || coalesce(' for ' || said[6], '')
            || coalesce(': ' || said[15], '')
        WHEN 'approval.denied' THEN said[16] || ' denied' || coalesce(' for ' || said[6], '') || ': ' || said[15]
        WHEN 'evidence.attached' THEN said[18] || ' for ' || said[19] || ': ' || said[20]
        WHEN 'model.output.recorded' THEN said[21] || coalesce(': ' || said[5], '')
        WHEN 'memory.written' THEN said[22] || ' ' || said[23]
        WHEN 'outcome.recorded' THEN said[24] || ': ' || said[5]
        WHEN 'handoff.offered' THEN 'offered to ' || coalesce(said[25], 'any agent') || ': ' || said[15]
        WHEN 'handoff.accepted' THEN 'accepted by ' || said[2]
        ELSE coalesce(said[5], said[15], said[1])
    END, 200) AS summary,
    event_id, causation_id, stream, seq, partition, log_index
FROM (
    SELECT *, json_extract_string(payload, ['$.title', '$.owner_agent_id', '$.step_id', '$.status', '$.summary',
        '$.call_id', '$.tool', '$.level', '$.requires_approval', '$.output_summary', '$.error_kind', '$.message',
        '$.decision', '$.rule', '$.reason', '$.approval_id', '$.subject', '$.kind', '$.criterion_id',
        '$.evidence_event_id', '$.model', '$.memory_id', '$.key', '$.outcome', '$.to_agent_id']) AS said
    FROM events
    WHERE mission_id = $mission
)
ORDER BY tenant, recorded_at, partition, log_index
""",
)

SAVED_QUERIES: dict[str, SavedQuery] = {
    query.name: query
    for query in (
        CALLS_WITHOUT_RESULT,
        CALLS_WITHOUT_APPROVAL,
        MISSIONS_CLOSED_WITHOUT_EVIDENCE,
        SCOPE_CHANGES,
        DECISIONS_BY_POLICY,
        GAPS_AND_FORKS,
        MISSION_TIMELINE,
    )
}


def saved_query(name: str) -> SavedQuery:
    """The saved query called `name`, or a UsageError listing the known names."""
    try:
        return SAVED_QUERIES[name]
    except KeyError:
        raise UsageError(f"no saved query '{name}'; known: {', '.join(sorted(SAVED_QUERIES))}") from None


def run_saved(session: AuditSession, name: str, params: Mapping[str, str]) -> duckdb.DuckDBPyRelation:
    """Saved query `name` over `session` with the user's `params`, as a relation (its columns, types and rows);
    a UsageError names an unknown query or a missing or unknown parameter."""
    query = saved_query(name)
    unknown = sorted(set(params) - set(query.params))
    if unknown:
        takes = f"it takes {', '.join(query.params)}" if query.params else "it takes none"
        raise UsageError(f"saved query '{name}' has no parameter {', '.join(map(repr, unknown))}; {takes}")
    for param in query.params:
        if not params.get(param):
            raise UsageError(f"saved query '{name}' needs the parameter '{param}' (--param {param}=VALUE)")
    bound: dict[str, object] = {param: params[param] for param in query.params}
    if "whole_log" in query.session_params:
        bound["whole_log"] = session.tenant is None
    # A relation, not fetched rows: the CLI writes it as a table, CSV, JSON or Parquet with DuckDB's types.
    return session.connection.sql(query.sql, params=bound)
