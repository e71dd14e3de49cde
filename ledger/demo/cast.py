"""The demo day's cast and props: two tenants, their people, agents, policies, tools and mission templates.

Pure data, plus two helpers that turn it into payload content (a policy's body, a stand-in digest). The seeded
scenario reads every value here, so editing one changes the generated day. It holds no state, never draws a
random number and never does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.policy_files import default_policy
from projections.policy import parse_policy

DEMO_SEED = 20250303
MISSIONS_PER_TENANT = 80
BASE_TIME = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
"""When the demo day starts: every occurred_at is this plus a seeded offset."""

POLICY_ACTOR = "scope-grants"
HARNESS_ACTOR = "harness"


@dataclass(frozen=True)
class AgentSpec:
    agent_id: str
    name: str
    role: str
    model: str
    owner: str
    tools: tuple[str, ...]


@dataclass(frozen=True)
class ToolStep:
    """One step of a mission template: a tool call at a level, and the criterion its output proves."""

    summary: str
    tool: str
    level: str
    criterion: str | None = None


@dataclass(frozen=True)
class MissionTemplate:
    title: str
    objective: str
    owner: str
    steps: tuple[ToolStep, ...]
    criteria: tuple[tuple[str, str, str], ...]  # (criterion_id, description, evidence kind)
    subjects: tuple[str, ...]


@dataclass(frozen=True)
class TenantSpec:
    tenant: str
    humans: tuple[str, ...]
    agents: tuple[AgentSpec, ...]
    policy_tools: dict[str, tuple[str, bool]]  # tool -> (max level, production calls need a human approval)
    templates: tuple[MissionTemplate, ...]
    scope_rules: dict[str, Any]  # the tenant's [scope] settings over the shipped default
    policy_summary: str  # what its policy does, in words (its description)


TENANTS: tuple[TenantSpec, ...] = (
    TenantSpec(
        tenant="acme",
        humans=("h-alice", "h-bob"),
        agents=(
            AgentSpec(
                "a-planner-1",
                "Planner 1",
                "planner",
                "anthropic/claude-opus-4-1",
                "team-platform",
                ("logs.query", "repo.search", "docs.write"),
            ),
            AgentSpec(
                "a-coder-7",
                "Coder 7",
                "coder",
                "anthropic/claude-sonnet-4",
                "team-payments",
                ("repo.search", "repo.read_file", "ci.run_tests", "github.create_pull_request"),
            ),
            AgentSpec(
                "a-reviewer-2",
                "Reviewer 2",
                "reviewer",
                "openai/gpt-4.1",
                "team-payments",
                ("repo.read_file", "ci.run_tests", "github.create_pull_request"),
            ),
            AgentSpec(
                "a-ops-3",
                "Ops 3",
                "release engineer",
                "anthropic/claude-haiku-4-5",
                "team-sre",
                ("ci.run_tests", "deploy.release", "logs.query"),
            ),
        ),
        policy_tools={
            "repo.search": ("production", False),
            "repo.read_file": ("production", False),
            "logs.query": ("production", False),
            "docs.write": ("canary", False),
            "ci.run_tests": ("production", False),
            "github.create_pull_request": ("canary", False),
            "deploy.release": ("production", True),
        },
        templates=(
            MissionTemplate(
                "Fix flaky test {subject}",
                "{subject} fails about 1 run in 20 on main; make it deterministic without weakening it.",
                "a-coder-7",
                (
                    ToolStep("Find the callers of the flaky fixture", "repo.search", "sandbox"),
                    ToolStep("Read the test and the code under test", "repo.read_file", "sandbox"),
                    ToolStep("Run the test 200 times with the fix", "ci.run_tests", "sandbox", "c-green"),
                    ToolStep("Open the pull request", "github.create_pull_request", "canary", "c-pr"),
                ),
                (
                    ("c-green", "The test passes 200 consecutive runs.", "tool_output"),
                    ("c-pr", "The fix is proposed in a pull request.", "tool_output"),
                ),
                (
                    "test_checkout_commits_payment",
                    "test_refund_idempotency",
                    "test_ledger_replay",
                    "test_webhook_retry",
                    "test_currency_rounding",
                    "test_session_expiry",
                ),
            ),
            MissionTemplate(
                "Upgrade {subject}",
                "Upgrade {subject} across payments-service and keep the build green.",
                "a-coder-7",
                (
                    ToolStep("Read the changelog and our call sites", "repo.read_file", "sandbox"),
                    ToolStep("Run the full suite on the upgrade branch", "ci.run_tests", "sandbox", "c-green"),
                    ToolStep("Open the upgrade pull request", "github.create_pull_request", "canary", "c-pr"),
                ),
                (
                    ("c-green", "The full suite passes on the upgrade.", "tool_output"),
                    ("c-pr", "The upgrade is proposed in a pull request.", "tool_output"),
                ),
                (
                    "pydantic to 2.11",
                    "sqlalchemy to 2.0.41",
                    "httpx to 0.28",
                    "cryptography to 44",
                    "orjson to 3.10.18",
                ),
            ),
            MissionTemplate(
                "Release payments-service {subject}",
                "Ship payments-service {subject} to production through canary, with a human sign-off.",
                "a-ops-3",
                (
                    ToolStep("Run the release candidate suite", "ci.run_tests", "canary", "c-tests"),
                    ToolStep("Deploy to the canary fleet", "deploy.release", "canary"),
                    ToolStep("Deploy to production", "deploy.release", "production", "c-deployed"),
                ),
                (
                    ("c-tests", "The release candidate passes its suite.", "tool_output"),
                    ("c-deployed", "The release runs in production with a human approval.", "tool_output"),
                ),
                ("v2.14.0", "v2.14.1", "v2.15.0", "v2.15.1", "v2.16.0", "v2.16.1", "v2.17.0"),
            ),
            MissionTemplate(
                "Triage incident {subject}",
                "Find the root cause of incident {subject} and write the runbook entry.",
                "a-planner-1",
                (
                    ToolStep("Query the error logs around the alert", "logs.query", "production"),
                    ToolStep("Search for the change that introduced it", "repo.search", "sandbox"),
                    ToolStep("Write the runbook entry", "docs.write", "canary", "c-runbook"),
                ),
                (
                    ("c-cause", "The root cause is identified.", "model_output"),
                    ("c-runbook", "A runbook entry exists for the failure.", "tool_output"),
                ),
                ("INC-4411", "INC-4415", "INC-4420", "INC-4432", "INC-4437", "INC-4450"),
            ),
        ),
        scope_rules={"failures_to_narrow": 3, "successes_to_widen": 20, "max_auto_level": "canary"},
        policy_summary="scopes narrow after three failures and widen after twenty successes, up to canary; "
        "production stays a human's grant.",
    ),
    TenantSpec(
        tenant="globex",
        humans=("h-carol", "h-dev"),
        agents=(
            AgentSpec(
                "a-analyst-1",
                "Analyst 1",
                "analyst",
                "openai/gpt-4.1",
                "team-revenue",
                ("warehouse.query", "notebook.run", "crm.query", "crm.update_record"),
            ),
            AgentSpec(
                "a-researcher-4",
                "Researcher 4",
                "researcher",
                "google/gemini-2.5-pro",
                "team-strategy",
                ("web.search", "web.fetch", "docs.write"),
            ),
            AgentSpec(
                "a-writer-2",
                "Writer 2",
                "writer",
                "anthropic/claude-sonnet-4-5",
                "team-lifecycle",
                ("crm.query", "email.send", "docs.write"),
            ),
        ),
        policy_tools={
            "warehouse.query": ("production", False),
            "notebook.run": ("sandbox", False),
            "web.search": ("production", False),
            "web.fetch": ("production", False),
            "docs.write": ("production", False),
            "crm.query": ("production", False),
            "crm.update_record": ("production", True),
            "email.send": ("production", True),
        },
        templates=(
            MissionTemplate(
                "Churn analysis: {subject}",
                "Explain churn in {subject} last quarter with numbers the revenue team can act on.",
                "a-analyst-1",
                (
                    ToolStep("Pull cancellations and usage", "warehouse.query", "production", "c-numbers"),
                    ToolStep("Fit the churn drivers model", "notebook.run", "sandbox"),
                ),
                (
                    ("c-numbers", "The churn numbers come from the warehouse.", "tool_output"),
                    ("c-summary", "A written summary of the drivers exists.", "model_output"),
                ),
                ("SMB EMEA", "mid-market NA", "enterprise APAC", "self-serve", "education"),
            ),
            MissionTemplate(
                "Competitor brief: {subject}",
                "Summarise {subject}'s pricing and launches from public sources, with citations.",
                "a-researcher-4",
                (
                    ToolStep("Search for recent announcements", "web.search", "production"),
                    ToolStep("Fetch the pricing pages", "web.fetch", "production", "c-sources"),
                    ToolStep("Write the brief", "docs.write", "production"),
                ),
                (
                    ("c-sources", "Every claim cites a fetched source.", "tool_output"),
                    ("c-brief", "The brief is written.", "model_output"),
                ),
                ("Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Stark Industries"),
            ),
            MissionTemplate(
                "Renewal campaign: {subject}",
                "Email renewal offers to {subject} accounts due in the next 60 days.",
                "a-writer-2",
                (
                    ToolStep("List the accounts due for renewal", "crm.query", "production"),
                    ToolStep("Send the test batch to the team inbox", "email.send", "canary"),
                    ToolStep("Send the campaign", "email.send", "production", "c-sent"),
                ),
                (
                    ("c-draft", "The offer email is drafted.", "model_output"),
                    ("c-sent", "The campaign is sent with a human approval.", "tool_output"),
                ),
                ("SMB EMEA", "mid-market NA", "enterprise APAC", "self-serve", "nonprofit"),
            ),
            MissionTemplate(
                "CRM hygiene: {subject}",
                "Merge duplicate {subject} accounts in the CRM and fix their owners.",
                "a-analyst-1",
                (
                    ToolStep("Find duplicate accounts", "crm.query", "production"),
                    ToolStep("Merge the duplicates", "crm.update_record", "production", "c-merged"),
                ),
                (("c-merged", "Duplicates are merged with a human approval.", "tool_output"),),
                ("SMB EMEA", "mid-market NA", "enterprise APAC", "self-serve"),
            ),
        ),
        # Sustained success may earn production here: the story's agent that earns its production scope.
        scope_rules={"failures_to_narrow": 3, "successes_to_widen": 15, "max_auto_level": "production"},
        policy_summary="scopes narrow after three failures; fifteen successes widen them, up to production.",
    ),
)

REVISED_AGENT = ("acme", "a-coder-7", "anthropic/claude-sonnet-4-5")
"""(tenant, agent, new model): the one agent.revised of the day, halfway through."""

CLOSE_OVERRIDE_TENANT = "acme"
CLOSE_OVERRIDE_AFTER = timedelta(hours=5)
"""The first mission of this tenant to finish this long after the day starts asks to close too early, is refused,
and its requester closes it by hand anyway: the mission the auditor later finds closed without evidence."""

TOOL_ACTORS = {
    "repo": "github-gateway",
    "github": "github-gateway",
    "ci": "ci-gateway",
    "deploy": "deploy-gateway",
    "logs": "observability-gateway",
    "docs": "docs-gateway",
    "warehouse": "warehouse-gateway",
    "notebook": "notebook-runner",
    "web": "web-gateway",
    "crm": "crm-gateway",
    "email": "email-gateway",
}
TOOL_ERRORS = (
    ("timeout", "the call exceeded its time budget", True),
    ("rate_limited", "429 Too Many Requests from the upstream API", True),
    ("unavailable", "upstream returned 503 Service Unavailable", True),
    ("execution_error", "the command exited with status 1", False),
    ("permission_denied", "the service account lacks write access to the target", False),
)
ROGUE_TOOLS = ("shell.exec", "db.drop_table", "secrets.read", "payments.refund")
DENIAL_REASONS = (
    "Not during the freeze window; try again on Monday.",
    "The change has no rollback plan attached.",
    "Wrong audience: this segment opted out of marketing email.",
    "Too many records at once; split it into batches of 500.",
)


def text_digest(text: str) -> str:
    """A sha256 digest of a made-up text, standing in for a prompt's or a tool output's real digest."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def policy_content(spec: TenantSpec) -> dict[str, Any]:
    """The body of the tenant's policy 'default' v3, as published: its digest is the policy_id. It is the shipped
    default with the tenant's own scope rules, a document the projections validate and fold under."""
    base = default_policy().document
    document = {
        **base,
        "version": 3,
        "description": f"{spec.tenant}: {spec.policy_summary}",
        "scope": {**base["scope"], **spec.scope_rules},
    }
    return parse_policy(document, f"demo policy of {spec.tenant}").document
