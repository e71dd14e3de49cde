"""`agent-ledger demo`: run the demo story (`ledger.demo`) into a fresh directory and tell it, beat by beat.

A progress bar per stage on stderr, then the story on stdout: the day of two tenants' agents, the agent that
earned production scope, the one a failure narrowed, the refused close, the audit query that finds it, the
offline-verified export, and the stricter policy rebuilt, diffed and promoted; then a summary of the seven beats
with the event proving each, missions, trust, scopes and where the files are. `--kafka HOST:PORT` (or
AGENT_LEDGER_KAFKA) runs the same story on Kafka. Exit 0 when the log verifies and every beat is proven.
"""

from __future__ import annotations

import argparse
import os
import shlex
import textwrap
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from ledger.cli.common import kafka_from, progress_bar
from ledger.demo import DemoSummary, run_demo
from ledger.demo.summary import StateSnapshot
from ledger.errors import UsageError

DEFAULT_DEMO_DIR = Path(".agent-ledger-demo")
STATUSES = ("completed", "failed", "abandoned", "open")
LEVEL_ORDER = {None: 0, "sandbox": 1, "canary": 2, "production": 3}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the full story end to end: agents, governance, audit, export, a policy change",
        description="Run a reproducible day of two tenants' agents, then audit it, export a mission and verify it "
        "offline, and rebuild, diff and promote a stricter policy; print what happened and the events that prove "
        "it. Embedded by default (no servers); the directory is wiped and rebuilt on every run.",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DEMO_DIR, help=f"demo data dir (default ./{DEFAULT_DEMO_DIR})"
    )
    parser.add_argument("--scale", type=int, default=1, help="multiply the number of missions (default 1)")
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        default=None,
        help="run the story on this Kafka broker, in fresh topics (env AGENT_LEDGER_KAFKA)",
    )
    parser.set_defaults(run=run)


class _StageBars:
    """One progress bar per stage of the story (on stderr, only on a terminal), replaced as the stages move on."""

    def __init__(self) -> None:
        self._stage: str | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage != self._stage:
            self.close()
            self._stage, self._bar = stage, progress_bar(stage)
            self._bar.start()
            self._task = self._bar.add_task(stage, total=total)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> _StageBars:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def run(args: argparse.Namespace) -> int:
    if args.scale < 1:
        raise UsageError(f"--scale must be at least 1, not {args.scale}")
    bootstrap, _ = kafka_from(args)  # the demo makes its own fresh topics; only the address is taken
    with _StageBars() as bars:
        summary = run_demo(args.data, scale=args.scale, kafka=bootstrap, on_progress=bars)
    print_summary(Console(highlight=False), summary)
    return 0 if summary.verified else 1


def _n(number: int) -> str:
    return f"{number:,}"


def _table(title: str, *columns: str, numbers: bool = True) -> Table:
    """A table whose first column names the row; the others are numbers (right) or text (left)."""
    table = Table(title=title or None, title_justify="left", title_style="bold", header_style="bold")
    for position, column in enumerate(columns):
        table.add_column(column, justify="right" if numbers and position else "left")
    return table


def _rule(console: Console, title: str) -> None:
    console.print()
    console.rule(title, align="left")


def _beat(console: Console, summary: DemoSummary, number: int) -> None:
    """The beat's title as a rule, its one-line account and its proof."""
    beat = summary.beats[number - 1]
    _rule(console, f"{beat.number}. {beat.title}")
    mark = "[bold green]✔[/bold green]" if beat.proven else "[bold red]✘ not shown by the ledger:[/bold red]"
    console.print(f"{mark} {beat.happened}")
    console.print(Text.assemble(("   proof: ", "bold"), beat.proof), style="dim")


def print_summary(console: Console, summary: DemoSummary) -> None:
    tenants = sorted(summary.events_by_tenant)
    where = (
        "embedded, no servers"
        if summary.engine == "embedded"
        else f"on {summary.ledger_location}, sequencer in-process"
    )
    console.print()
    console.print(f"[bold]Agent Ledger demo[/bold]: a day of AI agents at {' and '.join(tenants)}, in seven beats")
    console.print(
        f"The ledger ran {where}. {_n(summary.submissions)} submissions: {_n(summary.appended)} appended and "
        f"{len(summary.refusals)} bad inputs refused on purpose; the ledger's own components added "
        f"{_n(summary.decisions)} events (decisions, the promotion, authorize answers). {_n(summary.events)} "
        f"events in all, in {summary.seconds:.1f} s."
    )
    console.print(
        f"Simulated day {summary.first_occurred_at[:16].replace('T', ' ')} to {summary.last_occurred_at[11:16]} "
        "UTC (occurred_at is reproducible; recorded_at is now)."
    )
    _print_day(console, summary, tenants)
    for number in (2, 3, 4):
        _beat(console, summary, number)
    _beat(console, summary, 5)
    _print_audit(console, summary)
    _beat(console, summary, 6)
    _print_bundle(console, summary)
    _beat(console, summary, 7)
    _print_policy_change(console, summary)
    _rule(console, "Sealed and verified")
    _print_seal(console, summary)
    _rule(console, "Summary")
    _print_beats(console, summary)
    _print_missions(console, summary, tenants)
    _print_trust(console, summary.state_day, summary.state_after)
    _print_scopes(console, summary.state_day, summary.state_after)
    _print_files(console, summary)
    _print_timing(console, summary)
    _rule(console, "Try next")
    _print_try_next(console, summary)
    console.print()


# -- beat 1: the day ----------------------------------------------------------------------------------------


def _print_day(console: Console, summary: DemoSummary, tenants: list[str]) -> None:
    _beat(console, summary, 1)
    for tenant in tenants:
        console.print(
            f"[bold]{tenant}[/bold]: {summary.agents_by_tenant.get(tenant, 0)} agents registered with their tool "
            f"scopes under policy {summary.first_policy.get(tenant, '(none)')}"
        )
    revision = summary.revision
    if revision:
        console.print(
            f"At {revision['at'][11:16]} {revision['tenant']}'s {revision['agent_id']} moved from {revision['from']} "
            f"to {revision['to']}: its own agent.revised event, never hidden."
        )
    table = _table("Tool calls under policy", "", *tenants, "total")
    for label, attribute in (
        ("requested by an agent", "requested"),
        ("completed (reported by the tool)", "completed"),
        ("failed (reported by the tool)", "failed"),
        ("escalated to a human", "needed_approval"),
        ("approved by a human", "approved"),
        ("denied by a human", "denied_by_human"),
        ("denied by policy", "denied_by_policy"),
    ):
        values = [getattr(summary.tool_calls[tenant], attribute) for tenant in tenants]
        table.add_row(label, *(_n(value) for value in values), _n(sum(values)))
    console.print(table)
    decided = ", ".join(f"{count} {kind}" for kind, count in summary.decisions_by_type.most_common())
    console.print(
        f"Every mission set done criteria; {summary.close_refusals} close requests came too early and were refused. "
        f"The projections folded the day and appended their decisions, each citing its cause: {decided}."
    )
    race = summary.handoff_race
    if race:
        console.print(
            f"Hand-off race: {race['tenant']} {race['mission_id']} was offered to any agent; {race['winner']} "
            f"accepted with expected_seq {race['expected_seq']}, and {race['loser']}'s accept of the same offer "
            "was refused (stale_expected_seq). One mission, one owner."
        )
    refusals = Counter(refusal.reason for refusal in summary.refusals)
    listed = ", ".join(f"{reason}" + (f" ×{count}" if count > 1 else "") for reason, count in sorted(refusals.items()))
    console.print(
        f"Bad inputs refused and recorded with their raw bytes ({sum(summary.refusals_recorded.values())} in the "
        f"rejected log): {listed}."
    )
    if summary.duplicate:
        receipt = summary.duplicate
        console.print(
            f"The resent approval appended nothing: it got the original receipt back ({receipt['tenant']}/"
            f"{receipt['stream']} seq {receipt['seq']})."
        )
    for surprise in summary.surprises:
        console.print(f"[bold red]unexpected:[/bold red] {surprise}")


# -- beats 5 to 7 -------------------------------------------------------------------------------------------


def _print_audit(console: Console, summary: DemoSummary) -> None:
    audit = summary.audit
    if audit is None:
        return
    console.print(Text(f"  $ agent-ledger audit --saved {audit.query}", style="bold"))
    table = _table("", "tenant", "mission", "criterion", "problem", "closed by", numbers=False)
    for row in audit.rows:
        table.add_row(row["tenant"], row["mission_id"], row["criterion_id"] or "", row["problem"], row["closed_by"])
    console.print(table)
    refused = summary.refused_close
    if audit.timeline and refused is not None:
        command = f"  $ agent-ledger audit --tenant {refused.tenant} --saved mission-timeline --param mission="
        console.print(Text(command + refused.mission_id, style="bold"), soft_wrap=True)
        for row in audit.timeline:  # in log order: the refusal comes between the request and the close by hand
            said = textwrap.shorten(str(row["summary"]), 120, placeholder=" …")
            console.print(f"  log index {row['log_index']:>6}  {row['actor']:<26} {said}")


def _print_bundle(console: Console, summary: DemoSummary) -> None:
    bundle = summary.bundle
    if bundle is None:
        return
    report = bundle.report
    streams = ", ".join(f"{name} seq {'-'.join(map(str, runs[0]))}" for name, runs in report.stream_seqs.items())
    console.print(
        f"Bundle {bundle.path} holds {report.events} events of {report.streams} streams ({streams}) with their "
        f"inclusion proofs and {report.checkpoints} signed checkpoints, proven consistent."
    )
    console.print(
        Text(f"  $ agent-ledger verify-bundle {bundle.path} --verifier-key {bundle.verifier_key_path}", style="bold"),
        soft_wrap=True,
    )


def _print_policy_change(console: Console, summary: DemoSummary) -> None:
    change = summary.policy_change
    if change is None:
        return
    rebuilt = change.rebuild
    console.print(
        f"Policy file {change.policy_path} ({change.policy_name} v{change.policy_version}, {change.policy_id[:19]}…), "
        f"derived from the shipped default. Rebuilt {_n(rebuilt.events)} events into shadow stores "
        f"{rebuilt.generation} in {rebuilt.seconds:.1f} s while the live stores kept serving."
    )
    scope = change.changed("scope")
    if scope:
        table = _table("The diff: scope changes", "tenant/agent", "tool", "live", "shadow", numbers=False)
        for item in scope:
            table.add_row(
                f"{item.tenant}/{item.entity.removeprefix('agent/')}",
                item.field.removeprefix("tool:"),
                item.live or "none",
                item.shadow or "none",
            )
        console.print(table)
    trust = change.changed("trust")
    agents = {(item.tenant, item.entity) for item in trust}
    lower = sum(1 for item in trust if (item.shadow or 0.0) < (item.live or 0.0))
    console.print(
        f"The diff also moves {len(trust)} trust scores of {len(agents)} agents ({lower} lower: a 99% lower bound "
        f"instead of 95%) and {len(change.changed('mission'))} missions' status (the mission rules are the same)."
    )
    console.print(
        f"Promoted atomically: {change.promotion.appended} events recorded, {len(change.activations)} "
        f"policy.activated (one per tenant) and {change.recorded_scope_changes} scope changes citing it."
    )
    tenant, agent, tool, level = change.question
    console.print(f"May {tenant} {agent} call {tool} at {level}? Both answers are recorded policy.decision events:")
    for when, answer in (("before", change.before), ("after", change.after)):
        console.print(f"  {when:<7}{answer.decision:<9}{answer.reason}")


# -- the end ------------------------------------------------------------------------------------------------


def _print_seal(console: Console, summary: DemoSummary) -> None:
    report = summary.verify_report
    for seal in summary.seals:
        console.print(
            f"Partition {seal.partition}: {seal.checkpoints} signed checkpoints; the latest covers "
            f"{_n(seal.tree_size)} events, Merkle root {seal.root}"
        )
    console.print(f"Log {summary.log_id}, verifier key {summary.verifier_key}", soft_wrap=True)
    mark = "[bold green]✔[/bold green]" if report.events == summary.events else "[bold red]✘[/bold red]"
    console.print(
        f"{mark} Reopened read-only with the pinned key: verified {_n(report.events)} events in {report.streams} "
        f"streams against {report.checkpoints} signed checkpoints."
    )


def _print_beats(console: Console, summary: DemoSummary) -> None:
    table = Table(title="The seven beats", title_justify="left", title_style="bold", header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("what happened", ratio=2)
    table.add_column("which event proves it", ratio=3, overflow="fold")
    for beat in summary.beats:
        mark = "[green]✔[/green]" if beat.proven else "[red]✘[/red]"
        table.add_row(f"{beat.number} {mark}", beat.title, beat.proof)
    console.print(table)


def _print_missions(console: Console, summary: DemoSummary, tenants: list[str]) -> None:
    table = _table("Missions by final status", "tenant", *STATUSES, "total")
    for tenant in tenants:
        counts = summary.missions_by_tenant.get(tenant, Counter())
        table.add_row(tenant, *(_n(counts[status]) for status in STATUSES), _n(sum(counts.values())))
    console.print(table)
    console.print("'open' missions were still running when the day ended.", style="dim")


def _agents(*snapshots: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted({agent for snapshot in snapshots for agent in snapshot})


def _print_trust(console: Console, day: StateSnapshot, after: StateSnapshot) -> None:
    dimensions = sorted({d for scores in (*day.trust.values(), *after.trust.values()) for d in scores})
    table = _table("Trust per agent and dimension: end of the day → promoted", "agent", *dimensions)
    table.columns[0].no_wrap = True
    for key in _agents(day.trust, after.trust):
        cells = []
        for dimension in dimensions:
            before, now = day.trust.get(key, {}).get(dimension), after.trust.get(key, {}).get(dimension)
            cells.append("-" if before is None and now is None else f"{_score(before)}→{_score(now)}")
        table.add_row(f"{key[0]}/{key[1]}", *cells)
    console.print(table)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_scopes(console: Console, day: StateSnapshot, after: StateSnapshot) -> None:
    table = _table("Scopes: end of the day → promoted", "agent", "tool", "day", "promoted", numbers=False)
    for key in _agents(day.scopes, after.scopes):
        tools = sorted(set(day.scopes.get(key, {})) | set(after.scopes.get(key, {})))
        for tool in tools:
            before, now = day.scopes.get(key, {}).get(tool), after.scopes.get(key, {}).get(tool)
            style = "" if before == now else ("green" if LEVEL_ORDER[now] > LEVEL_ORDER[before] else "yellow")
            table.add_row(f"{key[0]}/{key[1]}", tool, before or "none", now or "none", style=style)
    console.print(table)


def _print_files(console: Console, summary: DemoSummary) -> None:
    console.print("[bold]Where the files are[/bold]")
    if summary.engine == "kafka":
        console.print(Text.assemble((f"{'event log':<28}", "bold"), summary.ledger_location), soft_wrap=True)
    for label, path in summary.files.items():
        console.print(Text.assemble((f"{label:<28}", "bold"), str(path)), soft_wrap=True)


def _print_timing(console: Console, summary: DemoSummary) -> None:
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.stage_seconds.items())
    console.print(f"Took {summary.seconds:.1f} s: {stages}.", style="dim")


def _store_options(summary: DemoSummary) -> str:
    options = f"--data {shlex.quote(str(summary.data_dir))}"
    if os.environ.get("AGENT_LEDGER_KEYS"):  # the other commands would look there; point them at the demo's keys
        options += f" --keys {shlex.quote(str(summary.private_key_path.parent))}"
    return options


def _kafka_options(summary: DemoSummary) -> str:
    return f" --kafka {summary.kafka} --topic-prefix {summary.topic_prefix}" if summary.kafka else ""


def _print_try_next(console: Console, summary: DemoSummary) -> None:
    data, kafka = _store_options(summary), _kafka_options(summary)
    earned, refused = summary.earned, summary.refused_close
    commands = [
        (f"agent-ledger verify {data}{kafka}", "re-check every hash, chain, Merkle root and signature"),
        (f"agent-ledger tail {data}{kafka} --limit 3", "the first events, exactly as hashed"),
        (f"agent-ledger audit {data} --saved missions-closed-without-evidence", "the auditor's question"),
    ]
    if earned is not None:
        commands.append(
            (
                f"agent-ledger audit {data} --saved scope-changes --param agent={earned.agent_id}",
                "every scope change of the agent that earned production, with its causes",
            )
        )
    if summary.bundle is not None:
        commands.append(
            (
                f"agent-ledger verify-bundle {shlex.quote(str(summary.bundle.path))} --verifier-key "
                f"{shlex.quote(str(summary.bundle.verifier_key_path))}",
                "check the exported mission offline: no ledger needed",
            )
        )
    if refused is not None:
        commands.append(
            (
                f"agent-ledger projections show mission {data} --tenant {refused.tenant} "
                f"--key mission/{refused.mission_id}",
                "the refused mission as the mission projection holds it",
            )
        )
    if earned is not None:
        level = summary.state_after.scopes.get((earned.tenant, earned.agent_id), {}).get(earned.tool) or "sandbox"
        commands.append(
            (
                f"agent-ledger authorize {data}{kafka} --tenant {earned.tenant} --agent {earned.agent_id} "
                f"--tool {earned.tool} --level {level}",
                "may this agent call this tool now? answered from the scope grants and recorded",
            )
        )
    for command, why in commands:
        console.print(Text(f"  {command}", style="bold"), soft_wrap=True)
        console.print(f"      {why}", style="dim")
