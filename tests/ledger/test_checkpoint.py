"""Checkpoints and signed notes: official vectors, round trips and the attack corpus in testdata/."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    open_checkpoint,
    open_note,
    origin_for,
    sign_checkpoint,
    sign_note,
)
from ledger.errors import SignatureError, UsageError, VerificationFailed
from ledger.keys import SignerKey, VerifierKey

TESTDATA = Path(__file__).parent / "testdata" / "checkpoint"

# Official vectors from golang.org/x/mod/sumdb/note: the package documentation's "Example" in note.go and
# note_test.go (TestSign, TestOpen).
PETER_SIGNER = SignerKey.parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
PETER = VerifierKey.parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
ENOCH = VerifierKey.parse("EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop")
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_B64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n"
ENOCH_B64 = "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n"

# A real sum.golang.org checkpoint and its verifier key, from github.com/transparency-dev/formats
# log/note_test.go (TestSumDBNoteParsing).
SUMDB = VerifierKey.parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")
SUMDB_NOTE = (
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n"
    "\u2014 sum.golang.org "
    "Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n"
)

ROOT = hashlib.sha256(b"agent-ledger checkpoint testdata").digest()


# --- official vectors ---------------------------------------------------------------------------------------


def test_signing_the_official_example_reproduces_the_go_signature_exactly() -> None:
    assert sign_note(TEXT, PETER_SIGNER) == TEXT + "\n" + PETER_SIG


def test_official_example_note_opens_with_its_verifier_key() -> None:
    assert open_note(TEXT + "\n" + PETER_SIG, PETER) == TEXT
    assert open_note((TEXT + "\n" + PETER_SIG).encode("utf-8"), PETER) == TEXT


def test_doubly_signed_official_note_opens_with_either_key_ignoring_the_other() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, PETER) == TEXT
    assert open_note(note, ENOCH) == TEXT


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + f"\u2014 Bad Name {PETER_B64}",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ],
    ids=[
        "no-signatures",
        "blank-line-only",
        "no-final-newline",
        "control-char",
        "bad-name",
        "unexpected-line",
    ],
)
def test_official_malformed_notes_are_rejected(note: str) -> None:
    # note_test.go TestOpen, "Invalid encoded message syntax".
    with pytest.raises(SignatureError, match="malformed"):
        open_note(note, PETER)


def test_official_invalid_byte_prefix_is_rejected_as_not_utf8() -> None:
    # note_test.go TestOpen: "\xff" + text + "\n" + peterSig.
    with pytest.raises(SignatureError, match="not valid UTF-8"):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode("utf-8"), PETER)


def test_official_invalid_signature_by_the_known_key_is_rejected() -> None:
    # note_test.go TestOpen, "Invalid signature": "ABCD" spliced into Peter's signature.
    note = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(SignatureError, match="signature by PeterNeumann\\+c74f20a3 does not verify"):
        open_note(note, PETER)


def test_official_note_without_a_signature_by_the_pinned_key_is_rejected() -> None:
    with pytest.raises(SignatureError, match="checkpoint is not signed by EnochRoot\\+af0cfe78"):
        open_note(TEXT + "\n" + PETER_SIG, ENOCH)


def test_more_than_100_signatures_are_rejected_and_100_are_accepted() -> None:
    # note_test.go TestOpen, "Check too many signatures": 101 copies of Peter's signature.
    assert open_note(TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, PETER) == TEXT
    with pytest.raises(SignatureError, match="more than the limit of 100"):
        open_note(TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), PETER)


def test_real_sum_golang_org_checkpoint_opens_and_parses() -> None:
    checkpoint = open_checkpoint(SUMDB_NOTE, SUMDB, expected_origin="go.sum database tree")
    assert checkpoint.origin == "go.sum database tree"
    assert checkpoint.size == 6476701
    assert checkpoint.root_hash == base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert checkpoint.extensions == ()
    assert checkpoint.body() == SUMDB_NOTE.split("\n\n")[0] + "\n"


def test_c2sp_tlog_checkpoint_example_body_parses() -> None:
    # c2sp.org/tlog-checkpoint, the example at the top of the specification.
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.parse(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.body() == body


def test_note_text_may_contain_empty_lines_and_is_split_at_the_last_one() -> None:
    # c2sp.org/signed-note: "the text is separated from the signatures by the last empty line in the note".
    text = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u00e8 subito sera.\n"
    assert open_note(sign_note(text, PETER_SIGNER), PETER) == text


# --- checkpoint bodies --------------------------------------------------------------------------------------


def test_checkpoint_body_is_origin_size_base64_root_and_extensions() -> None:
    checkpoint = Checkpoint("ledger.example/log/0", 7, ROOT, ("ext-a",))
    assert checkpoint.body() == (f"ledger.example/log/0\n7\n{base64.b64encode(ROOT).decode()}\next-a\n")
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_empty_tree_checkpoint_has_size_zero() -> None:
    empty_root = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = SHA-256()
    checkpoint = Checkpoint(origin_for("ledger.example/log", 3), 0, empty_root)
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    assert checkpoint.body().split("\n")[:2] == ["ledger.example/log/3", "0"]


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"o\n007\n{ROOT_B64}\n", "leading zeros"),
        (f"o\n+7\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n-7\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n 7\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n\u0667\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n\n{ROOT_B64}\n", "not a decimal"),
        (f"o\n{2**64}\n{ROOT_B64}\n", "0..2\\*\\*64-1"),
        (f"o\n{'9' * 5000}\n{ROOT_B64}\n", "not a decimal"),
        ("o\n7\nnot*base64\n", "not valid base64"),
        (f"o\n7\n{ROOT_B64.rstrip('=')}\n", "not valid base64"),
        ("o\n7\n0BFEhzNzNdJW6KqmlcgAO4alftweEIp20o6uOK6RapB=\n", "not canonical"),
        (f"o\n7\n{base64.b64encode(ROOT[:31]).decode()}\n", "31 bytes"),
        (f"o\n7\n{base64.b64encode(ROOT + b'x').decode()}\n", "33 bytes"),
        ("Log\n123\nYmFuYW5hcw==\n", "7 bytes"),
        ("o\n7\n", "got 2 line"),
        ("o\n", "got 1 line"),
        (f"\n7\n{ROOT_B64}\n", "origin is empty"),
        (f"o\n7\n{ROOT_B64}\n\n", "extension line is empty"),
        (f"o\n7\n{ROOT_B64}", "does not end with a newline"),
    ],
    ids=[
        "size-leading-zero",
        "size-plus-sign",
        "size-negative",
        "size-leading-space",
        "size-arabic-indic-digit",
        "size-empty",
        "size-too-large",
        "size-huge",
        "root-bad-base64",
        "root-unpadded-base64",
        "root-non-canonical-base64",
        "root-31-bytes",
        "root-33-bytes",
        "root-not-a-hash",
        "missing-root-line",
        "missing-size-line",
        "empty-origin",
        "empty-extension-line",
        "no-final-newline",
    ],
)
def test_malformed_checkpoint_bodies_are_rejected(body: str, reason: str) -> None:
    with pytest.raises(VerificationFailed, match=reason):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    ("origin", "size", "root_hash", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        ("o", -1, ROOT, ()),
        ("o", 2**64, ROOT, ()),
        ("o", 1, ROOT[:16], ()),
        ("o", 1, ROOT, ("",)),
        ("o", 1, ROOT, ("a\rb",)),
    ],
    ids=[
        "empty-origin",
        "newline-in-origin",
        "negative-size",
        "size-too-large",
        "short-root",
        "empty-ext",
        "cr-ext",
    ],
)
def test_invalid_checkpoint_fields_are_refused_at_construction(
    origin: str, size: int, root_hash: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="invalid checkpoint"):
        Checkpoint(origin, size, root_hash, extensions)


def test_origin_for_joins_log_id_and_partition() -> None:
    assert origin_for("ledger.example/log", 0) == "ledger.example/log/0"
    assert origin_for("acme", 12) == "acme/12"
    with pytest.raises(UsageError):
        origin_for("", 0)
    with pytest.raises(UsageError):
        origin_for("has space", 0)
    with pytest.raises(UsageError):
        origin_for("acme", -1)


# --- signing and opening ------------------------------------------------------------------------------------


def test_checkpoint_round_trips_through_a_signed_note() -> None:
    checkpoint = Checkpoint("ledger.example/log/0", 42, ROOT, ("ext-a",))
    note = sign_checkpoint(checkpoint, PETER_SIGNER)
    assert note.startswith(checkpoint.body() + "\n\u2014 PeterNeumann ")
    assert open_checkpoint(note, PETER) == checkpoint
    assert open_checkpoint(note.encode("utf-8"), PETER) == checkpoint


def test_checkpoint_for_another_origin_is_refused_when_the_origin_is_pinned() -> None:
    note = sign_checkpoint(Checkpoint("ledger.example/log/1", 42, ROOT), PETER_SIGNER)
    with pytest.raises(VerificationFailed, match=r"origin 'ledger\.example/log/1' is not the expected"):
        open_checkpoint(note, PETER, expected_origin="ledger.example/log/0")


def test_signing_a_text_without_final_newline_is_refused() -> None:
    with pytest.raises(UsageError, match="newline"):
        sign_note("no newline", PETER_SIGNER)


def test_signing_a_text_with_control_characters_is_refused() -> None:
    with pytest.raises(UsageError, match="U\\+000D"):
        sign_note("a\r\n", PETER_SIGNER)


def test_note_with_a_lone_surrogate_is_rejected_as_not_utf8() -> None:
    note = sign_note(TEXT, PETER_SIGNER)
    with pytest.raises(SignatureError, match="not valid UTF-8"):
        open_note("\udcff" + note, PETER)


# --- the attack corpus (testdata/checkpoint/, regenerated by generate.py) ----------------------------------

CORPUS_VERIFIER = VerifierKey.parse((TESTDATA / "log.pub").read_text().strip())

VALID_NOTES = {
    "signed-by-log-key.note": (),
    "extension-lines.note": ("ext-a", "ext b"),
    "extra-signatures-from-unknown-keys-are-ignored.note": (),
    "same-name-other-key-id-is-ignored.note": (),
    "duplicate-signature-line.note": (),
}

INVALID_NOTES = {
    "body-byte-flipped.note": "signature by PeterNeumann\\+c74f20a3 does not verify",
    "signature-from-another-key.note": "signature by PeterNeumann\\+c74f20a3 does not verify",
    "key-id-mismatch.note": "checkpoint is not signed by PeterNeumann\\+c74f20a3",
    "signed-only-by-unknown-key.note": "checkpoint is not signed by PeterNeumann\\+c74f20a3",
    "truncated-signature.note": "signature by PeterNeumann\\+c74f20a3 does not verify",
    "signature-non-canonical-base64.note": "malformed signature line 1: signature is not canonical base64",
    "missing-blank-line.note": "malformed note: no blank line",
    "missing-final-newline.note": "malformed note: the last signature line does not end with a newline",
    "no-signature-lines.note": "malformed note: no signature lines",
    "signature-line-with-hyphen.note": "malformed signature line 1: does not start with an em dash",
    "duplicate-note.note": "signature by PeterNeumann\\+c74f20a3 does not verify",
    "non-utf8.note": "malformed note: not valid UTF-8",
    "crlf-line-endings.note": "malformed note: contains control character U\\+000D",
    "too-many-signatures.note": "malformed note: 101 signature lines",
}

INVALID_CHECKPOINTS = {
    "size-leading-zero.note": "tree size '07' is not a decimal without leading zeros",
    "size-not-decimal.note": "tree size '0x7' is not a decimal",
    "size-negative.note": "tree size '-7' is not a decimal",
    "size-too-large.note": "tree size 18446744073709551616 is not an integer in 0..2\\*\\*64-1",
    "root-not-32-bytes.note": "root hash is 31 bytes, expected 32",
    "root-bad-base64.note": "root hash is not valid base64",
    "missing-root-line.note": "expected origin, tree size and root hash lines, got 2 line",
    "empty-origin.note": "origin is empty",
    "empty-extension-line.note": "extension line is empty",
}


def test_corpus_holds_exactly_the_named_attacks() -> None:
    def names(folder: str) -> set[str]:
        return {path.name for path in (TESTDATA / folder).iterdir()}

    assert names("valid") == set(VALID_NOTES)
    assert names("invalid-note") == set(INVALID_NOTES)
    assert names("invalid-checkpoint") == set(INVALID_CHECKPOINTS)


@pytest.mark.parametrize(("name", "extensions"), sorted(VALID_NOTES.items()))
def test_corpus_valid_notes_open(name: str, extensions: tuple[str, ...]) -> None:
    checkpoint = open_checkpoint((TESTDATA / "valid" / name).read_bytes(), CORPUS_VERIFIER)
    assert checkpoint == Checkpoint("ledger.example/log/0", 7, ROOT, extensions)


def test_corpus_note_is_reproduced_byte_for_byte_by_signing() -> None:
    expected = (TESTDATA / "valid" / "signed-by-log-key.note").read_text()
    assert sign_checkpoint(Checkpoint("ledger.example/log/0", 7, ROOT), PETER_SIGNER) == expected


@pytest.mark.parametrize(("name", "reason"), sorted(INVALID_NOTES.items()))
def test_corpus_tampered_notes_do_not_open(name: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        open_note((TESTDATA / "invalid-note" / name).read_bytes(), CORPUS_VERIFIER)


@pytest.mark.parametrize(("name", "reason"), sorted(INVALID_CHECKPOINTS.items()))
def test_corpus_signed_but_malformed_checkpoints_are_rejected(name: str, reason: str) -> None:
    note = (TESTDATA / "invalid-checkpoint" / name).read_bytes()
    open_note(note, CORPUS_VERIFIER)  # the signature itself is good ...
    with pytest.raises(VerificationFailed, match=f"malformed checkpoint: {reason}"):
        open_checkpoint(note, CORPUS_VERIFIER)  # ... the body is not a checkpoint


def test_non_canonical_signature_would_decode_to_the_valid_signature_under_lenient_base64() -> None:
    # Why the corpus entry matters: a lenient decoder maps both texts to the same bytes, so two different
    # notes would both "verify". Only the canonical encoding is accepted.
    valid = (TESTDATA / "valid" / "signed-by-log-key.note").read_text().split(" ")[-1].strip()
    tampered = (TESTDATA / "invalid-note" / "signature-non-canonical-base64.note").read_text()
    tampered_b64 = tampered.split(" ")[-1].strip()
    assert tampered_b64 != valid
    assert base64.b64decode(tampered_b64) == base64.b64decode(valid)


# --- property: any single-byte change of a signed note fails to open ----------------------------------------

checkpoints = st.builds(
    Checkpoint,
    origin=st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=30),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=10),
        max_size=2,
    ).map(tuple),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checkpoint=checkpoints, data=st.data())
def test_any_single_byte_change_of_a_signed_note_fails_to_open(checkpoint: Checkpoint, data: st.DataObject) -> None:
    note = sign_checkpoint(checkpoint, PETER_SIGNER).encode("utf-8")
    assert open_checkpoint(note, PETER) == checkpoint
    index = data.draw(st.integers(min_value=0, max_value=len(note) - 1), label="index")
    value = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != note[index]), label="value")
    tampered = note[:index] + bytes([value]) + note[index + 1 :]
    with pytest.raises(SignatureError):
        open_note(tampered, PETER)


@settings(max_examples=100, deadline=None)
@given(checkpoint=checkpoints)
def test_any_checkpoint_round_trips_through_sign_and_open(checkpoint: Checkpoint) -> None:
    assert open_checkpoint(sign_checkpoint(checkpoint, PETER_SIGNER), PETER) == checkpoint
