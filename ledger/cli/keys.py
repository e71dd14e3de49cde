"""`agent-ledger keys generate | show`: the ledger's Ed25519 signing key (0600) and its verifier key.

`keys producer ...` (producer keys that sign intake records) lives in `ledger/cli/producer_keys.py`.
"""

from __future__ import annotations

import argparse

from ledger.cli.api_keys import register_api_commands
from ledger.cli.common import add_store_options, settings_from
from ledger.cli.producer_keys import register_producer_commands
from ledger.keys import SignerKey, load_verifier, write_key_pair


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keys", help="the ledger signing key, producer keys")
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="{generate,show,producer,api}")
    generate = actions.add_parser("generate", help="write ledger.key (0600) and ledger.pub, print the verifier key")
    add_store_options(generate, kafka=False)
    generate.add_argument("--name", default="agent-ledger", help="key name in signatures (default agent-ledger)")
    generate.add_argument("--force", action="store_true", help="replace an existing key")
    generate.set_defaults(run=run_generate)
    show = actions.add_parser("show", help="print the verifier key")
    add_store_options(show, kafka=False)
    show.set_defaults(run=run_show)
    register_producer_commands(actions)
    register_api_commands(actions)


def run_generate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    signer = SignerKey.generate(args.name)
    private_path, public_path = write_key_pair(settings.key_dir, signer, overwrite=args.force)
    print(signer.verifier().text())
    print(f"# private key: {private_path} (0600)  verifier key: {public_path}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(load_verifier(settings_from(args).verifier_key_path).text())
    return 0
