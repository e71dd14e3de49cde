"""API keys: one tenant and one role each, shown once, stored only as a hash in a 0600 file, revocable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledger.apikeys import API_KEYS_FILENAME, ApiKeyStore, split_token
from ledger.errors import UsageError


def test_a_created_key_authenticates_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    record, token = store.create("acme", "auditor", "alice")

    found = store.authenticate(token)
    assert found is not None and (found.key_id, found.tenant, found.role) == (record.key_id, "acme", "auditor")
    stored = (tmp_path / API_KEYS_FILENAME).read_text()
    parts = split_token(token)
    assert parts is not None and parts[1] not in stored  # the secret never reaches the disk
    assert record.secret_sha256 in stored
    assert stat.S_IMODE((tmp_path / API_KEYS_FILENAME).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # wrong secret
        lambda token: token.replace("alk_", "alx_"),  # wrong prefix
        lambda token: token.split("_", 2)[0] + "_" + token.split("_", 2)[1],  # no secret
        lambda token: "alk_ffffffffffff_" + token.split("_", 2)[2],  # another key id with this secret
        lambda token: "",
    ],
)
def test_a_mangled_token_authenticates_nothing(tmp_path: Path, mangle: object) -> None:
    store = ApiKeyStore(tmp_path)
    _, token = store.create("acme", "producer")
    assert callable(mangle)
    assert store.authenticate(mangle(token)) is None


def test_a_revoked_key_stops_working_and_stays_on_record(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    record, token = store.create("acme", "operator")
    _, other = store.create("acme", "producer")

    revoked = store.revoke(record.key_id)

    assert revoked.revoked_at is not None and not revoked.active
    assert store.authenticate(token) is None
    assert store.authenticate(other) is not None
    assert [k.key_id for k in store.list("acme") if not k.active] == [record.key_id]


def test_another_process_sees_a_revocation_at_once(tmp_path: Path) -> None:
    server_view = ApiKeyStore(tmp_path)
    record, token = server_view.create("acme", "producer")
    assert server_view.authenticate(token) is not None

    ApiKeyStore(tmp_path).revoke(record.key_id)  # e.g. `agent-ledger keys api revoke` beside a running server

    assert server_view.authenticate(token) is None


def test_keys_list_by_tenant(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    store.create("acme", "producer")
    store.create("globex", "auditor")
    assert [k.tenant for k in store.list("globex")] == ["globex"]
    assert len(store.list()) == 2


@pytest.mark.parametrize(("tenant", "role"), [("acme", "admin"), ("", "producer"), (" acme", "auditor")])
def test_bad_key_requests_are_refused(tmp_path: Path, tenant: str, role: str) -> None:
    with pytest.raises(UsageError):
        ApiKeyStore(tmp_path).create(tenant, role)
    assert not (tmp_path / API_KEYS_FILENAME).exists()


def test_revoking_an_unknown_key_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no API key with id 'nope'"):
        ApiKeyStore(tmp_path).revoke("nope")
