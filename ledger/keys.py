"""Ed25519 signing and verifier keys in the C2SP signed-note text forms, and the key files that hold them.

The sequencer signs checkpoints with a `SignerKey`; anyone verifies them offline with the published
`VerifierKey`, which is what makes the log tamper-evident to outsiders (DESIGN guarantee 1).
A private key file is created 0600 and never briefly world-readable, and a too-open one is refused.
This module must never log, print or put private key material into an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import ConfigError, UsageError
from ledger.files import replace_file, write_new_file

ALGORITHM_ED25519 = 0x01
"""The signed-note signature type byte of Ed25519 (c2sp.org/signed-note, "Signature types")."""

PRIVATE_KEY_FILENAME = "ledger.key"
VERIFIER_KEY_FILENAME = "ledger.pub"

_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_VERIFIER_FORM = "<name>+<8 hex key id>+<base64 key>"
_SIGNER_FORM = "PRIVATE+KEY+<name>+<8 hex key id>+<base64 key>"


def check_key_name(name: str) -> None:
    """Raise UsageError unless `name` is a valid signed-note key name (non-empty, no spaces, no '+')."""
    if not name:
        raise UsageError("key name is empty")
    if any(ch.isspace() for ch in name) or "+" in name:
        raise UsageError(f"key name {name!r} must not contain spaces or '+'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise UsageError(f"key name {name!r} must not contain control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"key name {name!r} is not valid UTF-8") from None


def key_id_for(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALGORITHM_ED25519]) + public_key).digest()[:4]


def b64decode_canonical(text: str) -> bytes:
    """Decode standard padded base64, accepting only the one canonical encoding of the bytes.

    Raises ValueError otherwise. Rejecting non-canonical encodings (stray padding bits) means no two
    different texts decode to the same signature, so any change of a signed note is detected.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def _public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes_raw()


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key that verifies signed notes; text form `<name>+<hex id>+<base64 key>`."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        check_key_name(self.name)
        expected = key_id_for(self.name, _public_bytes(self.public_key))
        if self.key_id != expected:
            raise UsageError(
                f"verifier key {self.name}: key id {self.key_id.hex()} does not match the key "
                f"(expected {expected.hex()})"
            )

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> VerifierKey:
        check_key_name(name)
        return cls(name, key_id_for(name, _public_bytes(public_key)), public_key)

    @property
    def key_hash_text(self) -> str:
        """`<name>+<8 hex key id>`, how a key is named in messages."""
        return f"{self.name}+{self.key_id.hex()}"

    def text(self) -> str:
        encoded = base64.b64encode(bytes([ALGORITHM_ED25519]) + _public_bytes(self.public_key)).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is a valid Ed25519 signature of `message` by this key."""
        if len(signature) != 64:
            return False
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse `<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>`; UsageError if malformed."""
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise UsageError(f"malformed verifier key: expected {_VERIFIER_FORM}")
        name, id_hex, key_b64 = parts
        if name == "PRIVATE" and id_hex == "KEY":
            raise UsageError("this is a private signer key, not a verifier key; use the .pub file")
        check_key_name(name)
        public_bytes = _decode_key_material("verifier", id_hex, key_b64)
        public_key = Ed25519PublicKey.from_public_bytes(public_bytes)
        expected = key_id_for(name, public_bytes)
        if bytes.fromhex(id_hex) != expected:
            raise UsageError(f"verifier key {name}: key id {id_hex.lower()} does not match the key")
        return cls(name, expected, public_key)


def _decode_key_material(kind: str, id_hex: str, key_b64: str) -> bytes:
    """Check the hex key id syntax and decode base64(0x01 || 32 bytes); never echo the key text."""
    if not _HEX8.fullmatch(id_hex):
        raise UsageError(f"malformed {kind} key: key id must be 8 hex digits")
    try:
        raw = b64decode_canonical(key_b64)
    except ValueError as error:
        raise UsageError(f"malformed {kind} key: key data is {error}") from None
    if not raw:
        raise UsageError(f"malformed {kind} key: key data is empty")
    if raw[0] != ALGORITHM_ED25519:
        raise UsageError(f"unsupported {kind} key algorithm 0x{raw[0]:02x}; only Ed25519 (0x01) is supported")
    if len(raw) != 33:
        raise UsageError(f"malformed {kind} key: Ed25519 key data must be 32 bytes, got {len(raw) - 1}")
    return raw[1:]


@dataclass(frozen=True, eq=False)
class SignerKey:
    """A named Ed25519 private key; text form `PRIVATE+KEY+<name>+<hex id>+<base64 seed>`. Keep it secret."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SignerKey):
            return NotImplemented
        return self.name == other.name and hmac.compare_digest(self._seed(), other._seed())

    def __hash__(self) -> int:
        return hash((self.name, self.key_id))

    def _seed(self) -> bytes:
        return self.private_key.private_bytes_raw()

    @property
    def key_id(self) -> bytes:
        return key_id_for(self.name, _public_bytes(self.private_key.public_key()))

    def verifier(self) -> VerifierKey:
        return VerifierKey.from_public_key(self.name, self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self.private_key.sign(message)

    def text(self) -> str:
        """The secret text form; write it only to a 0600 file, never to a log or a terminal."""
        encoded = base64.b64encode(bytes([ALGORITHM_ED25519]) + self._seed()).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        """Parse the golang.org/x/mod/sumdb/note signer key form; UsageError if malformed."""
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise UsageError(f"malformed signer key: expected {_SIGNER_FORM}")
        _, _, name, id_hex, key_b64 = parts
        check_key_name(name)
        seed = _decode_key_material("signer", id_hex, key_b64)
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(seed))
        if bytes.fromhex(id_hex) != signer.key_id:
            raise UsageError(f"signer key {name}: key id {id_hex.lower()} does not match the key")
        return signer

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        check_key_name(name)
        return cls(name, Ed25519PrivateKey.generate())


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_pair(directory: Path, signer: SignerKey, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `ledger.key` (0600) and `ledger.pub` (0644) into `directory` (created 0700).

    An existing private key is never replaced unless `overwrite` is true; then it is replaced atomically.
    Returns (private key path, verifier key path).
    """
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)
    elif not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory")
    key_path = directory / PRIVATE_KEY_FILENAME
    pub_path = directory / VERIFIER_KEY_FILENAME
    secret = (signer.text() + "\n").encode("utf-8")
    try:
        if overwrite:
            replace_file(key_path, secret, 0o600)
        else:
            write_new_file(key_path, secret, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"a signing key already exists at {key_path}; refusing to overwrite it "
            "(replacing it makes earlier checkpoints unverifiable with the new .pub)"
        ) from None
    replace_file(pub_path, (signer.verifier().text() + "\n").encode("utf-8"), 0o644)
    _fsync_directory(directory)
    return key_path, pub_path


def write_signer_file(key_path: Path, signer: SignerKey) -> Path:
    """Write a private key to `key_path` (0600, created exclusively) and its verifier key beside it (`.pub`).

    The directory is created 0700 when missing. An existing file is never replaced. Returns the `.pub` path.
    """
    directory = key_path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)
    try:
        write_new_file(key_path, (signer.text() + "\n").encode("utf-8"), 0o600)
    except FileExistsError:
        raise ConfigError(f"a key already exists at {key_path}; refusing to overwrite it") from None
    pub_path = key_path.with_suffix(".pub")
    replace_file(pub_path, (signer.verifier().text() + "\n").encode("utf-8"), 0o644)
    _fsync_directory(directory)
    return pub_path


def load_signer(path: Path) -> SignerKey:
    """Load a private key file, refusing a missing, too-open (group/other bits) or malformed one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"no signing key at {path}; run `agent-ledger keys generate`") from None
    except OSError as error:
        raise ConfigError(f"cannot open signing key {path}: {error.strerror}") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise ConfigError(f"signing key {path} is not a regular file")
        permissions = stat.S_IMODE(status.st_mode)
        if permissions & 0o077:
            raise ConfigError(f"permissions {permissions:04o} on {path} are too open; expected 0600")
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"malformed signing key in {path}: not UTF-8 text") from None
    try:
        return SignerKey.parse(text)
    except UsageError as error:
        raise ConfigError(f"malformed signing key in {path}: {error.message}") from None


def load_verifier(path_or_text: str | Path) -> VerifierKey:
    """Load a verifier key from a file, or parse it when `path_or_text` is the key text itself."""
    if isinstance(path_or_text, str):
        candidate = path_or_text.strip()
        if candidate.count("+") >= 2 and not Path(path_or_text).exists():
            return VerifierKey.parse(candidate)
        path = Path(path_or_text)
    else:
        path = path_or_text
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no verifier key at {path}") from None
    except OSError as error:
        raise ConfigError(f"cannot read verifier key {path}: {error.strerror}") from None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"malformed verifier key in {path}: not UTF-8 text") from None
    try:
        return VerifierKey.parse(text)
    except UsageError as error:
        raise ConfigError(f"malformed verifier key in {path}: {error.message}") from None
