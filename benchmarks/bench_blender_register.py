"""Start-up cost of the Blender add-on: import time and register() time, side by side with two peers.

Each add-on is measured in fresh processes (the real ``bpy`` wheel imported first and not counted), so every run
pays the add-on's own imports from a cold module cache, as Blender does at start-up. Peers, installed from the
package index into a temporary folder (``pip install --target``):

- AWS Deadline Cloud for Blender (``deadline-cloud-for-blender``): ``deadline_cloud_blender_submitter``
- Conductor (``cioblender``): ``cioblender.conductor_submitter_plugin``

Run: ``.venv/bin/python benchmarks/bench_blender_register.py [--runs 7] [--peers DIR] [--upload-mb 2048]``.
Target: Tether under 20 ms for import + register.

Second part: the main thread's cost per timer tick while an upload runs. A real upload (``tether.transfer``, hashing
and sending to the local farm over loopback) runs on the add-on's worker (``SubmitTask``); the main thread does what
the ``bpy.app.timers`` callback does every 0.1 s (``Runtime.pump``: drain the hand-off, update the panel's state)
and each tick is timed. Target: under 5 ms per tick.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("httpx", "pydantic", "blender_asset_tracer", "boto3", "botocore", "qtpy", "PySide6", "ciocore", "requests",
         "deadline.client")

ADDONS: Dict[str, Dict[str, str]] = {
    "tether": {"path": str(ROOT), "module": "blender_addon"},
    # as the extension zip ships it: with unchecked-hash .pyc files (Blender itself never writes bytecode)
    "tether (precompiled)": {"path": "", "module": "blender_addon"},
    "deadline-cloud-for-blender": {"path": "deadline/blender_submitter/addons",
                                   "module": "deadline_cloud_blender_submitter"},
    "cioblender": {"path": "", "module": "cioblender.conductor_submitter_plugin"},
}

PROBE = textwrap.dedent("""
    import importlib, json, sys, time
    paths, module = json.loads(sys.argv[1]), sys.argv[2]
    import bpy  # not counted: Blender itself is loaded before any add-on
    bpy.context.preferences.system.use_online_access = True
    sys.path[:0] = paths
    before = set(sys.modules)
    t0 = time.perf_counter()
    mod = importlib.import_module(module)
    t1 = time.perf_counter()
    mod.register()
    t2 = time.perf_counter()
    new = set(sys.modules) - before
    heavy = sorted({h for m in new for h in HEAVY if m == h or m.startswith(h + ".")})
    try:
        mod.unregister()
    except Exception as exc:
        print("unregister failed:", exc, file=sys.stderr)
    print("RESULT" + json.dumps({"import_ms": (t1 - t0) * 1e3, "register_ms": (t2 - t1) * 1e3,
                                 "modules": len(new), "heavy": heavy}))
""").replace("HEAVY", repr(HEAVY))


def precompiled(dest: Path) -> Path:
    if not (dest / "blender_addon").is_dir():
        shutil.copytree(ROOT / "blender_addon", dest / "blender_addon",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                        str(dest / "blender_addon")], check=True)
    return dest


def install_peers(target: Path) -> Dict[str, str]:
    """Install the peers; return name -> error for those that would not install."""
    errors: Dict[str, str] = {}
    for name in ("deadline-cloud-for-blender", "cioblender"):
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target / name), name],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            errors[name] = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
    return errors


def measure(name: str, site: Optional[Path], runs: int, user_dir: Path) -> Dict[str, object]:
    spec = ADDONS[name]
    if name == "tether":
        paths = [spec["path"]]
    elif name == "tether (precompiled)":
        paths = [str(precompiled(user_dir.parent / "precompiled"))]
    else:
        assert site is not None
        base = site / name
        paths = [str(base / spec["path"]) if spec["path"] else str(base), str(base)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["BLENDER_USER_RESOURCES"] = str(user_dir)
    samples: List[Dict[str, object]] = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(paths), spec["module"]], capture_output=True,
                              text=True, env=env, timeout=300)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
        if line is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
        samples.append(json.loads(line[len("RESULT"):]))
    return {
        "import_ms": statistics.median(float(s["import_ms"]) for s in samples),  # type: ignore[arg-type]
        "register_ms": statistics.median(float(s["register_ms"]) for s in samples),  # type: ignore[arg-type]
        "modules": samples[-1]["modules"],
        "heavy": samples[-1]["heavy"],
    }


def tick_cost(upload_mb: int, folder: Path) -> Dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from tether.farm.client import FarmClient
    from tether.transfer import HashCache, upload_files
    from tether_services.farm.engine import EMAIL, PASSWORD
    from tether_services.server import LocalServices

    from blender_addon.runtime import Runtime, SubmitTask

    big = folder / "upload.bin"
    block = os.urandom(1 << 20)
    with big.open("wb") as fh:
        for _ in range(upload_mb):
            fh.write(block)
    with LocalServices(port=0, services=["farm"], state_dir=folder / "services") as services:
        client = FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD)
        rt = Runtime()

        def run(progress: object) -> Dict[str, object]:
            upload_files([(big, "/bench/upload.bin")], client, cache=HashCache(folder / "hashes.json"),
                         progress=progress)  # type: ignore[arg-type]
            return {"job_id": "-", "message": "uploaded"}

        task = SubmitTask(run, rt.handoff)
        ticks: List[float] = []
        started = time.perf_counter()
        task.start()
        while task.alive() or not rt.handoff.empty():
            t0 = time.perf_counter()
            rt.pump()
            _ = (rt.ui.submit.factor, rt.ui.submit.message)  # what the panel and status bar read
            ticks.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        client.close()
    ticks.sort()
    return {"upload_mb": float(upload_mb), "seconds": seconds, "ticks": float(len(ticks)),
            "tick_median_ms": statistics.median(ticks), "tick_p99_ms": ticks[int(0.99 * (len(ticks) - 1))],
            "tick_max_ms": ticks[-1], "phase": str(rt.ui.submit.phase.value)}  # type: ignore[dict-item]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per add-on (median reported)")
    parser.add_argument("--peers", type=Path, default=None, help="folder with the peers already installed")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--upload-mb", type=int, default=2048, help="size of the upload for the tick benchmark")
    parser.add_argument("--skip-tick", action="store_true", help="only measure import and register")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp:
        tmp_path = Path(tmp)
        site = args.peers
        install_errors: Dict[str, str] = {}
        if site is None:
            site = tmp_path / "peers"
            install_errors = install_peers(site)
        results: Dict[str, Dict[str, object]] = {}
        for name in ADDONS:
            if name in install_errors:
                results[name] = {"error": f"did not install: {install_errors[name]}"}
                continue
            results[name] = measure(name, site, args.runs, tmp_path / f"user-{name}")
        ticks = None if args.skip_tick else tick_cost(args.upload_mb, tmp_path)
    if args.json:
        print(json.dumps({"register": results, "tick": ticks}, indent=2))
        return 0
    print(f"{'add-on':28} {'import ms':>10} {'register ms':>12} {'total ms':>9} {'x tether':>9} {'modules':>8}  heavy")
    base = results["tether"]
    base_total = float(base.get("import_ms", 0.0)) + float(base.get("register_ms", 0.0))  # type: ignore[arg-type]
    for name, res in results.items():
        if "error" in res:
            print(f"{name:28} {res['error']}")
            continue
        total = float(res["import_ms"]) + float(res["register_ms"])  # type: ignore[arg-type]
        ratio = total / base_total if base_total else float("nan")
        heavy = ", ".join(res["heavy"]) or "-"  # type: ignore[arg-type]
        print(f"{name:28} {res['import_ms']:10.1f} {res['register_ms']:12.1f} {total:9.1f} {ratio:9.1f} "
              f"{res['modules']:>8}  {heavy}")
    if ticks is not None:
        print(f"\nmain-thread tick while uploading {ticks['upload_mb']:.0f} MB ({ticks['seconds']:.1f} s, "
              f"{ticks['ticks']:.0f} ticks, ended {ticks['phase']}): median {ticks['tick_median_ms']:.3f} ms, "
              f"p99 {ticks['tick_p99_ms']:.3f} ms, max {ticks['tick_max_ms']:.3f} ms (target < 5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
