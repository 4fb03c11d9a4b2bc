"""Tether for Blender: submit the open scene to a render farm, follow the job, fetch the frames.

Loads as a Blender extension (blender_manifest.toml) and as a legacy add-on (bl_info). ``register()`` imports only
``bpy`` and this package's light modules: httpx, pydantic and blender-asset-tracer load on the first network action,
on a worker thread.
"""

from __future__ import annotations

from typing import Any

bl_info = {
    "name": "Tether Render Farm",
    "author": "Tether developers",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "3D Viewport > Sidebar > Tether, and Properties > Output > Tether Farm",
    "description": "Submit the open scene to a render farm, follow the job and fetch the frames",
    "category": "Render",
}


def _append_tether_paths() -> None:
    """Trees named by ``TETHER_PYTHONPATH`` (Tether's own variable, os.pathsep-separated) go after Blender's own
    paths and the extension's wheels, so they never shadow them; a tree for another Python (``cp310-...``) is
    skipped, its compiled files would not load here."""
    import os
    import sys

    own = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    for tree in os.environ.get("TETHER_PYTHONPATH", "").split(os.pathsep):
        abi = os.path.basename(os.path.normpath(tree)).split("-")[0] if tree else ""
        if abi[:2] == "cp" and abi[2:].isdigit() and abi != own:
            continue
        if tree and os.path.isdir(tree) and tree not in sys.path:
            sys.path.append(tree)


def _on_load_post(*_args: Any) -> None:
    from . import move_ops, ops

    move_rt = move_ops.peek_runtime()
    if move_rt is not None and not move_rt.busy:  # another file's messages are not this one's
        move_rt.status.notices.clear()
        move_rt.status.fbx = ""
    rt = ops.peek_runtime()
    if rt is None:
        return
    rt.ui.summary = None
    rt.ui.summary_key = None
    if rt.monitor is not None:
        rt.monitor.kick()


def register() -> None:
    import bpy

    from . import move_ops, move_ui, ops, prefs, props, ui

    _append_tether_paths()
    for pref_cls in prefs.CLASSES:
        bpy.utils.register_class(pref_cls)
    props.register()
    for op_cls in ops.CLASSES:
        bpy.utils.register_class(op_cls)
    ui.register()
    move_ops.register()
    move_ui.register()
    handler = bpy.app.handlers.persistent(_on_load_post)
    if handler not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(handler)


def unregister() -> None:
    import bpy

    from . import move_ops, move_ui, ops, prefs, props, ui

    while _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    move_ui.unregister()
    move_ops.unregister()  # stops the Move worker too
    ops.stop_timer()
    ops.drop_runtime()  # stops the monitor and cancels a running upload
    ui.unregister()
    for op_cls in reversed(ops.CLASSES):
        bpy.utils.unregister_class(op_cls)
    props.unregister()
    for pref_cls in reversed(prefs.CLASSES):
        bpy.utils.unregister_class(pref_cls)
