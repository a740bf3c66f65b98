"""The tamper-evident trace: RFC 6962 Merkle log, signed checkpoints, offline verification.

The Merkle tree, checkpoints, canonical JSON and their errors are the pure core in
:mod:`contracts.tlog` (a site agent keeps its own log with the same code); this package
adds the trace's entries, exports, offline verification, pinpointing and receipts, and
re-exports the core's names.  Pure code (standard library and ``cryptography`` only);
storage and transports build on it.
"""

from contracts.tlog.checkpoint import (
    Checkpoint,
    VerifierKey,
    encode_verifier_key,
    parse_and_verify_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verify_note,
)
from contracts.tlog.errors import (
    CheckpointError,
    EntryError,
    ExportError,
    ForkError,
    ProofError,
    RollbackError,
    TamperedError,
    TraceError,
)
from contracts.tlog.jcs import canonical_json
from contracts.tlog.merkle import (
    EMPTY_ROOT,
    NodeId,
    ProofPlan,
    check_consistency,
    check_inclusion,
    consistency_plan,
    consistency_proof,
    frontier_ids,
    inclusion_plan,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    root_from_leaf_hashes,
    root_plan,
    verify_consistency,
    verify_inclusion,
)
from contracts.tlog.tree import CompactRange, MemoryTree, TreeStore
from gateway.audit.export import entry_leaf, entry_leaf_hash, write_export
from gateway.audit.verify import VerifyFailure, VerifyReport, verify_export, verify_live_state

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "EntryError",
    "ExportError",
    "ForkError",
    "MemoryTree",
    "NodeId",
    "ProofError",
    "ProofPlan",
    "RollbackError",
    "TamperedError",
    "TraceError",
    "TreeStore",
    "VerifierKey",
    "VerifyFailure",
    "VerifyReport",
    "canonical_json",
    "check_consistency",
    "check_inclusion",
    "consistency_plan",
    "consistency_proof",
    "encode_verifier_key",
    "entry_leaf",
    "entry_leaf_hash",
    "frontier_ids",
    "inclusion_plan",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parse_and_verify_checkpoint",
    "parse_verifier_key",
    "root_at",
    "root_from_leaf_hashes",
    "root_plan",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
    "verify_live_state",
    "verify_note",
    "write_export",
]
