"""The farm bundle: copies of the scene's .blend files rewritten so every path points inside one folder.

A remote farm runs none of our code and sees only what was uploaded, so the submitter decides the farm-side layout
(described in :mod:`tether.farm.models`) and rewrites copies of the .blend and of every linked library to match,
with blender-asset-tracer's own ``pack.Packer`` (the Blender Foundation's packer, Flamenco's too). Only the .blend
files are written (into a staging folder); every other file is uploaded from where it is, under its bundle name.
The user's scene file is never changed.
"""

from __future__ import annotations

import os
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
    errors: List[str] = field(default_factory=list)  # what cannot be bundled, in words that say what to change
    warnings: List[str] = field(default_factory=list)

    def remote(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def name_for(self, path: Path) -> str:
        """The bundle name of a file added as it is (an extra file the scene does not name)."""
        return _bundle_name(Path(path), Path(self.root))

    def remote_names(self, extra: List[Path]) -> List[str]:
        """The farm-side names (``upload_paths``): the bundle's files, the scene first, then ``extra``."""
        return [self.remote(f.name) for f in self.files] + [self.remote(self.name_for(p)) for p in extra]

    def items(self, extra: List[Path]) -> List[Tuple[Path, str]]:
        """(local file to read, farm-side name) for every file to upload, in :meth:`remote_names` order."""
        return list(zip([f.source for f in self.files] + list(extra), self.remote_names(extra)))

    @property
    def size(self) -> int:
        return sum(f.source.stat().st_size for f in self.files)


def _stable_gzip(path: Path) -> None:
    """BAT recompresses a rewritten gzip .blend with the time and its temp file's random name in the header, so the
    same scene would upload as new bytes on every submit: zero the time and blank the name, in place."""
    with path.open("r+b") as fh:
        head = fh.read(10)
        if head[:3] != b"\x1f\x8b\x08":
            return
        fh.seek(4)
        fh.write(b"\0\0\0\0")
        if head[3] & 0x04:  # FEXTRA: skip it to reach the name
            fh.seek(10)
            fh.seek(10 + 2 + int.from_bytes(fh.read(2), "little"))
        else:
            fh.seek(10)
        if head[3] & 0x08:  # FNAME: NUL-terminated
            start = fh.tell()
            name = fh.read(256).split(b"\0", 1)[0]
            fh.seek(start)
            fh.write(b"_" * len(name))


def _string_pointer(usage: Any) -> bool:
    field_ = usage.path_full_field
    return field_ is not None and bool(field_.name.is_pointer)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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
                if move:
                    _stable_gzip(staged)
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
        """``Packer`` with Tether's tracer (libraries' node trees in Blender 5 files, OSL scripts, IES profiles of
        materials, Windows paths read elsewhere), drive letters and UNC hosts kept as folders, and assets recorded
        instead of copied; USD layers are added after the packer (see ``_usd_layers``)."""

        def __init__(self, scene: Path, project: Path, staging: Optional[Path]) -> None:
            super().__init__(scene, project, str(project))
            self._staging = staging
            self.recorder: Any = None
            self.deps = Dependencies()
            self.errors: List[str] = []

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

        def _apply_rewrites_to_blendfile(self, bfile: Any, action: Any) -> None:
            # BAT writes a path into the field itself; a Geometry Nodes bake folder is a pointer to a string of its
            # own, which BAT would overwrite with garbage. Those are written into their string here, in place.
            strings = [u for u in action.rewrites if _string_pointer(u)]
            action.rewrites = [u for u in action.rewrites if not _string_pointer(u)]
            super()._apply_rewrites_to_blendfile(bfile, action)
            for usage in strings:
                new, size = self._string_rewrite(usage, action)
                if new is None or size is None or len(new) >= size:
                    continue  # refused in _check_strings
                data = bfile.dereference_pointer(usage.block.get(usage.path_full_field.name.name_only))
                bfile.mark_modified()
                bfile.fileobj.seek(data.file_offset)
                bfile.fileobj.write(new + b"\0" * (size - len(new)))

        def _string_rewrite(self, usage: Any, action: Any) -> Tuple[Optional[bytes], Optional[int]]:
            asset_pp = self._actions[usage.abspath].new_path
            if asset_pp is None or action.new_path is None:
                return None, None
            new = bytes(bpathlib.BlendPath.mkrelative(asset_pp, action.new_path))
            data = usage.block.bfile.dereference_pointer(usage.block.get(usage.path_full_field.name.name_only))
            return new, (data.size if data is not None else None)

        def check_strings(self) -> List[str]:
            """Refusals for pointed-to paths whose bundle path is longer than the string the file holds."""
            errors = []
            for action in list(self._actions.values()):
                for usage in action.rewrites:
                    if not _string_pointer(usage):
                        continue
                    new, size = self._string_rewrite(usage, action)
                    if new is not None and (size is None or len(new) >= size):
                        errors.append(
                            f"{missing_name(usage)}: the bake folder '{_text(usage.asset_path)}' cannot be rewritten "
                            f"to '{new.decode('utf-8', 'replace')}' in place (the file keeps no room for a longer "
                            "path); make it relative to the .blend inside the project folder, or choose a project "
                            "folder above it (--project-root)")
            return errors

        def _write_info_file(self) -> None:
            pass  # no pack-info.txt: the farm gets the scene's files only

        def _create_file_transferer(self) -> Any:
            self.recorder = Recorder(PurePosixPath(self._target_path.as_posix()), self._staging, self.original)
            return self.recorder

        def run(self) -> List[Tuple[Path, Path, str]]:
            self.strategise()
            self.errors = self.check_strings()
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
    deps = packer.deps
    usd = _usd_layers(recorded, root, deps)
    recorded += usd.files
    files: Dict[str, BundleFile] = {}
    found: List[Path] = []
    for original, source, name in recorded:
        if name not in files:
            files[name] = BundleFile(source=source, name=name)
            if name != scene_name:
                found.append(original)
    ordered = sorted(files.values(), key=lambda f: f.name != scene_name)
    deps.found = found
    return Bundle(root=root.as_posix(), scene=scene_name, files=ordered, deps=deps, staging=staging,
                  errors=packer.errors + usd.errors, warnings=usd.warnings)


# --- USD layers: files a USD cache opens that no .blend names --------------------------------------------------
# A Mesh Sequence Cache (or Transform Cache) reads a USD stage through a Cache File, whose root layer BAT follows like
# any file. The stage's sublayers, references, payloads and asset-valued attributes are named inside the USD files,
# which BAT cannot read and Tether does not rewrite (no USD writer): they are found with USD's own UsdUtils (pxr,
# Blender's own: in-process inside Blender, else in the headless Blender that makes the proof) and uploaded under
# their bundle names. That keeps a relative name working only when both files keep their relative places (both
# inside the project, or both outside it); an absolute name, or one that crosses the project folder, is refused.
USD_EXTENSIONS = (".usd", ".usda", ".usdc", ".usdz")
_USD_WALK = r'''
def usd_references(roots):
    """For each root: [layer, the name as the layer writes it, that file on this machine] for every external name of
    every layer reached from it (sublayers, references, payloads, asset paths), layers followed recursively."""
    import os
    try:
        from pxr import UsdUtils
    except ImportError:  # the bpy wheel keeps Blender's pxr in a Python folder of its own
        import glob, sys, bpy
        sys.path += glob.glob(os.path.join(bpy.utils.system_resource("PYTHON"), "lib", "python3*", "site-packages"))
        from pxr import UsdUtils
    found = {}
    for root in roots:
        out, seen, todo = found.setdefault(root, []), set(), [root]
        while todo:
            layer = todo.pop()
            if layer in seen or layer.lower().endswith(".usdz"):  # a .usdz holds its own files
                continue
            seen.add(layer)
            for kind, names in zip(("layer", "layer", "layer", "asset"), UsdUtils.ExtractExternalReferences(layer)):
                for name in names:
                    full = os.path.normpath(os.path.join(os.path.dirname(layer), name))
                    out.append([layer, name, full])
                    if kind == "layer" and os.path.isfile(full):
                        todo.append(full)
    return found
'''
# root layer -> (the layers read and their mtimes, its references): preflight and submit read each stage once
_USD_SEEN: Dict[str, Tuple[Dict[str, Optional[int]], List[List[str]]]] = {}


def _stamps(root: str, refs: List[List[str]]) -> Dict[str, Optional[int]]:
    read = {root} | {r[0] for r in refs} | {r[2] for r in refs if r[2].lower().endswith(USD_EXTENSIONS)}
    return {p: (os.stat(p).st_mtime_ns if os.path.exists(p) else None) for p in read}


@dataclass
class _UsdFiles:
    files: List[Tuple[Path, Path, str]] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def usd_references(roots: List[Path]) -> Optional[List[List[str]]]:
    """The external names in the USD layers reached from ``roots`` (see ``_USD_WALK``); None with no Blender here."""
    import importlib.util
    import json
    import subprocess

    names = [str(r) for r in roots if str(r) not in _USD_SEEN or
             _stamps(str(r), _USD_SEEN[str(r)][1]) != _USD_SEEN[str(r)][0]]
    if not names:
        return [ref for r in roots for ref in _USD_SEEN[str(r)][1]]
    space: Dict[str, Any] = {}
    exec(_USD_WALK, space)  # our own walker, run here when Blender's pxr is importable (inside Blender)
    if importlib.util.find_spec("pxr") is not None:
        found = space["usd_references"](names)
    else:
        command = blender_command()
        if command is None:
            return None
        script = _USD_WALK + "import json, sys\nprint('TETHER_USD ' + json.dumps(usd_references(json.loads(" \
            "sys.argv[sys.argv.index('--') + 1]))))\n"
        proc = subprocess.run([*command, script, "--", json.dumps(names)], capture_output=True, text=True,
                              timeout=120)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TETHER_USD ")]
        if proc.returncode != 0 or not lines:
            from ..errors import InputError

            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise InputError(f"the headless Blender could not read the USD layers {', '.join(names)}: {tail}")
        found = json.loads(lines[-1][len("TETHER_USD "):])
    for root, refs in found.items():
        _USD_SEEN[root] = (_stamps(root, refs), refs)
    return [ref for r in roots for ref in _USD_SEEN[str(r)][1]]


def _usd_layers(recorded: List[Tuple[Path, Path, str]], root: Path, deps: Dependencies) -> _UsdFiles:
    import posixpath

    out = _UsdFiles()
    layers = {Path(original): name for original, _src, name in recorded
              if name.lower().endswith(USD_EXTENSIONS) and Path(original).is_file()}
    if not layers:
        return out
    found = usd_references(sorted(layers))
    if found is None:
        out.warnings.append("no headless Blender here to read the USD layers "
                            f"({', '.join(sorted(layers.values()))}): the files they name are not uploaded "
                            "(pip install bpy==5.0.1, or set TETHER_BLENDER)")
        return out
    for layer, written, full in found:
        layer_name = layers.get(Path(layer)) or _bundle_name(Path(layer), root)
        layers.setdefault(Path(layer), layer_name)
        if PurePosixPath(written).is_absolute() or _DRIVE.match(written) or written.startswith("\\"):
            out.errors.append(f"USD layer {layer} names '{written}' by an absolute path, which the farm cannot open "
                              "(Tether does not rewrite USD files); make it relative to the layer")
            continue
        path = Path(full)
        if not path.is_file():
            if path not in deps.missing_from:
                deps.missing.append(path)
                deps.missing_from[path] = f"USD layer {Path(layer).name}"
            continue
        name = _bundle_name(path, root)
        if posixpath.normpath(posixpath.join(posixpath.dirname(layer_name), written.replace("\\", "/"))) != name:
            out.errors.append(f"USD layer {layer} names '{written}', which crosses the project folder {root} (it "
                              f"would be {name} on the farm): choose a project folder above both (--project-root)")
            continue
        out.files.append((path, path, name))
    return out


def _bundle_name(path: Path, root: Path) -> str:
    """A file's bundle name: its place in the project, or below ``_outside_project/`` (as the packer names it)."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(outside_name(str(path.resolve())))


# --- proof: the rewritten bundle opened in a headless Blender ---------------------------------------------------
# Runs inside Blender (the bpy wheel or a `blender` binary): opens the original scene, then its rewritten copy, and
# lists every path of every datablock with who holds it. Blender's own bpy.utils.blend_paths catches what the walk
# below does not name.
_PROOF_SCRIPT = r'''
import json, os, sys
import bpy

args = json.loads(sys.argv[sys.argv.index("--") + 1])


def rows():
    out = []

    def add(owner, field, path, library=None, kind="file"):
        if path:
            out.append([owner, field, path, os.path.normpath(bpy.path.abspath(path, library=library)), kind])

    for coll, label in (("images", "image"), ("movieclips", "movie clip"), ("sounds", "sound"), ("fonts", "font"),
                        ("volumes", "volume"), ("cache_files", "cache file"), ("libraries", "library")):
        for block in getattr(bpy.data, coll):
            if getattr(block, "packed_file", None) or getattr(block, "packed_files", None):
                continue
            if coll == "images" and block.source not in {"FILE", "SEQUENCE", "TILED", "MOVIE"}:
                continue
            if coll == "fonts" and block.filepath == "<builtin>":
                continue
            kind = "tiles" if coll == "images" and block.source == "TILED" else "file"
            lib = None if coll == "libraries" else block.library
            add(f"{label} '{block.name}'", "filepath", block.filepath, lib, kind)
    for scene in bpy.data.scenes:
        if scene.sequence_editor is None:
            continue
        for strip in scene.sequence_editor.strips_all:
            owner = f"strip '{strip.name}' of scene '{scene.name}'"
            if strip.type == "IMAGE" and len(strip.elements):
                add(owner, "directory", os.path.join(strip.directory, strip.elements[0].filename), scene.library)
            elif strip.type == "MOVIE":
                add(owner, "filepath", strip.filepath, scene.library)
    for obj in bpy.data.objects:
        for mod in obj.modifiers:
            owner = f"modifier '{mod.name}' of object '{obj.name}'"
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                add(owner, "cache_directory", mod.domain_settings.cache_directory, obj.library, "folder")
            elif mod.type == "NODES":
                for bake in mod.bakes:
                    if bake.bake_target == "PACKED" or (bake.bake_target == "INHERIT" and mod.bake_target == "PACKED"):
                        continue
                    folder = bake.directory if bake.use_custom_path else mod.bake_directory
                    add(owner, "bake directory", folder, obj.library, "folder")
            elif mod.type == "MESH_CACHE":
                add(owner, "filepath", mod.filepath, obj.library)
        caches = [(f"particle system '{p.name}' of object '{obj.name}'", p.point_cache) for p in obj.particle_systems]
        caches += [(f"modifier '{m.name}' of object '{obj.name}'", getattr(m, "point_cache", None))
                   for m in obj.modifiers]
        for owner, cache in caches:
            if cache is None or not (cache.use_disk_cache or cache.use_external):
                continue
            # a disk cache is //blendcache_<the .blend's name>/ beside the file that holds it (BKE_pointcache)
            held_by = obj.library.filepath if obj.library else bpy.data.filepath
            folder = cache.filepath if cache.use_external else \
                "//blendcache_" + os.path.splitext(os.path.basename(held_by))[0]
            add(owner, "point cache", folder, obj.library, "folder")
    trees = [(f"material '{m.name}'", m.node_tree, m.library) for m in bpy.data.materials if m.node_tree]
    trees += [(f"world '{w.name}'", w.node_tree, w.library) for w in bpy.data.worlds if w.node_tree]
    trees += [(f"light '{li.name}'", li.node_tree, li.library) for li in bpy.data.lights if li.node_tree]
    trees += [(f"node group '{g.name}'", g, g.library) for g in bpy.data.node_groups]
    for owner, tree, lib in trees:
        for node in tree.nodes:
            if node.bl_idname == "ShaderNodeScript" and node.mode == "EXTERNAL":
                add(f"{owner}, node '{node.name}'", "filepath", node.filepath, lib)
            elif node.bl_idname == "ShaderNodeTexIES" and node.mode == "EXTERNAL":
                add(f"{owner}, node '{node.name}'", "filepath", node.filepath, lib)
    named = {r[3] for r in out} | {r[2] for r in out}
    named |= {t.filepath for t in bpy.data.texts if t.filepath}  # text blocks are not rendered
    listed = zip(bpy.utils.blend_paths(absolute=True, packed=False, local=False),
                 bpy.utils.blend_paths(absolute=False, packed=False, local=False))
    for full, raw in listed:  # (a point cache on disk is listed by its empty custom folder)
        if raw and raw not in named and os.path.normpath(full) not in named:
            out.append(["a path Blender lists", raw, raw, os.path.normpath(full), "file"])
    return out


bpy.ops.wm.open_mainfile(filepath=args["original"], load_ui=False)
written = {(r[0], r[1]): r[2] for r in rows()}
bpy.ops.wm.open_mainfile(filepath=args["bundle"], load_ui=False)
# Blender's own list keys its rows by the path itself: a path the walk missed is as the scene wrote it.
result = [r + [written.get((r[0], r[1]), r[2])] for r in rows()]
print("TETHER_PROOF " + json.dumps(result))
'''


def blender_command() -> Optional[List[str]]:
    """How to run a bpy script headless: Blender itself when this runs inside it, this Python when it has the bpy
    wheel, else ``$TETHER_BLENDER`` or a ``blender`` on PATH; None when there is none."""
    import importlib.util
    import sys

    binary = ""
    bpy = sys.modules.get("bpy")
    if bpy is not None:
        binary = getattr(getattr(bpy, "app", None), "binary_path", "") or ""
    if not (binary and Path(binary).name.lower().startswith("blender")):
        if importlib.util.find_spec("bpy") is not None:
            return [sys.executable, "-c"]
        binary = os.environ.get("TETHER_BLENDER") or shutil.which("blender") or ""
    if binary:
        return [binary, "-b", "--factory-startup", "--python-exit-code", "1", "--python-expr"]
    return None


@dataclass
class Unresolved:
    owner: str  # the datablock (and node or strip) that holds the path
    field: str
    written: str  # the path as the user's scene wrote it
    reason: str

    def __str__(self) -> str:
        return f"{self.owner}, {self.field} '{self.written}': {self.reason}"


def _held(rel: str, kind: str, names: List[str]) -> bool:
    import fnmatch

    if kind == "folder":
        return any(n.startswith(rel.rstrip("/") + "/") for n in names)
    if kind == "tiles" or "<UDIM>" in rel or "<UVTILE>" in rel:
        pattern = re.sub(r"<UDIM>|<UVTILE>", "*", rel)
        return any(fnmatch.fnmatchcase(n, pattern) for n in names)
    return rel in names


def verify(bundle: Bundle, original: Path, timeout: float = 120.0) -> Optional[List[Unresolved]]:
    """Open the rewritten bundle (written by :func:`build` with a staging folder) in a headless Blender and list
    every path that does not resolve to a file of the bundle; None when no Blender can be run here."""
    import json
    import subprocess

    assert bundle.staging is not None, "verify needs a built bundle (build with staging)"
    command = blender_command()
    if command is None:
        return None
    key = _proof_key(bundle, original)
    if key in _PROVEN:
        return list(_PROVEN[key])
    staging = bundle.staging.resolve()
    args = {"original": str(original), "bundle": str(staging / bundle.scene)}
    env = dict(os.environ)
    env.setdefault("BLENDER_USER_RESOURCES", str(staging.parent / (staging.name + "-blender-user")))
    proc = subprocess.run([*command, _PROOF_SCRIPT, "--", json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TETHER_PROOF ")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        from ..errors import InputError

        raise InputError(f"the headless Blender could not open the rewritten scene (exit {proc.returncode}): {tail}")
    names = [f.name for f in bundle.files]
    missing = {Path(os.path.normpath(str(p))).as_posix() for p in bundle.deps.missing}
    problems: List[Unresolved] = []
    seen = set()
    for owner, field_name, _path, full, kind, written in json.loads(lines[-1][len("TETHER_PROOF "):]):
        row = (owner, field_name, full)
        if row in seen:
            continue
        seen.add(row)
        rel = os.path.relpath(full, staging).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            if written in missing or full in missing:
                continue
            problems.append(Unresolved(owner, field_name, written, f"points outside the bundle ({full})"))
        elif not (_held(rel, kind, names) or os.path.exists(full)):
            gone = (Path(bundle.root) / rel).as_posix()
            if gone in missing or (kind == "folder" and any(m.startswith(gone + "/") for m in missing)):
                continue  # a missing file the artist chose to submit without
            problems.append(Unresolved(owner, field_name, written, f"is not in the bundle (would be {rel})"))
    _PROVEN[key] = list(problems)
    return problems


# Proofs already made in this process: an unchanged scene re-submitted is not opened again (the key covers the
# bytes of every rewritten .blend, the file names and what is missing).
_PROVEN: Dict[str, List[Unresolved]] = {}


def _proof_key(bundle: Bundle, original: Path) -> str:
    import hashlib

    digest = hashlib.md5(str(original).encode(), usedforsecurity=False)
    for f in sorted(bundle.files, key=lambda f: f.name):
        digest.update(f.name.encode() + b"\0")
        if f.name.lower().endswith(".blend"):
            with f.source.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    digest.update(repr(sorted(map(str, bundle.deps.missing))).encode())
    return digest.hexdigest()
