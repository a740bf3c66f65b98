"""Response bodies of the trace: entries, checkpoints, proofs and receipts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Receipt(BaseModel):
    """Proof that an entry is in the trace: verify with ``blindgate audit receipt`` or
    :func:`gateway.audit.receipt.verify_receipt` and the log's verifier key."""

    leaf_index: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    inclusion_proof: list[str]
    checkpoint: str
    entry: str = Field(description="The entry's canonical JSON: the exact leaf bytes")


class TraceEntryOut(BaseModel):
    index: int
    leaf_hash: str = Field(description="The leaf hash the tree committed to at append time")
    entry: dict[str, Any]


class TracePage(BaseModel):
    items: list[TraceEntryOut]
    next_cursor: str | None


class CheckpointOut(BaseModel):
    size: int
    checkpoint: str = Field(description="C2SP signed-note checkpoint text")


class LogInfo(BaseModel):
    origin: str
    verifier_key: str = Field(description="Signed-note verifier key of the checkpoint signer")
    size: int


class InclusionProofOut(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyProofOut(BaseModel):
    from_size: int
    to_size: int
    proof: list[str]


class FrontierOut(BaseModel):
    size: int
    hashes: list[str] = Field(
        description="Roots of the perfect subtrees covering [0, size), left to right (base64)"
    )
