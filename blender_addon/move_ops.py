"""Move operators: send a video (or the active VSE movie strip's file) for motion capture, follow the job, import
the FBX rig it returns (axis forward -Y, up Z, as Move's own add-on does) and set the scene's frame range from it.

Same rules as :mod:`.ops`: ``bpy`` is read here, on the main thread, into plain values; the worker
(:mod:`.move_backend`) posts to its own hand-off; :func:`tick` (a ``bpy.app.timers`` callback) applies the events and
imports a finished rig on the main thread. Headless, ``wait=True`` (or background mode) joins the worker and
imports in ``execute()``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import bpy
from bpy.props import BoolProperty, PointerProperty, StringProperty
from bpy.types import Operator, PropertyGroup

from . import access
from .mainthread import Result, RuntimeSlot, redraw, stop_task

if TYPE_CHECKING:
    from .move_backend import MoveRuntime

TICK_S = 0.2


class TETHER_PG_move(PropertyGroup):
    video_path: StringProperty(  # type: ignore[valid-type]
        name="Video", subtype="FILE_PATH", default="",
        description="The video to capture (.mp4, .mov, .avi); empty: the active movie strip in the Sequencer")
    job_id: StringProperty(name="Job", default="",  # type: ignore[valid-type]
                           description="The Move job of this scene (filled in when a video is sent)")
    auto_import: BoolProperty(name="Import When Done", default=True,  # type: ignore[valid-type]
                              description="Import the FBX rig as soon as the job finishes")
    set_frame_range: BoolProperty(name="Set Frame Range", default=True,  # type: ignore[valid-type]
                                  description="Set the scene's start and end frames from the imported take")


# --- runtime and timer ----------------------------------------------------------------------------------------
def _new_runtime() -> MoveRuntime:
    from .move_backend import MoveRuntime

    return MoveRuntime()


def pump(context: Any = None) -> List[Dict[str, Any]]:
    """Apply what the worker posted; import a finished rig when the scene asks for it. Main thread only."""
    rt = peek_runtime()
    if rt is None:
        return []
    finished = rt.pump()
    for result in finished:
        print(f"Tether Move: {result.get('phase')}: {result.get('message')}")
        scene: Any = (context or bpy.context).scene
        if result.get("job_id") and scene is not None:
            scene.tether_move.job_id = str(result["job_id"])
        if result.get("phase") == "done" and result.get("fbx") and scene is not None and scene.tether_move.auto_import:
            try:
                import_rig(context or bpy.context, str(result["fbx"]), fps=result.get("fps"),
                           set_range=scene.tether_move.set_frame_range)
            except RuntimeError as exc:
                result["phase"], result["message"] = "failed", f"importing {result['fbx']} failed: {exc}"
                rt.status.phase, rt.status.message = "failed", result["message"]
    return finished


def _on_tick() -> None:
    pump()
    redraw({"VIEW_3D"})


_SLOT: RuntimeSlot[MoveRuntime] = RuntimeSlot(_new_runtime, _on_tick, TICK_S)
# The module's names for the slot (move_ui.py, __init__.py and the tests use them).
peek_runtime = _SLOT.peek
runtime = _SLOT.get
drop_runtime = _SLOT.drop
tick = _SLOT.tick
ensure_timer = _SLOT.ensure_timer
stop_timer = _SLOT.stop_timer


# --- the scene (main thread) ----------------------------------------------------------------------------------
def strip_video(scene: Any) -> Optional[str]:
    """The active Sequencer strip's movie file, when it is a movie strip."""
    editor = getattr(scene, "sequence_editor", None)
    strip = getattr(editor, "active_strip", None) if editor is not None else None
    if strip is None or getattr(strip, "type", "") != "MOVIE":
        return None
    return os.path.normpath(bpy.path.abspath(strip.filepath)) if strip.filepath else None


def chosen_video(scene: Any) -> Optional[str]:
    path = scene.tether_move.video_path.strip()
    if path:
        return os.path.normpath(bpy.path.abspath(path))
    return strip_video(scene)


def rig_folder() -> str:
    """Rigs go beside the saved .blend (``//move/<job>/``), else into Tether's data folder."""
    return os.path.join(os.path.dirname(bpy.data.filepath), "move") if bpy.data.filepath else ""


def import_rig(context: Any, filepath: str, *, fps: Any = None, set_range: bool = True) -> List[Any]:
    """Import an FBX rig as Move's own add-on does; set the frame range (and fps, when known) from the take."""
    from .move_backend import rig_frame_range

    before = set(bpy.data.objects)
    result: Any = bpy.ops.import_scene.fbx(filepath=filepath, axis_forward="-Y", axis_up="Z")
    if "FINISHED" not in result:
        raise RuntimeError(f"the FBX importer refused {filepath}")
    new = [o for o in bpy.data.objects if o not in before]
    armatures = [o for o in new if o.type == "ARMATURE"]
    if not armatures:
        raise RuntimeError(f"{os.path.basename(filepath)} holds no armature")
    scene = context.scene
    if set_range:
        actions = [o.animation_data.action for o in armatures
                   if o.animation_data is not None and o.animation_data.action is not None]
        ranges: List[tuple] = [(a.frame_range[0], a.frame_range[1]) for a in actions]
        span = rig_frame_range(ranges)
        if span is not None:
            scene.frame_start, scene.frame_end = span
    if isinstance(fps, (int, float)) and fps > 0:
        scene.render.fps = max(1, round(fps))
        scene.render.fps_base = scene.render.fps / float(fps)
    return armatures


# --- operators ------------------------------------------------------------------------------------------------
def _start(context: Any, op: Operator, values: Any, wait: bool) -> Result:
    rt = runtime()
    if rt.task is not None and rt.task.alive():
        op.report({"ERROR"}, "A Move job is already being sent or followed: wait for it, or Stop it")
        return {"CANCELLED"}
    rt.start(values)
    ensure_timer()
    if not (wait or bpy.app.background or context.window is None):
        op.report({"INFO"}, "Sent to Move; the rig is imported when the job finishes")
        return {"FINISHED"}
    assert rt.task is not None
    rt.task.join()
    for result in pump(context):
        if result.get("phase") != "done":
            op.report({"ERROR"} if result.get("phase") == "failed" else {"WARNING"}, str(result.get("message")))
            return {"CANCELLED"}
        op.report({"INFO"}, str(result.get("message")))
    return {"FINISHED"}


class TETHER_OT_move_submit(Operator):
    """Send the video (or the active Sequencer movie strip) to Move for motion capture and import the rig"""

    bl_idname = "tether.move_submit"
    bl_label = "Capture Motion"

    wait: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        from .move_backend import MoveRequestValues

        if access.refuse_offline(self):
            return {"CANCELLED"}
        video = chosen_video(context.scene)
        if not video:
            self.report({"ERROR"}, "Choose a video file, or make a movie strip active in the Sequencer")
            return {"CANCELLED"}
        if not os.path.isfile(video):
            self.report({"ERROR"}, f"Video not found: {video}")
            return {"CANCELLED"}
        values = MoveRequestValues(profile=access.account(context).profile, video=video,
                                   name=os.path.splitext(os.path.basename(video))[0], dest_root=rig_folder())
        return _start(context, self, values, self.wait)


class TETHER_OT_move_follow(Operator):
    """Follow the scene's Move job again (after reopening the file) and import its rig when it finishes"""

    bl_idname = "tether.move_follow"
    bl_label = "Follow Move Job"

    job_id: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]
    wait: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        from .move_backend import MoveRequestValues

        if access.refuse_offline(self):
            return {"CANCELLED"}
        job_id = self.job_id or context.scene.tether_move.job_id
        if not job_id:
            self.report({"ERROR"}, "No Move job to follow: send a video first")
            return {"CANCELLED"}
        values = MoveRequestValues(profile=access.account(context).profile, job_id=job_id, dest_root=rig_folder())
        return _start(context, self, values, self.wait)


class TETHER_OT_move_stop(Operator):
    """Stop the upload or stop following (a job already created goes on at Move)"""

    bl_idname = "tether.move_stop"
    bl_label = "Stop"

    def execute(self, context: Any) -> Result:
        rt = peek_runtime()
        return stop_task(self, rt.task if rt is not None else None, "Nothing is running")


class TETHER_OT_move_import(Operator):
    """Import a Move FBX rig (axis forward -Y, up Z) and set the frame range from its take"""

    bl_idname = "tether.move_import"
    bl_label = "Import Move Rig"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})  # type: ignore[valid-type]

    def invoke(self, context: Any, event: Any) -> Result:
        if self.filepath:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> Result:
        path = bpy.path.abspath(self.filepath)
        if not path or not os.path.isfile(path):
            self.report({"ERROR"}, f"FBX not found: {path or '(none)'}")
            return {"CANCELLED"}
        try:
            rigs = import_rig(context, path, set_range=context.scene.tether_move.set_frame_range)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        scene = context.scene
        self.report({"INFO"}, f"Imported {', '.join(o.name for o in rigs)}; frames {scene.frame_start}-"
                              f"{scene.frame_end}")
        return {"FINISHED"}


CLASSES: Tuple[Any, ...] = (TETHER_PG_move, TETHER_OT_move_submit, TETHER_OT_move_follow, TETHER_OT_move_stop,
                            TETHER_OT_move_import)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.tether_move = PointerProperty(type=TETHER_PG_move)  # type: ignore[attr-defined]


def unregister() -> None:
    stop_timer()
    drop_runtime()
    if hasattr(bpy.types.Scene, "tether_move"):
        del bpy.types.Scene.tether_move
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
