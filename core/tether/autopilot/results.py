"""Autopilot results on disk: unpack a download (zip or loose file) safely, then say what each file is.

The vendor has not published its output formats, so files are recognised by extension, folder name and content,
never assumed: mattes (PNG or EXR sequences), a camera (.chan, .fbx, .json, .nk), depth (JPG sequence or a movie),
motion vectors (EXR, from ``smart_vectors``/``exr``). Whatever is not understood is listed in ``unknown`` and
named to the user rather than dropped silently.

Unpacking refuses any zip entry that would land outside the target folder (absolute paths, ``..``, drive letters,
symlinks): a hostile or broken archive cannot write anywhere else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from ..errors import TransferError
from ..media import FileSequence, group_files, is_movie

# the export type a result came from, as a hint where a file's kind is ambiguous (EXR: matte or vectors)
MATTE_EXPORTS = frozenset({"hard_mattes", "mb_mattes"})
DEPTH_EXPORTS = frozenset({"jpg", "mov"})
CAMERA_EXTS = frozenset({".chan", ".fbx", ".nk", ".abc", ".usd", ".usda"})
MAX_UNPACKED_BYTES = 64 * 1024**3


Item = Union[FileSequence, Path]


@dataclass
class ResultFiles:
    """A finished job's files, sorted by what they are: what the command prints and what the Nuke import builds its
    nodes from (:func:`tether.nukeimport.describe_import`). ``unknown`` holds what was not understood, with the
    reason. Mattes and depth are sequences (:class:`tether.media.FileSequence`) or loose files."""

    root: Optional[Path] = None
    mattes: List[Item] = field(default_factory=list)
    cameras: List[Path] = field(default_factory=list)
    depth: List[Item] = field(default_factory=list)
    vectors: List[FileSequence] = field(default_factory=list)
    unknown: List[Tuple[Path, str]] = field(default_factory=list)
    # export type -> folder it was unpacked into
    exports: Dict[str, Path] = field(default_factory=dict)
    # the plate's frame number of the service's output frame 1 (recorded at submit)
    first_frame: Optional[int] = None

    @classmethod
    def from_folder(cls, folder: Path, export_type: Optional[str] = None) -> ResultFiles:
        """Classify a folder of results (when no classification was kept)."""
        return classify_folder(Path(folder), export_type)

    @classmethod
    def from_classified(cls, classified: Any) -> ResultFiles:
        """A :class:`ResultFiles` as it is; a mapping or object with ``mattes``/``cameras`` (or ``camera``)/
        ``depth``/``unknown`` (or ``other``) lists of paths or sequences, as one."""
        if isinstance(classified, ResultFiles):
            return classified

        def items(*names: str) -> List[Any]:
            for name in names:
                value = classified.get(name) if isinstance(classified, dict) else getattr(classified, name, None)
                if value is not None:
                    return [value] if isinstance(value, (str, Path)) or hasattr(value, "files") else list(value)
            return []

        def path(item: Any) -> Any:
            return item if hasattr(item, "files") else Path(str(getattr(item, "path", item)))

        unknown = [(Path(u[0]), str(u[1])) if isinstance(u, tuple) else (Path(str(u)), "") for u in
                   items("unknown", "other")]
        return cls(mattes=[path(i) for i in items("mattes")], depth=[path(i) for i in items("depth")],
                   cameras=[Path(str(i)) for i in items("cameras", "camera")], unknown=unknown)

    @staticmethod
    def paths(items: List[Item]) -> List[Path]:
        """Every file of ``items``, sequences opened into their frames."""
        out: List[Path] = []
        for item in items:
            out.extend(item.files if isinstance(item, FileSequence) else [item])
        return out

    def __bool__(self) -> bool:
        """Holds something to import (mattes, a camera or depth)."""
        return bool(self.mattes or self.cameras or self.depth)

    def merge(self, other: ResultFiles) -> None:
        self.mattes += other.mattes
        self.cameras += other.cameras
        self.depth += other.depth
        self.vectors += other.vectors
        self.unknown += other.unknown
        self.exports.update(other.exports)

    def summary(self) -> str:
        parts = []
        for name, items in (("matte sequences", self.mattes), ("cameras", self.cameras), ("depth", self.depth),
                            ("vector sequences", self.vectors)):
            if items:
                parts.append(f"{len(items)} {name}")
        text = ", ".join(parts) or "nothing usable"
        if self.unknown:
            text += "; not understood: " + "; ".join(f"{p.name} ({why})" for p, why in self.unknown)
        return text


# --- unpacking ----------------------------------------------------------------------------------------------------
def _member_path(name: str, dest: Path) -> Path:
    """Where zip entry ``name`` unpacks to inside ``dest``; refused when it would land outside (absolute, ``..``, a
    drive, a NUL). Lexical checks are enough because ``dest`` is a fresh folder: nothing in it can be a symlink that
    Tether did not make, and Tether makes none."""
    if "\x00" in name:
        raise TransferError(f"refused zip entry {name!r}: its name holds a NUL byte")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or re.match(r"^[A-Za-z]:", name) or any(part == ".." for part in posix.parts):
        raise TransferError(f"refused zip entry {name!r}: it would write outside {dest}")
    parts = [p for p in posix.parts if p not in ("", ".")]
    return dest.joinpath(*parts) if parts else dest


def unpack_zip(archive: Path, dest: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> List[Path]:
    """Extract ``archive`` into ``dest``, a new or empty folder, checking every entry before anything is written.

    Entries are written straight to their names, without a temporary name and a rename each: a half-written file
    can only be in this fresh folder, which :func:`unpack_into` swaps in only once everything is written. Hidden
    entries (``.DS_Store``, ``._x`` from macOS, ``.git/...``) are left out: no result is one.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"unpack_zip needs a new or empty folder, and {dest} has files: use unpack_into")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise TransferError(f"{archive.name} is not a readable zip ({exc})") from None
    with zf:
        plan: List[Tuple[zipfile.ZipInfo, Path]] = []
        total = 0
        for info in zf.infolist():
            target = _member_path(info.filename, dest)
            if any(part.startswith(".") for part in target.relative_to(dest).parts):
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise TransferError(f"refused zip entry {info.filename!r}: symbolic links are not unpacked")
            total += info.file_size
            if total > max_bytes:
                raise TransferError(f"{archive.name} unpacks to more than {max_bytes} bytes; refused")
            plan.append((info, target))
        written: List[Path] = []
        made: Set[Path] = {dest}
        for info, target in plan:
            folder = target if info.is_dir() else target.parent
            if folder not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(folder)
            if info.is_dir():
                continue
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
            written.append(target)
    return written


def unpack(download: Path, dest: Path, *, keep_archive: bool = False) -> List[Path]:
    """A zip is extracted into ``dest`` (new or empty); a loose file is moved there. Returns the files."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(download):
        files = unpack_zip(download, dest)
        if not keep_archive:
            download.unlink()
        return files
    target = dest / download.name
    if download.resolve() != target.resolve():
        os.replace(download, target)
    return [target]


def unpack_into(download: Path, folder: Path) -> List[Path]:
    """:func:`unpack` ``download`` into a hidden sibling of ``folder``, then swap it in whole: ``folder`` holds the
    earlier result or the new one, never a half-written mix, at the cost of two renames rather than one a file."""
    fresh = folder.with_name(f".{folder.name}.unpacking")
    shutil.rmtree(fresh, ignore_errors=True)  # left by an interrupted run
    try:
        files = unpack(download, fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(fresh, folder)
    shutil.rmtree(old, ignore_errors=True)
    return [folder / f.relative_to(fresh) for f in files]


# --- classification -----------------------------------------------------------------------------------------------
def _looks_like_camera_json(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    text = json.dumps(data)[:20000].lower()
    return any(word in text for word in ("focal", "vfov", "translate", "rotation", "camera", "frames"))


def _nk_has_camera(path: Path) -> bool:
    try:
        return "camera" in path.read_text(encoding="utf-8", errors="replace")[:200000].lower()
    except OSError:
        return False


def _hint_of(path: Path, root: Path, export_type: Optional[str]) -> str:
    if export_type:
        return export_type
    parts = " ".join(p.lower() for p in path.relative_to(root).parts[:-1]) if root in path.parents else ""
    for word, hint in (("matte", "hard_mattes"), ("roto", "hard_mattes"), ("alpha", "hard_mattes"),
                       ("depth", "jpg"), ("vector", "exr"), ("motion", "exr"), ("track", "tracking"),
                       ("camera", "tracking")):
        if word in parts or word in path.name.lower():
            return hint
    return ""


def classify(files: List[Path], root: Path, export_type: Optional[str] = None) -> ResultFiles:
    """Sort ``files`` (under ``root``) into mattes, cameras, depth and vectors; name what was not understood."""
    out = ResultFiles(root=root)
    files = [f for f in files if not f.name.startswith(".") and f.name not in ("__MACOSX",)]
    seqs, singles = group_files(files)
    for seq in seqs:
        hint = _hint_of(seq.files[0], root, export_type)
        if seq.ext in (".png", ".tif", ".tiff") and hint not in DEPTH_EXPORTS:
            out.mattes.append(seq)
        elif seq.ext == ".exr":
            (out.mattes if hint in MATTE_EXPORTS else out.vectors).append(seq)
        elif seq.ext in (".jpg", ".jpeg"):
            if hint in MATTE_EXPORTS:
                out.mattes.append(seq)
            else:
                out.depth.append(seq)
        elif seq.ext in (".png", ".tif", ".tiff"):
            out.depth.append(seq)
        elif seq.ext in CAMERA_EXTS or seq.ext == ".json":
            singles.extend(seq.files)  # numbered camera files: treat each on its own
        else:
            out.unknown.extend((f, f"numbered {seq.ext} files are not a known result kind") for f in seq.files[:1])
    for path in singles:
        ext = path.suffix.lower()
        if ext in (".chan", ".fbx", ".abc", ".usd", ".usda"):
            out.cameras.append(path)
        elif ext == ".nk":
            if _nk_has_camera(path):
                out.cameras.append(path)
            else:
                out.unknown.append((path, "a Nuke script without a Camera node"))
        elif ext == ".json":
            if _looks_like_camera_json(path):
                out.cameras.append(path)
            else:
                out.unknown.append((path, "JSON that does not describe a camera"))
        elif is_movie(path):
            out.depth.append(path)
        elif ext == ".exr":
            (out.mattes if _hint_of(path, root, export_type) in MATTE_EXPORTS else out.vectors).append(
                FileSequence(folder=path.parent, head=path.stem, tail=path.suffix, padding=0, frames=[1],
                             files=[path]))
        elif ext in (".txt", ".log", ".md"):
            out.unknown.append((path, "a text file (read it: it may explain the result)"))
        else:
            out.unknown.append((path, f"unrecognised file type '{ext or path.name}'"))
    return out


def classify_folder(folder: Path, export_type: Optional[str] = None) -> ResultFiles:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".part"))
    return classify(files, folder, export_type)


def fetched_into(dest: Path, first_frame: Optional[int] = None) -> ResultFiles:
    """What ``AutopilotClient.fetch_results`` unpacked into ``dest`` (a folder per export type), read back without
    asking the service: results the agent downloaded are imported from where they came home."""
    out = ResultFiles(root=dest, first_frame=first_frame)
    for folder in sorted(p for p in Path(dest).iterdir() if p.is_dir() and not p.name.startswith(".")):
        part = classify_folder(folder, folder.name)
        part.exports[folder.name] = folder
        out.merge(part)
    return out


__all__ = ["FileSequence", "ResultFiles", "classify", "classify_folder", "fetched_into", "unpack", "unpack_into",
           "unpack_zip"]
