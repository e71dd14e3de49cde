"""Reading policy files from disk: the shipped `policies/default.toml` and any file an operator names.

Projections only ever see a validated `Policy`; the file system is touched here, by the runners and the CLI.
"""

from __future__ import annotations

from pathlib import Path

from ledger.errors import UsageError
from projections.policy import Policy, parse_policy_toml

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policies" / "default.toml"


def load_policy(path: Path | str) -> Policy:
    """Read and validate a TOML policy file; every problem is one line naming the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"policy file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read policy file {path}: {exc}") from None
    return parse_policy_toml(text, str(path))


def default_policy() -> Policy:
    """The policy that ships with Agent Ledger."""
    return load_policy(DEFAULT_POLICY_PATH)
