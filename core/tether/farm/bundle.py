"""The farm bundle: copies of the scene's .blend files rewritten so every path points inside one folder.

A remote farm runs none of our code and sees only what was uploaded, so the submitter decides the farm-side layout
(described in :mod:`tether.farm.models`) and rewrites copies of the .blend and of every linked library to match,
with blender-asset-tracer's own ``pack.Packer`` (the Blender Foundation's packer, Flamenco's too). Only the .blend
files are written (into a staging folder); every other file is uploaded from where it is, under its bundle name.
The user's scene file is never changed.
"""

from __future__ import annotations

import pathlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Dict, List, Optional, Tuple

from ..blend import Dependencies, check_blend, missing_name, trace_usages

OUTSIDE = "_outside_project"
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def outside_name(path: str) -> PurePosixPath:
    """The bundle name of a file outside the project: below ``_outside_project/``, its drive letter or UNC host and
    share kept as folder names, so ``C:\\tex\\t.png`` and ``D:\\tex\\t.png`` (or two hosts' shares) never meet.

    ``/home/ann/t.png`` -> ``_outside_project/home/ann/t.png``; ``C:\\tex\\t.png`` -> ``_outside_project/C/tex/t.png``;
    ``\\\\nas\\show\\t.png`` -> ``_outside_project/UNC/nas/show/t.png`` (a drive is one letter, so never ``UNC``).
    """
    text = str(path)
    if _DRIVE.match(text) or (text.startswith(("\\\\", "//")) and "\\" in text):
        win = PureWindowsPath(text)
        if win.drive.startswith("\\\\"):
            host_share = [p for p in win.drive.split("\\") if p]
            return PurePosixPath(OUTSIDE, "UNC", *host_share, *win.parts[1:])
        return PurePosixPath(OUTSIDE, win.drive[0].upper(), *win.parts[1:])
    if text.startswith("//") and not text.startswith("///"):  # a UNC path written with forward slashes
        return PurePosixPath(OUTSIDE, "UNC", *[p for p in text.split("/") if p])
    posix = PurePosixPath(text)
    return PurePosixPath(OUTSIDE, *posix.parts[1:]) if posix.is_absolute() else PurePosixPath(OUTSIDE, *posix.parts)


@dataclass
class BundleFile:
    source: Path  # where the bytes are read from: the file itself, or the rewritten copy of a .blend
    name: str  # bundle-relative, forward slashes


@dataclass
class Bundle:
    """What goes to the farm: ``files`` (the scene first) under ``root``; ``staging`` holds the rewritten .blends."""

    root: str  # the project folder as the farm sees it (this machine's absolute path, forward slashes)
    scene: str  # the scene's bundle name
    files: List[BundleFile] = field(default_factory=list)
    deps: Dependencies = field(default_factory=Dependencies)
    staging: Optional[Path] = None

    def remote(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def name_for(self, path: Path) -> str:
        """The bundle name of a file added as it is (an extra file the scene does not name)."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(outside_name(str(Path(path).resolve())))

    def remote_names(self, extra: List[Path]) -> List[str]:
        """The farm-side names (``upload_paths``): the bundle's files, the scene first, then ``extra``."""
        return [self.remote(f.name) for f in self.files] + [self.remote(self.name_for(p)) for p in extra]

    def items(self, extra: List[Path]) -> List[Tuple[Path, str]]:
        """(local file to read, farm-side name) for every file to upload, in :meth:`remote_names` order."""
        return list(zip([f.source for f in self.files] + list(extra), self.remote_names(extra)))

    @property
    def size(self) -> int:
        return sum(f.source.stat().st_size for f in self.files)


def project_root(scene: Path, given: Optional[Path] = None) -> Path:
    """The folder whose layout the bundle keeps: the one given, or the scene's own folder."""
    root = Path(given).expanduser().resolve() if given else scene.parent
    try:
        scene.relative_to(root)
    except ValueError:
        from ..errors import InputError

        raise InputError(f"the project folder {root} does not hold the scene {scene}; "
                         "choose a project folder above the .blend") from None
    return root


def _packer_class() -> Any:
    from blender_asset_tracer import bpathlib
    from blender_asset_tracer.pack import Packer, transfer

    class Recorder(transfer.FileTransferer):
        """BAT's transferer seam, used without its thread: .blend files (rewritten or not) are copied into the
        staging folder, so the artist can keep saving; every other file is only recorded under its bundle name."""

        def __init__(self, target: PurePosixPath, staging: Optional[Path], original: Any) -> None:
            super().__init__()
            self.target, self.staging, self.original = target, staging, original
            self.recorded: List[Tuple[Path, Path, str]] = []  # (the user's file, what is uploaded, bundle name)

        def run(self) -> None:  # pragma: no cover - never started as a thread
            pass

        def start(self) -> None:
            pass

        def _put(self, src: Path, dst: pathlib.PurePath, move: bool) -> None:
            name = PurePosixPath(pathlib.PurePath(dst).relative_to(self.target).as_posix())
            original = self.original(src) if move else Path(src)
            if self.staging is not None and name.suffix.lower() == ".blend":
                staged = self.staging / name
                staged.parent.mkdir(parents=True, exist_ok=True)
                (shutil.move if move else shutil.copy2)(str(src), str(staged))
                src = staged
            self.recorded.append((original, Path(src), str(name)))

        def queue_copy(self, src: pathlib.Path, dst: pathlib.PurePath) -> None:
            self._put(src, dst, move=False)

        def queue_move(self, src: pathlib.Path, dst: pathlib.PurePath) -> None:
            self._put(src, dst, move=True)

        def done_and_join(self) -> None:
            pass

        def abort_and_join(self) -> None:
            pass

    class BundlePacker(Packer):
        """``Packer`` with Tether's tracer (libraries' node trees in Blender 5 files, OSL scripts, Windows paths
        read elsewhere), drive letters and UNC hosts kept as folders, and assets recorded instead of copied."""

        def __init__(self, scene: Path, project: Path, staging: Optional[Path]) -> None:
            super().__init__(scene, project, str(project))
            self._staging = staging
            self.recorder: Any = None
            self.deps = Dependencies()

        def strategise(self) -> None:
            # Packer.strategise with trace.deps replaced by tether.blend.trace_usages (no global patch of BAT).
            bfile_path = bpathlib.make_absolute(self.blendfile)
            self._output_path = self._target_path / bfile_path.relative_to(bpathlib.make_absolute(self.project))
            act = self._actions[bfile_path]
            act.new_path = self._output_path
            self._new_location_paths = set()
            for usage in trace_usages(self.blendfile):
                if usage.asset_path.is_absolute() and not Path(usage.abspath).is_absolute():
                    # a Windows path read on POSIX (or the reverse) names no file here
                    self._missing(usage, str(usage.asset_path))
                elif usage.is_sequence:
                    self._visit_sequence(usage.abspath, usage)
                else:
                    self._visit_asset(usage.abspath, usage)
                if usage.abspath in self.missing_files:
                    self._missing(usage, str(usage.abspath))
            self._find_new_paths()
            self._group_rewrites()

        def _missing(self, usage: Any, shown: str) -> None:
            path = Path(shown)
            if path not in self.deps.missing_from:
                self.deps.missing.append(path)
                self.deps.missing_from[path] = missing_name(usage)
            self.missing_files.add(usage.abspath)

        def _find_new_paths(self) -> None:
            # Inside the project a file keeps its place even when the scene names it absolutely (BAT would move it
            # under _outside_project); outside, its drive letter or UNC host stays a folder (BAT drops UNC hosts).
            project = bpathlib.make_absolute(self.project)
            for path in self._new_location_paths:
                try:
                    name: PurePosixPath = PurePosixPath(bpathlib.make_absolute(path).relative_to(project).as_posix())
                except ValueError:
                    name = outside_name(str(path))
                self._actions[path].new_path = pathlib.Path(self._target_path, name)

        def _write_info_file(self) -> None:
            pass  # no pack-info.txt: the farm gets the scene's files only

        def _create_file_transferer(self) -> Any:
            self.recorder = Recorder(PurePosixPath(self._target_path.as_posix()), self._staging, self.original)
            return self.recorder

        def run(self) -> List[Tuple[Path, Path, str]]:
            self.strategise()
            if self._staging is not None:
                self._rewrite_paths()  # into BAT's temp folder; the recorder moves them into staging
            self._start_file_transferrer()
            self._copy_files_to_target()
            return list(self.recorder.recorded)

        def original(self, src: Path) -> Path:
            """The file a rewritten copy was made from."""
            return next((p for p, a in self._actions.items() if a.read_from == src), src)

    return BundlePacker


def build(scene: Path, project: Optional[Path] = None, staging: Optional[Path] = None) -> Bundle:
    """The bundle of ``scene``. With ``staging``, the .blend files are written there, rewritten; without, only the
    layout is worked out (what the preview shows) and nothing is written."""
    from blender_asset_tracer import blendfile

    scene = check_blend(scene)
    root = project_root(scene, project)
    packer = _packer_class()(scene, root, staging)
    opened = set(blendfile._cached_bfiles)
    try:
        with packer:
            recorded = packer.run()
    finally:
        # BAT caches open files process-wide; close only the ones this call opened (other add-ons share the cache).
        for path in set(blendfile._cached_bfiles) - opened:
            blendfile._cached_bfiles[path].close()
    scene_name = scene.relative_to(root).as_posix()
    files: Dict[str, BundleFile] = {}
    found: List[Path] = []
    for original, source, name in recorded:
        if name not in files:
            files[name] = BundleFile(source=source, name=name)
            if name != scene_name:
                found.append(original)
    ordered = sorted(files.values(), key=lambda f: f.name != scene_name)
    deps = packer.deps
    deps.found = found
    return Bundle(root=root.as_posix(), scene=scene_name, files=ordered, deps=deps, staging=staging)
