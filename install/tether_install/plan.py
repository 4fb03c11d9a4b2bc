"""What an install writes, and the manifest that makes it idempotent, reviewable (dry run) and reversible.

An install is computed first as a :class:`Plan` (every file's bytes, plus marked-block edits to files the user
owns), then applied. The manifest, ``<target>/.tether-install/<component>.json``, lists every file written with
its SHA-256 and every edit; it is saved as ``incomplete`` before the first write and ``complete`` after the last,
so an interrupted install is seen (and repaired) by the next run, and ``--uninstall`` removes exactly what is listed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import tokenize
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, ContextManager, Dict, List, Optional, Tuple, Union

from tether.errors import ConfigError, InputError
from tether.fileio import write_text_atomic

MANIFEST_DIR = ".tether-install"
BEGIN = "# >>> tether: managed by `tether install`; remove with `tether install {dcc} --user --uninstall` >>>"
END = "# <<< tether <<<"


CHUNK = 1 << 20  # what a copy or a hash holds at once


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stream_sha(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha(path: Path) -> Optional[str]:
    try:
        with open(path, "rb") as stream:
            return _stream_sha(stream)
    except OSError:
        return None


class _Archive:
    """A zip opened on first use and shared by its members' contents (its central directory read once, not once per
    member) until :meth:`close`; read again after, it opens again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: Optional[zipfile.ZipFile] = None

    def open(self, name: str) -> IO[bytes]:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip.open(name)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


class Content:
    """A file to install, read only while it is hashed or copied: a studio deploy with the media wheels is ~2 GB,
    never held in memory whole. A file on disk (:meth:`file`) or a member of a zip, as a wheel's (:meth:`members`);
    small generated files stay plain ``bytes`` in a :class:`Plan`. ``keep`` is the temporary folder its file lives in,
    held as long as the content is and removed when its plan is closed (:meth:`Plan.close`)."""

    def __init__(self, opener: Callable[[], ContextManager[IO[bytes]]], label: str,
                 keep: Optional[tempfile.TemporaryDirectory[str]] = None, archive: Optional[_Archive] = None) -> None:
        self._opener, self.label, self.keep, self._archive = opener, label, keep, archive
        self._digest: Optional[str] = None

    @classmethod
    def file(cls, path: Path, keep: Optional[tempfile.TemporaryDirectory[str]] = None) -> Content:
        return cls(lambda: open(path, "rb"), str(path), keep)

    @classmethod
    def members(cls, archive: Path, keep: Optional[tempfile.TemporaryDirectory[str]] = None
                ) -> Callable[[str], Content]:
        """The contents of the zip ``archive`` by member name, sharing one open archive until they are closed."""
        shared = _Archive(archive)

        def member(name: str) -> Content:
            return cls(lambda: shared.open(name), f"{archive.name}:{name}", keep, shared)

        return member

    def open(self) -> ContextManager[IO[bytes]]:
        return self._opener()

    def close(self) -> None:
        """Close the archive it is read from (shared with the other members of its zip; opened again if read)."""
        if self._archive is not None:
            self._archive.close()

    @property
    def digest(self) -> str:
        """Its SHA-256, streamed once and kept (the journal records it before the first write)."""
        if self._digest is None:
            with self.open() as stream:
                self._digest = _stream_sha(stream)
        return self._digest


Data = Union[bytes, Content]


def digest_of(data: Data) -> str:
    return data.digest if isinstance(data, Content) else sha256(data)


def _open(data: Data) -> ContextManager[IO[bytes]]:
    return data.open() if isinstance(data, Content) else io.BytesIO(data)


@dataclass
class Edit:
    """A marked block appended to a file the user owns (``~/.nuke/init.py``); their bytes are never rewritten."""

    path: Path
    block: str  # the whole block, BEGIN..END, without surrounding newlines


@dataclass
class Plan:
    component: str
    target: Path
    files: Dict[Path, Data] = field(default_factory=dict)
    edits: List[Edit] = field(default_factory=list)
    # written after every other file: what makes the new files live (a "current" pointer, a repository index)
    last: Dict[Path, Data] = field(default_factory=dict)
    # run after files are written (e.g. Blender's own installer); returns extra files it created to record
    after: List[Callable[[], List[Path]]] = field(default_factory=list)
    # folders an ``after`` step fills, recorded before it runs: uninstall removes them whole
    trees: List[Path] = field(default_factory=list)
    # files a previous install recorded that this one keeps although it does not write them (other versions)
    keep: Callable[[str], bool] = lambda key: False
    # saved into the manifest when the install completes (the versions a share holds)
    record: Dict[str, Any] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def close(self) -> None:
        """Done with the plan: the archives its contents read from are closed and the temporary folders they were
        held in removed, now rather than whenever the garbage collector gets to them (``with plan:`` closes it)."""
        keeps: List[tempfile.TemporaryDirectory[str]] = []
        for data in [*self.files.values(), *self.last.values()]:
            if isinstance(data, Content):
                data.close()
                if data.keep is not None and all(data.keep is not k for k in keeps):
                    keeps.append(data.keep)
        for keep in keeps:
            keep.cleanup()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_tree(self, src: Path, dest: Path, skip: Callable[[Path], bool] = lambda p: False) -> None:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc" and not skip(rel):
                self.files[dest / rel] = Content.file(path)


def manifest_path(target: Path, component: str) -> Path:
    return target / MANIFEST_DIR / f"{component}.json"


def load_manifest(target: Path, component: str) -> Optional[Dict[str, Any]]:
    path = manifest_path(target, component)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the install manifest {path} is unreadable ({exc}): delete it and install again") from None
    return data if isinstance(data, dict) else None


def save_manifest(target: Path, component: str, data: Dict[str, object]) -> None:
    write_text_atomic(manifest_path(target, component), json.dumps(data, indent=1, sort_keys=True) + "\n")


def set_pointer(target: Path, manifest: Dict[str, Any], data: bytes, key: str = "current") -> None:
    """Rewrite one recorded file (a "current" pointer) in one rename, the manifest journaling both contents first."""
    files = dict(manifest.get("files", {}))
    save_manifest(target, manifest["component"], {**manifest, "files": {**files, key: sha256(data)},
                                                  "previous": {**manifest.get("previous", {}), key: files.get(key)}})
    _write_file(target / key, data, True)
    manifest["files"] = {**files, key: sha256(data)}
    manifest["previous"] = {}


def check_writable(folder: Path) -> None:
    """A clear error before anything is written, naming the folder that refuses writes."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{folder} is not writable (checked {probe}): choose another folder, or ask for write "
                         "access to it")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".tether-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{folder} is not writable ({exc}): choose another folder") from None


# --- marked blocks --------------------------------------------------------------------------------------------------
NO_NEWLINE = "# tether: the line above had no newline at the end of the file"


def _find_block(text: str, begin: str) -> Optional[Tuple[int, int]]:
    """(start, stop) of an existing block, stop past its closing line's newline; None when absent."""
    start = text.find(begin)
    if start < 0:
        return None
    end = text.find(END, start)
    if end < 0:
        raise ConfigError(f"a Tether block starts but never ends (no {END!r} line): fix the file by hand")
    stop = end + len(END)
    return start, stop + 1 if text[stop:stop + 1] == "\n" else stop


def apply_block(original: Optional[str], block: str) -> str:
    """The file with ``block``: replaced in place when present, else appended after one separator that
    :func:`remove_block` takes away again, so the user's bytes come back exactly."""
    base = original or ""
    found = _find_block(base, block.splitlines()[0])
    if found is not None:
        return base[:found[0]] + block + "\n" + base[found[1]:]
    if base == "":
        return block + "\n"
    sep = "\n" if base.endswith("\n") else "\n" + NO_NEWLINE + "\n"
    return base + sep + block + "\n"


def remove_block(text: str, begin: str) -> str:
    found = _find_block(text, begin)
    if found is None:
        return text
    before, after = text[:found[0]], text[found[1]:]
    tail = "\n" + NO_NEWLINE + "\n"
    if before.endswith(tail):
        before = before[:-len(tail)]
    elif before.endswith("\n"):
        before = before[:-1]
    return before + after


# --- applying ---------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    changed: List[str] = field(default_factory=list)
    unchanged: int = 0
    repaired: bool = False


def _rel(target: Path, path: Path) -> str:
    try:
        return path.relative_to(target).as_posix()
    except ValueError:
        return str(path)


def _abs(target: Path, key: str) -> Path:
    path = Path(key)
    return path if path.is_absolute() else target / path


def describe(plan: Plan) -> List[str]:
    """Every change the plan would make, one line each (the dry run)."""
    lines: List[str] = []
    for path, data in sorted(plan.files.items()) + sorted(plan.last.items()):
        now = file_sha(path)
        if now != digest_of(data):
            lines.append(f"{'write ' if now is None else 'update'} {path}")
    for edit in plan.edits:
        current = read_source(edit.path)
        if current is None or apply_block(current.text, edit.block) != current.text:
            lines.append(f"edit   {edit.path} (the marked Tether block; backup {backup_path(edit.path)})")
    manifest = load_manifest(plan.target, plan.component)
    if lines or manifest is None or manifest.get("state") != "complete":
        lines.append(f"write  {manifest_path(plan.target, plan.component)}")
    for path in _stale(plan, manifest):
        lines.append(f"remove {path} (left by the previous install)")
    return lines


def _stale(plan: Plan, manifest: Optional[Dict[str, Any]]) -> List[Path]:
    if not manifest:
        return []
    old = manifest.get("files", {})
    assert isinstance(old, dict)
    keep = {_rel(plan.target, p) for p in list(plan.files) + list(plan.last)}
    return [_abs(plan.target, k) for k in sorted(old) if k not in keep and not plan.keep(k)
            and not manifest.get("external", {}).get(k)]


# Called with what is about to be done before every change on disk. Tests stop the install there as a kill -9 would
# (tests/test_install.py); nothing else sets it.
def before_change(what: str) -> None:
    del what


@dataclass
class _Edit:
    edit: Edit
    current: Optional[Source]
    new: bytes


def _prepare_edits(plan: Plan) -> List[_Edit]:
    """Every edit decided (read, decoded, encoded) before anything is written: a file that cannot take the block is
    refused in words with nothing changed."""
    out: List[_Edit] = []
    for edit in plan.edits:
        current = read_source(edit.path)
        text = apply_block(current.text if current else None, edit.block)
        encoding = current.encoding if current else "utf-8"
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError as exc:
            raise InputError(f"{edit.path} is written in {encoding}, which cannot hold the Tether block "
                             f"({text[exc.start:exc.end]!r} in its paths): save the file as UTF-8 (and change its "
                             "coding line), or install to a folder whose path it can hold; nothing was written") \
                from None
        check_writable(edit.path.parent)
        out.append(_Edit(edit, current, data))
    return out


def _new_dirs(paths: List[Path]) -> List[str]:
    """Folders the install will make (each file's missing parents, the target's own too), outermost first."""
    made: Dict[str, None] = {}
    for path in paths:
        folder = path.parent
        chain: List[str] = []
        while not folder.exists() and folder != folder.parent:
            chain.append(str(folder))
            folder = folder.parent
        for name in reversed(chain):
            made.setdefault(name, None)
    return list(made)


def apply(plan: Plan, version: str) -> Result:
    """Journal, then act: the manifest lists every file, folder and edit this run may touch (with the digests it may
    find them at) before the first of them is changed, so a run killed at any point is undone by ``--uninstall`` or
    finished by the next run. ``plan.last`` (a "current" pointer, an index) is written only after everything else."""
    result = Result()
    manifest = load_manifest(plan.target, plan.component)
    if manifest is not None and manifest.get("state") != "complete":
        result.repaired = True
    check_writable(plan.target)
    edits = _prepare_edits(plan)
    old_files: Dict[str, str] = dict(manifest.get("files", {})) if manifest else {}
    stale = _stale(plan, manifest)
    everything = {**plan.files, **plan.last}
    planned = {_rel(plan.target, path): digest_of(data) for path, data in everything.items()}
    # what each file may be found at after a kill: the new content, or what the previous install left there
    previous = dict(manifest.get("previous", {})) if manifest else {}
    for key, digest in planned.items():
        if old_files.get(key) not in (None, digest):
            previous[key] = old_files[key]
    created = list(manifest.get("dirs", [])) if manifest else []
    # folders inside the target go with their files; the target and folders outside it are recorded
    created += [d for d in _new_dirs([plan.target / "x", *everything, *(e.edit.path for e in edits)])
                if d not in created and (d == str(plan.target) or plan.target not in Path(d).parents)]
    record: Dict[str, Any] = {
        "component": plan.component, "version": version, "state": "incomplete", "files": {**old_files, **planned},
        "previous": previous, "dirs": created, "external": dict(manifest.get("external", {})) if manifest else {},
        "edits": _merge_edits(manifest, edits), "trees": sorted(set((manifest or {}).get("trees", []))
                                                                | {str(t) for t in plan.trees})}
    for name, value in ((manifest or {}).items()):
        record.setdefault(name, value)  # what a component keeps of its own (builds, history)
    before_change("journal")
    save_manifest(plan.target, plan.component, record)
    if result.repaired:
        _drop_temporaries(plan.target, record["files"])
    for path, data in sorted(plan.files.items()) + sorted(plan.last.items()):
        missing = _rel(plan.target, path) in old_files and not path.exists()
        if _write_file(path, data, plan.target in path.parents):
            result.repaired |= missing
            result.changed.append(f"wrote {path}")
        else:
            result.unchanged += 1
    files: Dict[str, str] = record["files"]
    for path in stale:
        before_change(f"remove {path}")
        _remove_file(path, plan.target)
        files.pop(_rel(plan.target, path), None)
        result.changed.append(f"removed {path}")
    for prepared in edits:
        if _apply_edit(prepared):
            result.changed.append(f"edited {prepared.edit.path}")
    external: Dict[str, bool] = record["external"]
    for step in plan.after:
        before_change("run an installer")
        for path in step():
            key = str(path)
            if path.is_file():
                files[key] = file_sha(path) or ""
                external[key] = True
    record.update(plan.record)
    record["edits"] = [{**e, "backup": e["backup"] if Path(e["backup"]).exists() else ""} for e in record["edits"]]
    record["dirs"] = [d for d in created if Path(d).exists()]
    record["previous"] = {}
    record["state"] = "complete"
    before_change("complete")
    save_manifest(plan.target, plan.component, record)  # same content on a no-op run: same bytes
    return result


def _write_file(path: Path, data: Data, inside: bool) -> bool:
    """Write through a temporary name and rename, so the file is whole or absent; False when already right. The
    bytes are copied a chunk at a time and hashed on the way: what lands must be what the journal recorded."""
    want = digest_of(data)
    if file_sha(path) == want:
        return False
    if not path.parent.is_dir():
        before_change(f"mkdir {path.parent}")
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary(path)
    before_change(f"write {tmp}")
    digest = hashlib.sha256()
    with _open(data) as source, open(tmp, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != want:
        tmp.unlink()
        raise ConfigError(f"{getattr(data, 'label', path)} changed while it was being installed to {path}: run the "
                          "install again")
    if os.name != "nt" and path.suffix in (".so", ".sh"):
        tmp.chmod(0o755)
    elif not inside and path.exists():
        shutil.copymode(path, tmp)  # a user's own file keeps its permissions
    before_change(f"rename {path}")
    os.replace(tmp, path)
    return True


def temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tether-tmp")


def _drop_temporaries(target: Path, files: Dict[str, str]) -> None:
    """Half-written temporaries a killed run left beside the files it was writing."""
    for key in files:
        tmp = temporary(_abs(target, key))
        if tmp.exists():
            before_change(f"remove {tmp}")
            tmp.unlink()


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".tether-backup")


def _merge_edits(manifest: Optional[Dict[str, Any]], edits: List[_Edit]) -> List[Dict[str, str]]:
    out: List[Dict[str, str]] = []
    for prepared in edits:
        path = prepared.edit.path
        earlier: Dict[str, Any] = next((e for e in (manifest or {}).get("edits", []) or []
                                        if e.get("path") == str(path)), {})
        created = "yes" if prepared.current is None else str(earlier.get("created", "no"))
        out.append({"path": str(path), "begin": prepared.edit.block.splitlines()[0], "created": created,
                    "backup": str(backup_path(path))})
    return out


def _apply_edit(prepared: _Edit) -> bool:
    path, current = prepared.edit.path, prepared.current
    if current is not None and current.data == prepared.new:
        return False
    begin = prepared.edit.block.splitlines()[0]
    if current is not None and _find_block(current.text, begin) is None:
        # the file as it was before Tether touched it (refreshed by every install that adds the block again)
        _write_file(backup_path(path), current.data, False)
    if not path.parent.is_dir():
        before_change(f"mkdir {path.parent}")
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_file(path, prepared.new, False)
    return True


@dataclass
class Source:
    """A Python file the user owns, as bytes and as text in its declared encoding (PEP 263: BOM or coding line)."""

    data: bytes
    text: str
    encoding: str


def read_source(path: Path) -> Optional[Source]:
    if not path.is_file():
        return None
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return Source(data, data.decode(encoding), encoding)  # bytes.decode keeps CRLF and a missing final newline
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} cannot be read as Python source ({exc}): save it as UTF-8, or give it a coding line "
                         "naming its encoding (# -*- coding: latin-1 -*-); nothing was written") from None


def _remove_file(path: Path, stop: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(FileNotFoundError):
        temporary(path).unlink()
    if path.suffix == ".py":  # bytecode Python wrote beside a module we installed goes with it
        cache = path.parent / "__pycache__"
        for pyc in cache.glob(path.stem + ".*.pyc"):
            pyc.unlink()
        with contextlib.suppress(OSError):
            cache.rmdir()
    parent = path.parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()  # only when empty: a folder the user put files in stays
        except OSError:
            break
        parent = parent.parent


def uninstall(target: Path, component: str, dry_run: bool = False) -> List[str]:
    """Remove what the manifest lists, finished or not; a file changed since the install is kept and reported."""
    manifest = load_manifest(target, component)
    if manifest is None:
        return []
    lines: List[str] = []
    files = manifest.get("files", {})
    previous = manifest.get("previous", {}) or {}
    assert isinstance(files, dict)
    for key, digest in sorted(files.items()):
        path = _abs(target, key)
        now = file_sha(path)
        if now is None:  # never written (a killed install): its temporary and the folders made for it go
            if not dry_run:
                _remove_file(path, target if target in path.parents else path.parent)
            continue
        if digest and now not in (digest, previous.get(key)):
            lines.append(f"kept   {path} (changed since the install)")
            continue
        lines.append(f"remove {path}")
        if not dry_run:
            _remove_file(path, target if target in path.parents else path.parent)
    for tree in manifest.get("trees", []) or []:
        if Path(tree).is_dir():
            lines.append(f"remove {tree}/ (unpacked by Blender's installer)")
            if not dry_run:
                shutil.rmtree(tree)
    for edit in manifest.get("edits", []) or []:
        lines += _undo_edit(edit, dry_run)
    mpath = manifest_path(target, component)
    lines.append(f"remove {mpath}")
    if not dry_run:
        mpath.unlink()
        for leftover in mpath.parent.glob(f".{mpath.name}.*.tmp"):  # a save a kill interrupted
            leftover.unlink()
        with contextlib.suppress(OSError):
            mpath.parent.rmdir()
    for folder in sorted(set(manifest.get("dirs", []) or []) | {str(target)}, key=len, reverse=True):
        path = Path(folder)
        if path.is_dir() and not any(path.iterdir()) and (path == target or target not in path.parents):
            lines.append(f"remove {path}/")
            if not dry_run:
                path.rmdir()
    return lines


def _undo_edit(edit: Dict[str, str], dry_run: bool) -> List[str]:
    path = Path(edit["path"])
    backup = Path(edit["backup"]) if edit.get("backup") else backup_path(path)
    if not dry_run:
        for tmp in (temporary(path), temporary(backup)):  # left by an install killed while writing them
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    current = read_source(path)
    lines: List[str] = []
    if current is not None:
        new = remove_block(current.text, edit["begin"]).encode(current.encoding)
        if edit.get("created") == "yes" and new in (b"", "".encode(current.encoding)):
            lines.append(f"remove {path} (only held the Tether block)")
            if not dry_run:
                path.unlink()
        elif new != current.data:
            lines.append(f"edit   {path} (remove the Tether block)")
            if not dry_run:
                _write_file(path, new, False)
        current = Source(new, "", current.encoding)
    if backup.is_file():
        if current is None or backup.read_bytes() == current.data:
            lines.append(f"remove {backup} (the file is back as it was)")
            if not dry_run:
                backup.unlink()
        else:
            lines.append(f"kept   {backup} (the file as it was before Tether; it has changed since)")
    return lines
