"""The trust model as small pure functions: evidence that decays with event time, scored by a Wilson bound.

Evidence of weight w recorded at time t counts w * 2^(-(T - t) / half_life_days) at a later event time T.
The score over decayed successes s and failures f, plus the policy's prior pseudo-counts a and b, is the
Wilson score lower bound at z: with n = s + a + f + b and p = (s + a) / n,

    score = (p + z²/2n - z * sqrt(p(1 - p)/n + z²/4n²)) / (1 + z²/n)

so thin evidence scores low (the interval is wide) and old evidence fades until only the prior is left.
Derived decisions are never evidence. Time comes only from event timestamps (DESIGN guarantee 8): no clock,
randomness or I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from projections.policy import TrustPolicy

Effect = Literal["success", "failure"]
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SCORE_DIGITS = 6
"""Scores are rounded to this many decimals, so payloads and `projections diff` do not show float noise."""
_SECONDS_PER_DAY = 86_400.0
DERIVED_ACTOR_PREFIX = "projection:"
"""Actor id prefix of decisions a projection derived (`Decision.submission`, always a policy actor)."""


def is_derived(event: dict[str, Any]) -> bool:
    """Whether `event` is one of this system's own derived decisions: an echo of its reasoning, never evidence.

    The actor kind is checked too, so a tool or human naming itself "projection:…" cannot hide its evidence."""
    actor = event["actor"]
    return actor["kind"] == "policy" and str(actor["id"]).startswith(DERIVED_ACTOR_PREFIX)


@lru_cache(maxsize=4096)  # a batch's events share one recorded_at, and replays parse the same times again
def parse_time(timestamp: str) -> datetime:
    """An envelope timestamp ("YYYY-MM-DDTHH:MM:SS.ffffffZ") as an aware UTC datetime."""
    if len(timestamp) != 27 or timestamp[-1] != "Z":
        raise ValueError(f"time data {timestamp!r} does not match format {TIMESTAMP_FORMAT!r}")
    return datetime.fromisoformat(timestamp).astimezone(UTC)


def days_between(earlier: str, later: str) -> float:
    """Days from `earlier` to `later`, never negative: events of several partitions may arrive out of time order,
    and evidence must not grow by being "decayed" backwards."""
    seconds = (parse_time(later) - parse_time(earlier)).total_seconds()
    return max(0.0, seconds / _SECONDS_PER_DAY)


def decay_factor(elapsed_days: float, half_life_days: float) -> float:
    """The share of its weight evidence keeps after `elapsed_days`: 2^(-elapsed / half_life)."""
    return math.pow(0.5, max(0.0, elapsed_days) / half_life_days)


def wilson_lower_bound(successes: float, failures: float, z: float) -> float:
    """The Wilson score interval's lower bound for (possibly fractional) counts; 0 when there are none.

    Computed as (s + z²/2 - z * sqrt(s*f/n + z²/4)) / (n + z²), the module's formula multiplied through by n,
    which stays finite for the vanishing counts that long decay leaves."""
    n = successes + failures
    if n <= 0:
        return 0.0
    z2 = z * z
    margin = z * math.sqrt(successes * failures / n + z2 / 4)
    return min(1.0, max(0.0, (successes + z2 / 2 - margin) / (n + z2)))


def score(successes: float, failures: float, policy: TrustPolicy) -> float:
    """The trust score of decayed evidence under `policy`: the Wilson lower bound with the prior added."""
    bound = wilson_lower_bound(successes + policy.prior_successes, failures + policy.prior_failures, policy.z)
    return round(bound, SCORE_DIGITS)


def prior_score(policy: TrustPolicy) -> float:
    """The score of an agent with no evidence (or whose evidence has all decayed away)."""
    return score(0.0, 0.0, policy)


@dataclass(frozen=True)
class DecayedEvidence:
    """Successes and failures decayed to `last_at`, and how many events they rest on (not decayed)."""

    successes: float = 0.0
    failures: float = 0.0
    count: int = 0
    last_at: str | None = None

    def as_of(self, at: str, half_life_days: float) -> DecayedEvidence:
        """The same evidence decayed to the later time `at` (unchanged if `at` is not later)."""
        if self.last_at is None:
            return self
        factor = decay_factor(days_between(self.last_at, at), half_life_days)
        return DecayedEvidence(self.successes * factor, self.failures * factor, self.count, max(self.last_at, at))

    def add(self, effect: Effect, weight: float, at: str, half_life_days: float) -> DecayedEvidence:
        """This evidence decayed to `at`, plus one event of `weight` with `effect`."""
        decayed = self.as_of(at, half_life_days)
        return DecayedEvidence(
            decayed.successes + (weight if effect == "success" else 0.0),
            decayed.failures + (weight if effect == "failure" else 0.0),
            decayed.count + 1,
            at if decayed.last_at is None else decayed.last_at,
        )

    def score(self, policy: TrustPolicy) -> float:
        return score(self.successes, self.failures, policy)

    def encode(self) -> dict[str, Any]:
        return {"successes": self.successes, "failures": self.failures, "count": self.count, "last_at": self.last_at}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> DecayedEvidence:
        return cls(
            successes=float(data["successes"]),
            failures=float(data["failures"]),
            count=int(data["count"]),
            last_at=data["last_at"],
        )
