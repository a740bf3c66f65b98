"""A stand-in for the few ``syft`` helpers a syft-rds job calls, on a job's path.

Jobs written for syft-rds find their data with ``syft.resolve_dataset_file_path(name)``
(or ``resolve_dataset_files_path``) and turn ``syft://`` URLs into paths with
``syft.resolve_path``.  Inside a job (``SYFT_IS_IN_JOB=true``) these read the datasite's
private dataset folder, ``$SYFTBOX_FOLDER/$SYFTBOX_EMAIL/private/syft_datasets/v1/<name>/``;
outside one, the dataset's mock folder under ``public/``.  This module does the same with
the standard library only, so jobs run unchanged without PySyft in the sandbox; the
``client``, ``owner_email`` and ``syftbox_folder`` arguments are accepted as syft accepts
them.  Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__version__ = "0.10.0+blindgate"
_HIDDEN = frozenset({"syft.pub.yaml", "private_metadata.yaml", "dataset.yaml", "readme.md"})


def _folder(syftbox_folder: str | Path | None) -> Path:
    if syftbox_folder is not None:
        return Path(syftbox_folder)
    found = os.environ.get("SYFTBOX_FOLDER")
    if found is None:
        raise ValueError("SYFTBOX_FOLDER environment variable not set")
    return Path(found)


def _dataset_dir(name: str, syftbox_folder: str | Path | None, owner: str | None) -> Path:
    owner = owner or os.environ.get("SYFTBOX_EMAIL")
    if owner is None:
        raise ValueError("SYFTBOX_EMAIL environment variable not set")
    in_job = os.environ.get("SYFT_IS_IN_JOB", "false").lower() == "true"
    side = "private" if in_job else "public"
    directory = _folder(syftbox_folder) / owner / side / "syft_datasets" / "v1" / name
    if not directory.is_dir():
        raise ValueError(f"No datasets with name {name} found")
    return directory


def resolve_dataset_files_path(
    dataset_name: str,
    syftbox_folder: str | Path | None = None,
    owner_email: str | None = None,
    client: Any = None,
) -> list[Path]:
    """The dataset's files: private inside a job, mock outside one."""
    directory = _dataset_dir(dataset_name, syftbox_folder, owner_email)
    return sorted(p for p in directory.iterdir() if p.name not in _HIDDEN and not p.is_dir())


def resolve_dataset_file_path(
    dataset_name: str,
    syftbox_folder: str | Path | None = None,
    owner_email: str | None = None,
    client: Any = None,
) -> Path:
    """The dataset's first file."""
    files = resolve_dataset_files_path(dataset_name, syftbox_folder, owner_email, client)
    if not files:
        raise ValueError(f"Dataset {dataset_name} has no files")
    return files[0]


def resolve_path(path: str | Path, syftbox_folder: str | Path | None = None) -> Path:
    """``syft://a/b`` as a path under the SyftBox folder; other paths unchanged."""
    text = str(path)
    if text.startswith("syft://"):
        return _folder(syftbox_folder) / text.removeprefix("syft://")
    return Path(text)


__all__ = ["resolve_dataset_file_path", "resolve_dataset_files_path", "resolve_path"]
