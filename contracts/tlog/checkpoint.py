"""Signed tree heads: C2SP tlog-checkpoint bodies in C2SP signed-note envelopes, Ed25519 only.

A checkpoint note looks like::

    blindgate.example/trace
    1234
    <base64 of the 32-byte root hash>
    <optional extension lines>

    — blindgate.example/trace <base64(4-byte key id || 64-byte Ed25519 signature)>

The signature covers the body (every line up to and including the one before the blank
line, with its final newline). The key id is the first four bytes of
``SHA-256(key name || 0x0A || 0x01 || public key)``. Verifier keys are written
``<name>+<8 hex digits of the key id>+<base64(0x01 || public key)>``.

Parsing is strict and fails closed: any malformed line, unknown algorithm, mismatching key id,
bad signature, missing signature by the expected key, or unexpected origin raises
``CheckpointError``. Signatures by other keys are ignored, as the signed-note spec requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contracts.tlog.errors import CheckpointError
from contracts.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE

ED25519_ALGORITHM = 0x01
"""Signed-note signature type byte for Ed25519."""

SIGNATURE_PREFIX = "\u2014 "
"""Every signature line starts with an em dash and a space."""

MAX_NOTE_LENGTH = 64 * 1024
MAX_SIGNATURES = 100

_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_KEY_ID_RE = re.compile(r"[0-9a-f]{8}")
_FORBIDDEN_TEXT_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log ``origin``, the tree ``size`` and its 32-byte ``root``."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The checkpoint text that gets signed (C2SP tlog-checkpoint)."""
        _check_origin(self.origin)
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size!r} out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"root hash must be {HASH_SIZE} bytes")
        for line in self.extensions:
            if not line or "\n" in line or _FORBIDDEN_TEXT_RE.search(line):
                raise CheckpointError("extension lines must be non-empty single lines of text")
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A named Ed25519 public key and its signed-note key id."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def __str__(self) -> str:
        return encode_verifier_key(self.name, self.public_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_strict(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CheckpointError(f"{what} is not valid base64") from exc
    if _b64(data) != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return data


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise CheckpointError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")
    if _FORBIDDEN_TEXT_RE.search(name):
        raise CheckpointError("key name contains control characters")


def _check_origin(origin: str) -> None:
    if not origin or any(ch.isspace() for ch in origin) or _FORBIDDEN_TEXT_RE.search(origin):
        raise CheckpointError(f"invalid origin {origin!r}: non-empty, no spaces or controls")


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key id: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_ALGORITHM])
    return hashlib.sha256(material + _raw_public_key(public_key)).digest()[:4]


def encode_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The verifier key string ``<name>+<hex key id>+<base64(0x01 || key)>``."""
    _check_key_name(name)
    data = bytes([ED25519_ALGORITHM]) + _raw_public_key(public_key)
    return f"{name}+{key_id(name, public_key).hex()}+{_b64(data)}"


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse a verifier key string; raise ``CheckpointError`` on any defect, including a key id
    that does not match the name and key."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise CheckpointError("verifier key must look like <name>+<hex key id>+<base64 key>")
    name, id_text, key_text = parts
    _check_key_name(name)
    if not _KEY_ID_RE.fullmatch(id_text):
        raise CheckpointError("verifier key id must be 8 lowercase hex digits")
    data = _b64_strict(key_text, "verifier key data")
    if len(data) != 33 or data[0] != ED25519_ALGORITHM:
        raise CheckpointError("verifier key is not an Ed25519 key (0x01 || 32 bytes)")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(data[1:])
    except ValueError as exc:
        raise CheckpointError("verifier key is not a valid Ed25519 public key") from exc
    expected = key_id(name, public_key)
    if expected.hex() != id_text:
        raise CheckpointError("verifier key id does not match its name and key")
    return VerifierKey(name=name, key_id=expected, public_key=public_key)


def sign_note(text: str, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """Sign ``text`` (non-empty lines, each ending with a newline) as a C2SP signed note."""
    _check_key_name(key_name)
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise CheckpointError("note text must be non-empty lines, each ending with a newline")
    if _FORBIDDEN_TEXT_RE.search(text) or SIGNATURE_PREFIX in text:
        raise CheckpointError("note text contains control characters or a signature prefix")
    signature = private_key.sign(text.encode("utf-8"))
    kid = key_id(key_name, private_key.public_key())
    return f"{text}\n{SIGNATURE_PREFIX}{key_name} {_b64(kid + signature)}\n"


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    private_key: Ed25519PrivateKey,
    key_name: str,
    extensions: Sequence[str] = (),
) -> str:
    """Return the signed note for the checkpoint ``(origin, size, root)``.

    The result ends with a newline and parses back with ``parse_and_verify_checkpoint``
    under ``encode_verifier_key(key_name, private_key.public_key())``.
    """
    body = Checkpoint(origin, size, bytes(root), tuple(extensions)).body()
    return sign_note(body, private_key, key_name)


def parse_checkpoint_body(body: str) -> Checkpoint:
    """Parse an (unverified) checkpoint body; raise ``CheckpointError`` on any defect."""
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, size and root hash lines")
    origin, size_text, root_text, *extensions = lines
    _check_origin(origin)
    if not _SIZE_RE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
        raise CheckpointError(f"invalid tree size {size_text!r}")
    root = _b64_strict(root_text, "root hash")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash must be {HASH_SIZE} bytes")
    if any(not line for line in extensions):
        raise CheckpointError("checkpoint extension lines must not be empty")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def _split_note(text: str) -> tuple[str, list[str]]:
    if not isinstance(text, str):
        raise CheckpointError("note must be text")
    if len(text) > MAX_NOTE_LENGTH:
        raise CheckpointError("note is too long")
    if not text.endswith("\n"):
        raise CheckpointError("note must end with a newline")
    if _FORBIDDEN_TEXT_RE.search(text):
        raise CheckpointError("note contains control characters")
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no signature block")
    body, signature_block = text[: split + 1], text[split + 2 :]
    signature_lines = signature_block[:-1].split("\n")
    if len(signature_lines) > MAX_SIGNATURES:
        raise CheckpointError("note has too many signatures")
    return body, signature_lines


def verify_note(text: str, verifier_key: VerifierKey | str) -> str:
    """Verify a signed note under ``verifier_key`` and return its signed text.

    Succeeds only if at least one signature is by the key and every signature claiming to be
    by the key (same name and key id) verifies; signatures by other keys are ignored. Raises
    ``CheckpointError`` naming the defect otherwise.
    """
    key = parse_verifier_key(verifier_key) if isinstance(verifier_key, str) else verifier_key
    body, signature_lines = _split_note(text)
    try:
        message = body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CheckpointError("note is not valid Unicode") from exc
    verified = False
    for line in signature_lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise CheckpointError("signature line must be '— <name> <base64>'")
        name, signature_text = fields
        _check_key_name(name)
        blob = _b64_strict(signature_text, "signature")
        if len(blob) < 5:
            raise CheckpointError("signature is too short")
        if name != key.name or blob[:4] != key.key_id:
            continue
        if len(blob) != 4 + 64:
            raise CheckpointError(f"signature by {name} has the wrong length")
        try:
            key.public_key.verify(blob[4:], message)
        except InvalidSignature as exc:
            raise CheckpointError(f"signature by {name} does not verify") from exc
        verified = True
    if not verified:
        raise CheckpointError(f"note is not signed by the known key {key.name}")
    return body


def parse_and_verify_checkpoint(
    text: str, verifier_key: VerifierKey | str, *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note under ``verifier_key`` and return its checkpoint.

    ``origin`` is the expected log origin; it defaults to the verifier key's name. Raises
    ``CheckpointError`` naming the defect: bad format, no signature by the key, a bad
    signature, or an unexpected origin.
    """
    key = parse_verifier_key(verifier_key) if isinstance(verifier_key, str) else verifier_key
    checkpoint = parse_checkpoint_body(verify_note(text, key))
    expected_origin = key.name if origin is None else origin
    if checkpoint.origin != expected_origin:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {expected_origin!r}"
        )
    return checkpoint


def split_notes(text: str) -> list[str]:
    """Split a file of signed notes, each separated from the next by one blank line.

    Returns the notes exactly as they were signed (each ending with a newline). Raises
    ``CheckpointError`` if the layout is not: body lines, a blank line, one or more
    signature lines, then a blank line or the end of the text.
    """
    if text and not text.endswith("\n"):
        raise CheckpointError("checkpoint file must end with a newline")
    lines = text.split("\n")[:-1] if text else []
    notes: list[str] = []
    position = 0
    while position < len(lines):
        start = position
        while position < len(lines) and lines[position]:
            if lines[position].startswith(SIGNATURE_PREFIX):
                raise CheckpointError(f"line {position + 1}: signature line without a body")
            position += 1
        if position == start or position >= len(lines):
            raise CheckpointError(f"line {position + 1}: expected a note body and a blank line")
        position += 1
        signatures_start = position
        while position < len(lines) and lines[position].startswith(SIGNATURE_PREFIX):
            position += 1
        if position == signatures_start:
            raise CheckpointError(f"line {position + 1}: note has no signature lines")
        notes.append("".join(line + "\n" for line in lines[start:position]))
        if position < len(lines):
            if lines[position]:
                raise CheckpointError(f"line {position + 1}: expected a blank line between notes")
            position += 1
            if position == len(lines):
                raise CheckpointError("checkpoint file ends with a blank line")
    return notes


def join_notes(notes: Sequence[str]) -> str:
    """Inverse of ``split_notes``: notes separated by one blank line."""
    return "\n".join(notes)
