"""Panels: the 3D Viewport sidebar (category "Tether") and the same panels in Output properties.

``draw()`` reads the scene and the runtime's UIState and may start background work (a preflight, the monitor);
it never writes ID data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import bpy
from bpy.types import Panel, UIList

from . import access, ops

if TYPE_CHECKING:
    from .runtime import JobRow

STATE_ICONS = {"queued": "TIME", "running": "PLAY", "held": "PAUSE", "completed": "CHECKMARK", "failed": "ERROR",
               "cancelled": "CANCEL", "unknown": "QUESTION"}
MAX_JOBS = 8


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _start_background(context: Any) -> None:
    """What the panel needs from the network, started once (threads only: nothing written to ID data)."""
    rt = ops.runtime()
    if not rt.auto_started:
        rt.auto_started = True
        ops.request_catalog(context)
        ops.ensure_monitor()
    ops.request_summary(context)


# --- the sections, shared by both spaces ----------------------------------------------------------------------
def draw_main(layout: Any, context: Any) -> None:
    if not access.online():
        box = layout.box()
        box.label(text="Online access is off", icon="ERROR")
        box.label(text="Allow it in Preferences > System > Network > Allow Online Access")
        if not ops.runtime().lists_loaded:  # the lists kept on disk still let the artist prepare a submission
            ops.request_catalog(context, fetch=False)
        return
    _start_background(context)
    rt = ops.runtime()
    status = rt.ui.submit
    if not bpy.data.filepath:
        layout.label(text="Save the .blend first (File > Save As)", icon="ERROR")
    elif bpy.data.is_dirty:
        layout.label(text="Unsaved changes: Submit saves first", icon="INFO")
    if status.phase.busy:
        col = layout.column(align=True)
        text = status.message or status.phase.value
        if status.total_bytes:
            text += f"  {_size(status.done_bytes)} / {_size(status.total_bytes)}"
        col.progress(factor=status.factor, type="BAR", text=text)
        col.operator("tether.cancel_submit", text="Cancel", icon="CANCEL")
    else:
        summary = rt.ui.summary or {}
        missing = summary.get("missing") or []
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.enabled = bool(bpy.data.filepath)
        row.operator("tether.submit", text="Submit to Farm", icon="EXPORT")
        row.operator("tether.preview_payload", text="", icon="TEXT")  # what Submit would send, in the Text Editor
        if missing:
            sub = layout.row()
            sub.alert = True
            op = sub.operator("tether.submit", text=f"Submit Anyway, render without {len(missing)} missing",
                                icon="ERROR")
            op.allow_missing = True
        if status.phase.value in ("failed", "cancelled", "done") and status.message:
            icon = {"failed": "ERROR", "cancelled": "CANCEL"}.get(status.phase.value, "CHECKMARK")
            box = layout.box()
            box.alert = status.phase.value == "failed"
            for line in status.message.splitlines()[:6]:
                box.label(text=line, icon=icon)
                icon = "BLANK1"
    for notice in rt.ui.notices[-3:]:
        layout.label(text=notice.text, icon={"ERROR": "ERROR", "WARNING": "ERROR"}.get(notice.level, "INFO"))


def draw_settings(layout: Any, context: Any) -> None:
    scene = context.scene
    s = scene.tether
    rt = ops.peek_runtime()
    layout.use_property_split = True
    layout.use_property_decorate = False
    col = layout.column()
    col.prop(s, "project")
    if rt is not None and rt.ui.catalog.get("project"):
        col.prop(s, "project_menu", text="Existing")
    col.prop(s, "instance_type_menu", text="Instance")
    col.prop(s, "blender_version_menu", text="Blender")
    if rt is not None:
        note = rt.ui.lists_note(access.online())
        if note:
            col.label(text=note, icon="TIME")
        if rt.ui.catalog_error:
            # With lists from disk the failed fetch is a remark; with none, the artist must act on it.
            col.label(text=rt.ui.catalog_error[:120], icon="INFO" if rt.ui.catalog else "ERROR")
        _draw_not_listed(col, s, rt)
    col.separator()
    step = f" x{scene.frame_step}" if scene.frame_step > 1 else ""
    col.label(text=f"Scene frames: {scene.frame_start}-{scene.frame_end}{step}")
    col.prop(s, "use_frames_override")
    sub = col.column()
    sub.active = s.use_frames_override
    sub.prop(s, "frames_override", text="Frames")
    col.prop(s, "chunk_size")
    col.prop(s, "scout")
    col.prop(s, "preemptible")
    sub = col.column()
    sub.active = s.preemptible
    sub.prop(s, "preemptible_retries")
    col.separator()
    col.prop(s, "fetch_dir")
    col.prop(s, "auto_fetch")
    col.prop(s, "upload_priority")
    col.label(text=f"Frames are named by Output: {scene.render.filepath or '(empty)'}")


def _list(layout: Any, s: Any, name: str, label: str, list_id: str) -> None:
    layout.label(text=label)
    row = layout.row()
    row.template_list(list_id, name, s, name, s, f"{name}_index", rows=2)
    col = row.column(align=True)
    op = col.operator("tether.list_edit", text="", icon="ADD")
    op.collection = name
    op = col.operator("tether.list_edit", text="", icon="REMOVE")
    op.collection = name
    op.remove = True


def draw_extras(layout: Any, context: Any) -> None:
    s = context.scene.tether
    _list(layout, s, "extra_files", "Extra files to upload:", "TETHER_UL_paths")
    _list(layout, s, "environment", "Environment variables (saved in the .blend: no secrets):", "TETHER_UL_env")


def _draw_not_listed(layout: Any, s: Any, rt: Any) -> None:
    """Choices the farm's lists no longer offer: flagged, never changed behind the artist's back."""
    for notice in rt.ui.not_listed(ops.chosen_from_lists(s)):
        refused = notice.level == "ERROR"
        row = layout.row()
        row.alert = refused
        row.label(text=notice.text, icon="ERROR" if refused else "INFO")


def _lines(text: Any, width: int = 90, most: int = 6) -> List[str]:
    """A message in panel-wide lines (a label does not wrap): what to change is at the end, so none is cut."""
    import textwrap

    lines = [part for para in str(text).splitlines() for part in textwrap.wrap(para, width)]
    return [*lines[:most - 1], " ".join(lines[most - 1:])] if len(lines) > most else lines


def draw_summary(layout: Any, context: Any) -> None:
    rt = ops.peek_runtime()
    if rt is not None:
        _draw_not_listed(layout, context.scene.tether, rt)
    if not bpy.data.filepath:
        layout.label(text="Save the .blend to see what would be sent")
        return
    if rt is None or (rt.ui.summary is None and rt.ui.summary_running):
        layout.label(text="Checking the scene...", icon="SORTTIME")
        return
    summary = rt.ui.summary
    if summary is None:
        layout.label(text="No summary yet: press Refresh")
        return
    col = layout.column(align=True)
    if "frames" in summary:
        col.label(text=f"Frames: {summary['frames']}  ({summary['frame_spec']})")
        col.label(text=f"Tasks: {summary['tasks']}  scout tasks: {summary['scout_tasks']}")
        found = summary.get("found") or []
        col.label(text=f"Dependencies: {len(found)} found, {len(summary.get('missing') or [])} missing")
        col.label(text=f"Upload size: {_size(int(summary.get('upload_size') or 0))}")
        for path in (summary.get("missing") or [])[:6]:
            row = col.row()
            row.alert = True
            user = (summary.get("missing_from") or {}).get(path, "?")
            row.label(text=f"Missing: {bpy.path.basename(path)} (used by {user})", icon="ERROR")
    for text in summary.get("errors") or []:
        box = col.box()
        box.alert = True
        for i, line in enumerate(_lines(text)):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
    for text in summary.get("warnings") or []:
        for i, line in enumerate(_lines(text)):
            col.label(text=line, icon="INFO" if i == 0 else "BLANK1")
    if rt.ui.summary_running:
        col.label(text="Checking again...", icon="SORTTIME")
    if bpy.data.is_dirty:
        col.label(text="Of the saved file; unsaved changes are not included", icon="INFO")
    layout.operator("tether.preview_payload", icon="TEXT")


def visible_jobs(rows: List[JobRow], context: Any) -> List[JobRow]:
    """The farm's rows (Move's are in its own panel): this file's scene's, or all of them."""
    farm = [r for r in rows if r.service == "farm"]
    if context.scene.tether.show_all_jobs:
        return farm
    here = bpy.data.filepath
    return [r for r in farm if r.source == here and (not r.scene or r.scene == context.scene.name)]


def draw_jobs(layout: Any, context: Any) -> None:
    s = context.scene.tether
    rt = ops.peek_runtime()
    row = layout.row(align=True)
    row.prop(s, "show_all_jobs", toggle=True)
    row.prop(s, "priority")
    row.operator("tether.refresh", text="", icon="FILE_REFRESH")
    if rt is None:
        layout.label(text="No jobs yet")
        return
    if rt.ui.jobs_error:
        layout.label(text=rt.ui.jobs_error[:200], icon="ERROR")
    rows = visible_jobs(rt.ui.jobs, context)
    if not rows:
        layout.label(text="No jobs for this file yet" if not s.show_all_jobs else "No jobs yet")
        return
    for job in rows[:MAX_JOBS]:
        _draw_job(layout.box(), job, s, rt.ui.fetching.get(job.job_id))
    if len(rows) > MAX_JOBS:
        layout.label(text=f"{len(rows) - MAX_JOBS} older jobs: `tether jobs` lists them all")


def _draw_job(box: Any, job: JobRow, s: Any, fetching: Any) -> None:
    if job.handoff:
        draw_handoff(box, job)
        return
    head = box.row()
    head.label(text=f"{job.title or job.job_id}", icon=STATE_ICONS.get(job.state, "QUESTION"))
    head.label(text=job.label)
    counts = f"tasks {job.completed}/{job.tasks} done"
    extra: List[Tuple[int, str]] = [(job.running, "running"), (job.waiting, "waiting"), (job.failed, "failed")]
    counts += "".join(f", {n} {word}" for n, word in extra if n)
    box.progress(factor=job.progress / 100.0, type="BAR", text=f"{job.progress:.0f}%  {counts}")
    if job.error and job.state in ("failed", "unknown"):
        line = box.row()
        line.alert = True
        line.label(text=job.error[:200], icon="ERROR")
    row = box.row(align=True)
    if not job.finished:
        if job.state == "held":
            _action(row, job, "unhold", "Release", "PLAY")
        else:
            _action(row, job, "hold", "Hold", "PAUSE")
        op = _action(row, job, "priority", "Priority", "SORT_DESC")
        op.priority = s.priority
        _action(row, job, "cancel", "Cancel", "CANCEL")
    if fetching is not None:
        box.progress(factor=float(fetching), type="BAR", text="Fetching frames")
    elif job.state == "completed":
        op = row.operator("tether.fetch", text="Fetch", icon="IMPORT")
        op.job_id = job.job_id
    if job.fetched_to:
        op = row.operator("tether.open_folder", text="", icon="FILE_FOLDER")
        op.path = job.fetched_to
    if job.came_home:
        box.label(text=f"Frames came home to {job.fetched_to}", icon="CHECKMARK")


def draw_handoff(box: Any, job: JobRow) -> None:
    """A submission the Tether agent holds, not a job yet: waiting or uploading (Blender may close), or failed; the
    farm's Jobs panel and Move's draw theirs alike."""
    head = box.row()
    head.label(text=job.title, icon=STATE_ICONS.get(job.state, "QUESTION"))
    head.label(text=job.label)
    if job.finished:
        line = box.row()
        line.alert = True
        line.label(text=f"The Tether agent could not submit it: {job.error or 'no reason given'}"[:200], icon="ERROR")
        return
    box.progress(factor=job.progress / 100.0, type="BAR", text=job.label)
    box.label(text=f"Handed to the Tether agent (queue entry {job.handoff}): Blender may close", icon="INFO")
    op = box.row().operator("tether.job_action", text="Cancel", icon="CANCEL")
    op.handoff = job.handoff
    op.action = "cancel"


def _action(row: Any, job: JobRow, action: str, text: str, icon: str) -> Any:
    op = row.operator("tether.job_action", text=text, icon=icon)
    op.job_id = job.job_id
    op.action = action
    return op


def draw_status(self: Any, context: Any) -> None:
    """Status bar: the upload's progress while a submission runs."""
    rt = ops.peek_runtime()
    if rt is None or not rt.ui.submit.phase.busy:
        return
    status = rt.ui.submit
    self.layout.progress(factor=status.factor, type="RING", text=f"Tether: {status.message or status.phase.value}")


# --- lists and panel classes ----------------------------------------------------------------------------------
class TETHER_UL_paths(UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Optional[int], active_data: Any,
                  active_property: Optional[str], index: Optional[int] = 0, flt_flag: Optional[int] = 0) -> None:
        layout.prop(item, "path", text="", emboss=False)


class TETHER_UL_env(UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Optional[int], active_data: Any,
                  active_property: Optional[str], index: Optional[int] = 0, flt_flag: Optional[int] = 0) -> None:
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False)
        row.prop(item, "value", text="")


def _drawer(func: Any) -> Any:
    def draw(self: Any, context: Any) -> None:
        func(self.layout, context)

    draw.section = func  # type: ignore[attr-defined]
    return draw


def _panels(prefix: str, space: str, region: str, extra: Any) -> List[type]:
    """One family of panels (main + sub-panels) for a space, sharing the draw functions above."""
    main_id = f"{prefix}_PT_tether"
    base = {"bl_space_type": space, "bl_region_type": region, **extra}
    sections = [
        (main_id, "Tether Farm", None, draw_main, set()),
        (f"{prefix}_PT_tether_settings", "Settings", main_id, draw_settings, set()),
        (f"{prefix}_PT_tether_extras", "Extra Files & Environment", main_id, draw_extras, {"DEFAULT_CLOSED"}),
        (f"{prefix}_PT_tether_summary", "What Will Be Sent", main_id, draw_summary, set()),
        (f"{prefix}_PT_tether_jobs", "Jobs", main_id, draw_jobs, set()),
    ]
    classes: List[type] = []
    for idname, label, parent, func, options in sections:
        attrs = {**base, "bl_idname": idname, "bl_label": label, "bl_options": options, "draw": _drawer(func)}
        if parent:
            attrs["bl_parent_id"] = parent
        classes.append(type(idname, (Panel,), attrs))
    return classes


VIEW3D_PANELS = _panels("VIEW3D", "VIEW_3D", "UI", {"bl_category": "Tether"})
OUTPUT_PANELS = _panels("RENDER", "PROPERTIES", "WINDOW", {"bl_context": "output"})
CLASSES = (TETHER_UL_paths, TETHER_UL_env, *VIEW3D_PANELS, *OUTPUT_PANELS)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status)  # type: ignore[arg-type]  # stubs: draw funcs get (self, ctx)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status)  # type: ignore[arg-type]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
