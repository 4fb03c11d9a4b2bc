"""A thousand small files (4-64 KB, like a scene's textures) to the local farm: the grouped path against the same
files sent as the code did before, side by side in interleaved rounds.

    .venv/bin/python benchmarks/bench_small_files.py [--files 1000] [--rounds 2] [--rtt-ms 0,20] [--sequential]

- grouped: ``upload_files`` as it is (small files on ``SMALL_WORKERS`` threads of their own, over the client's
  kept-alive connections);
- before: the same call with ``small_workers=0`` (every file on the 4 upload workers, as before);
- with ``--sequential``: one file at a time (``workers=1, small_workers=0``), the floor of "one by one".

The farm's routes take one md5 per check and one file per upload (seed 004), so every file costs two requests in
every mode; what differs is how many wait at once. ``--rtt-ms`` adds that many milliseconds to each upload request
(the local farm's ``slow`` fault), standing in for a cloud farm's round trip; 0 is bare loopback, where the two
cores serve both ends and concurrency buys little. Every round uploads new random files (the farm dedupes by md5)
with an empty hash cache. Figures: median seconds per mode and the ratio before / grouped (above 1: grouped faster).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

EMAIL, PASSWORD = "artist@tether.local", "tether-local"


def make_files(root: Path, count: int, rng: random.Random) -> List[Tuple[Path, str]]:
    root.mkdir(parents=True)
    files = []
    for i in range(count):
        path = root / f"tex_{i:04d}.png"
        path.write_bytes(os.urandom(rng.randint(4, 64) * 1024))
        files.append((path, f"{root.parent.name}/{root.name}/{path.name}"))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rtt-ms", default="0,20", help="comma list of added milliseconds per upload request")
    parser.add_argument("--sequential", action="store_true", help="also time one file at a time")
    args = parser.parse_args()

    from tether.farm.client import FarmClient
    from tether.transfer import SMALL_WORKERS, HashCache, upload_files
    from tether_services.server import LocalServices

    modes: Dict[str, Dict[str, int]] = {"grouped": {}, "before": {"small_workers": 0}}
    if args.sequential:
        modes["one by one"] = {"workers": 1, "small_workers": 0}
    rng = random.Random(15)
    with tempfile.TemporaryDirectory(prefix="tether-bench-small-") as tmp, \
            LocalServices(port=0, state_dir=Path(tmp) / "services", workers=1) as services:
        print(f"{args.files} files of 4-64 KB; grouped = {SMALL_WORKERS} small-file workers; {args.rounds} rounds")
        for rtt in [float(x) for x in args.rtt_ms.split(",") if x.strip()]:
            services.faults.clear()
            if rtt > 0:
                services.faults.add("slow", delay=rtt / 1000, service="farm", method="POST",
                                    path=r"/api/uploads/(md5|file)$", times=0)
            times: Dict[str, List[float]] = {m: [] for m in modes}
            for round_no in range(args.rounds):
                for mode, kwargs in modes.items():
                    folder = Path(tmp) / f"rtt{rtt:g}-r{round_no}-{mode.replace(' ', '')}"
                    files = make_files(folder / "tex", args.files, rng)
                    with FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD) as farm, \
                            HashCache(folder / "hashes.sqlite") as cache:
                        farm.instances()  # log in outside the timing
                        started = time.perf_counter()
                        report = upload_files(files, farm, cache=cache, **kwargs)  # type: ignore[arg-type]
                        times[mode].append(time.perf_counter() - started)
                    assert report.files_sent == args.files, report
            services.faults.clear()
            base = statistics.median(times["grouped"])
            row = ", ".join(f"{m} {statistics.median(t):.2f} s" for m, t in times.items())
            ratios = ", ".join(f"{m}/grouped {statistics.median(t) / base:.2f}" for m, t in times.items()
                               if m != "grouped")
            print(f"+{rtt:g} ms per request: {row}; {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
