"""Builds the local Move's rig with Blender itself (run as ``python rig_worker.py '<json>'`` with the bpy wheel, or
``blender -b -P rig_worker.py -- '<json>'``).

An honest stand-in, not motion capture: a small armature (hips, spine, head, arms, legs) walking in place with
one key per frame of the take, at the take's frame rate, exported as FBX (axis forward -Y, up Z, as Move's own
Blender add-on reads it), plus a .blend and the per-frame rotations as JSON when asked for.

Arguments (JSON): ``out_dir``, ``frames``, ``fps``, ``name``, ``outputs`` (MAIN_FBX, MAIN_BLEND, MOTION_DATA).
Prints one JSON line ``{"files": {output: path}}`` at the end.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

# name, head, tail, parent
BONES: List[Tuple[str, Tuple[float, float, float], Tuple[float, float, float], str]] = [
    ("Hips", (0.0, 0.0, 1.0), (0.0, 0.0, 1.15), ""),
    ("Spine", (0.0, 0.0, 1.15), (0.0, 0.0, 1.5), "Hips"),
    ("Head", (0.0, 0.0, 1.5), (0.0, 0.0, 1.75), "Spine"),
    ("LeftArm", (0.2, 0.0, 1.45), (0.2, 0.0, 0.95), "Spine"),
    ("RightArm", (-0.2, 0.0, 1.45), (-0.2, 0.0, 0.95), "Spine"),
    ("LeftLeg", (0.1, 0.0, 1.0), (0.1, 0.0, 0.1), "Hips"),
    ("RightLeg", (-0.1, 0.0, 1.0), (-0.1, 0.0, 0.1), "Hips"),
]
SWING = {"LeftArm": 1.0, "RightArm": -1.0, "LeftLeg": -1.0, "RightLeg": 1.0}


def build(args: Dict[str, Any]) -> Dict[str, str]:
    out_dir = Path(args["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = max(1, int(args["frames"]))
    fps = float(args.get("fps") or 30.0)
    name = str(args.get("name") or "MoveRig")
    outputs = set(args.get("outputs") or ["MAIN_FBX"])
    bpy: Any = importlib.import_module("bpy")  # as Any: the bpy stubs do not parse under mypy

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
        edit.head, edit.tail = head, tail
        if parent:
            edit.parent = arm.edit_bones[parent]
    bpy.ops.object.mode_set(mode="POSE")
    motion: Dict[str, List[List[float]]] = {bone: [] for bone, *_ in BONES}
    period = max(fps, 1.0)  # one stride a second
    for frame in range(1, frames + 1):
        phase = 2.0 * math.pi * (frame - 1) / period
        for bone, *_ in BONES:
            pb = obj.pose.bones[bone]
            pb.rotation_mode = "XYZ"
            angle = 0.5 * SWING.get(bone, 0.0) * math.sin(phase)
            if bone == "Head":
                angle = 0.1 * math.sin(phase * 0.5)
            pb.rotation_euler = (angle, 0.0, 0.0)
            pb.keyframe_insert("rotation_euler", frame=frame)
            motion[bone].append([round(angle, 5), 0.0, 0.0])
        hips = obj.pose.bones["Hips"]
        hips.location = (0.0, 0.0, 0.03 * math.sin(2.0 * phase))
        hips.keyframe_insert("location", frame=frame)
    bpy.ops.object.mode_set(mode="OBJECT")

    files: Dict[str, str] = {}
    if outputs & {"MAIN_FBX", "ALL_FBX"}:
        path = out_dir / f"{name}.fbx"
        bpy.ops.export_scene.fbx(filepath=str(path), object_types={"ARMATURE"}, bake_anim=True,
                                 add_leaf_bones=False, axis_forward="-Y", axis_up="Z")
        files["MAIN_FBX"] = str(path)
    if "MAIN_BLEND" in outputs:
        path = out_dir / f"{name}.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True, compress=True)
        files["MAIN_BLEND"] = str(path)
    if "MOTION_DATA" in outputs:
        path = out_dir / f"{name}_motion.json"
        path.write_text(json.dumps({"fps": fps, "frames": frames, "rotation_mode": "XYZ", "bones": motion}))
        files["MOTION_DATA"] = str(path)
    return files


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    result = build(json.loads(argv[-1]))
    print(json.dumps({"files": result}), flush=True)
