"""Facts about a .blend read without Blender, through blender-asset-tracer (BAT).

BAT is the Blender Foundation's own packer (Flamenco uses it): it follows linked libraries recursively, expands
UDIM tiles and image sequences, and leaves Blender's bundled assets out, where ``bpy.utils.blend_paths`` does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from .errors import InputError

BLEND_MAGIC = (b"BLENDER", b"\x28\xb5\x2f\xfd", b"\x1f\x8b")  # plain, zstd, gzip

# Blender's engine ids -> the farm's render_software names
ENGINES: Dict[str, str] = {
    "CYCLES": "cycles",
    "BLENDER_EEVEE": "eevee",
    "BLENDER_EEVEE_NEXT": "eevee",
    "BLENDER_WORKBENCH": "workbench",
}

# Blender's R_IMF_IMTYPE_* values -> file extension
IMAGE_TYPES: Dict[int, str] = {
    0: ".tga", 1: ".iris", 4: ".jpg", 14: ".tga", 16: ".cin", 17: ".png", 20: ".bmp", 22: ".hdr", 23: ".exr",
    24: ".dpx", 25: ".exr", 26: ".tif", 28: ".dds", 29: ".jp2", 30: ".webp",
}


@dataclass
class SceneFacts:
    path: Path
    scene: str
    frame_start: int
    frame_end: int
    frame_step: int
    engine: str
    output_pattern: str  # render.filepath as stored, e.g. "//render/frame_####"
    image_ext: str
    has_camera: bool

    @property
    def render_software(self) -> Optional[str]:
        return ENGINES.get(self.engine)

    @property
    def frame_spec(self) -> str:
        step = f"x{self.frame_step}" if self.frame_step > 1 else ""
        if self.frame_start == self.frame_end:
            return str(self.frame_start)
        return f"{self.frame_start}-{self.frame_end}{step}"

    def output_dir(self) -> Optional[Path]:
        """The scene's own output folder on this machine, `//` resolved against the .blend."""
        pattern = self.output_pattern
        if not pattern:
            return None
        full = self.path.parent / pattern[2:] if pattern.startswith("//") else Path(pattern)
        return full.parent if not pattern.endswith(("/", "\\")) else full


@dataclass
class Dependencies:
    """Files the scene needs. ``found`` are existing files; ``missing`` were referenced but are not on disk."""

    found: List[Path] = field(default_factory=list)
    missing: List[Path] = field(default_factory=list)
    # which datablock asked for each missing file, to name it to the user
    missing_from: Dict[Path, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.found)


def check_blend(path: Path) -> Path:
    """A readable .blend file, or an InputError that says what is wrong with it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"scene file not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the .blend file")
    try:
        with path.open("rb") as fh:
            head = fh.read(7)
    except OSError as exc:
        raise InputError(f"cannot read the scene file {path}: {exc.strerror}") from None
    if not head.startswith(BLEND_MAGIC):
        raise InputError(f"{path} is not a Blender file (no BLENDER header); save the scene as .blend")
    return path.resolve()


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    from blender_asset_tracer import blendfile

    bf = blendfile.BlendFile(path)
    try:
        yield bf
    finally:
        bf.close()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def scene_facts(path: Path, scene: Optional[str] = None) -> SceneFacts:
    """Frame range, engine, output pattern and camera of the active (or named) scene."""
    path = check_blend(path)
    with _opened(path) as bf:
        scenes = bf.find_blocks_from_code(b"SC")
        if not scenes:
            raise InputError(f"{path} holds no scene")
        block = None
        if scene:
            block = next((s for s in scenes if _text(s.id_name)[2:] == scene), None)
            if block is None:
                names = ", ".join(_text(s.id_name)[2:] for s in scenes)
                raise InputError(f"no scene named '{scene}' in {path.name}; it has: {names}")
        else:
            globs = bf.find_blocks_from_code(b"GLOB")
            block = globs[0].get_pointer(b"curscene") if globs else None
            block = block or scenes[0]
        imtype = int(block.get((b"r", b"im_format", b"imtype")))
        return SceneFacts(
            path=path,
            scene=_text(block.id_name)[2:],
            frame_start=int(block.get((b"r", b"sfra"))),
            frame_end=int(block.get((b"r", b"efra"))),
            frame_step=max(1, int(block.get((b"r", b"frame_step")))),
            engine=_text(block.get((b"r", b"engine"))),
            output_pattern=_text(block.get((b"r", b"pic"))),
            image_ext=IMAGE_TYPES.get(imtype, f".imtype{imtype}"),
            has_camera=block.get_pointer(b"camera") is not None,
        )


_bat_patched = False


def _patch_bat() -> None:
    """BAT 1.23 reads ``compositing_node_group`` for every ID of a Blender 5.0 file, but only scenes have it:
    materials, worlds and lights then expand to nothing and their textures (in linked libraries too) are missed."""
    global _bat_patched
    if _bat_patched:
        return
    from blender_asset_tracer.trace import expanders

    original = getattr(expanders, "_expand_generic_nodetree_id", None)
    if original is not None:
        def expand_nodetree_id(block: Any) -> Iterator[Any]:
            ntree = None
            if block.code == b"SC":
                ntree = block.get_pointer(b"compositing_node_group", None)
            if ntree is None:
                with contextlib.suppress(KeyError):
                    ntree = block.get_pointer(b"nodetree", None)
            if ntree is not None:
                yield from expanders._expand_generic_nodetree(ntree)

        expanders._expand_generic_nodetree_id = expand_nodetree_id
    _bat_patched = True


def dependencies(path: Path) -> Dependencies:
    """Every file the scene needs (textures, UDIM tiles, sequences, libraries and their own files, caches)."""
    from blender_asset_tracer import trace

    _patch_bat()

    path = check_blend(path)
    deps = Dependencies()
    seen: Set[Path] = {path}
    for usage in trace.deps(path):
        try:
            files = list(usage.files()) if usage.is_sequence else [usage.abspath]
        except (OSError, ValueError):
            files = []
        if usage.is_sequence and not files:
            files = [usage.abspath]
        for file in files:
            file = Path(file)
            with contextlib.suppress(OSError):
                file = file.resolve()
            if file in seen:
                continue
            seen.add(file)
            if file.is_file():
                deps.found.append(file)
            else:
                deps.missing.append(file)
                deps.missing_from[file] = _text(usage.block_name)[2:]
    return deps
