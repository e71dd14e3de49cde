"""Call limits of a grant: `max_calls_per_hour` and `max_calls_per_day` are enforced by `authorize`.

The scope projection remembers when each granted tool was requested (the last day's calls), so the answer is a
pure function of the folded log and the question's time; other limit names are kept and returned unenforced.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from support import Fold, sequence
from test_scope import TOOL, call, calls, grant

from consumers.policy_files import default_policy
from projections.authorize import authorize
from projections.base import entity_key
from projections.scope import MAX_RECENT_CALLS, AgentScope, ScopeProjection, ToolGrant

POLICY = default_policy()


def folded(tmp_path: Path, submissions: list[dict]) -> tuple[AgentScope, str]:
    log = sequence(tmp_path, submissions)
    fold = Fold(ScopeProjection(), POLICY)
    fold.apply(log)
    return fold.entities[entity_key("acme", "agent", "a-1")], log[-1]["recorded_at"]


def later(at: str, **delta: float) -> str:
    moment = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) + timedelta(**delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_call_over_the_hourly_limit_is_denied_until_the_hour_has_passed(tmp_path: Path) -> None:
    limits = {"max_calls_per_hour": 3, "max_rows": 500}
    scope, now = folded(tmp_path, [grant("canary", limits=limits), *calls(True, 2)])
    assert authorize(scope, tool=TOOL, level="sandbox", at=now, policy=POLICY).decision == "allow"

    scope, now = folded(tmp_path / "more", [grant("canary", limits=limits), *calls(True, 3)])
    answer = authorize(scope, tool=TOOL, level="sandbox", at=now, policy=POLICY)
    assert (answer.decision, answer.rule) == ("deny", "scope.limit_exceeded")
    assert answer.reason.startswith(f"3 calls of {TOOL} in the hour before ") and "allows 3 (max_calls_per_hour)" in (
        answer.reason
    )
    assert answer.limits == {"max_calls_per_hour": 3.0, "max_rows": 500.0}  # max_rows: returned, not enforced
    first_call = scope.tools[TOOL].recent_calls[0]
    assert authorize(scope, tool=TOOL, level="sandbox", at=later(first_call, minutes=59), policy=POLICY).decision == (
        "deny"
    )
    assert authorize(scope, tool=TOOL, level="sandbox", at=later(first_call, minutes=61), policy=POLICY).decision == (
        "allow"
    )


def test_the_daily_limit_holds_for_a_day_and_other_tools_do_not_count(tmp_path: Path) -> None:
    other = "ci.run_tests"
    submissions = [grant("sandbox", limits={"max_calls_per_day": 2}), grant("sandbox", tool=other)]
    submissions += calls(True, 5, tool=other) + calls(True, 1)
    scope, now = folded(tmp_path, submissions)
    assert scope.tools[TOOL].recent_calls and len(scope.tools[other].recent_calls) == 5
    assert authorize(scope, tool=TOOL, level="sandbox", at=now, policy=POLICY).decision == "allow"

    scope, now = folded(tmp_path / "two", [grant("sandbox", limits={"max_calls_per_day": 2}), *calls(True, 2)])
    for hours in (0, 2, 23):
        assert authorize(scope, tool=TOOL, level="sandbox", at=later(now, hours=hours), policy=POLICY).rule == (
            "scope.limit_exceeded"
        )
    assert authorize(scope, tool=TOOL, level="sandbox", at=later(now, hours=25), policy=POLICY).decision == "allow"


def test_calls_before_the_grant_do_not_count_and_a_denial_for_the_grant_comes_first(tmp_path: Path) -> None:
    submissions = [*call(True), grant("sandbox", limits={"max_calls_per_hour": 1})]
    scope, now = folded(tmp_path, submissions)
    assert scope.tools[TOOL].recent_calls == []
    assert authorize(scope, tool=TOOL, level="sandbox", at=now, policy=POLICY).decision == "allow"
    assert authorize(scope, tool=TOOL, level="production", at=now, policy=POLICY).rule == "scope.above_grant"


def test_call_times_stay_ordered_pruned_to_a_day_and_bounded() -> None:
    grant_ = ToolGrant(tool=TOOL)
    day = "2025-03-03T"
    for at in (f"{day}10:00:00.000000Z", f"{day}12:00:00.000000Z", f"{day}11:00:00.000000Z"):
        grant_.remember_call(at)  # the last one arrived late, from another partition
    assert grant_.recent_calls == [f"{day}10:00:00.000000Z", f"{day}11:00:00.000000Z", f"{day}12:00:00.000000Z"]
    assert grant_.calls_since(f"{day}11:00:00.000000Z") == 2
    grant_.remember_call("2025-03-04T10:30:00.000000Z")  # a day later: the 10:00 call left the window
    assert grant_.recent_calls[0] == f"{day}11:00:00.000000Z" and len(grant_.recent_calls) == 3
    for second in range(MAX_RECENT_CALLS + 5):
        grant_.remember_call(f"2025-03-04T11:{second // 6000 % 60:02d}:{second // 100 % 60:02d}.{second:06d}Z")
    assert len(grant_.recent_calls) == MAX_RECENT_CALLS
    assert grant_.recent_calls == sorted(grant_.recent_calls)


def test_call_times_survive_the_store() -> None:
    grant_ = ToolGrant(tool=TOOL, level="sandbox", recent_calls=["2025-03-03T10:00:00.000000Z"])
    assert ToolGrant.decode(grant_.encode()) == grant_
