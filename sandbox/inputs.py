"""Job inputs stored content-addressed by SHA-256 in the agent's cache directory.

An input ``d`` is the file ``<cache>/inputs/<d>/data``; its directory is bound
read-only into a fragment's sandbox (at ``/input`` under namespaces), so the job
reads ``<input_dir>/data``.  Uploads are written to a private partial file,
hashed on the way in, checked against the declared size and digest and only then
moved into place with one atomic rename, so a digest directory is always
complete.  Each input is capped (``max_input_bytes``) and so is the whole store
(``max_cache_bytes``: further uploads are refused; nothing is evicted under a
running fragment).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from sandbox.wire import StoredInput

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
DATA_FILE = "data"


class InputRejected(Exception):
    """An upload was refused; ``reason`` is one of the class constants."""

    TOO_LARGE = "too_large"
    STORE_FULL = "store_full"
    BAD_DIGEST = "bad_digest"
    SIZE_MISMATCH = "size_mismatch"
    DIGEST_MISMATCH = "digest_mismatch"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def valid_digest(text: str) -> bool:
    """Whether ``text`` is a lowercase hex SHA-256."""
    return bool(_DIGEST.match(text))


class InputStore:
    """The content-addressed input cache; thread-safe."""

    def __init__(self, root: Path, max_input_bytes: int, max_cache_bytes: int) -> None:
        self.root = root
        self.max_input_bytes = max_input_bytes
        self.max_cache_bytes = max_cache_bytes
        self._partial = root / ".partial"
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        root.chmod(0o755)
        shutil.rmtree(self._partial, ignore_errors=True)
        self._partial.mkdir(mode=0o700)
        self._lock = threading.Lock()
        self._used = sum(
            (entry / DATA_FILE).stat().st_size
            for entry in root.iterdir()
            if valid_digest(entry.name) and (entry / DATA_FILE).is_file()
        )
        self._reserved = 0

    def directory(self, digest: str) -> Path | None:
        """The directory holding input ``digest``, or ``None`` if it is not stored."""
        if not valid_digest(digest):
            return None
        path = self.root / digest
        return path if (path / DATA_FILE).is_file() else None

    def discard(self, digest: str) -> None:
        """Remove input ``digest`` (a refused upload); running fragments keep their open files."""
        path = self.directory(digest)
        if path is None:
            return
        size = (path / DATA_FILE).stat().st_size
        staging = Path(tempfile.mkdtemp(prefix="gone-", dir=self._partial))
        try:
            path.rename(staging / digest)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return
        shutil.rmtree(staging, ignore_errors=True)
        with self._lock:
            self._used -= size

    def begin(self, total_size: int, digest: str) -> PendingInput:
        """Start receiving an input of ``total_size`` bytes with SHA-256 ``digest``."""
        if not valid_digest(digest):
            raise InputRejected(InputRejected.BAD_DIGEST)
        if total_size > self.max_input_bytes:
            raise InputRejected(InputRejected.TOO_LARGE)
        if self.directory(digest) is not None:
            return PendingInput(self, digest, total_size, None)
        with self._lock:
            if self._used + self._reserved + total_size > self.max_cache_bytes:
                raise InputRejected(InputRejected.STORE_FULL)
            self._reserved += total_size
        handle, name = tempfile.mkstemp(prefix="upload-", dir=self._partial)
        return PendingInput(self, digest, total_size, (handle, Path(name)))

    def _release(self, size: int, stored: bool) -> None:
        with self._lock:
            self._reserved -= size
            if stored:
                self._used += size

    def _install(self, digest: str, partial: Path) -> bool:
        """Move a verified partial file into place; ``False`` if it was already there."""
        staging = Path(tempfile.mkdtemp(prefix="dir-", dir=self._partial))
        try:
            partial.chmod(0o644)
            partial.rename(staging / DATA_FILE)
            staging.chmod(0o755)
            try:
                staging.rename(self.root / digest)
            except OSError:
                if self.directory(digest) is None:
                    raise
                return False
            return True
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class PendingInput:
    """One upload in progress: ``write`` chunks, then ``commit``; a context manager."""

    def __init__(
        self,
        store: InputStore,
        digest: str,
        total_size: int,
        partial: tuple[int, Path] | None,
    ) -> None:
        self._store = store
        self.digest = digest
        self.total_size = total_size
        self._partial = partial
        self._hash = hashlib.sha256()
        self._received = 0
        self._done = False

    @property
    def already_present(self) -> bool:
        """The input was stored before this upload began; nothing needs to be written."""
        return self._partial is None

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; refuses data past the declared size."""
        if self._partial is None or not chunk:
            return
        self._received += len(chunk)
        if self._received > self.total_size:
            raise InputRejected(InputRejected.SIZE_MISMATCH)
        self._hash.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(self._partial[0], view) :]

    def commit(self) -> StoredInput:
        """Check size and digest, store the input and return what was stored."""
        if self._partial is None:
            self._done = True
            return StoredInput(self.digest, self.total_size, already_present=True)
        if self._received != self.total_size:
            raise InputRejected(InputRejected.SIZE_MISMATCH)
        if self._hash.hexdigest() != self.digest:
            raise InputRejected(InputRejected.DIGEST_MISMATCH)
        handle, path = self._partial
        os.fsync(handle)
        os.close(handle)
        self._partial = None
        self._done = True
        try:
            installed = self._store._install(self.digest, path)
        except BaseException:
            self._store._release(self.total_size, stored=False)
            path.unlink(missing_ok=True)
            raise
        self._store._release(self.total_size, stored=installed)
        return StoredInput(self.digest, self.total_size, already_present=not installed)

    def abort(self) -> None:
        """Discard the upload (idempotent)."""
        if self._done:
            return
        self._done = True
        if self._partial is not None:
            handle, path = self._partial
            self._partial = None
            with contextlib.suppress(OSError):
                os.close(handle)
            path.unlink(missing_ok=True)
            self._store._release(self.total_size, stored=False)

    def __enter__(self) -> PendingInput:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()
