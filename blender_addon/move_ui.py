"""The Move panel in the 3D Viewport sidebar (category "Tether"): send a video, follow the job, import the rig, and
retarget it onto the artist's character through an editable bone map.

``draw()`` reads the scene and the Move runtime's status; it never writes ID data and starts no work.
"""

from __future__ import annotations

import textwrap
from typing import Any, Tuple

import bpy
from bpy.types import Panel, UIList

from . import access, move_ops


def draw_move(layout: Any, context: Any) -> None:
    scene = context.scene
    settings = scene.tether_move
    if not access.online():
        layout.label(text="Online access is off", icon="ERROR")
        draw_retarget(layout.box(), settings)
        return
    col = layout.column()
    col.prop(settings, "video_path")
    if not settings.video_path.strip():
        take = move_ops.active_strip(scene)
        if take is None:
            col.label(text="No video: choose a file or make a movie strip active", icon="INFO")
        else:
            window = f", {take.start:.2f}-{take.end:.2f} s" if take.start is not None and take.end is not None else ""
            col.label(text=f"Strip: {bpy.path.basename(take.video)}{window}, from frame {take.frame}",
                      icon="SEQUENCE")
    col.prop(settings, "auto_import")
    col.prop(settings, "set_frame_range")
    col.prop(settings, "use_clip_rate")
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
        elif settings.handoff_entry:
            layout.label(text=f"Sent through the Tether agent (queue entry {settings.handoff_entry})")
            layout.operator("tether.move_follow", icon="FILE_REFRESH")
        if status is not None and status.fbx:
            op = layout.operator("tether.move_import", text="Import Rig Again", icon="IMPORT")
            op.filepath = status.fbx
    if status is not None:
        for notice in status.notices[-2:]:
            icon = {"ERROR": "ERROR", "WARNING": "ERROR"}.get(notice.level, "INFO")
            for index, line in enumerate(textwrap.wrap(notice.text, 60) or [""]):
                layout.label(text=line, icon=icon if index == 0 else "BLANK1")
    draw_retarget(layout.box(), settings)


def draw_retarget(layout: Any, settings: Any) -> None:
    layout.label(text="Retarget", icon="OUTLINER_OB_ARMATURE")
    col = layout.column()
    col.prop(settings, "source_rig")
    col.prop(settings, "target_rig")
    row = layout.row(align=True)
    row.prop(settings, "bone_preset", text="")
    row.operator("tether.move_bone_preset", text="Load", icon="PRESET")
    layout.template_list("TETHER_UL_move_bones", "", settings, "bone_map", settings, "bone_map_index", rows=4)
    row = layout.row()
    row.enabled = settings.source_rig is not None and settings.target_rig is not None and len(settings.bone_map) > 0
    row.operator("tether.move_retarget", icon="ARMATURE_DATA")


class TETHER_UL_move_bones(UIList):
    """One row per Move bone: the character's bone that follows it, picked from the character's bones."""

    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any, active_data: Any,
                  active_property: Any, index: Any = 0, flt_flag: Any = 0) -> None:
        split = layout.split(factor=0.4)
        split.label(text=item.source)
        target = data.target_rig
        if target is not None:
            split.prop_search(item, "target", target.data, "bones", text="")
        else:
            split.prop(item, "target", text="")


class VIEW3D_PT_tether_move(Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Tether"
    bl_label = "Move (Motion Capture)"

    def draw(self, context: Any) -> None:
        draw_move(self.layout, context)


CLASSES: Tuple[Any, ...] = (TETHER_UL_move_bones, VIEW3D_PT_tether_move)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
