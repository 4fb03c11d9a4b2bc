"""Facts about a .blend read without Blender, through blender-asset-tracer (BAT).

BAT is the Blender Foundation's own packer (Flamenco uses it): it follows linked libraries recursively, expands
UDIM tiles and image sequences, and leaves Blender's bundled assets out, where ``bpy.utils.blend_paths`` does not.
"""

from __future__ import annotations

import contextlib
import re
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

# Blender's R_IMF_IMTYPE_* values -> file extension (read from files Blender 5.0 saved with each format)
IMAGE_TYPES: Dict[int, str] = {
    0: ".tga", 1: ".rgb", 4: ".jpg", 14: ".tga", 17: ".png", 20: ".bmp", 21: ".hdr", 22: ".tif", 23: ".exr",
    26: ".cin", 27: ".dpx", 28: ".exr", 30: ".jp2", 35: ".webp",
}
# R_IMF_IMTYPE_FFMPEG (Blender 5's only video type) and the older AVI/H264/Xvid/Theora ones
MOVIE_TYPES = {15, 16, 24, 31, 32, 33}
_R_MULTIVIEW = 1 << 21  # RenderData.scemode
_VIEWS_INDIVIDUAL = 0  # ImageFormatData.views_format
# Settings groups Blender's own engines and Tether keep on datablocks; any other group is an add-on's.
BUILTIN_SETTINGS = {"cycles", "cycles_curves", "cycles_visibility", "tether"}
# Blender 5 path templates resolvable from the file alone (others stay as written, with a warning)
_TEMPLATE = re.compile(r"\{([a-z_]+)\}")


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
    movie: bool = False  # the scene writes a video file, not frames
    views: List[str] = field(default_factory=list)  # file suffixes of a multiview scene written view by view
    cycles_device: str = "CPU"  # "CPU" or "GPU" (Cycles' Device setting)
    addons: Dict[str, List[str]] = field(default_factory=dict)  # add-on settings group -> datablocks holding it

    @property
    def render_software(self) -> Optional[str]:
        return ENGINES.get(self.engine)

    @property
    def frame_spec(self) -> str:
        step = f"x{self.frame_step}" if self.frame_step > 1 else ""
        if self.frame_start == self.frame_end:
            return str(self.frame_start)
        return f"{self.frame_start}-{self.frame_end}{step}"

    def template_values(self) -> Dict[str, str]:
        return {"blend_name": self.path.stem, "scene_name": self.scene}

    def unresolved_templates(self) -> List[str]:
        return [m for m in _TEMPLATE.findall(self.output_pattern) if m not in self.template_values()]

    def output_dir(self) -> Optional[Path]:
        """The scene's own output folder on this machine, `//` resolved against the .blend and Blender 5's path
        templates (``{blend_name}``, ``{scene_name}``) filled in as Blender fills them."""
        values = self.template_values()
        pattern = _TEMPLATE.sub(lambda m: values.get(m.group(1), m.group(0)), self.output_pattern)
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


def _damage_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged .blend raises inside BAT: a truncated or garbled file (no DNA1 block, a short
    struct), a broken gzip or zstd stream."""
    import gzip
    import struct
    import zlib

    from blender_asset_tracer.blendfile import exceptions

    kinds: List[type[BaseException]] = [exceptions.BlendFileError, struct.error, gzip.BadGzipFile, zlib.error,
                                        EOFError]
    try:
        import zstandard

        kinds.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(kinds)


@contextlib.contextmanager
def damage_refused(path: Path) -> Iterator[None]:
    """Reading ``path`` with BAT inside this block: a damaged file is an :class:`InputError` in words."""
    try:
        yield
    except InputError:
        raise
    except _damage_errors() as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InputError(f"{Path(path).name} is damaged or incomplete and cannot be read ({reason}); open it in "
                         "Blender and save it again, or use a backup (.blend1)") from None


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    from blender_asset_tracer import blendfile

    with damage_refused(path):
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
        views: List[str] = []
        if int(block.get((b"r", b"scemode"))) & _R_MULTIVIEW and \
                int(block.get((b"r", b"im_format", b"views_format"))) == _VIEWS_INDIVIDUAL:
            views = _view_suffixes(block)
        settings = _settings_groups(bf)
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
            movie=imtype in MOVIE_TYPES,
            views=views,
            cycles_device="GPU" if _int_setting(block, "cycles", "device") == 1 else "CPU",
            addons={k: v for k, v in settings.items() if k not in BUILTIN_SETTINGS},
        )


def _groups(block: Any) -> Iterator[Any]:
    """The settings groups (IDProperty groups) an ID block holds: registered add-on properties live in
    ``system_properties`` since Blender 5.0, in ``properties`` before."""
    from blender_asset_tracer.blendfile import iterators

    for field_name in (b"system_properties", b"properties"):
        try:
            props = block.get_pointer((b"id", field_name))
        except KeyError:
            continue
        if props is None:
            continue
        yield from iterators.listbase(props.get_pointer((b"data", b"group", b"first")))


def _int_setting(block: Any, group: str, name: str) -> Optional[int]:
    from blender_asset_tracer.blendfile import iterators

    for prop in _groups(block):
        if _text(prop.get(b"name")) == group:
            for item in iterators.listbase(prop.get_pointer((b"data", b"group", b"first"))):
                if _text(item.get(b"name")) == name:
                    return int(item.get((b"data", b"val")))
    return None


def _settings_groups(bf: Any) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {}
    for block in bf.blocks:
        if len(block.code) != 2 or block.code in (b"ID", b"WM", b"SN", b"LI", b"WS"):
            continue
        try:
            groups = list(_groups(block))
        except Exception:  # a block type without an ID header
            continue
        for prop in groups:
            if int(prop.get(b"type")) == 6:  # IDP_GROUP
                found.setdefault(_text(prop.get(b"name")), []).append(_text(block.id_name)[2:])
    return found


def _view_suffixes(scene: Any) -> List[str]:
    """The file suffixes of the scene's enabled render views (``_L``, ``_R`` for stereo)."""
    from blender_asset_tracer.blendfile import iterators

    suffixes = []
    for view in iterators.listbase(scene.get_pointer((b"r", b"views", b"first"))):
        if not int(view.get(b"viewflag")) & 1:  # SCE_VIEW_DISABLE
            suffixes.append(_text(view.get(b"suffix")))
    return suffixes


# NodeShaderScript.mode and NodeShaderTexIES.mode: the file is on disk (NODE_SCRIPT_EXTERNAL, NODE_IES_EXTERNAL)
_FILE_EXTERNAL = 1
# Shader nodes naming a file of their own, and the owners whose trees BAT already reads them from (its lamp
# handler takes every node storage's filepath in a light's tree: IES profiles there, scripts too)
_FILE_NODES = {"ShaderNodeScript": (), "ShaderNodeTexIES": (b"LA",)}
_NODETREE_OWNERS = (b"MA", b"WO", b"LA", b"TE", b"LS")


def _block_iterator() -> Any:
    """BAT's block iterator, with what BAT 1.23 misses for Tether's calls only (BAT itself is left untouched: inside
    Blender it is shared with other add-ons, Flamenco's for one): 1.23 reads ``compositing_node_group`` for every
    ID of a Blender 5.0 file, but only scenes have it, so materials, worlds and lights expand to nothing and their
    textures in linked libraries are missed. Their ``nodetree`` is expanded here as well."""
    from blender_asset_tracer.trace import expanders, file2blocks

    class Blocks(file2blocks.BlockIterator):
        def _queue_dependencies(self, block: Any) -> None:
            super()._queue_dependencies(block)
            ntree = _nodetree(block)
            if ntree is not None:
                for dep in expanders._expand_generic_nodetree(ntree):
                    if dep is not None:
                        self.to_visit.put(dep)

    return Blocks()


def _nodetree(block: Any) -> Any:
    if block.code not in _NODETREE_OWNERS:
        return None
    try:
        return block.get_pointer(b"nodetree", None)
    except KeyError:
        return None


def _nodes(ntree: Any) -> Iterator[Any]:
    from blender_asset_tracer.blendfile import iterators

    if ntree is None or ntree.dna_type.dna_type_id != b"bNodeTree":
        return
    yield from iterators.listbase(ntree.get_pointer((b"nodes", b"first")))


def _node_file_usages(block: Any) -> Iterator[Any]:
    """Files of shader nodes BAT does not collect: external OSL scripts of Script nodes, and IES profiles of IES
    Texture nodes outside lights (in a material, a world or a node group)."""
    from blender_asset_tracer.trace import result

    trees = [_nodetree(block)] if block.code != b"NT" else [block]
    for ntree in trees:
        for node in _nodes(ntree):
            read_by_bat = _FILE_NODES.get(node.get(b"idname", as_str=True))
            if read_by_bat is None or block.code in read_by_bat:
                continue
            storage = node.get_pointer(b"storage")
            if storage is None or storage.get(b"mode") != _FILE_EXTERNAL:
                continue
            path, field_ = storage.get(b"filepath", return_field=True)
            if path:
                yield result.BlockUsage(storage, path, path_full_field=field_, block_name=block.id_name)


def trace_usages(path: Path) -> Iterator[Any]:
    """BAT's ``trace.deps`` through Tether's seam: every ``BlockUsage`` of the scene and its libraries, with the
    kinds BAT misses (see :func:`_block_iterator`, :func:`_node_file_usages`)."""
    from blender_asset_tracer import trace
    from blender_asset_tracer.trace import blocks2assets

    with damage_refused(path):
        iterator = _block_iterator()
        bfile = iterator.open_blendfile(path)
        seen: Set[int] = set()
        for block in trace.asset_holding_blocks(iterator.iter_blocks(bfile)):
            for usage in [*blocks2assets.iter_assets(block), *_node_file_usages(block)]:
                key = hash(usage)
                if key not in seen:
                    seen.add(key)
                    yield usage


def missing_name(usage: Any) -> str:
    """The datablock that asked for a file, as the artist knows it (``wood`` for image ``IMwood``)."""
    name = _text(usage.block_name)
    return name[2:] if len(name) > 2 and name[:2].isupper() else name
