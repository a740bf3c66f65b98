"""syft-rds job folders: read one from its archive, and name its code by hash.

A syft-rds data scientist submits a *job folder*::

    config.yaml      name, type (python), entrypoint, dependencies, files (code/ manifest)
    run.sh           how syft-rds would run it (Blindgate records it, never executes it)
    code/            the code; the entrypoint is a file in it, run with code/ as its
                     working directory, writing what it returns to code/outputs/

Blindgate carries the folder as a gzip-compressed tar archive named by its SHA-256 and
names the code by its **code hash**: the SHA-256 of the ``sha256sum``-style manifest of
``code/`` (one line ``<file sha256>  <path>`` per file, sorted by path, UTF-8), so the
same files give the same hash whatever their order, timestamps or archive.  The **files
manifest hash** is the same over the whole folder (``config.yaml``, ``run.sh`` and
``code/…``).  Reading is strict and bounded: regular files and directories only, no
absolute or parent paths, at most :data:`MAX_FILES` files, :data:`MAX_FILE_BYTES` each and
:data:`MAX_TOTAL_BYTES` in all.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

import yaml

MAX_ARCHIVE_BYTES: Final = 8 * 1024 * 1024
MAX_FILES: Final = 500
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_TOTAL_BYTES: Final = 16 * 1024 * 1024
MAX_PATH_CHARS: Final = 512
TOP_LEVEL: Final = frozenset({"config.yaml", "run.sh", "code"})
STAND_IN: Final = frozenset({"syft", "syft-client", "syft-rds"})
"""Requirements the sandbox's stand-in for syft's job helpers satisfies."""

_SEGMENT = re.compile(r"^[^\x00-\x1f\x7f/\\]+$")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([<>=!~ ;@].*)?$")


class JobFolderError(ValueError):
    """A job folder Blindgate will not take; ``code`` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class JobFolder:
    """A job folder as read from its archive."""

    name: str
    entrypoint: str
    dependencies: tuple[str, ...]
    files: Mapping[str, bytes]
    """Every file of the folder by its path (``config.yaml``, ``run.sh``, ``code/…``)."""

    @property
    def code(self) -> dict[str, bytes]:
        """``code/``'s files by their path inside ``code/``."""
        return {p.removeprefix("code/"): data for p, data in self.files.items() if _in_code(p)}

    @property
    def code_files(self) -> dict[str, str]:
        """``code/`` path -> SHA-256 of the file's bytes."""
        return {path: _sha(data) for path, data in self.code.items()}

    @property
    def code_hash(self) -> str:
        return manifest_hash(self.code_files)

    @property
    def files_hash(self) -> str:
        return manifest_hash({path: _sha(data) for path, data in self.files.items()})

    @property
    def run_sh(self) -> str:
        return self.files.get("run.sh", b"").decode("utf-8", "replace")

    def describe(self, archive_sha256: str) -> dict[str, Any]:
        """What a job's specification records of the folder (hashes and names only)."""
        return {
            "archive_sha256": archive_sha256,
            "name": self.name,
            "entrypoint": self.entrypoint,
            "dependencies": list(self.dependencies),
            "code_hash": self.code_hash,
            "files_sha256": self.files_hash,
            "code_files": self.code_files,
            "run_sh_sha256": _sha(self.files.get("run.sh", b"")),
        }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _in_code(path: str) -> bool:
    return path.startswith("code/")


def manifest(files: Mapping[str, str]) -> str:
    """``sha256sum``'s format: ``<sha256>  <path>`` per file, sorted by path."""
    return "".join(f"{files[path]}  {path}\n" for path in sorted(files))


def manifest_hash(files: Mapping[str, str]) -> str:
    """The SHA-256 of :func:`manifest` (the code hash, over ``code/``'s files)."""
    return hashlib.sha256(manifest(files).encode("utf-8")).hexdigest()


def requirement_name(requirement: str) -> str | None:
    """The normalised project name a requirement line names (``None``: not a plain
    requirement, e.g. a path or a URL without a name)."""
    found = _REQUIREMENT.match(requirement)
    if found is None:
        return None
    return re.sub(r"[-_.]+", "-", found.group(1)).lower()


def undeclared(dependencies: tuple[str, ...], allowed: frozenset[str]) -> list[str]:
    """The dependencies neither the stand-in nor the site's allow-list provides."""
    missing = []
    for dependency in dependencies:
        name = requirement_name(dependency)
        if name is None or (name not in STAND_IN and name not in allowed):
            missing.append(dependency)
    return missing


def _clean(name: str) -> str:
    path = PurePosixPath(name)
    if name.startswith("/") or not path.parts:
        raise JobFolderError("archive_path", "an archive entry has an absolute or empty path")
    parts = [part for part in path.parts if part != "."]
    if any(part == ".." or not _SEGMENT.match(part) for part in parts):
        raise JobFolderError("archive_path", "an archive entry has an unsafe path")
    cleaned = "/".join(parts)
    if len(cleaned) > MAX_PATH_CHARS:
        raise JobFolderError("archive_path", "an archive entry's path is too long")
    return cleaned


def _members(data: bytes) -> dict[str, bytes]:
    """Regular files of a tar (optionally gzip) archive, read within the bounds."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise JobFolderError("archive_too_large", "the job archive is too large")
    files: dict[str, bytes] = {}
    total = 0
    bound = MAX_TOTAL_BYTES + 2048 * (MAX_FILES + 8)
    try:
        if data[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
                raw = unzipped.read(bound + 1)
        else:
            raw = data
    except (OSError, EOFError) as exc:
        raise JobFolderError("archive_invalid", "the job archive is not gzip") from exc
    if len(raw) > bound:
        raise JobFolderError("archive_too_large", "the job folder is too large")
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
            for member in archive:
                name = _clean(member.name)
                if member.isdir():
                    continue
                if not member.isreg():
                    raise JobFolderError(
                        "archive_entry", "the job archive holds something other than files"
                    )
                if member.size > MAX_FILE_BYTES:
                    raise JobFolderError("archive_too_large", "a file of the job is too large")
                total += member.size
                if total > MAX_TOTAL_BYTES or len(files) >= MAX_FILES:
                    raise JobFolderError("archive_too_large", "the job folder is too large")
                if name in files:
                    raise JobFolderError("archive_entry", "the job archive repeats a file")
                handle = archive.extractfile(member)
                if handle is None:
                    raise JobFolderError("archive_entry", "a file of the job cannot be read")
                files[name] = handle.read(MAX_FILE_BYTES + 1)
    except tarfile.TarError as exc:
        raise JobFolderError("archive_invalid", "the job archive is not a tar archive") from exc
    return files


def _strip_root(files: dict[str, bytes]) -> dict[str, bytes]:
    """Accept the folder itself or one directory holding it (``<job name>/config.yaml``)."""
    if "config.yaml" in files:
        return files
    roots = {path.split("/", 1)[0] for path in files}
    if len(roots) == 1 and all("/" in path for path in files):
        root = roots.pop() + "/"
        return {path.removeprefix(root): data for path, data in files.items()}
    return files


def _config(text: bytes) -> dict[str, Any]:
    try:
        config = yaml.safe_load(text.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise JobFolderError("config_invalid", "config.yaml is not YAML") from exc
    if not isinstance(config, dict):
        raise JobFolderError("config_invalid", "config.yaml is not a mapping")
    return config


def read_folder(data: bytes) -> JobFolder:
    """The job folder in ``data`` (a tar or tar.gz archive); raises :class:`JobFolderError`."""
    files = _strip_root(_members(data))
    for path in files:
        top = path.split("/", 1)[0]
        if top not in TOP_LEVEL or (top == "code" and path == "code"):
            raise JobFolderError(
                "folder_layout", "a job folder holds config.yaml, run.sh and code/ only"
            )
        if path.startswith("code/outputs/"):
            raise JobFolderError("folder_layout", "code/outputs/ is where the job writes")
    if "config.yaml" not in files:
        raise JobFolderError("folder_layout", "the job folder has no config.yaml")
    config = _config(files["config.yaml"])
    if config.get("type", "python") != "python":
        raise JobFolderError("config_invalid", "only Python job folders (type: python) run")
    name = config.get("name")
    entrypoint = config.get("entrypoint")
    dependencies = config.get("dependencies") or []
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise JobFolderError("config_invalid", "config.yaml names the job (name)")
    if not isinstance(entrypoint, str) or not entrypoint.endswith(".py"):
        raise JobFolderError("config_invalid", "config.yaml names a .py entrypoint")
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise JobFolderError("config_invalid", "config.yaml's dependencies are a list of names")
    folder = JobFolder(name, _clean(entrypoint), tuple(dependencies), files)
    code = folder.code
    if folder.entrypoint not in code:
        raise JobFolderError("config_invalid", "the entrypoint is not a file in code/")
    listed = config.get("files")
    if listed is not None and (
        not isinstance(listed, list) or {str(p) for p in listed} != set(code)
    ):
        raise JobFolderError("config_invalid", "config.yaml's files do not list code/ exactly")
    return folder


def pack_folder(root: Path) -> bytes:
    """A deterministic tar.gz of the job folder at ``root`` (sorted, no owners or times):
    the same files always give the same archive, and so the same SHA-256."""
    buffer = io.BytesIO()
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not _skipped(p, root))
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in paths:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _skipped(path: Path, root: Path) -> bool:
    """Files a job folder never carries: caches, outputs of local runs, syft's state."""
    parts = path.relative_to(root).parts
    return (
        "__pycache__" in parts
        or ".venv" in parts
        or parts[:2] == ("code", "outputs")
        or parts[0] not in TOP_LEVEL
    )
