"""The gateway's HE workspace: operators' context bundles and a local sandbox.

Bundles are stored content-addressed by SHA-256 under ``<data_dir>/he/contexts`` (the
same store the site agents use), uploaded once and reused by every job that names
them.  The gateway never deserialises an operator's context or a ciphertext in its
own process: checking a bundle and combining the sites' ciphertexts run as
``tenseal_he`` fragments in a sandbox of their own (see :mod:`sandbox.runner`),
against an empty placeholder asset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway.errors import BlindgateError, NotFound, ValidationFailed
from sandbox.config import IsolationLevel, RunnerConfig
from sandbox.he_format import MAX_BUNDLE_BYTES, MAX_CIPHERTEXT_BYTES, BundleError, bundle_layout
from sandbox.inputs import InputRejected, InputStore
from sandbox.runner import Runner
from sandbox.spec import FragmentSpec, Limits

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_HEAD_BYTES = 512
REFUSALS = {
    "malformed": "The bytes are not a context bundle of serialised TenSEAL contexts.",
    "secret_key": "The context carries a secret key: send only the public context.",
    "scheme_mismatch": "A context is filed under the wrong scheme in the bundle.",
    "parameters_not_allowed": "The encryption parameters are not on the allow-list.",
}


class HeContextRefused(BlindgateError):
    """An uploaded context bundle was refused; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSALS.get(reason, reason), code="validation_failed")
        self.reason = reason


class HeWorkspace:
    """Context bundles and the local HE sandbox of one gateway process; thread-safe."""

    def __init__(
        self,
        root: Path,
        *,
        max_cache_bytes: int = 8 * 1024 * MIB,
        minimum_isolation: IsolationLevel = IsolationLevel.MEDIUM,
        limits: Limits | None = None,
    ) -> None:
        self.root = root
        self.contexts = InputStore(root / "contexts", MAX_BUNDLE_BYTES, max_cache_bytes)
        self.blobs = InputStore(root / "blobs", MAX_CIPHERTEXT_BYTES, max_cache_bytes)
        """Encrypted weights of ``he_linear`` jobs, by SHA-256."""
        self.placeholder = root / "empty.csv"
        if not self.placeholder.exists():
            self.placeholder.write_text("none\n")
        self.limits = limits or Limits(
            memory_bytes=2048 * MIB,
            cpu_seconds=120,
            wall_seconds=180.0,
            output_bytes=64 * MIB,
            threads=2,
        )
        self._minimum = minimum_isolation
        self._runner: Runner | None = None
        self._lock = threading.Lock()
        self._described: dict[str, dict[str, Any]] = {}
        self._warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="he-warm")

    def close(self) -> None:
        self._warmer.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None

    def runner(self) -> Runner:
        """The local sandbox runner, started on first use."""
        with self._lock:
            if self._runner is None:
                self._runner = Runner(
                    RunnerConfig(minimum_isolation=self._minimum, pool_size=1, pool_max_keys=4)
                )
            return self._runner

    # bundles ------------------------------------------------------------------------------
    async def receive(self, chunks: AsyncIterator[bytes], size: int, sha256: str) -> bool:
        """Store an uploaded bundle (hashed on the way in); whether it was new."""
        try:
            with self.contexts.begin(size, sha256) as pending:
                if pending.already_present:
                    return False
                head = b""  # the header is checked as soon as it has arrived
                async for chunk in chunks:
                    if len(head) < _HEAD_BYTES:
                        head += chunk[: _HEAD_BYTES - len(head)]
                        if len(head) == _HEAD_BYTES:
                            bundle_layout(head, size)
                    pending.write(chunk)
                if len(head) < _HEAD_BYTES:
                    bundle_layout(head, size)
                pending.commit()
        except BundleError as exc:
            raise HeContextRefused("malformed") from exc
        except InputRejected as exc:
            messages = {
                InputRejected.TOO_LARGE: f"bundles are limited to {MAX_BUNDLE_BYTES} bytes",
                InputRejected.STORE_FULL: "the gateway's context store is full",
                InputRejected.BAD_DIGEST: "X-Content-SHA256 must be 64 lowercase hex digits",
                InputRejected.SIZE_MISMATCH: "the body's length differs from Content-Length",
                InputRejected.DIGEST_MISMATCH: "the body's SHA-256 differs from X-Content-SHA256",
            }
            raise ValidationFailed(messages.get(exc.reason, exc.reason)) from None
        return True

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` (at most one ciphertext's size); its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        try:
            with self.blobs.begin(len(data), digest) as pending:
                pending.write(data)
                pending.commit()
        except InputRejected as exc:
            raise ValidationFailed(f"ciphertext refused: {exc.reason}") from None
        return digest

    def path(self, digest: str) -> Path:
        """The stored bundle ``digest`` (its file)."""
        directory = self.contexts.directory(digest)
        if directory is None:
            raise NotFound("no context bundle with this SHA-256 has been uploaded")
        return directory / "data"

    def describe(self, digest: str) -> dict[str, Any]:
        """Check a stored bundle in the sandbox; its schemes' parameters, or refuse it."""
        with self._lock:
            known = self._described.get(digest)
        if known is not None:
            return known
        try:
            rows = self.run(digest, {"op": "inspect"})
        except HeStepFailed as exc:
            if exc.reason != "bad_input":
                raise BlindgateError("the context bundle could not be checked now") from None
            rows = {"verdict": "malformed"}
        verdict = rows.get("verdict", "malformed")
        if verdict != "ok":
            self.contexts.discard(digest)
            raise HeContextRefused(verdict)
        described = {k: json.loads(v) for k, v in rows.items() if k != "verdict"}
        with self._lock:
            self._described[digest] = described
        return described

    # the sandbox --------------------------------------------------------------------------
    def _warm(self, runner: Runner, directory: Path) -> None:
        try:
            runner.warm("tenseal_he", self.placeholder, directory, self.limits)
        except (ValueError, OSError) as exc:
            log.debug("no sandbox kept for an HE context: %s", type(exc).__name__)

    def run(self, digest: str, program: dict[str, Any]) -> dict[str, str]:
        """Run one ``tenseal_he`` step on bundle ``digest``; its ``name -> value`` rows."""
        directory = self.path(digest).parent
        spec = FragmentSpec(
            "tenseal_he", json.dumps(program), self.placeholder, directory, self.limits
        )
        runner = self.runner()
        result = runner.run(spec, label=f"he-{program.get('op')}")
        if result.ok:  # the next step on this bundle finds its context loaded
            self._warmer.submit(self._warm, runner, directory)
        if not result.ok or result.table is None:
            failure = result.failure.value if result.failure else "internal"
            raise HeStepFailed(failure)
        return {str(row[0]): str(row[1]) for row in result.table.rows}


class HeStepFailed(Exception):
    """A step in the gateway's HE sandbox failed; ``reason`` is the fragment's code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
