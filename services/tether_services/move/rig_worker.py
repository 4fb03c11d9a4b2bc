"""Builds the local Move's rig with Blender itself (run as ``python rig_worker.py '<json>'`` with the bpy wheel, or
``blender -b -P rig_worker.py -- '<json>'``).

An honest stand-in, not motion capture: a full humanoid at human scale (1.75 m, T-pose rest, Z up, facing -Y, feet
on the floor), named as Move's pre-retarget skeleton is (HumanIK style: ``Hips``, ``Spine``... ``LeftToeBase``; Move's
help centre maps its ``Hips`` onto a HumanIK template). It walks with one key per frame of the take, at the take's
frame rate; the stride follows the video's own motion (``energy``: how much the picture changes from one frame to
the next, 0..1) and the hips sway with where it changes (``sway``: -1..1), so a still video stands still. After each
frame is posed the hips are lowered or raised so the lower foot touches the floor. Deterministic: the same video
makes the same keys.

Exported as FBX (axis forward -Y, up Z, as Move's own Blender add-on reads it) *with* leaf bones (``*_end``): they
carry each chain's last bone length, which FBX otherwise loses (an importer then guesses stubs); Blender's importer
drops them again with ``ignore_leaf_bones``. Also a .blend and the per-frame rotations as JSON when asked for.

Arguments (JSON): ``out_dir``, ``frames``, ``fps``, ``name``, ``outputs`` (MAIN_FBX, MAIN_BLEND, MOTION_DATA),
optional ``energy`` and ``sway`` (one value per frame). Prints one JSON line ``{"files": {output: path}}`` at the end.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

Vec = Tuple[float, float, float]

# name, head, tail, parent (metres; +X is the character's left, -Y its front)
BONES: List[Tuple[str, Vec, Vec, str]] = [
    ("Hips", (0.0, 0.0, 0.98), (0.0, 0.0, 1.08), ""),
    ("Spine", (0.0, 0.0, 1.08), (0.0, 0.0, 1.2), "Hips"),
    ("Spine1", (0.0, 0.0, 1.2), (0.0, 0.0, 1.32), "Spine"),
    ("Spine2", (0.0, 0.0, 1.32), (0.0, 0.0, 1.45), "Spine1"),
    ("Neck", (0.0, 0.0, 1.45), (0.0, 0.0, 1.55), "Spine2"),
    ("Head", (0.0, 0.0, 1.55), (0.0, 0.0, 1.75), "Neck"),
]
for _side, _s in (("Left", 1.0), ("Right", -1.0)):
    BONES += [
        (f"{_side}Shoulder", (0.03 * _s, 0.0, 1.42), (0.17 * _s, 0.0, 1.42), "Spine2"),
        (f"{_side}Arm", (0.17 * _s, 0.0, 1.42), (0.45 * _s, 0.0, 1.42), f"{_side}Shoulder"),
        (f"{_side}ForeArm", (0.45 * _s, 0.0, 1.42), (0.71 * _s, 0.0, 1.42), f"{_side}Arm"),
        (f"{_side}Hand", (0.71 * _s, 0.0, 1.42), (0.89 * _s, 0.0, 1.42), f"{_side}ForeArm"),
        (f"{_side}UpLeg", (0.09 * _s, 0.0, 0.95), (0.09 * _s, 0.0, 0.52), "Hips"),
        (f"{_side}Leg", (0.09 * _s, 0.0, 0.52), (0.09 * _s, 0.02, 0.09), f"{_side}UpLeg"),
        (f"{_side}Foot", (0.09 * _s, 0.02, 0.09), (0.09 * _s, -0.11, 0.02), f"{_side}Leg"),
        (f"{_side}ToeBase", (0.09 * _s, -0.11, 0.02), (0.09 * _s, -0.18, 0.02), f"{_side}Foot"),
    ]
NAMES = [b[0] for b in BONES]
STRIDES_PER_SECOND = 0.9  # a relaxed walk: ~1.8 steps a second at full motion


def pose_angles(phase: float, amount: float) -> Dict[str, List[Tuple[str, float]]]:
    """Rotations (local axis, radians; applied in order) per bone for one instant of the walk; ``amount`` 0 stands.

    Every bone is made with roll 0, so a leg's local X is the world X (a positive angle swings it back), an arm's
    local X is the world -Y (left) or +Y (right), so -1.2 about X brings either arm down from the T-pose, and its
    local Y (the bone's own axis at rest) is then the world +X (left) or -X (right), about which it swings."""
    s, c = math.sin(phase), math.cos(phase)
    a = max(0.0, min(1.0, amount))
    out: Dict[str, List[Tuple[str, float]]] = {}
    for side, sign, ph in (("Left", 1.0, 0.0), ("Right", -1.0, math.pi)):
        sw = math.sin(phase + ph)  # > 0: this leg is behind the body
        forward = max(0.0, -math.cos(phase + ph))  # the leg swinging forward bends its knee
        out[f"{side}UpLeg"] = [("X", 0.45 * a * sw)]
        out[f"{side}Leg"] = [("X", 0.08 + 0.9 * a * forward)]
        out[f"{side}Foot"] = [("X", -0.3 * a * forward)]
        out[f"{side}Arm"] = [("X", -1.2), ("Y", -sign * 0.35 * a * sw)]  # down by the sides, then the swing
        out[f"{side}ForeArm"] = [("Z", -sign * (0.15 + 0.3 * a * max(0.0, sw)))]
    out["Spine"] = [("Y", 0.08 * a * s)]
    out["Spine2"] = [("Y", -0.08 * a * s)]
    out["Head"] = [("X", 0.05 * c * a)]
    return out


def build(args: Dict[str, Any]) -> Dict[str, str]:
    out_dir = Path(args["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = max(1, int(args["frames"]))
    fps = float(args.get("fps") or 30.0)
    name = str(args.get("name") or "MoveRig")
    outputs = set(args.get("outputs") or ["MAIN_FBX"])
    energy: Sequence[float] = list(args.get("energy") or [1.0] * frames)
    sway: Sequence[float] = list(args.get("sway") or [0.0] * frames)
    bpy: Any = importlib.import_module("bpy")  # as Any: the bpy stubs do not parse under mypy
    mathutils: Any = importlib.import_module("mathutils")

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    scene.frame_start, scene.frame_end = 1, frames
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, head, tail, parent in BONES:
        edit = arm.edit_bones.new(bone)
        edit.head, edit.tail, edit.roll = head, tail, 0.0
        if parent:
            edit.parent = arm.edit_bones[parent]
            edit.use_connect = tuple(arm.edit_bones[parent].tail) == head
    bpy.ops.object.mode_set(mode="POSE")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    feet = [obj.pose.bones[n] for n in ("LeftToeBase", "RightToeBase", "LeftFoot", "RightFoot")]
    motion: Dict[str, List[List[float]]] = {bone: [] for bone in NAMES}
    phase = 0.0
    for frame in range(1, frames + 1):
        i = frame - 1
        amount = max(0.0, min(1.0, float(energy[min(i, len(energy) - 1)])))
        angles = pose_angles(phase, amount)
        for bone in NAMES:
            pb = obj.pose.bones[bone]
            q = mathutils.Quaternion()
            for axis, angle in angles.get(bone, []):
                q = mathutils.Quaternion(_axis(axis), angle) @ q
            pb.rotation_quaternion = q
        hips = obj.pose.bones["Hips"]
        side = 0.12 * max(-1.0, min(1.0, float(sway[min(i, len(sway) - 1)])))
        hips.location = (side, 0.0, 0.0)
        bpy.context.view_layer.update()
        # the bone's local Y is world Z for the upright hips: lower the body until the lower foot is on the floor
        lowest = min(min((obj.matrix_world @ pb.head).z, (obj.matrix_world @ pb.tail).z) for pb in feet)
        hips.location = (side, -lowest, 0.0)
        for bone in NAMES:
            pb = obj.pose.bones[bone]
            pb.keyframe_insert("rotation_quaternion", frame=frame)
            motion[bone].append([round(v, 5) for v in pb.rotation_quaternion])
        hips.keyframe_insert("location", frame=frame)
        phase += 2.0 * math.pi * STRIDES_PER_SECOND / fps * (0.15 + 0.85 * amount)
    # frame 0 holds the T-pose, as Move's pre-retarget rig does before its take: the FBX's node transforms are the
    # pose at the current frame, and an importer takes them for the rest pose when no mesh carries a bind pose
    for pb in obj.pose.bones:
        pb.location, pb.rotation_quaternion = (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)
        pb.keyframe_insert("rotation_quaternion", frame=0)
    obj.pose.bones["Hips"].keyframe_insert("location", frame=0)
    scene.frame_set(0)
    bpy.ops.object.mode_set(mode="OBJECT")

    files: Dict[str, str] = {}
    if outputs & {"MAIN_FBX", "ALL_FBX"}:
        path = out_dir / f"{name}.fbx"
        bpy.ops.export_scene.fbx(filepath=str(path), object_types={"ARMATURE"}, bake_anim=True,
                                 add_leaf_bones=True, axis_forward="-Y", axis_up="Z",
                                 bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
                                 bake_anim_simplify_factor=0.0)
        files["MAIN_FBX"] = str(path)
    if "MAIN_BLEND" in outputs:
        path = out_dir / f"{name}.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True, compress=True)
        files["MAIN_BLEND"] = str(path)
    if "MOTION_DATA" in outputs:
        path = out_dir / f"{name}_motion.json"
        path.write_text(json.dumps({"fps": fps, "frames": frames, "rotation_mode": "QUATERNION", "bones": motion}))
        files["MOTION_DATA"] = str(path)
    return files


def _axis(name: str) -> Vec:
    return {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}[name]


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    result = build(json.loads(argv[-1]))
    print(json.dumps({"files": result}), flush=True)
