"""Signed checkpoints: the Go signed-note vector, round trips, and every tamper rejected."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.tlog.checkpoint import (
    Checkpoint,
    encode_verifier_key,
    join_notes,
    parse_and_verify_checkpoint,
    parse_checkpoint_body,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    split_notes,
    verify_note,
)
from contracts.tlog.errors import CheckpointError

# golang.org/x/mod/sumdb/note documentation example (Ed25519 signatures are deterministic).
GO_SIGNER_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "blindgate.test/trace"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
VKEY = encode_verifier_key(ORIGIN, KEY.public_key())
ROOT = hashlib.sha256(b"root").digest()


def _go_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER_SEED)
    assert seed[0] == 1
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_go_signed_note_vector() -> None:
    key = _go_key()
    assert encode_verifier_key("PeterNeumann", key.public_key()) == GO_VERIFIER_KEY
    assert sign_note(GO_TEXT, key, "PeterNeumann") == GO_NOTE
    assert verify_note(GO_NOTE, GO_VERIFIER_KEY) == GO_TEXT
    with pytest.raises(CheckpointError):
        verify_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_VERIFIER_KEY)


def test_key_id_is_computed_as_specified() -> None:
    raw = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    parsed = parse_verifier_key(VKEY)
    assert parsed.key_id == expected
    key_data = base64.b64encode(b"\x01" + raw).decode()
    assert f"{ORIGIN}+{expected.hex()}+{key_data}" == VKEY
    assert str(parsed) == VKEY


def test_round_trip() -> None:
    note = sign_checkpoint(ORIGIN, 42, ROOT, KEY, ORIGIN)
    assert note == (
        f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {ORIGIN} "
        + note.rsplit(" ", 1)[1]
    )
    assert parse_and_verify_checkpoint(note, VKEY) == Checkpoint(ORIGIN, 42, ROOT)
    with_ext = sign_checkpoint(ORIGIN, 0, ROOT, KEY, ORIGIN, extensions=["ts 1700000000"])
    assert parse_and_verify_checkpoint(with_ext, VKEY).extensions == ("ts 1700000000",)


def test_other_signatures_are_ignored_but_one_by_the_key_is_required() -> None:
    note = sign_checkpoint(ORIGIN, 7, ROOT, KEY, ORIGIN)
    witness = sign_note(note.split("\n\n")[0] + "\n", OTHER_KEY, "witness.test")
    cosigned = note + witness.split("\n\n")[1]
    assert parse_and_verify_checkpoint(cosigned, VKEY).size == 7
    only_witness = witness
    with pytest.raises(CheckpointError, match="not signed by the known key"):
        parse_and_verify_checkpoint(only_witness, VKEY)


def test_wrong_origin_rejected() -> None:
    note = sign_checkpoint("elsewhere.test/log", 3, ROOT, KEY, ORIGIN)
    with pytest.raises(CheckpointError, match="origin"):
        parse_and_verify_checkpoint(note, VKEY)
    assert parse_and_verify_checkpoint(note, VKEY, origin="elsewhere.test/log").size == 3


def _tampered_notes() -> list[tuple[str, str]]:
    note = sign_checkpoint(ORIGIN, 1234, ROOT, KEY, ORIGIN)
    body, sig = note.split("\n\n")
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    forged = sign_checkpoint(ORIGIN, 1235, ROOT, OTHER_KEY, ORIGIN)
    return [
        ("size changed", note.replace("\n1234\n", "\n1235\n")),
        ("root changed", note.replace(base64.b64encode(ROOT).decode(), other_root)),
        ("origin changed", note.replace(ORIGIN + "\n", "blindgate.test/other\n", 1)),
        ("extension added", body + "\nextra\n\n" + sig),
        ("signature removed", body + "\n\n"),
        ("no blank line", body + "\n" + sig),
        ("other key, same name", forged),
        ("signature bit flipped", note[:-6] + ("A" if note[-6] != "A" else "B") + note[-5:]),
        ("signature truncated", note[:-10] + "\n"),
        ("no final newline", note[:-1]),
        ("carriage return", note.replace("\n", "\r\n")),
        ("leading zero", note.replace("\n1234\n", "\n01234\n")),
        ("plus sign", note.replace("\n1234\n", "\n+1234\n")),
        ("em dash missing", note.replace("\u2014 ", "- ")),
        ("two blank lines", body + "\n\n\n" + sig),
        ("empty", ""),
    ]


@pytest.mark.parametrize(("what", "text"), _tampered_notes())
def test_tampering_rejected(what: str, text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_and_verify_checkpoint(text, VKEY)


@pytest.mark.parametrize(
    "body",
    [
        "o\n1\n",
        "o\n1\nAAAA\n",
        "o\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n99999999999999999999\n" + base64.b64encode(ROOT).decode() + "\n",
        " o\n1\n" + base64.b64encode(ROOT).decode() + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode().rstrip("=") + "\n",
        "o\n1\n" + base64.b64encode(ROOT).decode() + "\n\n",
        "o\n1\n" + base64.b64encode(ROOT).decode(),
    ],
)
def test_bad_bodies_rejected(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint_body(body)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name",
        "name+c74f20a3",
        "na me+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpQ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",
        "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_verifier_keys_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(text)


def test_every_single_character_edit_is_rejected() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, KEY, ORIGIN)
    for position in range(len(note)):
        for replacement in ("x", "", "\n"):
            edited = note[:position] + replacement + note[position + 1 :]
            if edited == note:
                continue
            with pytest.raises(CheckpointError):
                parse_and_verify_checkpoint(edited, VKEY)


def test_split_and_join_notes() -> None:
    notes = [sign_checkpoint(ORIGIN, size, ROOT, KEY, ORIGIN) for size in (1, 2, 3)]
    assert split_notes(join_notes(notes)) == notes
    assert split_notes("") == []
    text = join_notes(notes)
    for broken in (
        text + "\n",
        text.replace("\n\n\u2014", "\n\u2014", 1),
        text[:-1],
        "\n" + text,
        text.replace("\n\n", "\n\n\n", 2),
    ):
        with pytest.raises(CheckpointError):
            split_notes(broken)


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(
            alphabet=st.characters(exclude_categories=["Cc", "Cs"], exclude_characters="\u2014"),
            min_size=1,
            max_size=10,
        ),
        max_size=3,
    ),
)
def test_round_trip_property(size: int, root: bytes, extensions: list[str]) -> None:
    note = sign_checkpoint(ORIGIN, size, root, KEY, ORIGIN, extensions)
    parsed = parse_and_verify_checkpoint(note, VKEY)
    assert parsed == Checkpoint(ORIGIN, size, root, tuple(extensions))
    assert split_notes(join_notes([note, note])) == [note, note]


@pytest.mark.parametrize(
    ("origin", "size", "root", "name"),
    [
        ("", 1, ROOT, ORIGIN),
        ("has space", 1, ROOT, ORIGIN),
        (ORIGIN, -1, ROOT, ORIGIN),
        (ORIGIN, 2**63, ROOT, ORIGIN),
        (ORIGIN, 1, b"short", ORIGIN),
        (ORIGIN, 1, ROOT, "bad+name"),
        (ORIGIN, 1, ROOT, "bad name"),
    ],
)
def test_signing_refuses_bad_input(origin: str, size: int, root: bytes, name: str) -> None:
    with pytest.raises(CheckpointError):
        sign_checkpoint(origin, size, root, KEY, name)
