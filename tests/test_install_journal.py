"""The installer's journal: an install killed between any two of its changes on disk is undone by ``--uninstall`` or
finished by the next run (the kill: tests/killing.py). Plans are made here (no wheels), so each kill point takes a
fraction of a second."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from killing import KILLED, run_killed
from tether.errors import InputError
from tether_install import plan as plan_mod
from tether_install.plan import BEGIN, END, Edit, Plan

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill is a forked process's os._exit")

# What an artist's ~/.nuke/init.py may hold: nothing, CRLF lines without a final newline, a BOM, Latin-1 declared
# by its coding line (é is 0xE9, invalid UTF-8).
INIT_FILES: List[Optional[bytes]] = [
    None,
    b"import nuke\r\nnuke.pluginAddPath('/studio/gizmos')",
    b"\xef\xbb\xbfimport nuke\n",
    b"# -*- coding: latin-1 -*-\n# r\xe9glages du studio\nimport nuke\n",
]


def _block(root: Path) -> str:
    return "\n".join([BEGIN.format(dcc="nuke"), f"_tether_root = {str(root / 'deploy')!r}", END])


def _plan(root: Path, files: Dict[str, bytes], last: Dict[str, bytes]) -> Plan:
    target = root / "share" / "deploy"
    made = Plan("nuke", target)
    made.files = {target / rel: data for rel, data in files.items()}
    made.last = {target / rel: data for rel, data in last.items()}
    made.edits = [Edit(root / "home" / ".nuke" / "init.py", _block(root))]
    return made


OLD = {"nuke_plugin/init.py": b"old init", "nuke_plugin/menu.py": b"menu", "python/common/gone.py": b"gone",
       "python/cp311/a/b/deep.py": b"deep"}
NEW = {"nuke_plugin/init.py": b"new init", "nuke_plugin/menu.py": b"menu", "python/common/added.py": b"added",
       "python/cp311/a/b/deep.py": b"deeper", "python/cp311-linux-x64/x.so": b"\x7fELF"}


def _setup(root: Path, init: Optional[bytes], first: Optional[Dict[str, bytes]]) -> None:
    if init is not None:
        (root / "home" / ".nuke").mkdir(parents=True)
        (root / "home" / ".nuke" / "init.py").write_bytes(init)
    else:
        (root / "home").mkdir(parents=True)
    if first is not None:  # an earlier version installed and complete: the kill hits its upgrade
        plan_mod.apply(_plan(root, first, {"current": b"1"}), "1")


def _tree(root: Path) -> Dict[str, bytes]:
    """Every file and folder under root, the root's own path in their bytes made neutral."""
    out: Dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel + ("/" if path.is_dir() else "")] = b"" if path.is_dir() else \
            path.read_bytes().replace(str(root).encode(), b"ROOT")
    return out


def _run_killed(made: Plan, at: int) -> Tuple[int, int]:
    return run_killed(lambda: plan_mod.apply(made, "2"), at)


@functools.cache
def _expected(init: Optional[bytes], upgrade: bool) -> Tuple[Dict[str, bytes], Dict[str, bytes], int]:
    """For a scenario: the tree with nothing installed, the tree after a whole install, and how many changes the
    install makes (each a point the kill can hit)."""
    first = OLD if upgrade else None
    with tempfile.TemporaryDirectory() as tmp:
        bare, clean = Path(tmp, "bare"), Path(tmp, "clean")
        _setup(bare, init, None)
        _setup(clean, init, first)
        code, count = _run_killed(_plan(clean, NEW, {"current": b"2"}), at=10 ** 9)
        assert code == 0
        return _tree(bare), _tree(clean), count


def _check_kill(init: Optional[bytes], upgrade: bool, where: float) -> None:
    bare, installed, total = _expected(init, upgrade)
    at = 1 + round(where * (total - 1))
    first = OLD if upgrade else None
    with tempfile.TemporaryDirectory() as tmp:
        undo, redo = Path(tmp, "undo"), Path(tmp, "redo")
        for root in (undo, redo):
            _setup(root, init, first)

        assert _run_killed(_plan(undo, NEW, {"current": b"2"}), at) == (KILLED, at)
        _pointer_is_whole(undo, first)
        plan_mod.uninstall(undo / "share" / "deploy", "nuke")
        assert _tree(undo) == bare, f"killed at change {at} of {total}, then uninstalled"

        assert _run_killed(_plan(redo, NEW, {"current": b"2"}), at) == (KILLED, at)
        result = plan_mod.apply(_plan(redo, NEW, {"current": b"2"}), "2")
        assert result.repaired or at == 1  # killed before the journal: nothing to repair
        assert _tree(redo) == installed, f"killed at change {at} of {total}, then installed again"


def _pointer_is_whole(root: Path, first: Optional[Dict[str, bytes]]) -> None:
    """Whoever reads the pointer meanwhile finds the version it names whole: written only after every file."""
    pointer = root / "share" / "deploy" / "current"
    if pointer.exists() and pointer.read_bytes() == b"2":
        assert all((root / "share" / "deploy" / rel).read_bytes() == data for rel, data in NEW.items())
    elif first is not None:
        assert pointer.read_bytes() == b"1"


def test_the_install_has_many_points_to_kill() -> None:
    # mkdirs, temporaries, renames, removals, the backup, the edit, the journal, the pointer, the manifest
    assert _expected(INIT_FILES[3], True)[2] > 12


@settings(max_examples=8, deadline=None)
@example(init=None, upgrade=False, where=0.95)  # between the new init.py's temporary and its rename
@example(init=INIT_FILES[3], upgrade=True, where=0.5)
@given(init=st.sampled_from(INIT_FILES), upgrade=st.booleans(), where=st.floats(0, 1))
def test_install_killed_at_any_change_is_undone_or_finished(init: Optional[bytes], upgrade: bool,
                                                              where: float) -> None:
    _check_kill(init, upgrade, where)


def test_undeclared_latin1_init_py_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    _setup(tmp_path, b"# r\xe9glages\nimport nuke\n", None)
    before = _tree(tmp_path)
    with pytest.raises(InputError, match="coding line") as caught:
        plan_mod.apply(_plan(tmp_path, NEW, {}), "2")
    assert "init.py" in str(caught.value) and "nothing was written" in str(caught.value)
    assert _tree(tmp_path) == before


def test_block_the_declared_encoding_cannot_hold_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d\u00e9p\u00f4t \u65e5\u672c"  # a home folder name Latin-1 cannot spell
    root.mkdir()
    _setup(root, INIT_FILES[3], None)
    before = _tree(root)
    with pytest.raises(InputError, match="iso-8859-1, which cannot hold the Tether block"):
        plan_mod.apply(_plan(root, NEW, {}), "2")
    assert _tree(root) == before


def test_latin1_init_py_keeps_its_encoding_and_comes_back_byte_exact(tmp_path: Path) -> None:
    root = tmp_path / "r\u00e9pertoire"  # Latin-1 can spell it: the block is written in Latin-1 too
    root.mkdir()
    _setup(root, INIT_FILES[3], None)
    init = root / "home" / ".nuke" / "init.py"
    plan_mod.apply(_plan(root, NEW, {}), "2")
    data = init.read_bytes()
    assert data.startswith(INIT_FILES[3] or b"") and "r\u00e9pertoire".encode("latin-1") in data
    plan_mod.uninstall(root / "share" / "deploy", "nuke")
    assert init.read_bytes() == INIT_FILES[3]
    assert sorted(p.name for p in init.parent.iterdir()) == ["init.py"]  # the backup went with the block


def test_a_later_install_refreshes_the_backup(tmp_path: Path) -> None:
    _setup(tmp_path, b"first\n", None)
    init = tmp_path / "home" / ".nuke" / "init.py"
    target = tmp_path / "share" / "deploy"
    plan_mod.apply(_plan(tmp_path, NEW, {}), "2")
    plan_mod.uninstall(target, "nuke")
    init.write_bytes(b"second\n")  # the artist's file changes between installs
    plan_mod.apply(_plan(tmp_path, NEW, {}), "2")
    assert init.with_name("init.py.tether-backup").read_bytes() == b"second\n"
    init.write_bytes(init.read_bytes() + b"# added after the install\n")
    lines = plan_mod.uninstall(target, "nuke")
    assert any("kept" in line and "tether-backup" in line for line in lines)  # the only copy of "second": kept
    assert init.read_bytes() == b"second\n# added after the install\n"


def test_a_large_file_is_copied_a_chunk_at_a_time_journaled_and_undone(tmp_path: Path) -> None:
    """A studio deploy with the media wheels is ~2 GB: a file is hashed and copied in chunks, from a folder or from
    inside a wheel, never held whole (tracemalloc's peak stays far below its size); the journal and undo hold."""
    import hashlib
    import tracemalloc
    import zipfile

    size = 48 << 20
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big.so", "wb") as fh:
        fh.truncate(size)  # sparse: instant to make, read back as zeros
    wheel = tmp_path / "big-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("big/data.bin", "w", force_zip64=True) as fh:
        for _ in range(size >> 20):
            fh.write(bytes(1 << 20))
    target = tmp_path / "deploy"
    made = Plan("nuke", target)
    made.add_tree(src, Path(target / "python"))
    made.files[target / "python" / "data.bin"] = plan_mod.Content.members(wheel)("big/data.bin")
    tracemalloc.start()
    try:
        plan_mod.apply(made, "1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size // 8, f"{peak / 2**20:.1f} MiB held to install two {size >> 20} MiB files"
    zeros = hashlib.sha256(bytes(size)).hexdigest()
    manifest = plan_mod.load_manifest(target, "nuke")
    assert manifest is not None and manifest["state"] == "complete"
    assert manifest["files"] == {"python/big.so": zeros, "python/data.bin": zeros}
    assert all((target / "python" / name).stat().st_size == size for name in ("big.so", "data.bin"))
    # a source that changes after the journal recorded its digest is not installed as something else
    (target / "python" / "big.so").unlink()
    changed = Plan("nuke", target)
    changed.add_tree(src, Path(target / "python"))
    assert plan_mod.digest_of(changed.files[target / "python" / "big.so"]) == zeros
    (src / "big.so").write_bytes(b"rebuilt")
    with pytest.raises(plan_mod.ConfigError, match="changed while it was being installed"):
        plan_mod.apply(changed, "2")
    assert not list((target / "python").glob("*.tether-tmp"))
    plan_mod.uninstall(target, "nuke")
    assert not target.exists() or not any(target.rglob("*.so"))


def _open_by_us(path: Path) -> int:
    """How many of this process's file descriptors are ``path`` (Linux's /proc)."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in os.listdir(fds) if os.path.realpath(fds / fd) == str(path.resolve()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="open files are counted in /proc")
def test_a_plan_closes_its_wheels_and_removes_their_folder_when_it_is_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel's members share one open archive while the plan is applied; closing the plan (``with plan:``, as
    `tether install` does) closes it and removes the temporary folder the wheel was in, there and then: nothing is
    left for the garbage collector to close (ResourceWarning an error, an unraisable one caught too)."""
    import gc
    import sys
    import warnings
    import zipfile

    gc.collect()  # what earlier tests in this process left is not this test's
    unraisable: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        keep = tempfile.TemporaryDirectory(prefix="tether-test-wheels-")
        wheel = Path(keep.name) / "small-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for i in range(3):
                zf.writestr(f"small/m{i}.py", f"x = {i}\n")
        member = plan_mod.Content.members(wheel, keep)
        target = tmp_path / "deploy"
        with Plan("nuke", target) as made:
            for i in range(3):
                made.files[target / "python" / f"m{i}.py"] = member(f"small/m{i}.py")
            plan_mod.apply(made, "1")
            assert _open_by_us(wheel) == 1  # one archive for all its members, open while the plan is
        assert _open_by_us(wheel) == 0 and not Path(keep.name).exists()
        assert (target / "python" / "m2.py").read_text() == "x = 2\n"
        made.close()  # again: nothing more to do
        folder = keep.name
        del made, member, keep
        gc.collect()
    ours = [u for u in unraisable if folder in repr(u.object) or folder in str(u.exc_value)
            or isinstance(u.object, (zipfile.ZipFile, tempfile.TemporaryDirectory))]
    assert ours == []
