"""The Move panel in the 3D Viewport sidebar (category "Tether"): send a video, follow the job, import the rig.

``draw()`` reads the scene and the Move runtime's status; it never writes ID data and starts no work.
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.types import Panel

from . import access, move_ops


def draw_move(layout: Any, context: Any) -> None:
    scene = context.scene
    settings = scene.tether_move
    if not access.online():
        layout.label(text="Online access is off", icon="ERROR")
        return
    col = layout.column()
    col.prop(settings, "video_path")
    if not settings.video_path.strip():
        strip = move_ops.strip_video(scene)
        col.label(text=f"Sequencer strip: {bpy.path.basename(strip)}" if strip else
                  "No video: choose a file or make a movie strip active", icon="SEQUENCE" if strip else "INFO")
    col.prop(settings, "auto_import")
    col.prop(settings, "set_frame_range")
    rt = move_ops.peek_runtime()
    status = rt.status if rt is not None else None
    if status is not None and status.busy:
        box = layout.box()
        box.progress(factor=status.factor, type="BAR", text=status.message or status.phase)
        if status.state:
            box.label(text=f"Job {status.job_id}: {status.state}")
        box.operator("tether.move_stop", icon="CANCEL")
    else:
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("tether.move_submit", icon="ARMATURE_DATA")
        if settings.job_id:
            layout.label(text=f"Job: {settings.job_id}")
            layout.operator("tether.move_follow", icon="FILE_REFRESH").job_id = settings.job_id
        if status is not None and status.fbx:
            op = layout.operator("tether.move_import", text="Import Rig Again", icon="IMPORT")
            op.filepath = status.fbx
    if status is not None:
        for notice in status.notices[-2:]:
            layout.label(text=notice.text[:160], icon={"ERROR": "ERROR", "WARNING": "ERROR"}.get(notice.level, "INFO"))


class VIEW3D_PT_tether_move(Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Tether"
    bl_label = "Move (Motion Capture)"

    def draw(self, context: Any) -> None:
        draw_move(self.layout, context)


CLASSES = (VIEW3D_PT_tether_move,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
