"""What an install writes, and the manifest that makes it idempotent, reviewable (dry run) and reversible.

An install is computed first as a :class:`Plan` (every file's bytes, plus marked-block edits to files the user
owns), then applied. The manifest, ``<target>/.tether-install/<component>.json``, lists every file written with
its SHA-256 and every edit; it is saved as ``incomplete`` before the first write and ``complete`` after the last,
so an interrupted install is seen (and repaired) by the next run, and ``--uninstall`` removes exactly what is listed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from tether.errors import ConfigError, InputError
from tether.fileio import write_text_atomic

MANIFEST_DIR = ".tether-install"
BEGIN = "# >>> tether: managed by `tether install`; remove with `tether install {dcc} --user --uninstall` >>>"
END = "# <<< tether <<<"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> Optional[str]:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


@dataclass
class Edit:
    """A marked block appended to a file the user owns (``~/.nuke/init.py``); their bytes are never rewritten."""

    path: Path
    block: str  # the whole block, BEGIN..END, without surrounding newlines


@dataclass
class Plan:
    component: str
    target: Path
    files: Dict[Path, bytes] = field(default_factory=dict)
    edits: List[Edit] = field(default_factory=list)
    # run after files are written (e.g. Blender's own installer); returns extra files it created to record
    after: List[Callable[[], List[Path]]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def add_tree(self, src: Path, dest: Path, skip: Callable[[Path], bool] = lambda p: False) -> None:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc" and not skip(rel):
                self.files[dest / rel] = path.read_bytes()


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


def _save_manifest(target: Path, component: str, data: Dict[str, object]) -> None:
    write_text_atomic(manifest_path(target, component), json.dumps(data, indent=1, sort_keys=True) + "\n")


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
    for path, data in sorted(plan.files.items()):
        now = file_sha(path)
        if now != sha256(data):
            lines.append(f"{'write ' if now is None else 'update'} {path}")
    for edit in plan.edits:
        current = _read_text_exact(edit.path)
        if current is None or apply_block(current, edit.block) != current:
            lines.append(f"edit   {edit.path} (the marked Tether block; backup {edit.path}.tether-backup)")
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
    keep = {_rel(plan.target, p) for p in plan.files}
    return [_abs(plan.target, k) for k in sorted(old) if k not in keep and not manifest.get("external", {}).get(k)]


def apply(plan: Plan, version: str) -> Result:
    result = Result()
    manifest = load_manifest(plan.target, plan.component)
    if manifest is not None and manifest.get("state") != "complete":
        result.repaired = True
    old_files = dict(manifest.get("files", {})) if manifest else {}
    stale = _stale(plan, manifest)
    record: Dict[str, object] = {"component": plan.component, "version": version, "state": "incomplete",
                                 "files": dict(old_files), "edits": list(manifest.get("edits", [])) if manifest
                                 else [], "external": dict(manifest.get("external", {})) if manifest else {}}
    check_writable(plan.target)
    _save_manifest(plan.target, plan.component, record)
    files: Dict[str, str] = record["files"]  # type: ignore[assignment]
    created: List[str] = list(manifest.get("dirs", [])) if manifest else []
    for path, data in sorted(plan.files.items()):
        digest = sha256(data)
        key = _rel(plan.target, path)
        if file_sha(path) == digest:
            result.unchanged += 1
        else:
            if key in old_files and file_sha(path) is None:
                result.repaired = True
            _note_new_dirs(path.parent, created)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tether-tmp")
            tmp.write_bytes(data)
            if os.name != "nt" and path.suffix in (".so", ".sh"):
                tmp.chmod(0o755)
            os.replace(tmp, path)
            result.changed.append(f"wrote {path}")
        files[key] = digest
    for path in stale:
        _remove_file(path, plan.target)
        files.pop(_rel(plan.target, path), None)
        result.changed.append(f"removed {path}")
    edits: List[Dict[str, str]] = []
    for edit in plan.edits:
        current = _read_text_exact(edit.path)
        new = apply_block(current, edit.block)
        backup = edit.path.with_name(edit.path.name + ".tether-backup")
        if new != current:
            check_writable(edit.path.parent)
            edit.path.parent.mkdir(parents=True, exist_ok=True)
            if current is not None and not backup.exists():
                shutil.copy2(edit.path, backup)
            _write_text_exact(edit.path, new)
            result.changed.append(f"edited {edit.path}")
        edits.append({"path": str(edit.path), "begin": edit.block.splitlines()[0],
                      "created": "yes" if current is None else _was_created(manifest, edit.path),
                      "backup": str(backup) if backup.exists() else ""})
    record["edits"] = edits
    external: Dict[str, bool] = record["external"]  # type: ignore[assignment]
    for step in plan.after:
        for path in step():
            key = str(path)
            if path.is_file():
                files[key] = file_sha(path) or ""
                external[key] = True
    record["dirs"] = sorted(set(created))
    record["state"] = "complete"
    _save_manifest(plan.target, plan.component, record)  # same content on a no-op run: same bytes
    return result


def _note_new_dirs(folder: Path, created: List[str]) -> None:
    """Folders outside the target that the install makes (Blender's extensions/...): uninstall removes them."""
    while not folder.exists():
        created.append(str(folder))
        folder = folder.parent


def _was_created(manifest: Optional[Dict[str, Any]], path: Path) -> str:
    for edit in (manifest or {}).get("edits", []) or []:
        if edit.get("path") == str(path):
            return str(edit.get("created", "no"))
    return "no"


def _read_text_exact(path: Path) -> Optional[str]:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _write_text_exact(path: Path, text: str) -> None:
    # newline="" keeps the user's own line endings (CRLF on Windows) as they were
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _remove_file(path: Path, stop: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
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
    """Remove what the manifest lists; a file changed since the install is kept and reported."""
    manifest = load_manifest(target, component)
    if manifest is None:
        return []
    lines: List[str] = []
    files = manifest.get("files", {})
    assert isinstance(files, dict)
    for key, digest in sorted(files.items()):
        path = _abs(target, key)
        now = file_sha(path)
        if now is None:
            continue
        if digest and now != digest:
            lines.append(f"kept   {path} (changed since the install)")
            continue
        lines.append(f"remove {path}")
        if not dry_run:
            _remove_file(path, target if target in path.parents else path.parent)
    for edit in manifest.get("edits", []) or []:
        path = Path(edit["path"])
        if not path.is_file():
            continue
        text = _read_text_exact(path) or ""
        new = remove_block(text, edit["begin"])
        if edit.get("created") == "yes" and new == "":
            lines.append(f"remove {path} (only held the Tether block)")
            if not dry_run:
                path.unlink()
        elif new != text:
            lines.append(f"edit   {path} (remove the Tether block)")
            if not dry_run:
                _write_text_exact(path, new)
    for folder in sorted(manifest.get("dirs", []) or [], key=len, reverse=True):
        path = Path(folder)
        if path.is_dir() and not any(path.iterdir()) and target not in path.parents:
            lines.append(f"remove {path}/")
            if not dry_run:
                path.rmdir()
    mpath = manifest_path(target, component)
    lines.append(f"remove {mpath}")
    if not dry_run:
        mpath.unlink()
        for folder in (mpath.parent, target):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return lines
