"""Which policy a projection store holds in force for a tenant, whatever order the activations arrive in.

The shipped default is activated by whichever projection decides first for a tenant (its event id is derived
from the policy id). On Kafka that activation can sit on another partition than an operator's activation of
another policy and reach a consumer after it. It only fills a gap: it never undoes an explicit activation.
An explicit activation of the default (a promotion) still counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings

from consumers.policy_files import default_policy
from consumers.projection import PolicyBook, ProjectionConsumer, initial_activation_id, policy_submissions
from consumers.runner import ConsumerRunner
from consumers.store import ConsumerStore
from ledger.errors import SubmissionRefused
from ledger.sdk import Ledger
from projections.policy import Policy, parse_policy
from projections.scope import ScopeProjection

DEFAULT = default_policy()


def strict_policy() -> Policy:
    document = DEFAULT.document | {"name": "strict", "version": 2}
    return parse_policy(document, "strict")


def explicit(policy: Policy, activation_id: str) -> list[dict[str, Any]]:
    published, activated = policy_submissions("acme", policy)
    activated["event_id"] = activation_id
    return [published, activated]


def in_force(tmp_path: Path, submissions: list[dict[str, Any]]) -> str:
    settings = make_settings(tmp_path)
    with Ledger.open(settings) as ledger:
        outcomes = ledger.append_batch(submissions)
        assert not [o for o in outcomes if isinstance(o, SubmissionRefused)]
        consumer = ProjectionConsumer(ScopeProjection(), DEFAULT)
        with ConsumerStore(tmp_path / "scope.sqlite") as store:
            ConsumerRunner(ledger.log, consumer, store).catch_up()
            with store.read() as cursor:
                return PolicyBook(DEFAULT).active(cursor, "acme").policy_id


@pytest.mark.parametrize("initial_first", [True, False], ids=["initial-first", "initial-late"])
def test_the_initial_default_never_undoes_an_explicit_activation(tmp_path: Path, initial_first: bool) -> None:
    strict = strict_policy()
    initial = policy_submissions("acme", DEFAULT)
    assert initial[1]["event_id"] == initial_activation_id(DEFAULT.policy_id)
    operator = explicit(strict, "policy-activated:rb-operator")
    order = [*initial, *operator] if initial_first else [*operator, *initial]
    assert in_force(tmp_path, order) == strict.policy_id


def test_the_initial_default_fills_the_gap_and_an_explicit_default_still_counts(tmp_path: Path) -> None:
    assert in_force(tmp_path / "gap", policy_submissions("acme", DEFAULT)) == DEFAULT.policy_id
    strict = strict_policy()
    back = [*explicit(strict, "policy-activated:rb-one"), *explicit(DEFAULT, "policy-activated:rb-two")]
    assert in_force(tmp_path / "back", back) == DEFAULT.policy_id
