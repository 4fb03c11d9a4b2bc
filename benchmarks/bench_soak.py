"""Fault soak: a thousand-file farm submit and the fetch of its frames while the local farm answers at random with
429, 503, dropped connections (before and after it acted) and slow replies.

    .venv/bin/python benchmarks/bench_soak.py [--files 1000] [--frames 8] [--rate 0.15] [--seed 7]

Ends with what must hold, checked: exactly one job on the farm, every fetched frame byte-identical to the farm's
md5, no ``.part`` or staging debris, nothing left in the store's ``tmp/``. Prints the figures beside a clean run of
a submit of as many other new files (same process, no faults), so the cost of the faults is a ratio, not a timing,
and the retries the client made (each waits the one RetryPolicy's delay: requests and downloads alike).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

from tether.farm.client import FarmClient
from tether.farm.submit import FarmOptions, FarmSubmitter
from tether.http import RetryPolicy
from tether.transfer import HashCache
from tether_services.farm.engine import EMAIL, PASSWORD
from tether_services.farm.scenes import build_demo_scene
from tether_services.server import LocalServices

ROUTES = [("POST", r"/api/uploads/md5$"), ("POST", r"/api/uploads/file$"), ("POST", r"/api/jobs$"),
          ("GET", r"/api/jobs/[^/]+$"), ("GET", r"/api/jobs/[^/]+/outputs"), ("GET", r"/api/packages$")]


def chaos(services: LocalServices, rate: float, rng: random.Random, stop: threading.Event,
          counts: Dict[str, int]) -> None:
    """Keeps a fault armed on a random route about ``rate`` of the time: each hits one request. A route holds one
    armed fault at most: faults piled up on a route nobody asks for meanwhile (the outputs while the job renders)
    would fail every request of a later burst, however many times a client tried."""
    while not stop.is_set():
        if rng.random() < rate:
            method, path = rng.choice(ROUTES)
            if any(f.path == path and not f.spent for f in services.faults.list()):
                time.sleep(0.01)
                continue
            kind = rng.choice(["429", "503", "drop-before", "drop-after", "slow"])
            options: Dict[str, Any] = {"service": "farm", "method": method, "path": path, "times": 1}
            if kind == "429":
                services.faults.add("status", status=429, retry_after=0, **options)
            elif kind == "503":
                services.faults.add("status", status=503, **options)
            elif kind == "slow":
                services.faults.add("slow", delay=0.3, **options)
            else:
                services.faults.add("drop", when=kind.split("-")[1], **options)
            counts[kind] = counts.get(kind, 0) + 1
        time.sleep(0.01)


def run(services: LocalServices, blend: Path, extra: List[Path], frames: int, out: Path) -> Dict[str, Any]:
    client = FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD,
                        retry=RetryPolicy(attempts=8, backoff=0.05, max_backoff=0.5))
    retries = []  # every retry waits once through the client's sleep
    client.sleep = lambda seconds: (retries.append(seconds), time.sleep(seconds))[-1]
    started = time.perf_counter()
    try:
        with HashCache(out.parent / f"{out.name}-hashes.sqlite") as cache:
            result = FarmSubmitter(client, hash_cache=cache).submit(
                FarmOptions(scene=blend, frames=f"1-{frames}", chunk_size=2, extra_files=extra, title=out.name))
        submitted = time.perf_counter() - started
        job_id = result.job.id
        while client.get_job(job_id).state.value not in ("completed", "failed", "cancelled"):
            time.sleep(0.2)
        files = client.fetch_outputs(job_id, out)
        listing = {o.name: o.md5 for o in client.outputs(job_id)}
    finally:
        client.close()
    identical = all(hashlib.md5((out / name).read_bytes()).hexdigest() == md5 for name, md5 in listing.items())
    return {"job": job_id, "submit_s": submitted, "total_s": time.perf_counter() - started, "files": len(files),
            "identical": identical and len(files) == frames, "retries": len(retries),
            "waited_s": sum(retries)}


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.15, help="chance per 10 ms that a new fault is armed")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="tether-bench-soak-") as tmp:
        root = Path(tmp)
        os.environ["TETHER_DATA_DIR"] = str(root / "data")
        tempfile.tempdir = str(root / "tmp")
        (root / "tmp").mkdir()
        scene = build_demo_scene(root / "scene" / "soak.blend", frames=f"1-{args.frames}", size=32, samples=2)
        blend = Path(scene["blend"])
        extra = []
        for n in range(2 * args.files + 1):
            path = root / "scene" / "cache" / f"sim_{n:04d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randint(1, 16_384)))
            extra.append(path)
        with LocalServices(port=0, state_dir=root / "services", workers=2, services=["farm"]) as services:
            run(services, blend, extra[:1], args.frames, root / "warm")  # Blender and the workers start here
            clean = run(services, blend, extra[1: args.files + 1], args.frames, root / "clean")
            # as many files again, new to the farm: the soak uploads them under fire
            counts: Dict[str, int] = {}
            stop = threading.Event()
            thread = threading.Thread(target=chaos, args=(services, args.rate, rng, stop, counts), daemon=True)
            before = {j for j in services.farm.jobs}
            services.requests.clear()
            thread.start()
            try:
                soak = run(services, blend, extra[args.files + 1:], args.frames, root / "soak")
            finally:
                stop.set()
                thread.join()
                services.faults.clear()
            hit = len([r for r in services.requests.all() if r.status in (429, 503)])
            new_jobs = [j for j in services.farm.jobs if j not in before]
            store_tmp = list((root / "services" / "farm" / "store" / "tmp").iterdir())
            requests = len(services.requests.all())
        debris = [p for p in root.rglob("*.part")] + list((root / "tmp").iterdir()) + store_tmp
    print(f"files: {args.files} per submit (1-16 KiB each) plus the scene; {args.frames} frames fetched")
    print(f"clean run : submit {clean['submit_s']:6.2f} s, submit+render+fetch {clean['total_s']:6.2f} s")
    print(f"under fire: submit {soak['submit_s']:6.2f} s, submit+render+fetch {soak['total_s']:6.2f} s  "
          f"({soak['total_s'] / clean['total_s']:.2f}x the clean run)")
    print(f"faults armed: {dict(sorted(counts.items()))}; 429/503 answered: {hit}; requests: "
          f"{requests}; retries: {soak['retries']} (waiting {soak['waited_s']:.2f} s in all; the clean run "
          f"{clean['retries']})")
    checks = {"one job": len(new_jobs) == 1, "byte-identical frames": bool(soak["identical"]),
              "no debris": not debris}
    for name, ok in checks.items():
        print(f"{name:22}: {'yes' if ok else 'NO'}")
    if debris:
        print("debris:", *debris[:5])
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
