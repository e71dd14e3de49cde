"""`agent-ledger keys producer generate | list | revoke`: the keys that sign records written straight to intake.

`generate` writes a producer private key (0600) under `<keys>/producers/` and records its public half as a
`key.registered` event of the tenant, signed by the operator's ledger key, which is the only key allowed to
register keys (DESIGN guarantee 9, docs/kafka.md). `revoke` records the same key again with `expires_at` now.
Embedded or Kafka (`--kafka`). The private key is never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from ledger.cli.common import add_store_options, kafka_from, open_ledger, print_json, settings_from
from ledger.clock import format_timestamp, normalise_timestamp
from ledger.config import Settings
from ledger.errors import SubmissionRefused, UsageError
from ledger.keys import SignerKey, check_key_name, write_signer_file
from ledger.log.base import LogBackend
from ledger.producer_auth import REGISTRATION_STREAM, REGISTRATION_TYPE, ProducerKey, registration_in, remember
from ledger.sdk import Ledger
from schemas.envelope import Receipt, TenantStr

PRODUCER_KEY_DIR = "producers"


def register_producer_commands(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser("producer", help="producer keys that sign records sent straight to ledger.intake")
    commands = parser.add_subparsers(dest="producer_action", required=True, metavar="{generate,list,revoke}")
    generate = commands.add_parser(
        "generate", help="write a producer key (0600), register it to a tenant, print its key id"
    )
    add_store_options(generate)
    generate.add_argument("--tenant", required=True, help="the one tenant the key may write")
    generate.add_argument("--name", default="producer", help="key name after the tenant (default producer)")
    generate.add_argument("--valid-from", help="RFC 3339; signatures count from then (default now)")
    generate.add_argument("--expires-at", help="RFC 3339; signatures stop counting then (default never)")
    generate.add_argument("--actor", default="human:operator", help="KIND:ID recording it (human or system)")
    generate.set_defaults(run=run_generate)
    listing = commands.add_parser("list", help="registered producer keys (latest registration of each) as JSON")
    add_store_options(listing)
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.set_defaults(run=run_list)
    revoke = commands.add_parser(
        "revoke", help="register the key again, expiring now (sequencers learn it within their key refresh)"
    )
    add_store_options(revoke)
    revoke.add_argument("key_id", help="the key id printed by `generate` or `list`")
    revoke.add_argument("--tenant", required=True, help="the tenant it is registered to")
    revoke.add_argument("--actor", default="human:operator", help="KIND:ID recording it (human or system)")
    revoke.set_defaults(run=run_revoke)


def _tenant(text: str) -> str:
    try:
        tenant: str = TypeAdapter(TenantStr).validate_python(text)
    except ValidationError:
        raise UsageError(f"--tenant {text!r} is not a tenant id (lowercase letters, digits, '-' and '_')") from None
    return tenant


def _actor(text: str) -> dict[str, str]:
    kind, sep, actor_id = text.partition(":")
    if not sep or kind not in ("human", "system") or not actor_id:
        raise UsageError(f"--actor {text!r} must be human:ID or system:ID")
    return {"kind": kind, "id": actor_id}


def _timestamp(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    try:
        return normalise_timestamp(text, option)
    except SubmissionRefused as error:
        raise UsageError(error.message) from None


def _operator_settings(args: argparse.Namespace) -> Settings:
    """Registrations must be signed by the ledger key, whatever producer key the environment names."""
    settings = settings_from(args)
    return dataclasses.replace(settings, producer_key=settings.private_key_path)


def _open_as_operator(args: argparse.Namespace) -> Ledger:
    bootstrap, topics = kafka_from(args)
    return Ledger.open(_operator_settings(args), kafka=bootstrap, topics=topics)


def registration(tenant: str, actor: dict[str, str], payload: dict[str, Any]) -> dict[str, Any]:
    """The `key.registered` submission of a producer key."""
    return {
        "tenant": tenant,
        "stream": REGISTRATION_STREAM,
        "type": REGISTRATION_TYPE,
        "actor": actor,
        "payload": {name: value for name, value in payload.items() if value is not None},
    }


def _append(ledger: Ledger, submission: dict[str, Any]) -> Receipt:
    (outcome,) = ledger.append_batch([submission])
    if isinstance(outcome, SubmissionRefused):
        raise outcome
    return outcome


def run_generate(args: argparse.Namespace) -> int:
    tenant = _tenant(args.tenant)
    actor = _actor(args.actor)
    valid_from = _timestamp(args.valid_from, "--valid-from")
    expires_at = _timestamp(args.expires_at, "--expires-at")
    check_key_name(f"{tenant}-{args.name}")
    signer = SignerKey.generate(f"{tenant}-{args.name}")
    key_path = settings_from(args).key_dir / PRODUCER_KEY_DIR / f"{signer.name}.key"
    verifier = signer.verifier()
    with _open_as_operator(args) as ledger:  # a missing store, ledger key or broker fails before any file is written
        pub_path = write_signer_file(key_path, signer)
        payload = {
            "key_id": verifier.key_hash_text,
            "purpose": "producer",
            "algorithm": "ed25519",
            "public_key": verifier.text(),
            "name": signer.name,
            "valid_from": valid_from,
            "expires_at": expires_at,
        }
        try:
            receipt = _append(ledger, registration(tenant, actor, payload))
        except BaseException:
            for path in (key_path, pub_path):  # unregistered, so useless; never leave it lying around
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            raise
    print(verifier.key_hash_text)
    print(f"# producer key for tenant {tenant}: {key_path} (0600), verifier key {pub_path}")
    print(f"# registered as {tenant}/{receipt.stream} seq {receipt.seq}; sign with --producer-key {key_path}")
    return 0


def registered_keys(log: LogBackend) -> dict[tuple[str, str | None], ProducerKey]:
    """The latest registration of every (producer key, tenant) in the whole log."""
    latest: dict[tuple[str, str | None], ProducerKey] = {}
    for partition in range(log.partition_count):
        for record in log.read(partition):
            key = registration_in(record.envelope_bytes)
            if key is not None:
                remember(latest, key)
    return latest


def _status(key: ProducerKey, now: datetime) -> str:
    if key.valid_at(now):
        return "valid"
    return "expired" if key.expires_at is not None and now >= key.expires_at else "not_yet_valid"


def run_list(args: argparse.Namespace) -> int:
    tenant = _tenant(args.tenant) if args.tenant else None
    now = datetime.now(UTC)
    with open_ledger(args, read_only=True) as ledger:
        latest = registered_keys(ledger.log)
    for (_, key_tenant), key in sorted(latest.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        if tenant is None or key_tenant == tenant:
            print_json({**key.to_json(), "status": _status(key, now)})
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    tenant = _tenant(args.tenant)
    actor = _actor(args.actor)
    with _open_as_operator(args) as ledger:
        key = registered_keys(ledger.log).get((args.key_id, tenant))
        if key is None:
            raise UsageError(f"no producer key {args.key_id!r} is registered to tenant {tenant}")
        payload = {
            "key_id": key.key_id,
            "purpose": "producer",
            "algorithm": "ed25519",
            "public_key": key.to_json()["public_key"],  # base64 of the raw key: valid under any key id
            "name": key.name,
            "valid_from": key.to_json()["valid_from"],
            "expires_at": format_timestamp(datetime.now(UTC)),
        }
        receipt = _append(ledger, registration(tenant, actor, payload))
    print(orjson.dumps({"revoked": key.key_id, "tenant": tenant, "seq": receipt.seq}).decode())
    return 0
