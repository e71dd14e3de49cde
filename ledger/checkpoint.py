"""Checkpoints: C2SP tlog-checkpoint note bodies, signed and opened as C2SP signed notes with Ed25519.

A checkpoint commits to a log partition's Merkle root at a tree size; its signature by the pinned verifier
key is what lets anyone detect offline a changed, removed or reordered event (DESIGN guarantee 1).
`open_note` returns text only when a signature by the pinned key verifies; it must never return, or let a
caller act on, the text of a note that is malformed or unsigned by that key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from ledger.errors import SignatureError, UsageError, VerificationFailed
from ledger.keys import SignerKey, VerifierKey, b64decode_canonical, check_key_name

MAX_SIGNATURES = 100
"""More signature lines than this make a note malformed (c2sp.org/signed-note asks for a limit >= 16)."""

MAX_TREE_SIZE = 2**64 - 1
ROOT_HASH_SIZE = 32

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def origin_for(log_id: str, partition: int) -> str:
    """The checkpoint origin line of a log partition: `<log_id>/<partition>`."""
    if not log_id or any(ch.isspace() or ord(ch) < 0x20 for ch in log_id):
        raise UsageError(f"log id {log_id!r} must be non-empty and contain no spaces")
    if partition < 0:
        raise UsageError(f"partition {partition} must be >= 0")
    return f"{log_id}/{partition}"


def _control_character(text: str) -> str | None:
    for ch in text:
        if ord(ch) < 0x20 and ch != "\n":
            return f"U+{ord(ch):04X}"
    return None


def _checkpoint_problem(origin: str, size: int, root_hash: bytes, extensions: tuple[str, ...]) -> str | None:
    """Why these fields cannot form a tlog-checkpoint body, or None when they can."""
    for label, line in (("origin", origin), *(("extension line", ext) for ext in extensions)):
        if not line:
            return f"{label} is empty"
        if "\n" in line:
            return f"{label} contains a newline"
        control = _control_character(line)
        if control is not None:
            return f"{label} contains control character {control}"
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        return f"tree size {size!r} is not an integer in 0..2**64-1"
    if not isinstance(root_hash, bytes):
        return f"root hash is a {type(root_hash).__name__}, expected bytes"
    if len(root_hash) != ROOT_HASH_SIZE:
        return f"root hash is {len(root_hash)} bytes, expected {ROOT_HASH_SIZE}"
    return None


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head of one log partition (c2sp.org/tlog-checkpoint note text)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _checkpoint_problem(self.origin, self.size, self.root_hash, self.extensions)
        if problem is not None:
            raise ValueError(f"invalid checkpoint: {problem}")

    def body(self) -> str:
        """The note text: origin, decimal size, base64 root hash, extension lines, each ending in newline."""
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root_hash).decode("ascii"),
            *self.extensions,
        ]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint note text; VerificationFailed with the reason when it is malformed."""
        if not body.endswith("\n"):
            raise VerificationFailed("malformed checkpoint: the text does not end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise VerificationFailed(
                f"malformed checkpoint: expected origin, tree size and root hash lines, got {len(lines)} line(s)"
            )
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise VerificationFailed(
                f"malformed checkpoint: tree size {size_text[:40]!r} is not a decimal without leading zeros"
            )
        try:
            root_hash = b64decode_canonical(root_text)
        except ValueError as error:
            raise VerificationFailed(f"malformed checkpoint: root hash is {error}") from None
        size = int(size_text)
        problem = _checkpoint_problem(origin, size, root_hash, tuple(extensions))
        if problem is not None:
            raise VerificationFailed(f"malformed checkpoint: {problem}")
        return cls(origin, size, root_hash, tuple(extensions))


def sign_note(text: str, signer: SignerKey) -> str:
    """Sign a note text (which must end with a newline) and return the signed note."""
    if not text.endswith("\n"):
        raise UsageError("a note text must end with a newline")
    control = _control_character(text)
    if control is not None:
        raise UsageError(f"a note text must not contain control character {control}")
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("a note text must be valid UTF-8") from None
    check_key_name(signer.name)
    signature = base64.b64encode(signer.key_id + signer.sign(message)).decode("ascii")
    return f"{text}\n{_SIGNATURE_PREFIX}{signer.name} {signature}\n"


def _malformed(reason: str) -> SignatureError:
    return SignatureError(f"malformed note: {reason}")


def open_note(note: str | bytes, verifier: VerifierKey) -> str:
    """Verify a signed note against the pinned verifier key and return its text.

    Signature lines by other keys (another name or another key id) are ignored, but every line by the pinned
    key must verify and at least one must be present. Raises SignatureError with the reason otherwise.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("not valid UTF-8") from None
    else:
        try:
            note.encode("utf-8")
        except UnicodeEncodeError:
            raise _malformed("not valid UTF-8") from None
    control = _control_character(note)
    if control is not None:
        raise _malformed(f"contains control character {control}")
    split = note.rfind("\n\n")
    if split < 0:
        raise _malformed("no blank line between the text and the signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    if not signature_block:
        raise _malformed("no signature lines after the blank line")
    if not signature_block.endswith("\n"):
        raise _malformed("the last signature line does not end with a newline")
    signature_lines = signature_block[:-1].split("\n")
    if len(signature_lines) > MAX_SIGNATURES:
        raise _malformed(f"{len(signature_lines)} signature lines, more than the limit of {MAX_SIGNATURES}")

    message = text.encode("utf-8")
    verified = False
    for number, line in enumerate(signature_lines, start=1):
        name, key_id, signature = _parse_signature_line(number, line)
        if name != verifier.name or key_id != verifier.key_id:
            continue  # another key: ignored, as c2sp.org/signed-note requires
        if not verifier.verify(message, signature):
            raise SignatureError(f"signature by {verifier.key_hash_text} does not verify")
        verified = True
    if not verified:
        raise SignatureError(f"checkpoint is not signed by {verifier.key_hash_text}")
    return text


def _parse_signature_line(number: int, line: str) -> tuple[str, bytes, bytes]:
    """Split `— <name> <base64(key id || signature)>` into (name, 4-byte key id, signature)."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise SignatureError(f"malformed signature line {number}: does not start with an em dash and a space")
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise SignatureError(f"malformed signature line {number}: no space between key name and signature")
    try:
        check_key_name(name)
    except UsageError as error:
        raise SignatureError(f"malformed signature line {number}: {error.message}") from None
    try:
        raw = b64decode_canonical(encoded)
    except ValueError as error:
        raise SignatureError(f"malformed signature line {number}: signature is {error}") from None
    if len(raw) < 5:
        raise SignatureError(f"malformed signature line {number}: signature is {len(raw)} bytes, too short")
    return name, raw[:4], raw[4:]


def sign_checkpoint(checkpoint: Checkpoint, signer: SignerKey) -> str:
    """The signed checkpoint note (`checkpoint_note`) of `checkpoint`."""
    return sign_note(checkpoint.body(), signer)


def open_checkpoint(note: str | bytes, verifier: VerifierKey, *, expected_origin: str | None = None) -> Checkpoint:
    """Verify a checkpoint note against the pinned key, parse its body, and check its origin if given."""
    checkpoint = Checkpoint.parse(open_note(note, verifier))
    if expected_origin is not None and checkpoint.origin != expected_origin:
        raise VerificationFailed(f"checkpoint origin {checkpoint.origin!r} is not the expected {expected_origin!r}")
    return checkpoint
