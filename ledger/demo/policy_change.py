"""Beat 7: a stricter policy, derived from the shipped default, is written to a file, rebuilt into shadow state,
diffed, and promoted; `authorize` answers the same question before and after.

It reuses what `agent-ledger projections rebuild | diff | promote` run (`consumers.rebuild`) on the file the
way an operator's file is read (`load_policy`); the promotion records `policy.published`, `policy.activated` and
the scope changes as events, and the demo reads those back from the log. It writes only the policy file and the
stores, and never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumers.policy_files import DEFAULT_POLICY_PATH, default_policy, load_policy
from consumers.promotion import diff, promote
from consumers.rebuild import rebuild
from consumers.service import ProjectionService
from ledger.demo.policy_toml import policy_toml
from ledger.demo.summary import AuthorizeAnswer, PolicyChange
from ledger.errors import ConfigError
from ledger.sdk import Ledger
from projections.policy import Policy, parse_policy
from projections.registry import all_projections

STRICT_POLICY_FILE = "strict.toml"
STRICTER: dict[str, dict[str, Any]] = {
    "scope": {"failures_to_narrow": 2, "successes_to_widen": 30, "min_trust_to_widen": 0.8, "max_auto_level": "canary"},
    "trust": {"z": 2.326},
}
"""The stricter policy: the shipped default (two failures narrow a tool, widening stops at canary) with slower
widening (thirty successes and a reliability bound of 0.8) and trust as a 99% lower bound instead of 95%; the
tenants' own policies narrow after three failures, and globex lets widening reach production."""
Question = tuple[str, str, str, str]  # (tenant, agent, tool, level)


def stricter_policy() -> Policy:
    """The shipped default with the `STRICTER` settings, as policy 'strict' v1."""
    base = default_policy().document
    document = {
        **base,
        "name": "strict",
        "version": 1,
        "description": "Stricter: two failures narrow a tool; widening takes thirty successes and a reliability "
        "bound of 0.8 and never goes above canary; trust is scored at 99% confidence.",
    }
    for section, settings in STRICTER.items():
        document[section] = {**base[section], **settings}
    return parse_policy(document, "the demo's stricter policy")


def write_policy_file(policy_dir: Path) -> Path:
    policy_dir.mkdir(parents=True, exist_ok=True)
    path = policy_dir / STRICT_POLICY_FILE
    comment = (
        f"Derived from {DEFAULT_POLICY_PATH.name} by `agent-ledger demo`: {stricter_policy().description}\n"
        "Try it: agent-ledger projections rebuild --policy THIS_FILE, then diff, then promote."
    )
    path.write_text(policy_toml(stricter_policy(), comment), encoding="utf-8")
    return path


def _ask(projections: ProjectionService, question: Question) -> AuthorizeAnswer:
    tenant, agent, tool, level = question
    answer = projections.authorize(tenant, agent, tool, level)  # recorded: a policy.decision event
    if answer.receipt is None:
        raise ConfigError("authorize did not record its answer")
    auth = answer.authorization
    return AuthorizeAnswer(auth.decision, auth.rule, auth.reason, answer.receipt.event_id)


def change_policy(
    ledger: Ledger,
    state_root: Path,
    policy_dir: Path,
    question: Question,
    on_progress: Callable[[int, int], None] | None = None,
) -> PolicyChange:
    """Write the stricter policy, rebuild into shadow stores, diff, promote, and ask `question` on either side."""
    path = write_policy_file(policy_dir)
    policy = load_policy(path)
    projections = ledger.projections(state_root)
    before = _ask(projections, question)
    projections.catch_up()  # the live stores have seen everything when the shadow is compared with them
    rebuilt = rebuild(
        ledger.log, state_root, policy, all_projections(), source=path.resolve().as_uri(), on_progress=on_progress
    )
    changes = diff(state_root, all_projections()).changes
    projections.close()  # promotion swaps the stores; the service reopens the new live generation afterwards
    promotion = promote(
        ledger.log,
        state_root,
        all_projections(),
        ledger.append_batch,
        reason="After the day's failures: two failures narrow a tool, and production is a human's grant again.",
    )
    projections.catch_up()  # fold the promotion's own events under the new policy
    after = _ask(projections, question)
    activations, recorded = _promotion_events(ledger, promotion.rebuild_id)
    return PolicyChange(
        policy_path=path,
        policy_name=policy.name,
        policy_version=policy.version,
        policy_id=policy.policy_id,
        rebuild=rebuilt,
        shadow_dir=state_root / rebuilt.generation,
        changes=changes,
        promotion=promotion,
        activations=activations,
        recorded_scope_changes=recorded,
        question=question,
        before=before,
        after=after,
    )


def _promotion_events(ledger: Ledger, rebuild_id: str) -> tuple[list[str], int]:
    """The promotion's policy.activated events, and the scope events citing one, as the log holds them."""
    activation_id = f"policy-activated:{rebuild_id}"
    activations, scope_changes = [], 0
    for partition in range(ledger.log.partition_count):
        for record in ledger.records(partition):
            envelope = record.envelope()
            if envelope["type"] == "policy.activated" and envelope["payload"].get("rebuild_id") == rebuild_id:
                activations.append(f"{envelope['tenant']}/{envelope['event_id']}")
            elif envelope["type"].startswith("scope.") and envelope.get("causation_id") == activation_id:
                scope_changes += 1
    return activations, scope_changes
