"""Local farm scaling: 48 frames in chunks of 4 on 2 workers vs one process rendering all 48, in one run.

    .venv/bin/python benchmarks/bench_render.py [--frames 48] [--chunk 4] [--workers 2] [--size 128] [--samples 48]

Both sides use the same worker code and the same Cycles thread count per process (the farm's: cores // workers), and
both start warm (Blender imported, one frame rendered), so the figure is the farm's own overhead: HTTP submit,
syncing, dispatch, one scene load per chunk and polling. Ideal = single / workers; target: parallel within 1.15x.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import httpx
from tether_services.farm.engine import EMAIL, PASSWORD
from tether_services.farm.executor import ChunkSpec, LocalProcessExecutor
from tether_services.farm.scenes import build_demo_scene
from tether_services.server import LocalServices


def farm_render(services: LocalServices, paths: List[Path], frames: str, chunk: int) -> Dict[str, Any]:
    with httpx.Client(base_url=services.url("farm"), timeout=60) as api:
        token = api.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        for path in paths:
            data = path.read_bytes()
            api.post("/api/uploads/file", files={"file": (path.name, data)},
                     data={"md5": hashlib.md5(data).hexdigest(), "path": str(path)}).raise_for_status()
        body = {"job_title": "bench", "project": "default", "instance_type": "cpu-standard-8", "chunk_size": chunk,
                "frame_range": frames, "blender_version": "blender-5-0", "output_path": "gs://bench/out",
                "upload_paths": [str(p) for p in paths]}
        started = time.perf_counter()
        reply = api.post("/api/jobs", json=body)
        reply.raise_for_status()
        job_id = reply.json()["id"]
        while True:
            job: Dict[str, Any] = api.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.02)
        job["wall"] = time.perf_counter() - started
        if job["status"] != "completed":
            raise SystemExit(f"the farm job {job['status']}: {job['error']}")
        return job


_SPIN = "import time\nt=time.perf_counter()\nx=0\nfor i in range(12_000_000): x+=i\nprint(time.perf_counter()-t)"


def machine_scaling(workers: int) -> float:
    """How many times more CPU work ``workers`` processes get done at once than one (2.0 on two free cores)."""
    import subprocess

    def run(n: int) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.DEVNULL) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - t0

    one = run(1)
    return workers * one / run(workers)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="frame width and height in pixels")
    parser.add_argument("--samples", type=int, default=48)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tether-bench-render-") as tmp:
        root = Path(tmp)
        scene = build_demo_scene(root / "scene" / "bench.blend", frames=f"1-{args.frames}", size=args.size,
                                 samples=args.samples)
        blend, texture = Path(scene["blend"]), Path(scene["texture"])

        with LocalServices(port=0, state_dir=root / "services", workers=args.workers) as services:
            farm = services.farm
            farm.executor.warm()  # type: ignore[attr-defined]
            threads = farm.executor.threads  # type: ignore[attr-defined]
            farm_render(services, [blend, texture], f"1-{args.workers}", 1)  # every worker renders once
            job = farm_render(services, [blend, texture], f"1-{args.frames}", args.chunk)
        parallel = float(job["wall"])

        single_exec = LocalProcessExecutor(1, state_dir=root / "single", threads=threads)
        try:
            single_exec.warm()

            def chunk(frames: List[int], out: str) -> float:
                spec = ChunkSpec(blend=blend, frames=frames, output_dir=root / out / "outputs",
                                 workspace=blend.parent, log_path=root / f"{out}.log")
                t0 = time.perf_counter()
                result = single_exec.submit(spec).result()
                if not result.ok:
                    raise SystemExit(f"single-process render failed: {result.error}")
                return time.perf_counter() - t0

            chunk([1], "single-warm")
            single = chunk(list(range(1, args.frames + 1)), "single")
        finally:
            single_exec.shutdown()

    scaling = machine_scaling(args.workers)
    ideal = single / args.workers
    ratio = parallel / ideal
    machine_ideal = single / scaling
    print(f"scene: {args.size}x{args.size} px, {args.samples} samples, Cycles CPU, {threads} thread(s) per process")
    print(f"single process, {args.frames} frames in one chunk : {single:7.2f} s  ({single / args.frames:.3f} s/frame)")
    print(f"farm, {args.workers} workers, chunks of {args.chunk} over HTTP : {parallel:7.2f} s  "
          f"(submit -> completed seen by polling; {job['tasks_total']} tasks)")
    print(f"ideal (single / {args.workers})                    : {ideal:7.2f} s")
    verdict = "within" if ratio <= 1.15 else "OVER"
    print(f"ratio farm / ideal                        : {ratio:7.3f}x  ({verdict} the 1.15x target)")
    print(f"this machine runs {args.workers} busy processes {scaling:.2f}x as fast as one (2 free cores: 2.00); "
          f"against that ideal ({machine_ideal:.2f} s) the farm is at {parallel / machine_ideal:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
