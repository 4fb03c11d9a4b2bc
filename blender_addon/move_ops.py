"""Move operators: send a video (or the active Sequencer movie strip, its trim as Move's clip window) for motion
capture, follow the job, import the FBX rig it returns (upright, facing -Y, as Move's own add-on shows it) with its
keys on whole scene frames where the shot's picture is, and retarget it onto the artist's character.

Same rules as :mod:`.ops`: ``bpy`` is read here, on the main thread, into plain values; the worker
(:mod:`.move_backend`) posts to its own hand-off; :func:`tick` (a ``bpy.app.timers`` callback) applies the events and
imports a finished rig on the main thread. Headless, ``wait=True`` (or background mode) joins the worker and
imports in ``execute()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy.types import Operator, PropertyGroup

from . import access, bonemaps
from .mainthread import Result, RuntimeSlot, redraw, stop_task
from .props import upload_priority_property

if TYPE_CHECKING:
    from .move_backend import MoveRuntime, Retime, StripTake

TICK_S = 0.2


def _is_armature(_self: Any, obj: Any) -> bool:
    return getattr(obj, "type", "") == "ARMATURE"


class TETHER_PG_bone_pair(PropertyGroup):
    source: StringProperty(name="Move Bone", description="The bone of Move's skeleton")  # type: ignore[valid-type]
    target: StringProperty(name="Character Bone",  # type: ignore[valid-type]
                           description="The character's bone that follows it (empty: not retargeted)")


class TETHER_PG_move(PropertyGroup):
    video_path: StringProperty(  # type: ignore[valid-type]
        name="Video", subtype="FILE_PATH", default="",
        description="The video to capture (.mp4, .mov, .avi); empty: the active movie strip in the Sequencer")
    job_id: StringProperty(name="Job", default="",  # type: ignore[valid-type]
                           description="The Move job of this scene (filled in when a video is sent)")
    handoff_entry: IntProperty(  # type: ignore[valid-type]
        name="Hand-off", default=0, options={"HIDDEN"},
        description="The Tether agent's queue entry of the video sent last, until its job is known: Follow finds "
                    "the job the agent made for it (after Blender was closed too)")
    upload_priority: upload_priority_property("this video's upload", "tether move submit")  # type: ignore[valid-type]
    auto_import: BoolProperty(name="Import When Done", default=True,  # type: ignore[valid-type]
                              description="Import the FBX rig as soon as the job finishes")
    set_frame_range: BoolProperty(name="Set Frame Range", default=True,  # type: ignore[valid-type]
                                  description="Set the scene's start and end frames from the imported take")
    use_clip_rate: BoolProperty(  # type: ignore[valid-type]
        name="Use the Clip's Frame Rate", default=False,
        description="Set the scene's frame rate to the video's on import; off: the scene keeps its rate and the "
                    "take is retimed onto its whole frames, playing in real time")
    place_frame: IntProperty(  # type: ignore[valid-type]
        name="First Frame", default=1,
        description="The scene frame of the take's first key (the Sequencer strip's first visible frame)")
    source_rig: PointerProperty(type=bpy.types.Object, poll=_is_armature,  # type: ignore[valid-type]
                                name="Move Rig", description="The imported Move rig to retarget from")
    target_rig: PointerProperty(type=bpy.types.Object, poll=_is_armature,  # type: ignore[valid-type]
                                name="Character", description="The artist's armature the motion is retargeted onto")
    bone_preset: EnumProperty(name="Bone Map", items=bonemaps.preset_items(),  # type: ignore[valid-type]
                              description="The kind of rig the character is: fills the bone map below")
    bone_map: CollectionProperty(type=TETHER_PG_bone_pair)  # type: ignore[valid-type]
    bone_map_index: IntProperty(default=0)  # type: ignore[valid-type]


# --- runtime and timer ----------------------------------------------------------------------------------------
def _new_runtime() -> MoveRuntime:
    from .move_backend import MoveRuntime

    return MoveRuntime()


def rig_name(job_id: str) -> str:
    """Rigs are named after their job (two takes of one video are two rigs)."""
    return f"Move {job_id[:12]}" if job_id else "Move"


def pump(context: Any = None) -> List[Dict[str, Any]]:
    """Apply what the worker posted; import a finished rig when the scene asks for it. Main thread only.

    From the timer (no ``context``) the import is pushed as its own undo step; an operator's execute() is one."""
    rt = peek_runtime()
    if rt is None:
        return []
    finished = rt.pump()
    scene_now: Any = (context or bpy.context).scene
    if scene_now is not None and rt.status.entry and scene_now.tether_move.handoff_entry != rt.status.entry:
        # a new send handed to the agent: its job (not the one before it) is the scene's from now on
        scene_now.tether_move.handoff_entry, scene_now.tether_move.job_id = rt.status.entry, ""
    for result in finished:
        print(f"Tether Move: {result.get('phase')}: {result.get('message')}")
        scene: Any = (context or bpy.context).scene
        if scene is None:
            continue
        settings = scene.tether_move
        if result.get("job_id"):
            settings.job_id = str(result["job_id"])
        if result.get("phase") == "done" and result.get("fbx") and settings.auto_import:
            try:
                rig = import_rig(context or bpy.context, str(result["fbx"]), clip_fps=result.get("fps"),
                                 place=settings.place_frame, set_range=settings.set_frame_range,
                                 name=rig_name(str(result.get("job_id") or "")), use_clip_rate=settings.use_clip_rate)
            except RuntimeError as exc:
                result["phase"], result["message"] = "failed", f"importing {result['fbx']} failed: {exc}"
                rt.status.phase, rt.status.message = "failed", result["message"]
                continue
            result["message"] = f"{result.get('message')}. {rig.message}"
            rt.status.message = result["message"]
            if rt.status.notices:
                rt.status.notices[-1].text = result["message"]
            if context is None and bpy.ops.ed.undo_push.poll():  # type: ignore[call-arg]  # poll() takes no context in bpy
                bpy.ops.ed.undo_push(message="Import Move Rig")
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
def active_strip(scene: Any) -> Optional[StripTake]:
    """The active Sequencer movie strip as Move sees it: its file, the clip window of its trim, its first frame."""
    from .move_backend import strip_take

    editor = getattr(scene, "sequence_editor", None)
    strip = getattr(editor, "active_strip", None) if editor is not None else None
    if strip is None or getattr(strip, "type", "") != "MOVIE" or not strip.filepath:
        return None
    video = os.path.normpath(bpy.path.abspath(strip.filepath))
    fps = float(strip.fps) or scene.render.fps / scene.render.fps_base
    return strip_take(video, fps, strip.frame_start, strip.frame_final_start, strip.frame_final_end,
                      strip.frame_duration)


def strip_video(scene: Any) -> Optional[str]:
    """The active Sequencer strip's movie file, when it is a movie strip."""
    take = active_strip(scene)
    return take.video if take is not None else None


def chosen_take(scene: Any) -> Optional[StripTake]:
    """The chosen file (whole, its keys from the scene's first frame), else the active movie strip (its trim)."""
    from .move_backend import StripTake

    path = scene.tether_move.video_path.strip()
    if path:
        return StripTake(os.path.normpath(bpy.path.abspath(path)), 0.0, None, None, scene.frame_start)
    return active_strip(scene)


def chosen_video(scene: Any) -> Optional[str]:
    take = chosen_take(scene)
    return take.video if take is not None else None


def rig_folder() -> str:
    """Rigs go beside the saved .blend (``//move/<job>/``), else into Tether's data folder."""
    return os.path.join(os.path.dirname(bpy.data.filepath), "move") if bpy.data.filepath else ""


def action_fcurves(action: Any) -> List[Any]:
    """Every F-curve of a (Blender 4.4+ layered, or legacy) action."""
    curves: List[Any] = []
    for layer in getattr(action, "layers", ()):
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", ()):
                curves.extend(bag.fcurves)
    if not curves and hasattr(action, "fcurves"):
        curves.extend(action.fcurves)
    return curves


def _apply_object_scale(obj: Any) -> None:
    """A centimetre FBX comes in with object scale 0.01: move it into the bones (and their location keys)."""
    from mathutils import Matrix

    factor = obj.scale[0]
    if abs(factor - 1.0) < 1e-6 or max(obj.scale) - min(obj.scale) > 1e-6:
        return
    obj.data.transform(Matrix.Scale(factor, 4))
    obj.scale = (1.0, 1.0, 1.0)
    action = obj.animation_data.action if obj.animation_data is not None else None
    for fc in action_fcurves(action) if action is not None else []:
        # bone locations are in the bones' (now scaled) units; the object's own scale keys hold the 0.01 too
        bone = fc.data_path.startswith("pose.bones") and fc.data_path.endswith(".location")
        if bone or fc.data_path == "scale":
            by = factor if bone else 1.0 / factor
            for kp in fc.keyframe_points:
                kp.co[1] *= by
                kp.handle_left[1] *= by
                kp.handle_right[1] *= by


def _resample(curves: List[Any], retime: Retime) -> None:
    """Put every curve's keys on the retimed whole frames (linear between them: one key a frame)."""
    frames = retime.frames
    for fc in curves:
        values = [fc.evaluate(retime.source_frame(f)) for f in frames]
        points = fc.keyframe_points
        points.clear()
        points.add(len(frames))
        points.foreach_set("co", [c for f, v in zip(frames, values) for c in (float(f), v)])
        for kp in points:
            kp.interpolation = "LINEAR"
        fc.update()


@dataclass
class ImportedRig:
    armatures: List[Any]
    first: int
    last: int
    message: str


def import_rig(context: Any, filepath: str, *, clip_fps: Any = None, place: Optional[int] = None,
               set_range: bool = True, name: str = "", use_clip_rate: bool = False) -> ImportedRig:
    """Import an FBX rig (the file's own axes; its units put into the bones) and put its take on whole scene frames
    from ``place`` (default the scene's first frame), in real time at the scene's rate; the scene's rate changes
    only with ``use_clip_rate``.

    Blender's importer times keys with the whole-number ``render.fps`` and ignores ``fps_base`` (a 29.97 fps take
    drifts off the frames), and it sets the scene's rate from the file: both are undone here. ``name`` (the job)
    names the rig and its action; a rig of the same name from an earlier import is replaced."""
    from .move_backend import Retime

    scene = context.scene
    fps, fps_base = scene.render.fps, scene.render.fps_base
    start, end = scene.frame_start, scene.frame_end
    replaced = _remove_earlier(name)
    before = set(bpy.data.objects)
    # The file's own axes (its GlobalSettings), which land Move's rig upright facing -Y as Move's add-on shows it:
    # axis_forward/axis_up would count only with use_manual_orientation, which would lay a Y-up file on its back.
    result: Any = bpy.ops.import_scene.fbx(filepath=filepath, ignore_leaf_bones=True)
    if "FINISHED" not in result:
        raise RuntimeError(f"the FBX importer refused {filepath}")
    import_fps = float(scene.render.fps)
    if use_clip_rate and isinstance(clip_fps, (int, float)) and clip_fps > 0:
        scene.render.fps = max(1, round(clip_fps))
        scene.render.fps_base = scene.render.fps / float(clip_fps)
    else:
        scene.render.fps, scene.render.fps_base = fps, fps_base
    new = [o for o in bpy.data.objects if o not in before]
    armatures: List[Any] = [o for o in new if o.type == "ARMATURE"]
    if not armatures:
        raise RuntimeError(f"{os.path.basename(filepath)} holds no armature")
    actions: List[Any] = []
    for obj in armatures:
        _apply_object_scale(obj)
        action = obj.animation_data.action if obj.animation_data is not None else None
        if action is not None and action not in actions:
            actions.append(action)
    curves = [fc for action in actions for fc in action_fcurves(action)]
    keys = [kp.co[0] for fc in curves for kp in fc.keyframe_points]
    first = place if place is not None else scene.frame_start
    last = first
    if keys:
        retime = Retime(first_key=min(keys), last_key=max(keys), import_fps=import_fps,
                        scene_rate=scene.render.fps / scene.render.fps_base, place=first)
        _resample(curves, retime)
        last = retime.frames[-1]
    label = name or os.path.splitext(os.path.basename(filepath))[0]
    for index, obj in enumerate(armatures):
        obj.name = label if index == 0 else f"{label}.{index}"
        obj.data.name = obj.name
        obj["tether_move_rig"] = label
    for index, action in enumerate(actions):
        action.name = label if index == 0 else f"{label}.{index}"
    said = [f"take on frames {first}-{last}"]
    if set_range:
        scene.frame_start, scene.frame_end = first, last
        if (start, end) != (first, last):
            said.append(f"frame range {start}-{end} -> {first}-{last}")
    if scene.render.fps != fps or abs(scene.render.fps_base - fps_base) > 1e-9:
        said.append(f"scene rate set to the clip's {clip_fps:g} fps")
    if replaced:
        said.append(f"replaced the earlier {label}")
    scene.tether_move.source_rig = armatures[0]
    return ImportedRig(armatures, first, last, f"Imported {label}: " + "; ".join(said))


def _remove_earlier(name: str) -> bool:
    obj = bpy.data.objects.get(name) if name else None
    if obj is None or obj.type != "ARMATURE" or obj.get("tether_move_rig") != name:
        return False
    action = obj.animation_data.action if obj.animation_data is not None else None
    data = obj.data
    bpy.data.objects.remove(obj)
    if data.users == 0:
        bpy.data.armatures.remove(data)
    if action is not None and action.users == int(action.use_fake_user):  # the importer sets a fake user
        bpy.data.actions.remove(action)
    return True


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
    bl_options = {"REGISTER", "UNDO"}

    wait: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        from .move_backend import MoveRequestValues

        if access.refuse_offline(self):
            return {"CANCELLED"}
        take = chosen_take(context.scene)
        if take is None:
            self.report({"ERROR"}, "Choose a video file, or make a movie strip active in the Sequencer")
            return {"CANCELLED"}
        if not os.path.isfile(take.video):
            self.report({"ERROR"}, f"Video not found: {take.video}")
            return {"CANCELLED"}
        # the clip's length, rate and window are checked here, before anything is uploaded
        from tether.errors import InputError
        from tether.move.submit import MoveRequest, prepare

        try:
            prepare(None, MoveRequest(video=Path(take.video), start=take.start, end=take.end))
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        context.scene.tether_move.place_frame = take.frame
        values = MoveRequestValues(profile=access.account(context).profile, video=take.video,
                                   name=os.path.splitext(os.path.basename(take.video))[0], dest_root=rig_folder(),
                                   start=take.start, end=take.end,
                                   priority=context.scene.tether_move.upload_priority)
        return _start(context, self, values, self.wait)


class TETHER_OT_move_follow(Operator):
    """Follow the scene's Move job again (after reopening the file) and import its rig when it finishes"""

    bl_idname = "tether.move_follow"
    bl_label = "Follow Move Job"
    bl_options = {"REGISTER", "UNDO"}

    job_id: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]
    wait: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        from .move_backend import MoveRequestValues

        if access.refuse_offline(self):
            return {"CANCELLED"}
        settings = context.scene.tether_move
        job_id = self.job_id or settings.job_id
        # sent through the agent and Blender closed before it made the job: the job it made for that hand-off
        entry = 0 if job_id else settings.handoff_entry
        if not job_id and not entry:
            self.report({"ERROR"}, "No Move job to follow: send a video first")
            return {"CANCELLED"}
        if job_id and job_id != settings.job_id:  # not this scene's take: its keys start on the scene's first frame
            settings.place_frame = context.scene.frame_start
        values = MoveRequestValues(profile=access.account(context).profile, job_id=job_id, entry=entry,
                                   dest_root=rig_folder())
        return _start(context, self, values, self.wait)


class TETHER_OT_move_stop(Operator):
    """Stop the upload or stop following (a job already created goes on at Move)"""

    bl_idname = "tether.move_stop"
    bl_label = "Stop"

    def execute(self, context: Any) -> Result:
        rt = peek_runtime()
        return stop_task(self, rt.task if rt is not None else None, "Nothing is running")


class TETHER_OT_move_import(Operator):
    """Import a Move FBX rig, its take on whole scene frames from the scene's first frame"""

    bl_idname = "tether.move_import"
    bl_label = "Import Move Rig"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})  # type: ignore[valid-type]
    job_id: StringProperty(options={"SKIP_SAVE", "HIDDEN"})  # type: ignore[valid-type]  # the rig's job, to name it

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
        settings = context.scene.tether_move
        # named after its job (given, or the <job id> folder it was downloaded to), it replaces its earlier import;
        # a rig the agent brought home is in a folder named after the video
        folder = os.path.basename(os.path.dirname(path))
        job_id = self.job_id or (folder if folder.startswith("job-") else "")
        try:
            rig = import_rig(context, path, set_range=settings.set_frame_range, name=rig_name(job_id) if job_id else "")
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, rig.message)
        return {"FINISHED"}


# --- retargeting (main thread) ----------------------------------------------------------------------------------
def bone_pairs(settings: Any) -> List[Tuple[str, str]]:
    return [(p.source, p.target) for p in settings.bone_map if p.source and p.target]


def retarget(context: Any, source: Any, target: Any, pairs: List[Tuple[str, str]],
             frames: Optional[Tuple[int, int]] = None) -> str:
    """Bake the source rig's motion onto the target's bones with Blender's own constraints, scaled to the target.

    For each pair a helper bone is added to the source, parented to the source bone and turned as the target bone
    is at rest; the target bone copies the helper's world rotation, so it turns as much as the source bone has
    turned from *its* rest, whatever the two rigs' rolls or rest poses. The root (``Hips``) also travels from the
    target's origin as the source's does from its own, scaled by the ratio of the two hips' heights. Each frame's
    visual pose is keyed into a new action on the target; the helpers and constraints are removed."""

    missing = [f"{s} -> {t}" for s, t in pairs if s not in source.data.bones or t not in target.data.bones]
    if missing:
        raise ValueError(f"these bones are not in the rigs: {', '.join(missing[:6])}"
                         f"{' ...' if len(missing) > 6 else ''}: fix the bone map")
    if not pairs:
        raise ValueError("the bone map is empty: load a preset or map some bones")
    if source.animation_data is None or source.animation_data.action is None:
        raise ValueError(f"{source.name} has no motion to retarget")
    scene = context.scene
    first, last = frames or tuple(round(f) for f in source.animation_data.action.frame_range)
    root = next(((s, t) for s, t in pairs if s == bonemaps.ROOT), None)
    factor = 1.0
    if root is not None:
        src_h = (source.matrix_world @ source.data.bones[root[0]].head_local - source.matrix_world.translation).z
        tgt_h = (target.matrix_world @ target.data.bones[root[1]].head_local - target.matrix_world.translation).z
        if src_h > 1e-6 and tgt_h > 1e-6:
            factor = tgt_h / src_h
    view_layer = context.view_layer
    active, mode = view_layer.objects.active, getattr(context, "mode", "OBJECT")
    if mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    helpers: Dict[str, str] = {}
    src_rot = source.matrix_world.to_3x3().normalized()
    tgt_rot = target.matrix_world.to_3x3().normalized()
    view_layer.objects.active = source
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit = source.data.edit_bones
        for s_name, t_name in pairs:
            helper = edit.new(f"TETHER_RT_{s_name}")
            src_bone = edit[s_name]
            rest = src_rot.inverted() @ tgt_rot @ target.data.bones[t_name].matrix_local.to_3x3()
            matrix = rest.to_4x4()
            matrix.translation = src_bone.head
            helper.length = max(src_bone.length, 0.01)
            helper.matrix = matrix
            helper.parent = src_bone
            helpers[t_name] = helper.name
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    added = []
    try:
        for _source_name, t_name in pairs:
            pb = target.pose.bones[t_name]
            con = pb.constraints.new("COPY_ROTATION")
            con.name, con.target, con.subtarget = "Tether Retarget", source, helpers[t_name]
            added.append((pb, con))
        order = [target.pose.bones[t] for t in _parents_first(target, [t for _, t in pairs])]
        root_target = root[1] if root is not None else None
        baked: List[Tuple[int, List[Any]]] = []
        for frame in range(first, last + 1):
            scene.frame_set(frame)
            matrices = []
            for pb in order:
                matrix = pb.matrix.copy()
                if root is not None and pb.name == root_target:
                    # the hips travel as the source's do from its origin, scaled to the character's hips height
                    moved = source.matrix_world @ source.pose.bones[root[0]].head - source.matrix_world.translation
                    matrix.translation = target.matrix_world.inverted() @ (target.matrix_world.translation
                                                                           + moved * factor)
                matrices.append(target.convert_space(pose_bone=pb, matrix=matrix, from_space="POSE",
                                                     to_space="LOCAL"))
            baked.append((frame, matrices))
    finally:
        for pb, con in added:
            pb.constraints.remove(con)
        view_layer.objects.active = source
        bpy.ops.object.mode_set(mode="EDIT")
        for name in helpers.values():
            if name in source.data.edit_bones:
                source.data.edit_bones.remove(source.data.edit_bones[name])
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = active
    if target.animation_data is None:
        target.animation_data_create()
    action = bpy.data.actions.new(f"{target.name} <- {source.name}")
    target.animation_data.action = action
    for frame, matrices in baked:
        for pb, basis in zip(order, matrices):
            pb.matrix_basis = basis
            path = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(
                pb.rotation_mode, "rotation_euler")
            pb.keyframe_insert(path, frame=frame, group=pb.name)
            if pb.name == root_target:
                pb.keyframe_insert("location", frame=frame, group=pb.name)
    scene.frame_set(first)
    return (f"Retargeted {source.name} onto {target.name}: {len(pairs)} bones, frames {first}-{last}, "
            f"action {action.name}")


def _parents_first(rig: Any, names: List[str]) -> List[str]:
    depth = {n: len(rig.data.bones[n].parent_recursive) for n in names}
    return sorted(dict.fromkeys(names), key=lambda n: depth[n])


class TETHER_OT_move_bone_preset(Operator):
    """Fill the bone map from a preset (the kind of rig the character is)"""

    bl_idname = "tether.move_bone_preset"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    preset: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        settings = context.scene.tether_move
        key = self.preset or settings.bone_preset
        target = settings.target_rig
        if not self.preset and target is not None:
            key = bonemaps.guess_preset(b.name for b in target.data.bones) or key
        if key not in bonemaps.PRESETS:
            self.report({"ERROR"}, f"No bone map preset {key!r}")
            return {"CANCELLED"}
        settings.bone_preset = key
        settings.bone_map.clear()
        for source, bone in bonemaps.preset_pairs(key):
            pair = settings.bone_map.add()
            pair.source = source
            pair.target = bone if target is None or bone in target.data.bones else ""
        unmapped = sum(1 for p in settings.bone_map if not p.target)
        self.report({"WARNING"} if unmapped else {"INFO"},
                    f"{bonemaps.PRESETS[key][0]} bone map loaded"
                    + (f"; {unmapped} bones are not in {target.name}: map them by hand" if unmapped else ""))
        return {"FINISHED"}


class TETHER_OT_move_retarget(Operator):
    """Bake the Move rig's motion onto the chosen character (one undo step)"""

    bl_idname = "tether.move_retarget"
    bl_label = "Retarget onto Character"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> Result:
        settings = context.scene.tether_move
        source, target = settings.source_rig, settings.target_rig
        if source is None or target is None:
            self.report({"ERROR"}, "Choose the Move rig and the character to retarget onto")
            return {"CANCELLED"}
        if source == target:
            self.report({"ERROR"}, "The character must be another armature than the Move rig")
            return {"CANCELLED"}
        try:
            message = retarget(context, source, target, bone_pairs(settings))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES: Tuple[Any, ...] = (TETHER_PG_bone_pair, TETHER_PG_move, TETHER_OT_move_submit, TETHER_OT_move_follow,
                            TETHER_OT_move_stop, TETHER_OT_move_import, TETHER_OT_move_bone_preset,
                            TETHER_OT_move_retarget)


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
