"""`agent-ledger demo`: run the demo day (`ledger.demo`) into a fresh directory and tell what happened.

A progress bar on stderr while appending, then a short story on stdout: the cast, missions, tool calls under
policy, the hand-off race, the bad inputs refused and recorded, the signed checkpoint, the verify result,
where the files are and what to try next. Exit 0 when the sealed log verifies.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ledger.cli.common import progress_bar
from ledger.demo import DemoSummary, run_demo
from ledger.errors import UsageError

DEFAULT_DEMO_DIR = Path(".agent-ledger-demo")
TOP_TYPES = 12


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run a realistic multi-agent workload end to end",
        description="Run a reproducible day of two tenants' agents on the embedded ledger, seal it, verify "
        "it and print what happened. The directory is wiped and rebuilt on every run.",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DEMO_DIR, help=f"demo data dir (default ./{DEFAULT_DEMO_DIR})"
    )
    parser.add_argument("--scale", type=int, default=1, help="multiply the number of missions (default 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.scale < 1:
        raise UsageError(f"--scale must be at least 1, not {args.scale}")
    with progress_bar("appending the demo day") as progress:
        task = progress.add_task("append", total=None)
        summary = run_demo(
            args.data,
            scale=args.scale,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    print_summary(Console(highlight=False), summary)
    return 0 if summary.verified else 1


def _n(number: int) -> str:
    return f"{number:,}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for position, column in enumerate(columns):
        table.add_column(column, justify="left" if position == 0 else "right")
    return table


def print_summary(console: Console, summary: DemoSummary) -> None:
    tenants = sorted(summary.events_by_tenant)
    refused = len(summary.refusals)
    console.print()
    console.print(f"[bold]Agent Ledger demo[/bold]: a day of AI agents at {' and '.join(tenants)}, sealed and verified")
    console.print(
        f"{_n(summary.submissions)} submissions in {summary.append_seconds:.1f} s: "
        f"{_n(summary.events)} events appended, {refused} bad inputs sent on purpose and refused."
    )
    console.print(
        f"Simulated day {summary.first_occurred_at[:16].replace('T', ' ')} to "
        f"{summary.last_occurred_at[11:16]} UTC (occurred_at is reproducible; recorded_at is now)."
    )

    console.print()
    console.rule("1. The cast", align="left")
    for tenant in tenants:
        console.print(
            f"[bold]{tenant}[/bold]: policy 'default' v3 published and activated, "
            f"{summary.agents_by_tenant.get(tenant, 0)} agents registered."
        )
    revision = summary.revision
    console.print(
        f"At {revision['at'][11:16]} {revision['tenant']}'s {revision['agent_id']} moved from "
        f"{revision['from']} to {revision['to']}; the change is its own agent.revised event, never hidden."
    )

    console.print()
    console.rule("2. Missions", align="left")
    _print_missions(console, summary, tenants)

    if summary.decisions_by_type:
        decided = ", ".join(f"{count} {kind}" for kind, count in summary.decisions_by_type.most_common())
        console.print(
            f"Governance loop: the mission, trust and scope projections folded the day in "
            f"{summary.projection_seconds:.1f} s and appended {summary.decisions} decisions, each citing its cause: "
            f"{decided}."
        )

    console.print()
    console.rule("3. Tool calls under policy", align="left")
    _print_tool_calls(console, summary, tenants)

    console.print()
    console.rule("4. Hand-offs guarded by expected_seq", align="left")
    _print_handoffs(console, summary)

    console.print()
    console.rule("5. Bad inputs, refused and recorded", align="left")
    _print_refusals(console, summary)

    console.print()
    console.rule("6. What the log holds", align="left")
    _print_types(console, summary, tenants)

    console.print()
    console.rule("7. Sealed and verified", align="left")
    _print_seal(console, summary)

    console.print()
    console.rule("8. Try next", align="left")
    data = shlex.quote(str(summary.data_dir))
    if os.environ.get("AGENT_LEDGER_KEYS"):  # the other commands would look there; point them at the demo's keys
        data += f" --keys {shlex.quote(str(summary.private_key_path.parent))}"
    for command, why in (
        (f"agent-ledger tail --data {data} --limit 3", "the first events, exactly as hashed"),
        (f"agent-ledger verify --data {data}", "re-check every hash, chain, root and signature"),
        (f"agent-ledger checkpoint --data {data}", "the latest signed checkpoint and the verifier key"),
        (f"agent-ledger rejections --data {data}", "every refused submission with its reason"),
        (f"agent-ledger consume trust --once --data {data}", "fold the log into trust scores; changes become events"),
        (
            f"agent-ledger authorize --data {data} --tenant acme --agent a-coder-7 --tool ci.run_tests --level canary",
            "may this agent call this tool? answered from the scope grants and recorded",
        ),
    ):
        console.print(Text(f"  {command}", style="bold"), soft_wrap=True)
        console.print(f"      {why}", style="dim")
    console.print()


def _print_missions(console: Console, summary: DemoSummary, tenants: list[str]) -> None:
    statuses = ("completed", "failed", "abandoned", "open")
    table = _table("Missions by final status", "tenant", *statuses, "total")
    for tenant in tenants:
        counts = summary.missions_by_tenant.get(tenant, Counter())
        table.add_row(tenant, *(_n(counts[status]) for status in statuses), _n(sum(counts.values())))
    console.print(table)
    console.print(
        "Every mission set explicit done criteria; completed ones attached evidence for each before closing. "
        f"{summary.close_refusals} asked too early and got a mission.close.refused naming the missing "
        f"criterion. Agents wrote {_n(summary.memory_items)} memory items citing their source events. "
        "'open' missions were still running when the day ended."
    )


def _print_tool_calls(console: Console, summary: DemoSummary, tenants: list[str]) -> None:
    table = _table("Tool calls", "", *tenants, "total")
    for label, attribute in (
        ("requested by an agent", "requested"),
        ("completed (reported by the tool)", "completed"),
        ("failed (reported by the tool)", "failed"),
        ("escalated: needed a human approval", "needed_approval"),
        ("approved by a human", "approved"),
        ("denied by a human", "denied_by_human"),
        ("denied by policy", "denied_by_policy"),
    ):
        values = [getattr(summary.tool_calls[tenant], attribute) for tenant in tenants]
        table.add_row(label, *(_n(value) for value in values), _n(sum(values)))
    console.print(table)
    console.print(
        "Each request was answered by a policy.decision (allow, deny or escalate, naming the rule). Only the "
        "tool reported its result, linked to the request by causation_id; failed calls that may succeed on "
        "retry were retried."
    )


def _print_handoffs(console: Console, summary: DemoSummary) -> None:
    race = summary.handoff_race
    if race:
        console.print(
            f"{race['tenant']} {race['mission_id']}: {race['offered_by']} offered the mission to any agent. "
            f"{race['winner']} accepted with expected_seq {race['expected_seq']} and became the owner at seq "
            f"{race['expected_seq'] + 1}; {race['loser']} accepted the same offer a moment later, also with "
            f"expected_seq {race['expected_seq']}, and was refused (stale_expected_seq). One mission, one owner."
        )
    for handoff in summary.handoffs:
        if handoff["mission_id"] != race.get("mission_id"):
            console.print(
                f"{handoff['tenant']} {handoff['mission_id']}: {handoff['from']} handed the mission to "
                f"{handoff['to']}, accepted at seq {handoff['seq']} with expected_seq {handoff['seq'] - 1}."
            )


def _print_refusals(console: Console, summary: DemoSummary) -> None:
    for refusal in summary.refusals:
        console.print(f"[red]✘[/red] {refusal.label}")
        said = Text.assemble((refusal.reason, "bold"), ": ", refusal.message, style="dim")
        console.print(Padding(said, (0, 0, 0, 4), expand=False))
    recorded = sum(summary.refusals_recorded.values())
    console.print(
        f"Each caller got a clear error, and all {recorded} refusals sit in the rejected table with the raw "
        "bytes that were sent."
    )
    if summary.duplicate:
        receipt = summary.duplicate
        console.print(
            f"The resend appended nothing: it got the original receipt back ({receipt['tenant']}/"
            f"{receipt['stream']} seq {receipt['seq']}, log index {receipt['log']['index']})."
        )
    for surprise in summary.surprises:
        console.print(f"[bold red]unexpected:[/bold red] {surprise}")


def _print_types(console: Console, summary: DemoSummary, tenants: list[str]) -> None:
    totals: Counter[str] = Counter()
    for counts in summary.events_by_tenant.values():
        totals.update(counts)
    table = _table(f"Events by type (top {TOP_TYPES} of {len(totals)})", "type", *tenants, "total")
    for event_type, total in totals.most_common(TOP_TYPES):
        table.add_row(event_type, *(_n(summary.events_by_tenant[t][event_type]) for t in tenants), _n(total))
    rest = totals.most_common()[TOP_TYPES:]
    if rest:
        table.add_row(
            f"{len(rest)} other types",
            *(_n(sum(summary.events_by_tenant[t][name] for name, _ in rest)) for t in tenants),
            _n(sum(count for _, count in rest)),
        )
    table.add_section()
    table.add_row(
        "all events",
        *(_n(sum(summary.events_by_tenant[t].values())) for t in tenants),
        _n(summary.events),
        style="bold",
    )
    console.print(table)


def _print_seal(console: Console, summary: DemoSummary) -> None:
    report = summary.verify_report
    console.print(
        f"Closing the ledger sealed a final checkpoint. Log {summary.log_id} has {summary.checkpoints} signed "
        f"checkpoints; the latest covers {_n(summary.checkpoint_tree_size)} events with Merkle root "
        f"{summary.checkpoint_root}"
    )
    console.print(f"Verifier key: {summary.verifier_key}")
    sealed = ", ".join(f"partition {p} sealed at {size}" for p, size in sorted(report.sealed.items()))
    mark = "[bold green]✔[/bold green]" if summary.verified else "[bold red]✘[/bold red]"
    console.print(
        f"{mark} Reopened read-only with the pinned key: verified {report.events} events in {report.streams} "
        f"streams against {report.checkpoints} signed checkpoints ({sealed}) in {summary.verify_seconds:.1f} s."
    )
    console.print()
    for label, path, note in (
        ("data dir", summary.data_dir, "the next demo run wipes it"),
        ("event store", summary.db_path, "SQLite"),
        ("signing key", summary.private_key_path, "private, 0600"),
        ("verifier key", summary.verifier_key_path, "publish this"),
    ):
        line = Text.assemble((f"{label:<13}", "bold"), str(path), (f"  ({note})", "dim"))
        console.print(line, soft_wrap=True)
