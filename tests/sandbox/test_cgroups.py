"""cgroup v2 delegation against a fake tree that enforces the kernel's rules, and v1 here.

The fake keeps the files the kernel would show (``cgroup.controllers``,
``cgroup.subtree_control``, ``cgroup.procs``, ``memory.max``, ``pids.max``) in a
temporary directory and refuses what the kernel refuses: enabling controllers for
the children of a cgroup that holds processes, adding a process to a cgroup whose
children have controllers, controllers the parent does not offer, and removing a
cgroup that is not empty.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from sandbox.cgroups import (
    CgroupFiles,
    CgroupManager,
    _mounts,
    _own_paths,
    delegate_v2,
    remove_stale,
)
from sandbox.spec import MIB


class FakeCgroupTree(CgroupFiles):
    """A cgroup v2 hierarchy in a directory, with the no-internal-processes rule."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(exist_ok=True)
        for name, value in (
            ("cgroup.controllers", "cpu io memory pids"),
            ("cgroup.subtree_control", "memory pids"),
            ("cgroup.procs", ""),
        ):
            (root / name).write_text(value)

    def _set(self, directory: Path, name: str) -> set[str]:
        return set((directory / name).read_text().split())

    def mkdir(self, path: Path) -> None:
        path.mkdir()
        offered = (path.parent / "cgroup.subtree_control").read_text()
        files = {"cgroup.controllers": offered, "cgroup.subtree_control": "", "cgroup.procs": ""}
        if "memory" in offered.split():
            files |= {"memory.max": "max", "memory.swap.max": "max", "memory.events": ""}
        if "pids" in offered.split():
            files["pids.max"] = "max"
        for name, value in files.items():
            (path / name).write_text(value)

    def write(self, path: Path, value: str) -> None:
        directory = path.parent
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "no such cgroup file", str(path))
        if path.name == "cgroup.subtree_control":
            self._subtree_control(directory, value)
        elif path.name == "cgroup.procs":
            self._move(directory, value.strip())
        else:
            path.write_text(value)

    def _subtree_control(self, directory: Path, value: str) -> None:
        wanted = {item[1:] for item in value.split() if item.startswith("+")}
        if not wanted <= self._set(directory, "cgroup.controllers"):
            raise OSError(errno.ENOENT, "controller not available")
        if directory != self.root and self._set(directory, "cgroup.procs"):
            raise OSError(errno.EBUSY, "no internal processes")
        enabled = self._set(directory, "cgroup.subtree_control") | wanted
        (directory / "cgroup.subtree_control").write_text(" ".join(sorted(enabled)))

    def _move(self, directory: Path, pid: str) -> None:
        if directory != self.root and self._set(directory, "cgroup.subtree_control"):
            raise OSError(errno.EBUSY, "no internal processes")
        for procs in self.root.rglob("cgroup.procs"):
            members = procs.read_text().split()
            if pid in members:
                members.remove(pid)
                procs.write_text("\n".join(members))
        (directory / "cgroup.procs").write_text(
            "\n".join([*(directory / "cgroup.procs").read_text().split(), pid])
        )

    def rmdir(self, path: Path) -> None:
        if self._set(path, "cgroup.procs") or self.children(path):
            raise OSError(errno.EBUSY, "cgroup busy")
        shutil.rmtree(path)

    def procs(self, directory: Path) -> list[str]:
        return (directory / "cgroup.procs").read_text().split()


@pytest.fixture
def tree(tmp_path: Path) -> FakeCgroupTree:
    return FakeCgroupTree(tmp_path / "cgroup")


@pytest.fixture
def service(tree: FakeCgroupTree) -> Path:
    """``system.slice/blindgate-site.service`` delegated, holding the agent and a helper."""
    slice_ = tree.root / "system.slice"
    tree.mkdir(slice_)
    tree.write(slice_ / "cgroup.subtree_control", "+memory +pids")
    unit = slice_ / "blindgate-site.service"
    tree.mkdir(unit)
    for pid in (str(os.getpid()), "4242"):
        tree.write(unit / "cgroup.procs", pid)
    return unit


def test_the_fake_refuses_controllers_beside_processes(tree: FakeCgroupTree, service: Path) -> None:
    with pytest.raises(OSError, match="no internal processes") as refused:
        tree.write(service / "cgroup.subtree_control", "+memory +pids")
    assert refused.value.errno == errno.EBUSY


def test_delegation_moves_the_agent_to_a_leaf_and_fragments_become_siblings(
    tree: FakeCgroupTree, service: Path
) -> None:
    fragments = delegate_v2(service, tree)
    assert fragments == service / "fragments"
    assert tree.procs(service) == []
    assert sorted(tree.procs(service / "agent")) == sorted([str(os.getpid()), "4242"])
    assert tree._set(service, "cgroup.subtree_control") == {"memory", "pids"}
    assert tree._set(fragments, "cgroup.subtree_control") == {"memory", "pids"}

    manager = CgroupManager(2, fragments, fragments, files=tree)
    group = manager.create(64 * MIB, 16)
    (directory,) = group.dirs
    assert directory.parent == fragments
    assert (directory / "memory.max").read_text() == str(64 * MIB)
    assert (directory / "memory.swap.max").read_text() == "0"
    assert (directory / "pids.max").read_text() == "16"
    group.attach(4242)
    assert tree.procs(directory) == ["4242"]
    tree.write(service / "agent" / "cgroup.procs", "4242")
    group.remove()
    assert tree.children(fragments) == []


def test_delegation_is_idempotent_for_a_second_runner(tree: FakeCgroupTree, service: Path) -> None:
    fragments = delegate_v2(service, tree)
    assert delegate_v2(service / "agent", tree) == fragments
    assert delegate_v2(service, tree) == fragments
    assert tree.children(service / "agent") == []


def test_root_of_a_hierarchy_needs_no_leaf(tree: FakeCgroupTree) -> None:
    tree.write(tree.root / "cgroup.procs", "1")
    fragments = delegate_v2(tree.root, tree, is_root=True)
    assert fragments == tree.root / "fragments"
    assert not (tree.root / "agent").exists()


def test_fragment_cgroups_of_a_dead_agent_are_removed(tree: FakeCgroupTree, service: Path) -> None:
    fragments = delegate_v2(service, tree)
    stale = fragments / "blindgate-999999999-3"
    mine = fragments / f"blindgate-{os.getpid()}-7"
    foreign = fragments / "unrelated"
    for directory in (stale, mine, foreign):
        tree.mkdir(directory)
    delegate_v2(service, tree)
    assert not stale.exists()
    assert mine.exists() and foreign.exists()


def test_missing_controllers_are_reported(tree: FakeCgroupTree) -> None:
    bare = tree.root / "bare"
    tree.mkdir(bare)
    (bare / "cgroup.controllers").write_text("cpu")
    with pytest.raises(OSError, match="lacks memory and pids"):
        delegate_v2(bare, tree)


def test_stale_cleanup_on_this_host() -> None:
    manager = CgroupManager.detect()
    parent = manager.memory_parent
    leftover = parent / "blindgate-999999999-0"
    leftover.mkdir()
    try:
        remove_stale(parent)
        assert not leftover.exists()
    finally:
        if leftover.exists():
            leftover.rmdir()


def _delegated_v2() -> Path | None:
    own = _own_paths().get("")
    for root, point, fstype, _ in _mounts():
        if fstype == "cgroup2" and own is not None and root == "/":
            base = Path(point) / own.lstrip("/")
            controllers = (base / "cgroup.controllers").read_text().split()
            if {"memory", "pids"} <= set(controllers):
                return base
    return None


@pytest.mark.skipif(_delegated_v2() is None, reason="no cgroup v2 with memory and pids here")
def test_real_v2_delegation() -> None:
    manager = CgroupManager.detect()
    assert manager.version == 2
    assert manager.memory_parent.name == "fragments"
    group = manager.create(64 * MIB, 8)
    try:
        assert group.dirs[0].parent == manager.memory_parent
    finally:
        group.remove()


def test_systemd_delegate_subgroup_is_used_as_the_leaf(tree: FakeCgroupTree) -> None:
    unit = tree.root / "blindgate-site.service"
    tree.mkdir(unit)
    tree.mkdir(unit / "agent")
    tree.write(unit / "agent" / "cgroup.procs", str(os.getpid()))
    assert delegate_v2(unit / "agent", tree) == unit / "fragments"
    assert tree.procs(unit / "agent") == [str(os.getpid())]
    assert not (unit / "agent" / "agent").exists()
