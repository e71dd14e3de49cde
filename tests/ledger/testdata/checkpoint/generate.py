"""Regenerate the checkpoint attack corpus: `python tests/ledger/testdata/checkpoint/generate.py`.

Ed25519 is deterministic, so running it again reproduces every file byte for byte. The log key is the
PeterNeumann example key of golang.org/x/mod/sumdb/note (note.go package docs); "another key" is the
Known key of github.com/transparency-dev/formats log/note_test.go. Both are public test keys.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from ledger.checkpoint import Checkpoint, sign_note
from ledger.keys import SignerKey

HERE = Path(__file__).resolve().parent
LOG_KEY = SignerKey.parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
OTHER_KEY = SignerKey.parse("PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci")
ROOT = hashlib.sha256(b"agent-ledger checkpoint testdata").digest()
CHECKPOINT = Checkpoint("ledger.example/log/0", 7, ROOT)
BODY = CHECKPOINT.body()


def signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(key_id + signature).decode('ascii')}\n"


def main() -> None:
    signed = sign_note(BODY, LOG_KEY)
    log_line = signed[len(BODY) + 1 :]
    other_line = sign_note(BODY, OTHER_KEY)[len(BODY) + 1 :]
    b64 = log_line.split(" ")[2].rstrip("\n")
    files: dict[str, bytes | str] = {
        "log.pub": LOG_KEY.verifier().text() + "\n",
        # Notes that must open.
        "valid/signed-by-log-key.note": signed,
        "valid/extension-lines.note": sign_note(
            Checkpoint(CHECKPOINT.origin, 7, ROOT, ("ext-a", "ext b")).body(), LOG_KEY
        ),
        "valid/extra-signatures-from-unknown-keys-are-ignored.note": BODY + "\n" + other_line + log_line,
        "valid/same-name-other-key-id-is-ignored.note": BODY
        + "\n"
        + signature_line("PeterNeumann", OTHER_KEY.key_id, OTHER_KEY.sign(BODY.encode()))
        + log_line,
        "valid/duplicate-signature-line.note": signed + log_line,
        # Notes that must not open (SignatureError).
        "invalid-note/body-byte-flipped.note": signed.replace("\n7\n", "\n8\n", 1),
        "invalid-note/signature-from-another-key.note": BODY
        + "\n"
        + signature_line("PeterNeumann", LOG_KEY.key_id, OTHER_KEY.sign(BODY.encode())),
        "invalid-note/key-id-mismatch.note": BODY
        + "\n"
        + signature_line("PeterNeumann", OTHER_KEY.key_id, LOG_KEY.sign(BODY.encode())),
        "invalid-note/signed-only-by-unknown-key.note": BODY + "\n" + other_line,
        "invalid-note/truncated-signature.note": BODY + "\n" + log_line[:-5] + "\n",
        "invalid-note/signature-non-canonical-base64.note": BODY
        + "\n"
        + log_line.replace(b64, b64[:-2] + chr(ord(b64[-2]) + 1) + "="),
        "invalid-note/missing-blank-line.note": BODY + log_line,
        "invalid-note/missing-final-newline.note": signed[:-1],
        "invalid-note/no-signature-lines.note": BODY + "\n",
        "invalid-note/signature-line-with-hyphen.note": BODY + "\n" + log_line.replace("\u2014", "-", 1),
        "invalid-note/duplicate-note.note": signed + signed,
        "invalid-note/non-utf8.note": signed.encode("utf-8").replace(b"ledger.example", b"ledger.\xffxample"),
        "invalid-note/crlf-line-endings.note": signed.replace("\n", "\r\n"),
        "invalid-note/too-many-signatures.note": BODY + "\n" + log_line * 101,
        # Notes signed by the log key whose body is not a checkpoint (VerificationFailed).
        "invalid-checkpoint/size-leading-zero.note": sign_note(BODY.replace("\n7\n", "\n07\n"), LOG_KEY),
        "invalid-checkpoint/size-not-decimal.note": sign_note(BODY.replace("\n7\n", "\n0x7\n"), LOG_KEY),
        "invalid-checkpoint/size-negative.note": sign_note(BODY.replace("\n7\n", "\n-7\n"), LOG_KEY),
        "invalid-checkpoint/size-too-large.note": sign_note(BODY.replace("\n7\n", f"\n{2**64}\n"), LOG_KEY),
        "invalid-checkpoint/root-not-32-bytes.note": sign_note(
            BODY.replace(base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[:31]).decode()), LOG_KEY
        ),
        "invalid-checkpoint/root-bad-base64.note": sign_note(
            BODY.replace(base64.b64encode(ROOT).decode(), "not*base64"), LOG_KEY
        ),
        "invalid-checkpoint/missing-root-line.note": sign_note("ledger.example/log/0\n7\n", LOG_KEY),
        "invalid-checkpoint/empty-origin.note": sign_note(BODY.replace("ledger.example/log/0", ""), LOG_KEY),
        "invalid-checkpoint/empty-extension-line.note": sign_note(BODY + "\n", LOG_KEY),
    }
    for name, content in files.items():
        path = HERE / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


if __name__ == "__main__":
    main()
