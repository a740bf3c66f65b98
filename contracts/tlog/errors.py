"""Errors raised by the trace core.

Every error carries a stable, machine-readable ``code``; the message is for operators and
logs, never for clients. The codes form a small closed set so they can be mapped to transport
statuses in one catalogue.
"""

from __future__ import annotations

from typing import ClassVar


class TraceError(Exception):
    """Root of all trace errors.

    ``code`` identifies the kind of failure; ``index`` is the log position the error concerns
    (e.g. the first bad entry), when known.
    """

    code: ClassVar[str] = "trace_error"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


class EntryError(TraceError, ValueError):
    """A value cannot be canonicalised as a trace entry (not I-JSON, NaN, lone surrogate...)."""

    code: ClassVar[str] = "bad_entry"


class ProofError(TraceError):
    """A Merkle proof is malformed or does not verify, or a proof was requested out of range."""

    code: ClassVar[str] = "bad_proof"


class CheckpointError(TraceError):
    """A checkpoint or verifier key is malformed, unsigned by the expected key, or mis-signed."""

    code: ClassVar[str] = "bad_checkpoint"


class TamperedError(TraceError):
    """Exported entries disagree with signed checkpoints (edited, missing, reordered...)."""

    code: ClassVar[str] = "tampered"


class RollbackError(TraceError):
    """A log presented a tree smaller than one it has already committed to."""

    code: ClassVar[str] = "rollback"


class ForkError(TraceError):
    """Two signed tree heads cannot both describe the same append-only log."""

    code: ClassVar[str] = "fork"


class ExportError(TraceError):
    """An export directory is incomplete or unreadable (missing file, bad key file...)."""

    code: ClassVar[str] = "bad_export"
