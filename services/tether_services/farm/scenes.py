"""Build a tiny but real Blender scene for tests, the demo and the benchmark, in a separate process.

The scene: a camera, a cube that turns over the frame range, a point light, and an image texture on the cube from a
PNG written next to the .blend (``textures/checker.png``, referenced as ``//textures/checker.png`` unless
``absolute_texture``). Cycles on the CPU at ``size`` x ``size`` pixels and ``samples`` samples, output
``//render/frame_####`` as PNG. Blender runs in a subprocess (the bpy wheel, or a ``blender`` binary) so that the
calling process never imports bpy.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

SCENE_SCRIPT = r'''
import json, sys
import bpy

args = json.loads(sys.argv[sys.argv.index("--") + 1])
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.name = "Tiny"
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = args["samples"]
scene.cycles.use_adaptive_sampling = False
scene.cycles.use_denoising = False
scene.render.resolution_x = scene.render.resolution_y = args["size"]
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end, scene.frame_step = args["start"], args["end"], args["step"]
scene.render.filepath = args["output"]
scene.render.image_settings.file_format = "PNG"

bpy.ops.mesh.primitive_cube_add(size=1.6, location=(0, 0, 0))
cube = bpy.context.active_object
cube.name = "Cube"
cube.rotation_euler = (0, 0, 0)
cube.keyframe_insert("rotation_euler", frame=args["start"])
cube.rotation_euler = (0.6, 0.3, 3.1)
cube.keyframe_insert("rotation_euler", frame=max(args["end"], args["start"] + 1))

material = bpy.data.materials.new("Checker")
material.use_nodes = True
nodes = material.node_tree.nodes
texture = nodes.new("ShaderNodeTexImage")
texture.image = bpy.data.images.load(args["texture"])
bsdf = nodes.get("Principled BSDF")
material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
cube.data.materials.append(material)

light = bpy.data.objects.new("Light", bpy.data.lights.new("Light", "POINT"))
light.data.energy = 800
light.location = (3, -2, 4)
scene.collection.objects.link(light)

camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
camera.location = (3.2, -3.2, 2.4)
scene.collection.objects.link(camera)
track = camera.constraints.new("TRACK_TO")
track.target = cube
track.track_axis = "TRACK_NEGATIVE_Z"
track.up_axis = "UP_Y"
scene.camera = camera

bpy.ops.wm.save_as_mainfile(filepath=args["path"])
if not args["absolute_texture"]:
    texture.image.filepath = "//textures/" + args["texture_name"]
    bpy.ops.wm.save_as_mainfile(filepath=args["path"])
print("TETHER_SCENE_OK")
'''


def write_png(path: Path, size: int = 16, squares: int = 4) -> Path:
    """A small RGB checkerboard PNG, written with zlib only."""
    rows = []
    cell = max(1, size // squares)
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            on = ((x // cell) + (y // cell)) % 2 == 0
            row += bytes((230, 120, 30) if on else (30, 60, 200))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) \
        + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def blender_python() -> List[str]:
    """How to run a bpy script: this Python when it has the bpy wheel, else a ``blender`` binary."""
    from tether.farm.bundle import blender_command

    command = blender_command()
    if command is None:
        raise RuntimeError(
            "building a scene needs Blender: `pip install bpy==5.0.1` (Python 3.11) or put `blender` on PATH"
        )
    return command


def build_demo_scene(
    path: Path,
    *,
    frames: str = "1-24",
    size: int = 32,
    samples: int = 2,
    output: str = "//render/frame_####",
    absolute_texture: bool = False,
    timeout: float = 120.0,
) -> Dict[str, Any]:
    """Write the tiny scene to ``path`` (a .blend) and its texture beside it; return what was written.

    ``frames`` is ``START-END`` or ``START-ENDxSTEP`` and sets the scene's own frame range.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    texture = write_png(path.parent / "textures" / "checker.png")
    start, end, step = _range(frames)
    args = {
        "path": str(path), "texture": str(texture), "texture_name": texture.name, "samples": samples, "size": size,
        "start": start, "end": end, "step": step, "output": output, "absolute_texture": absolute_texture,
    }
    env = dict(os.environ)
    env.setdefault("BLENDER_USER_RESOURCES", str(path.parent / ".blender-user"))
    proc = subprocess.run(
        [*blender_python(), SCENE_SCRIPT, "--", json.dumps(args)], capture_output=True, text=True,
        timeout=timeout, env=env,
    )
    if proc.returncode != 0 or "TETHER_SCENE_OK" not in proc.stdout or not path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"building the demo scene failed (exit {proc.returncode}): {' | '.join(tail)}")
    return {"blend": path, "texture": texture, "frames": frames, "output": output}


def _range(spec: str) -> Tuple[int, int, int]:
    step = 1
    text = spec.strip()
    if "x" in text:
        text, step_text = text.split("x", 1)
        step = int(step_text)
    if "-" in text[1:]:
        cut = text.index("-", 1)
        return int(text[:cut]), int(text[cut + 1:]), step
    return int(text), int(text), step
