"""`agent-ledger keys producer generate | list | revoke` on the embedded ledger (the Kafka side is exercised by
tests/kafka/test_kafka_producer_auth.py): a 0600 key file, its `key.registered` event, and one line on stderr
with exit 2 for every user mistake.
"""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest

from ledger.cli.main import main
from ledger.config import Settings
from ledger.keys import load_signer
from ledger.producer_auth import REGISTRATION_STREAM
from ledger.sdk import Ledger


def run(settings: Settings, *arguments: str) -> int:
    return main([*arguments, "--data", str(settings.data_dir), "--keys", str(settings.key_dir)])


def listed(settings: Settings, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert run(settings, "keys", "producer", "list", *extra) == 0
    return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_generate_writes_a_0600_key_and_registers_it_to_the_tenant(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "keys", "producer", "generate", "--tenant", "acme", "--name", "ci") == 0
    key_id = capsys.readouterr().out.splitlines()[0]
    path = settings.key_dir / "producers" / "acme-ci.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    signer = load_signer(path)
    assert key_id == signer.verifier().key_hash_text
    assert path.with_suffix(".pub").read_text().strip() == signer.verifier().text()

    with Ledger.open(settings, read_only=True) as ledger:
        [event] = [record.envelope() for record in ledger.records()]
    assert (event["tenant"], event["stream"], event["type"]) == ("acme", REGISTRATION_STREAM, "key.registered")
    assert event["payload"]["key_id"] == key_id and event["payload"]["purpose"] == "producer"
    assert "PRIVATE" not in orjson.dumps(event).decode()
    assert [(row["key_id"], row["tenant"], row["status"]) for row in listed(settings, capsys)] == [
        (key_id, "acme", "valid")
    ]


def test_revoke_registers_the_key_again_expiring_now(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "keys", "producer", "generate", "--tenant", "acme") == 0
    key_id = capsys.readouterr().out.splitlines()[0]
    assert run(settings, "keys", "producer", "generate", "--tenant", "globex") == 0
    assert run(settings, "keys", "producer", "revoke", key_id, "--tenant", "acme") == 0
    rows = {row["tenant"]: row["status"] for row in listed(settings, capsys)}
    assert rows == {"acme": "expired", "globex": "valid"}
    assert [row["tenant"] for row in listed(settings, capsys, "--tenant", "globex")] == ["globex"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("generate", "--tenant", "Not A Tenant"), "is not a tenant id"),
        (("generate", "--tenant", "acme", "--name", "has+plus"), "must not contain spaces or '+'"),
        (("generate", "--tenant", "acme", "--expires-at", "tomorrow"), "is not an RFC 3339 timestamp"),
        (("generate", "--tenant", "acme", "--actor", "agent:a-1"), "must be human:ID or system:ID"),
        (("revoke", "nobody+00000000", "--tenant", "acme"), "no producer key 'nobody+00000000'"),
    ],
)
def test_user_mistake_is_one_line_and_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], arguments: tuple[str, ...], message: str
) -> None:
    capsys.readouterr()
    assert run(settings, "keys", "producer", *arguments) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err
    assert not (settings.key_dir / "producers").exists() or not any((settings.key_dir / "producers").iterdir())


def test_existing_key_is_never_overwritten(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "keys", "producer", "generate", "--tenant", "acme") == 0
    path = settings.key_dir / "producers" / "acme-producer.key"
    before = path.read_bytes()
    capsys.readouterr()
    assert run(settings, "keys", "producer", "generate", "--tenant", "acme") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert path.read_bytes() == before
    with Ledger.open(settings, read_only=True) as ledger:
        assert len(list(ledger.records())) == 1  # the refused second key was not registered either


def test_without_the_ledger_key_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path / "data", keys_dir=tmp_path / "keys")
    assert run(settings, "keys", "producer", "generate", "--tenant", "acme") == 2
    assert "no signing key" in capsys.readouterr().err
    assert not (tmp_path / "keys" / "producers").exists()
