"""The story's beats, found in the sealed log and told in one line each, with the event that proves each one.

`find_day_beats` reads the log itself (never the plan) for the agent that earned production scope, the agent a
failure narrowed and the refused close; `tell_beats` turns everything the demo found into the seven beats, each
marked proven only when the ledger, a store or a verified file bears it out. Reads only; it never prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ledger.demo.summary import Beat, DemoSummary, RefusedClose, ScopeMove
from ledger.sdk import Ledger

Key = tuple[str, str]  # (tenant, event_id) or (tenant, mission_id)
FAILURE_EVIDENCE = frozenset({"tool.call.failed", "approval.denied", "policy.decision"})


@dataclass(frozen=True)
class DayBeats:
    earned: ScopeMove | None
    narrowed: ScopeMove | None
    refused_close: RefusedClose | None


def _is_decision(envelope: dict[str, Any]) -> bool:
    return str(envelope["actor"]["id"]).startswith("projection:")


def find_day_beats(ledger: Ledger) -> DayBeats:
    """Beats 2 to 4 as the log shows them: the first production widening, the first narrowing a failure caused
    (else any), and the first refused close, preferring one its requester then closed by hand."""
    types: dict[Key, str] = {}
    moves: list[tuple[str, dict[str, Any]]] = []
    refusals: list[dict[str, Any]] = []
    requests: dict[Key, dict[str, Any]] = {}
    titles: dict[Key, str] = {}
    by_hand: dict[Key, dict[str, Any]] = {}
    for partition in range(ledger.log.partition_count):
        for record in ledger.records(partition):
            envelope = record.envelope()
            tenant, kind = envelope["tenant"], envelope["type"]
            types[(tenant, envelope["event_id"])] = kind
            if kind in ("scope.widened", "scope.narrowed") and _is_decision(envelope):
                moves.append((envelope["recorded_at"], envelope))
            elif kind == "mission.close.refused" and _is_decision(envelope):
                refusals.append(envelope)
            elif kind == "mission.close.requested":
                requests[(tenant, envelope["event_id"])] = envelope
            elif kind == "mission.opened":
                titles[(tenant, envelope["mission_id"])] = envelope["payload"]["title"]
            elif kind == "mission.closed" and envelope["actor"]["kind"] == "human":
                by_hand[(tenant, envelope["mission_id"])] = envelope
    moves.sort(key=lambda item: (item[0], item[1]["log"]["partition"], item[1]["log"]["index"]))
    scope_moves = [_scope_move(envelope, types) for _, envelope in moves]
    earned = next((m for m in scope_moves if m.level == "production" and m.previous_level != "production"), None)
    narrowings = [m for m in scope_moves if _narrower(m)]
    narrowed = next((m for m in narrowings if set(m.evidence) == {"tool.call.failed"}), None)
    narrowed = narrowed or next(iter(narrowings), None)
    refusals.sort(key=lambda e: (e["recorded_at"], e["log"]["partition"], e["log"]["index"]))
    overridden = [e for e in refusals if (e["tenant"], e["mission_id"]) in by_hand]
    chosen = next(iter(overridden or refusals), None)
    refused = None if chosen is None else _refused_close(chosen, requests, titles, by_hand)
    return DayBeats(earned, narrowed, refused)


def _narrower(move: ScopeMove) -> bool:
    order = ("sandbox", "canary", "production")
    return order.index(move.level) < order.index(move.previous_level)


def _scope_move(envelope: dict[str, Any], types: dict[Key, str]) -> ScopeMove:
    payload, tenant = envelope["payload"], envelope["tenant"]
    cited = Counter(types.get((tenant, event_id), "not in the log") for event_id in payload["evidence_event_ids"])
    return ScopeMove(
        tenant=tenant,
        agent_id=envelope["agent_id"],
        tool=payload["tool"],
        previous_level=payload["previous_level"],
        level=payload["level"],
        reason=payload["reason"],
        event_id=envelope["event_id"],
        partition=envelope["log"]["partition"],
        log_index=envelope["log"]["index"],
        evidence=dict(cited),
    )


def _refused_close(
    refusal: dict[str, Any],
    requests: dict[Key, dict[str, Any]],
    titles: dict[Key, str],
    by_hand: dict[Key, dict[str, Any]],
) -> RefusedClose:
    tenant, mission_id, payload = refusal["tenant"], refusal["mission_id"], refusal["payload"]
    request = requests.get((tenant, payload["request_event_id"]))
    closed = by_hand.get((tenant, mission_id))
    return RefusedClose(
        tenant=tenant,
        mission_id=mission_id,
        title=titles.get((tenant, mission_id), ""),
        requested_by="" if request is None else f"{request['actor']['kind']}:{request['actor']['id']}",
        request_event_id=payload["request_event_id"],
        refusal_event_id=refusal["event_id"],
        reasons=list(payload["reasons"]),
        missing_criteria=list(payload.get("missing_criteria", [])),
        closed_by=None if closed is None else f"human:{closed['actor']['id']}",
        closed_event_id=None if closed is None else closed["event_id"],
    )


def _cited(evidence: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(evidence.items(), key=lambda item: -item[1]))


def tell_beats(summary: DemoSummary) -> list[Beat]:
    """The seven beats, each in one line with its proof; `proven` only when the ledger bears it out."""
    return [
        _day(summary),
        _earned(summary),
        _narrowed(summary),
        _refused(summary),
        _audited(summary),
        _exported(summary),
        _policy(summary),
    ]


def _day(summary: DemoSummary) -> Beat:
    calls = summary.tool_calls.values()
    missions = sum(sum(counts.values()) for counts in summary.missions_by_tenant.values())
    failed_calls = sum(c.failed for c in calls)
    happened = (
        f"{' and '.join(sorted(summary.events_by_tenant))}: {sum(summary.agents_by_tenant.values())} agents ran "
        f"{missions} missions with {sum(c.requested for c in calls):,} tool calls "
        f"({sum(c.approved for c in calls)} approved by a human), {summary.model_outputs:,} model outputs, "
        f"{summary.memory_items:,} memory writes, {failed_calls} failed calls and "
        f"{sum(summary.outcomes.values())} outcomes ({summary.outcomes['failure']} failures)"
    )
    report = summary.verify_report
    proof = (
        f"{report.events:,} events in {report.streams} streams, verified against {report.checkpoints} signed "
        "checkpoints with the pinned key"
    )
    proven = report.events == summary.events > 0 and missions > 0 and failed_calls > 0
    return Beat(1, "Two tenants' agents run their missions", happened, proof, proven)


def _earned(summary: DemoSummary) -> Beat:
    move = summary.earned
    title = "An agent earns production scope"
    if move is None:
        return Beat(2, title, "no agent was widened to production", "no scope.widened to production", False)
    happened = f"{move.tenant} {move.agent_id}: {move.tool} widened {move.previous_level} → production. {move.reason}"
    proof = f"scope.widened {move.event_id} (log index {move.log_index}) citing {_cited(move.evidence)}"
    return Beat(2, f"{move.agent_id} earns production scope", happened, proof, "tool.call.completed" in move.evidence)


def _narrowed(summary: DemoSummary) -> Beat:
    move = summary.narrowed
    title = "An agent fails and is narrowed"
    if move is None:
        return Beat(3, title, "no scope was narrowed", "no scope.narrowed", False)
    happened = (
        f"{move.tenant} {move.agent_id}: {move.reason}; {move.tool} narrowed {move.previous_level} → {move.level}"
    )
    proof = f"scope.narrowed {move.event_id} (log index {move.log_index}) citing {_cited(move.evidence)}"
    proven = bool(FAILURE_EVIDENCE & set(move.evidence))
    return Beat(3, f"{move.agent_id} fails and is narrowed automatically", happened, proof, proven)


def _refused(summary: DemoSummary) -> Beat:
    refused = summary.refused_close
    title = "A mission close is refused"
    if refused is None:
        return Beat(4, title, "no close was refused", "no mission.close.refused", False)
    happened = (
        f"{refused.tenant} {refused.mission_id} ({refused.title}): {refused.requested_by} asked to close it as "
        f"completed and was refused: {refused.reasons[0]}"
    )
    if refused.closed_by:
        happened += f" {refused.closed_by} then closed it by hand anyway."
    proof = f"mission.close.refused {refused.refusal_event_id}, missing {', '.join(refused.missing_criteria)}"
    return Beat(
        4,
        f"{refused.mission_id}'s close is refused for missing evidence",
        happened,
        proof,
        bool(refused.missing_criteria),
    )


def _audited(summary: DemoSummary) -> Beat:
    audit, refused = summary.audit, summary.refused_close
    title = "An auditor query finds it"
    if audit is None or refused is None or not audit.found:
        return Beat(5, title, "the audit query did not find the refused mission", "no matching row", False)
    row = audit.found[0]
    happened = (
        f"saved query {audit.query} over {audit.events:,} audited events returns {len(audit.rows)} "
        f"row{'s' * (len(audit.rows) != 1)}; it names {row['tenant']} {row['mission_id']}: criterion "
        f"{row['criterion_id']} has {row['problem']}, closed by {row['closed_by']}"
    )
    proof = f"row for mission.closed {row['closed_event_id']} (log index {row['log_index']}) in {audit.store.name}"
    return Beat(
        5,
        f"The auditor's saved query finds {row['mission_id']}",
        happened,
        proof,
        row["mission_id"] == refused.mission_id,
    )


def _exported(summary: DemoSummary) -> Beat:
    bundle, refused = summary.bundle, summary.refused_close
    title = "The mission is exported and verified offline"
    if bundle is None or refused is None:
        return Beat(6, title, "nothing was exported", "no bundle", False)
    report = bundle.report
    happened = (
        f"{refused.mission_id} exported to {bundle.path.name} ({report.events} events, {bundle.size:,} bytes) and "
        f"verified with only the bundle and the pinned key; a copy with one event changed is refused: "
        f"{bundle.tampered}"
    )
    sizes = "; ".join(f"p{p} at {', '.join(map(str, s))}" for p, s in report.tree_sizes.items())
    proof = f"DSSE signature by {report.signed_by}; inclusion proofs against signed checkpoints ({sizes})"
    proven = report.events > 0 and report.selection.get("mission") == refused.mission_id and bool(bundle.tampered)
    return Beat(6, f"{refused.mission_id} is exported and verified offline", happened, proof, proven)


def _policy(summary: DemoSummary) -> Beat:
    change = summary.policy_change
    title = "A stricter policy is rebuilt, diffed and promoted"
    if change is None:
        return Beat(7, title, "no policy change", "no policy.activated", False)
    scope, trust, missions = (len(change.changed(name)) for name in ("scope", "trust", "mission"))
    _, agent, tool, level = change.question
    happened = (
        f"{change.policy_name} v{change.policy_version} rebuilt into shadow state from {change.rebuild.events:,} "
        f"events; the diff shows {scope} scope, {trust} trust and {missions} mission changes; promoted. "
        f"May {agent} call {tool} at {level}? {change.before.decision} before, {change.after.decision} after"
    )
    proof = (
        f"policy.activated {change.activations[0] if change.activations else '(missing)'} (rebuild "
        f"{change.rebuild.rebuild_id}) and {change.recorded_scope_changes} scope events citing it"
    )
    proven = (
        bool(change.activations)
        and scope == change.recorded_scope_changes > 0
        and change.before.decision != change.after.decision
    )
    return Beat(7, f"Policy {change.policy_name} is rebuilt, diffed and promoted", happened, proof, proven)
