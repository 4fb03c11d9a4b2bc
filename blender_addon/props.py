"""Per-scene farm settings (a PropertyGroup on Scene). No secret is ever stored here: it is saved in the .blend."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy.types import PropertyGroup

DEFAULT_ID = "__default__"


def upload_priority_property(what: str, command: str) -> Any:
    """The Upload Priority control of every send handed to the Tether agent (the farm submit, Capture Motion)."""
    return IntProperty(
        name="Upload Priority", default=0, soft_min=-10, soft_max=10,
        description=f"The Tether agent's order for {what}: a higher one goes first, and overtakes a lower one's "
                    f"upload between files (as `{command} --priority`; `tether agent priority` changes it while it "
                    "waits)")


# Blender keeps only pointers to enum item strings: Python must hold the lists, or the menu shows garbage.
_ITEMS: Dict[str, List[Tuple[str, str, str]]] = {}


def _catalog() -> Dict[str, List[Tuple[str, str, str]]]:
    from . import ops

    runtime = ops.peek_runtime()
    return runtime.ui.catalog if runtime is not None else {}


def _items_for(kind: str, current: str, default_label: str) -> List[Tuple[str, str, str]]:
    items = [(DEFAULT_ID, default_label, "Let the farm choose")]
    listed = list(_catalog().get(kind, []))
    items += listed
    if current and current not in {i[0] for i in listed}:  # a value the farm has not listed (yet): keep it visible
        items.append((current, current, "Not in the farm's list (refresh, or it will be refused at submit)"))
    _ITEMS[kind] = items
    return items


def _menu(kind: str, default_label: str) -> Any:
    def items(self: Any, _context: Any) -> List[Tuple[str, str, str]]:
        return _items_for(kind, getattr(self, kind), default_label)

    def get(self: Any) -> int:
        current = getattr(self, kind)
        for index, item in enumerate(_ITEMS.get(kind) or _items_for(kind, current, default_label)):
            if item[0] == (current or DEFAULT_ID):
                return index
        return 0

    def set_(self: Any, value: int) -> None:
        listed = _ITEMS.get(kind) or _items_for(kind, getattr(self, kind), default_label)
        if 0 <= value < len(listed):
            ident = listed[value][0]
            setattr(self, kind, "" if ident == DEFAULT_ID else ident)

    return EnumProperty(name=kind.replace("_", " ").title(), items=items, get=get, set=set_,
                        description="From the farm's list (fetched in the background and cached)")


class TETHER_PG_path(PropertyGroup):
    path: StringProperty(  # type: ignore[valid-type]
        name="File", subtype="FILE_PATH",
        description="A file the render needs that the scene does not reference (a script, an OCIO config...)")


class TETHER_PG_env(PropertyGroup):
    name: StringProperty(name="Name", description="Environment variable name")  # type: ignore[valid-type]
    value: StringProperty(name="Value", description="Saved in the .blend: never put a password or token here")  # type: ignore[valid-type]


class TETHER_PG_scene(PropertyGroup):
    project: StringProperty(name="Project", default="default",  # type: ignore[valid-type]
                            description="Farm project the job is billed to (created if it does not exist)")
    project_menu: _menu("project", "default")  # type: ignore[valid-type]
    instance_type: StringProperty(name="Instance Type", default="")  # type: ignore[valid-type]
    instance_type_menu: _menu("instance_type", "Farm default")  # type: ignore[valid-type]
    blender_version: StringProperty(name="Blender Version", default="")  # type: ignore[valid-type]
    blender_version_menu: _menu("blender_version", "Newest")  # type: ignore[valid-type]
    use_frames_override: BoolProperty(  # type: ignore[valid-type]
        name="Override Frames", default=False, description="Render another frame list than the scene's range")
    frames_override: StringProperty(  # type: ignore[valid-type]
        name="Frames", default="", description="Full frame spec: 1-100x2, 1,5,10-20; relative to the scene's range")
    chunk_size: IntProperty(name="Chunk Size", default=1, min=1, soft_max=100,  # type: ignore[valid-type]
                            description="Frames per farm task")
    scout: StringProperty(  # type: ignore[valid-type]
        name="Scout Frames", default="",
        description="Frames rendered first, the rest held until released: fml:3, auto:5, or frames like 1,50")
    preemptible: BoolProperty(name="Preemptible", default=False,  # type: ignore[valid-type]
                              description="Cheaper machines that may be taken away mid-task")
    preemptible_retries: IntProperty(name="Retries", default=1, min=0, max=10,  # type: ignore[valid-type]
                                     description="How often a preempted task is retried")
    fetch_dir: StringProperty(  # type: ignore[valid-type]
        name="Fetch To", subtype="DIR_PATH", default="",
        description="Where finished frames are downloaded; empty: the scene's own output folder")
    auto_fetch: BoolProperty(name="Fetch When Done", default=True,  # type: ignore[valid-type]
                             description="Download the frames as soon as the job completes")
    upload_priority: upload_priority_property("this scene's upload", "tether farm submit")  # type: ignore[valid-type]
    extra_files: CollectionProperty(type=TETHER_PG_path)  # type: ignore[valid-type]
    extra_files_index: IntProperty(default=0)  # type: ignore[valid-type]
    environment: CollectionProperty(type=TETHER_PG_env)  # type: ignore[valid-type]
    environment_index: IntProperty(default=0)  # type: ignore[valid-type]
    show_all_jobs: BoolProperty(name="All Jobs", default=False,  # type: ignore[valid-type]
                                description="Show every farm job of this user, not only this file's")
    priority: IntProperty(name="Priority", default=50, min=0, max=100,  # type: ignore[valid-type]
                          description="Priority given by the Set Priority button")


CLASSES = (TETHER_PG_path, TETHER_PG_env, TETHER_PG_scene)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.tether = PointerProperty(type=TETHER_PG_scene)  # type: ignore[attr-defined]


def unregister() -> None:
    if hasattr(bpy.types.Scene, "tether"):
        del bpy.types.Scene.tether
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    _ITEMS.clear()
