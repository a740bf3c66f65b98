"""Checking a receipt: the entry is in the log that the signed checkpoint commits to."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from contracts.tlog.checkpoint import Checkpoint, parse_and_verify_checkpoint
from contracts.tlog.errors import ProofError
from contracts.tlog.jcs import canonical_json, loads_strict
from contracts.tlog.merkle import check_inclusion, leaf_hash


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProofError(f"receipt {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"receipt {what} is not valid base64") from None


def verify_receipt(receipt: Mapping[str, Any], verifier_key: str) -> Checkpoint:
    """Verify ``receipt`` against the log's verifier key; return the checkpoint it carries.

    Checks the checkpoint's signature, that the entry is canonical JSON whose leaf hash is
    the one stated, and the inclusion proof from that leaf to the checkpoint's root.
    Raises a :class:`~contracts.tlog.errors.TraceError` subclass naming the defect.
    """
    checkpoint = parse_and_verify_checkpoint(str(receipt.get("checkpoint", "")), verifier_key)
    entry_text = receipt.get("entry")
    if not isinstance(entry_text, str):
        raise ProofError("receipt entry must be the entry's canonical JSON text")
    leaf = entry_text.encode("utf-8")
    if canonical_json(loads_strict(entry_text)) != leaf:
        raise ProofError("receipt entry is not in canonical form")
    computed = leaf_hash(leaf)
    if _b64(receipt.get("leaf_hash"), "leaf_hash") != computed:
        raise ProofError("receipt leaf_hash does not match its entry")
    index = receipt.get("leaf_index")
    size = receipt.get("tree_size")
    if not isinstance(index, int) or not isinstance(size, int) or size != checkpoint.size:
        raise ProofError("receipt tree_size must equal the checkpoint's size")
    proof = receipt.get("inclusion_proof")
    if not isinstance(proof, list):
        raise ProofError("receipt inclusion_proof must be a list")
    hashes = [_b64(p, "inclusion_proof") for p in proof]
    check_inclusion(computed, index, size, hashes, checkpoint.root)
    return checkpoint
