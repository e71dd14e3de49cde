"""`agent-ledger authorize --tenant T --agent A --tool T [--level L] [--at TIME]`: may this agent call this tool?

It catches the scope projection up with the log, answers allow, deny or escalate from the agent's grants, and
records the answer as a `policy.decision` event with the deciding rule and the policy version. With `--at` it
answers "could the agent have called it then?" from the grant history and records nothing. It prints the
answer as JSON; the exit code is 0 for allow and 1 for deny or escalate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.cli.common import add_store_options, open_ledger, print_json
from projections.policy import LEVELS


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "authorize",
        help="may agent A call tool T? answered from the scope grants and recorded",
        description="Answer allow, deny or escalate from the scope grants; record it as policy.decision.",
    )
    add_store_options(parser)
    parser.add_argument("--tenant", required=True, help="the agent's tenant")
    parser.add_argument("--agent", required=True, help="the agent id")
    parser.add_argument("--tool", required=True, help="the tool or capability")
    parser.add_argument("--level", choices=LEVELS, default="sandbox", help="the level of the call (default sandbox)")
    parser.add_argument("--at", default=None, help="a past RFC 3339 time: answer from history, record nothing")
    parser.add_argument("--call-id", default=None, help="the tool call decided on, recorded in the decision")
    parser.add_argument("--dry-run", action="store_true", help="answer without recording policy.decision")
    parser.add_argument("--state", type=Path, default=None, help="consumer state dir (default <data>/consumers)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_ledger(args, read_only=False) as ledger:
        service = ledger.projections(args.state)
        service.catch_up("scope")
        answer = service.authorize(
            args.tenant,
            args.agent,
            args.tool,
            args.level,
            at=args.at,
            record=not args.dry_run,
            call_id=args.call_id,
        )
    print_json(answer.as_json())
    return 0 if answer.authorization.decision == "allow" else 1
