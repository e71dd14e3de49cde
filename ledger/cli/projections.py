"""`agent-ledger projections rebuild --policy FILE | diff | promote | show`: policy changes, shown before they act.

`rebuild` replays the whole log under the policy in FILE into shadow stores (a progress bar, then a summary)
while the live projections keep serving; `diff` shows which agents' trust and scopes and which missions'
status would change (readable, or `--json`); `promote` switches the shadow live atomically and records
`policy.activated` and the resulting scope changes as events. `show` prints live state as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from consumers.generations import live_dir, state_root_of
from consumers.policy_files import load_policy
from consumers.projection import read_entities
from consumers.promotion import diff, promote
from consumers.rebuild import rebuild
from ledger.cli.common import add_store_options, open_ledger, print_json, progress_bar, settings_from
from ledger.errors import UsageError
from projections.registry import PROJECTIONS, all_projections


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "projections",
        help="rebuild the projections under a new policy, diff, promote; show their state",
        description="Rebuild under a new policy into shadow stores, review the diff, then promote it.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (
        ("rebuild", "replay the whole log under --policy FILE into shadow stores"),
        ("diff", "what the shadow would change: trust, scopes, mission status"),
        ("promote", "switch the shadow live and record policy.activated and the scope changes"),
        ("show", "print the live state of a projection as JSON"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        add_store_options(action)
        action.add_argument("--state", type=Path, default=None, help="consumer state dir (default <data>/consumers)")
        action.set_defaults(run=globals()[f"_{name}"])
        if name == "rebuild":
            action.add_argument("--policy", type=Path, required=True, help="the policy TOML file to replay under")
        if name == "diff":
            action.add_argument("--json", action="store_true", help="print the diff as JSON")
        if name == "promote":
            action.add_argument("--reason", default=None, help="why, recorded in policy.activated")
        if name == "show":
            action.add_argument("name", choices=sorted(PROJECTIONS), help="the projection")
            action.add_argument("--tenant", required=True, help="the tenant whose entities to print")
            action.add_argument("--key", default="", help="only entities whose key starts with this, e.g. agent/a-1")


def _state_root(args: argparse.Namespace) -> Path:
    return state_root_of(settings_from(args).data_dir, args.state)


def _rebuild(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    with open_ledger(args, read_only=True) as ledger, progress_bar("replaying the log") as bar:
        task = bar.add_task("rebuild", total=None)
        result = rebuild(
            ledger.log,
            _state_root(args),
            policy,
            all_projections(),
            source=args.policy.resolve().as_uri(),
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    entities = ", ".join(f"{name} {count}" for name, count in sorted(result.entities.items()))
    print(
        f"rebuilt {result.rebuild_id}: {result.events} events under policy {policy.name} v{policy.version}"
        f" ({result.policy_id}) in {result.seconds:.1f} s ({result.events_per_s:,.0f} events/s); entities:"
        f" {entities}; shadow {result.generation}. Next: `agent-ledger projections diff`, then `promote`."
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    result = diff(_state_root(args), all_projections())
    if args.json:
        print_json(result.as_json())
        return 0
    print(f"rebuild {result.rebuild_id} under policy {result.policy_id}")
    grouped = result.by_projection()
    if not grouped:
        print("no agent's trust or scope and no mission's status would change")
    for projection, changes in sorted(grouped.items()):
        print(f"\n{projection}: {len(changes)} change{'s' * (len(changes) != 1)}")
        for change in changes:
            print(f"  {change.tenant}/{change.entity} {change.field}: {_shown(change.live)} -> {_shown(change.shadow)}")
    return 0


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _promote(args: argparse.Namespace) -> int:
    with open_ledger(args, read_only=False) as ledger:
        promotion = promote(ledger.log, _state_root(args), all_projections(), ledger.append_batch, reason=args.reason)
    if promotion.resumed:
        print(
            f"finished recording the promotion of {promotion.rebuild_id} (policy {promotion.policy_id}):"
            f" recorded {promotion.appended} events; run promote again for a newer rebuild"
        )
        return 0
    print(
        f"promoted {promotion.rebuild_id} (policy {promotion.policy_id}): the live stores decided"
        f" {promotion.decided} new events, the shadow caught up {promotion.caught_up} events;"
        f" recorded {promotion.appended} events ({promotion.scope_changes} scope changes)"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    path = live_dir(_state_root(args)) / f"{args.name}.sqlite"
    if not path.exists():
        raise UsageError(f"no {args.name} store at {path}; run `agent-ledger consume {args.name} --once` first")
    for key, data in read_entities(path, f"{args.tenant}/{args.key}"):
        print_json({"key": key, **data})
    return 0
