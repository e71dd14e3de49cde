"""HTTP API keys: one tenant and one role per key, stored hashed in `<keys>/api-keys.json` (0600).

A key is shown once, when it is created: `alk_<key_id>_<secret>`. The file keeps only the key id, tenant, role,
name, dates and SHA-256 of the secret (the secret is 32 random bytes, so a fast hash is enough; no password
stretching is needed). Lookup is by key id, and the hash is compared in constant time. Revoked keys stay on
record so an audit can still name them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import orjson

from ledger.clock import utc_now
from ledger.errors import ConfigError, UsageError
from ledger.files import replace_file

Role = Literal["producer", "auditor", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)
API_KEYS_FILENAME = "api-keys.json"
KEY_PREFIX = "alk_"


@dataclass(frozen=True)
class ApiKey:
    """What the store knows about one key; never the secret."""

    key_id: str
    tenant: str
    role: Role
    name: str
    created_at: str
    secret_sha256: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _stamp(path: Path) -> tuple[int, int, int, int]:
    """Changes whenever the file is replaced; mtime alone can repeat within the clock's granularity, and a
    revocation another process wrote must never be missed."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size


def split_token(token: str) -> tuple[str, str] | None:
    """`alk_<key_id>_<secret>` into its key id and secret; None for anything else."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


class ApiKeyStore:
    """The key file: create, list, revoke, authenticate. Safe across threads; rereads the file when it changes."""

    def __init__(self, key_dir: Path) -> None:
        self.path = Path(key_dir) / API_KEYS_FILENAME
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._loaded_stamp: tuple[int, int, int, int] | None = None

    def _load(self) -> dict[str, ApiKey]:
        try:
            stamp = _stamp(self.path)
        except FileNotFoundError:
            self._keys, self._loaded_stamp = {}, None
            return self._keys
        if stamp != self._loaded_stamp:
            try:
                rows = orjson.loads(self.path.read_bytes())
                self._keys = {row["key_id"]: ApiKey(**row) for row in rows}
            except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
                raise ConfigError(f"{self.path} is not an API key file: {exc}") from None
            self._loaded_stamp = stamp
        return self._keys

    def _save(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, orjson.dumps([asdict(k) for k in keys.values()], option=orjson.OPT_INDENT_2), 0o600)
        self._keys, self._loaded_stamp = keys, _stamp(self.path)

    def create(self, tenant: str, role: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key for `tenant` with `role`; returns its record and the token, which is never stored."""
        if role not in ROLES:
            raise UsageError(f"unknown role '{role}' (known: {', '.join(ROLES)})")
        if not tenant or tenant.strip() != tenant:
            raise UsageError("an API key needs a tenant")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        record = ApiKey(key_id, tenant, role, name or f"{tenant}-{role}", utc_now(), _secret_hash(secret))
        with self._lock:
            keys = dict(self._load())
            keys[key_id] = record
            self._save(keys)
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        with self._lock:
            return [k for k in self._load().values() if tenant is None or k.tenant == tenant]

    def revoke(self, key_id: str) -> ApiKey:
        with self._lock:
            keys = dict(self._load())
            if key_id not in keys:
                raise UsageError(f"no API key with id '{key_id}'")
            record = keys[key_id]
            if record.active:
                record = ApiKey(**{**asdict(record), "revoked_at": utc_now()})
                keys[key_id] = record
                self._save(keys)
            return record

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key this token belongs to, or None (unknown, revoked or wrong secret alike)."""
        parts = split_token(token)
        if parts is None:
            return None
        key_id, secret = parts
        with self._lock:
            record = self._load().get(key_id)
        if record is None or not record.active:
            return None
        return record if hmac.compare_digest(record.secret_sha256, _secret_hash(secret)) else None
