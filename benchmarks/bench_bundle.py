"""What the farm bundle costs a submission: a first submit of a large scene and an unchanged re-submit, side by side
in one run.

    .venv/bin/python benchmarks/bench_bundle.py [--size-mb 2048] [--files 16] [--dir DIR]

The scene (written by Blender in a subprocess): one .blend whose images are ``--files`` files of random bytes,
``--size-mb`` in all, half inside the project folder (relative paths), half outside it (absolute paths, so the
bundle rewrites them). Against the local farm in this process, page cache warm for every file:

  (u) the upload alone: ``upload_files`` of the bundle's files with an empty hash cache into an empty farm store
      (what any submission of these bytes pays);
  (f) ``FarmSubmitter.submit`` of the scene, first time (empty hash cache, another empty farm): preflight, bundle
      (rewritten .blend copies), the headless proof, hashing, upload, job;
  (r) the same submit again, nothing changed;
  with the bundle's parts timed alone: (b) building it, (p) the proof in a headless Blender.

Targets: (f - u) / u < 0.10 (the bundle adds under 10% to a first submit) and r / f < 0.05. Jobs are cancelled
as soon as they are created: rendering is not measured here (see bench_render.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from tether.farm import bundle as bundles
from tether.farm.client import FarmClient
from tether.farm.submit import FarmOptions, FarmSubmitter
from tether.settings import LOCAL_FARM_EMAIL, LOCAL_FARM_PASSWORD
from tether.transfer import HashCache, upload_files
from tether_services.farm.scenes import blender_python
from tether_services.server import LocalServices

SCENE = r'''
import json, sys
import bpy
args = json.loads(sys.argv[sys.argv.index("--") + 1])
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
bpy.ops.object.camera_add()
scene.camera = bpy.context.object
scene.render.engine = "CYCLES"
scene.render.filepath = "//render/f_####"
bpy.ops.wm.save_as_mainfile(filepath=args["blend"])
mat = bpy.data.materials.new("M")
mat.use_nodes = True
for path in args["images"]:
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.new(path.rsplit("/", 1)[-1], 4, 4)
    node.image.source = "FILE"
    node.image.filepath = bpy.path.relpath(path) if "/project/" in path else path
bpy.ops.mesh.primitive_plane_add()
bpy.context.object.data.materials.append(mat)
bpy.ops.wm.save_as_mainfile(filepath=args["blend"])
print("BENCH_SCENE_OK")
'''


def build_scene(root: Path, size_mb: int, files: int) -> Path:
    blend = root / "project" / "shot.blend"
    blend.parent.mkdir(parents=True)
    images: List[str] = []
    per = size_mb * 1024 * 1024 // files
    for i in range(files):
        folder = root / ("project/tex" if i % 2 == 0 else "library/tex")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"t{i:02d}.png"
        with path.open("wb") as fh:
            left = per
            while left:
                block = os.urandom(min(left, 8 << 20))
                fh.write(block)
                left -= len(block)
        images.append(str(path))
    proc = subprocess.run([*blender_python(), SCENE, "--", json.dumps({"blend": str(blend), "images": images})],
                          capture_output=True, text=True, timeout=300)
    if "BENCH_SCENE_OK" not in proc.stdout:
        raise SystemExit(f"building the scene failed: {proc.stderr[-1000:]}")
    return blend


def warm(paths: List[Path]) -> None:
    for path in paths:
        with path.open("rb") as fh:
            while fh.read(8 << 20):
                pass


def client_of(services: LocalServices) -> FarmClient:
    return FarmClient(services.url("farm"), email=LOCAL_FARM_EMAIL, password=LOCAL_FARM_PASSWORD)


def timed_submit(submitter: FarmSubmitter, blend: Path) -> float:
    started = time.perf_counter()
    result = submitter.submit(FarmOptions(scene=blend, frames="1"))
    seconds = time.perf_counter() - started
    submitter.client.update_job(result.job.id, action="cancel")  # not timed
    return seconds


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temp folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tether-bench-bundle-", dir=args.dir) as tmp:
        root = Path(tmp)
        blend = build_scene(root / "scene", args.size_mb, args.files)
        layout = bundles.build(blend)
        sources = [f.source for f in layout.files]
        warm(sources)

        started = time.perf_counter()
        built = bundles.build(blend, staging=root / "staging")
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        problems = bundles.verify(built, blend)
        proof_s = time.perf_counter() - started
        if problems:
            raise SystemExit(f"the bundle did not prove: {problems}")
        bundles._PROVEN.clear()  # the submits below prove for themselves

        results: Dict[str, Any] = {}
        with LocalServices(port=0, services=["farm"], state_dir=root / "farm-u") as services:
            client = client_of(services)
            with HashCache(root / "cache-u.db") as cache:
                started = time.perf_counter()
                upload_files(built.items([]), client, cache=cache)
                results["upload"] = time.perf_counter() - started
            client.close()
        with LocalServices(port=0, services=["farm"], state_dir=root / "farm-f") as services:
            client = client_of(services)
            with HashCache(root / "cache-f.db") as cache:
                submitter = FarmSubmitter(client, hash_cache=cache)
                results["first"] = timed_submit(submitter, blend)
                results["again"] = timed_submit(submitter, blend)
            client.close()

    u, f, r = results["upload"], results["first"], results["again"]
    print(f"scene: {args.files} images, {args.size_mb} MB (half outside the project, rewritten), "
          f"{len(layout.files)} files")
    print(f"(b) bundle build (trace + rewritten .blend copies) : {build_s:7.3f} s")
    print(f"(p) proof in a headless Blender                    : {proof_s:7.3f} s")
    print(f"(u) upload alone (hash + send, empty store)        : {u:7.3f} s")
    print(f"(f) first submit (bundle, proof, upload, job)      : {f:7.3f} s")
    print(f"(r) unchanged re-submit                            : {r:7.3f} s")
    first_ratio, again_ratio = (f - u) / u, r / f
    print(f"(f - u) / u = {first_ratio:.3f}  (target < 0.10)   r / f = {again_ratio:.3f}  (target < 0.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
