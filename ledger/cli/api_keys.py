"""`agent-ledger keys api create | list | revoke`: HTTP API keys, one tenant and one role each, stored hashed."""

from __future__ import annotations

import argparse

import orjson

from ledger.apikeys import ROLES, ApiKey, ApiKeyStore
from ledger.cli.common import add_store_options, settings_from


def register_api_commands(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser("api", help="HTTP API keys per tenant and role (producer, auditor, operator)")
    commands = parser.add_subparsers(dest="api_action", required=True, metavar="{create,list,revoke}")
    create = commands.add_parser("create", help="create a key; the token is printed once and stored only hashed")
    add_store_options(create, kafka=False)
    create.add_argument("--tenant", required=True, help="the one tenant this key may touch")
    create.add_argument("--role", required=True, choices=ROLES, help="what the key may do")
    create.add_argument("--name", default="", help="a label for the holder (default TENANT-ROLE)")
    create.set_defaults(run=run_create)
    listing = commands.add_parser("list", help="list keys (never their secrets) as JSON lines")
    add_store_options(listing, kafka=False)
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    listing.set_defaults(run=run_list)
    revoke = commands.add_parser("revoke", help="revoke a key by its id; it stays on record")
    add_store_options(revoke, kafka=False)
    revoke.add_argument("key_id", help="the id shown by `keys api list`")
    revoke.set_defaults(run=run_revoke)


def _public(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "role": key.role,
        "name": key.name,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def run_create(args: argparse.Namespace) -> int:
    store = ApiKeyStore(settings_from(args).key_dir)
    key, token = store.create(args.tenant, args.role, args.name)
    print(token)
    print(f"# {key.role} key {key.key_id} for tenant {key.tenant}; shown once, stored hashed in {store.path} (0600)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for key in ApiKeyStore(settings_from(args).key_dir).list(args.tenant):
        print(orjson.dumps(_public(key)).decode())
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    key = ApiKeyStore(settings_from(args).key_dir).revoke(args.key_id)
    print(orjson.dumps(_public(key)).decode())
    return 0
