"""The live trace: its signing key, signed checkpoints, proofs and receipts."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.tlog.checkpoint import (
    encode_verifier_key,
    parse_and_verify_checkpoint,
    sign_checkpoint,
)
from contracts.tlog.errors import ProofError
from contracts.tlog.merkle import consistency_proof, frontier_ids, inclusion_proof, root_at
from gateway.clock import Clock
from gateway.domain import PendingTrace
from gateway.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TraceKey:
    """The gateway's checkpoint-signing key; ``origin`` names the log (and the key)."""

    private_key: Ed25519PrivateKey
    origin: str

    @property
    def verifier_key(self) -> str:
        return encode_verifier_key(self.origin, self.private_key.public_key())


def default_origin(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return f"blindgate.trace/{hashlib.sha256(raw).hexdigest()[:16]}"


def load_or_create_key(path: Path, origin: str | None = None) -> TraceKey:
    """Load the PEM key at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
    else:
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    return TraceKey(key, origin or default_origin(key))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class TraceLog:
    """Checkpoints, proofs and receipts over the store's trace tables."""

    def __init__(
        self, store: Store, key: TraceKey, clock: Clock, checkpoint_file: Path | None
    ) -> None:
        self.store = store
        self.key = key
        self.clock = clock
        self.checkpoint_file = checkpoint_file
        self._file_lock = threading.Lock()
        self._batch_lock = threading.Lock()

    @property
    def verifier_key(self) -> str:
        return self.key.verifier_key

    def _nodes(self, tx: Any) -> Any:
        return tx.trace_nodes

    def size(self) -> int:
        with self.store.read() as tx:
            return tx.trace_size()

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self.store.read() as tx:
            return tx.latest_checkpoint()

    def checkpoint(self, *, at_least: int = 0) -> tuple[int, str]:
        """A signed checkpoint covering at least ``at_least`` entries (a new one if needed)."""
        latest = self.latest_checkpoint()
        with self.store.read() as tx:
            size = tx.trace_size()
            if latest is not None and latest[0] == size and size >= at_least:
                return latest
            root = root_at(size, self._nodes(tx))
        if size < at_least:
            raise ProofError("the trace is shorter than the entry to cover")
        note = sign_checkpoint(self.key.origin, size, root, self.key.private_key, self.key.origin)
        now = self.clock.now()
        self.store.transact(lambda tx: tx.add_checkpoint(size, note, now))
        self._append_file(note)
        return size, note

    def covering(self, index: int) -> tuple[int, str]:
        """A signed checkpoint that covers entry ``index``: the latest one if it does, else
        the next one, signed once for every receipt waiting for it.

        Receipts are batched: while one caller signs a checkpoint over the whole trace as
        it then is, the others wait, and each finds its entry covered by that checkpoint
        instead of signing one of its own.
        """
        latest = self.latest_checkpoint()
        if latest is not None and latest[0] > index:
            return latest
        with self._batch_lock:
            latest = self.latest_checkpoint()
            if latest is not None and latest[0] > index:
                return latest
            return self.checkpoint(at_least=index + 1)

    def _append_file(self, note: str) -> None:
        if self.checkpoint_file is None:
            return
        with self._file_lock:
            self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
            with self.checkpoint_file.open("a", encoding="utf-8") as fh:
                fh.write(note + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def inclusion(self, index: int, size: int) -> list[bytes]:
        with self.store.read() as tx:
            if not 0 <= index < size <= tx.trace_size():
                raise ProofError("index and size must satisfy 0 <= index < size <= tree size")
            return inclusion_proof(index, size, self._nodes(tx))

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        with self.store.read() as tx:
            if not 0 <= old_size <= new_size <= tx.trace_size():
                raise ProofError("sizes must satisfy 0 <= from <= to <= tree size")
            return consistency_proof(old_size, new_size, self._nodes(tx))

    def frontier(self, size: int) -> list[bytes]:
        """The stored roots of the perfect subtrees covering ``[0, size)``."""
        with self.store.read() as tx:
            if not 0 <= size <= tx.trace_size():
                raise ProofError("size must satisfy 0 <= size <= tree size")
            return list(self._nodes(tx)(frontier_ids(size)))

    def receipt(self, pending: PendingTrace) -> dict[str, Any]:
        """Leaf index, inclusion proof and a signed checkpoint for a committed entry."""
        if pending.index is None:
            raise ProofError("the entry has not been committed")
        size, note = self.covering(pending.index)
        checkpoint = parse_and_verify_checkpoint(note, self.verifier_key)
        proof = self.inclusion(pending.index, size)
        return {
            "leaf_index": pending.index,
            "leaf_hash": b64(pending.leaf_hash),
            "tree_size": size,
            "root_hash": b64(checkpoint.root),
            "inclusion_proof": [b64(p) for p in proof],
            "checkpoint": note,
            "entry": pending.leaf.decode("utf-8"),
        }


class CheckpointTicker:
    """Signs a checkpoint every ``interval`` seconds when the trace has grown."""

    def __init__(
        self, log: TraceLog, interval: float, failed: Callable[[], None] | None = None
    ) -> None:
        self.log = log
        self.interval = interval
        self.failed = failed
        """Told of each checkpoint that could not be made (the metrics hook)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                latest = self.log.latest_checkpoint()
                if latest is None or self.log.size() > latest[0]:
                    self.log.checkpoint()
            except Exception as exc:  # keep ticking; the next tick retries
                log.error("periodic checkpoint failed: %s", type(exc).__name__)
                if self.failed is not None:
                    self.failed()
