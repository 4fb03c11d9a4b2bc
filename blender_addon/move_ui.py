"""The Move panel in the 3D Viewport sidebar (category "Tether"): send a video, follow the job, import the rig, and
retarget it onto the artist's character through an editable bone map.

``draw()`` reads the scene and the Move runtime's status; it never writes ID data. The Move Jobs sub-panel starts the
add-on's job monitor (as the farm panel's first draw does), which keeps its rows current.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any, Tuple

import bpy
from bpy.types import Panel, UIList

from . import access, move_ops, ops
from .ui import MAX_JOBS, STATE_ICONS, draw_handoff

if TYPE_CHECKING:
    from .runtime import JobRow


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
    col.prop(settings, "upload_priority")
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
            op.filepath, op.job_id = status.fbx, status.job_id
    if status is not None:
        for notice in status.notices[-2:]:
            icon = {"ERROR": "ERROR", "WARNING": "ERROR"}.get(notice.level, "INFO")
            for index, line in enumerate(textwrap.wrap(notice.text, 60) or [""]):
                layout.label(text=line, icon=icon if index == 0 else "BLANK1")
    draw_retarget(layout.box(), settings)


def draw_move_jobs(layout: Any, context: Any) -> None:
    """The Move sends the Tether agent holds (waiting, uploading, or failed, with why) and the Move jobs: where the
    artist looks for a take sent before Blender was closed."""
    if not access.online():
        layout.label(text="Online access is off", icon="ERROR")
        return
    ops.ensure_monitor()
    rt = ops.peek_runtime()
    rows = [r for r in rt.ui.jobs if r.service == "move"] if rt is not None else []
    if rt is not None and rt.ui.jobs_error:
        layout.label(text=rt.ui.jobs_error[:200], icon="ERROR")
    if not rows:
        layout.label(text="No Move jobs yet")
        return
    for job in rows[:MAX_JOBS]:
        box = layout.box()
        if job.handoff:
            draw_handoff(box, job)
        else:
            _draw_move_job(box, job)
    if len(rows) > MAX_JOBS:
        layout.label(text=f"{len(rows) - MAX_JOBS} older Move jobs: `tether jobs --service move` lists them all")


def _draw_move_job(box: Any, job: JobRow) -> None:
    head = box.row()
    head.label(text=job.title or job.job_id, icon=STATE_ICONS.get(job.state, "QUESTION"))
    head.label(text=job.label)
    if not job.finished:
        box.progress(factor=job.progress / 100.0, type="BAR", text=f"{job.progress:.0f}%")
    if job.error and job.state in ("failed", "unknown"):
        line = box.row()
        line.alert = True
        line.label(text=job.error[:200], icon="ERROR")
    if job.state == "completed":  # Follow reads a rig that came home, else downloads it, and imports it
        box.row().operator("tether.move_follow", text="Import Rig", icon="IMPORT").job_id = job.job_id
    if job.came_home:
        box.label(text=f"Rig came home to {job.fetched_to}", icon="CHECKMARK")


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


class _Sidebar(Panel):
    """Where Move's panels are: the 3D Viewport's sidebar, in the Tether tab."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Tether"


class VIEW3D_PT_tether_move(_Sidebar):
    bl_label = "Move (Motion Capture)"

    def draw(self, context: Any) -> None:
        draw_move(self.layout, context)


class VIEW3D_PT_tether_move_jobs(_Sidebar):
    bl_label = "Move Jobs"
    bl_parent_id = "VIEW3D_PT_tether_move"

    def draw(self, context: Any) -> None:
        draw_move_jobs(self.layout, context)


CLASSES: Tuple[Any, ...] = (TETHER_UL_move_bones, VIEW3D_PT_tether_move, VIEW3D_PT_tether_move_jobs)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
