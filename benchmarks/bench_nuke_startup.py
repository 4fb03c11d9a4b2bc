"""Start-up cost of the Nuke plugin: running init.py and menu.py, with the fake ``nuke``, in a fresh interpreter.

Target: under 20 ms, and nothing of httpx, pydantic, Qt or Tether's core loaded. Measured side by side with the
cost of ``import httpx, pydantic`` in the same kind of fresh interpreter, as a reference for what the plugin avoids.
Each figure is the median of ``--runs`` fresh subprocesses; the fake ``nuke`` itself is imported before the clock
starts (Nuke has it loaded already).

    .venv/bin/python benchmarks/bench_nuke_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "nuke" / "fake"
PLUGIN = ROOT / "nuke_plugin"
HEAVY = ("httpx", "pydantic", "qtpy", "PySide2", "PySide6", "tether")

PLUGIN_CODE = f"""
import json, runpy, sys, time
sys.path[:0] = [{str(FAKE)!r}, {str(PLUGIN)!r}]
import nuke, nukescripts
before = set(sys.modules)
t = time.perf_counter()
runpy.run_path({str(PLUGIN / "init.py")!r})
runpy.run_path({str(PLUGIN / "menu.py")!r})
ms = (time.perf_counter() - t) * 1000
loaded = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in {HEAVY!r})
assert nuke.menu("Nuke").findItem("Tether") is not None
print(json.dumps({{"ms": ms, "heavy": loaded}}))
"""

REFERENCE_CODE = """
import json, time
t = time.perf_counter()
import httpx, pydantic
print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "heavy": []}))
"""


def measure(code: str, runs: int) -> Dict[str, object]:
    times: List[float] = []
    heavy: List[str] = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(float(data["ms"]))
        heavy = sorted(set(heavy) | set(data["heavy"]))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "heavy": heavy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # interleave so that both see the same machine load
    plugin = measure(PLUGIN_CODE, args.runs)
    reference = measure(REFERENCE_CODE, args.runs)
    print(f"{'what':36} {'median ms':>10} {'min':>8} {'max':>8}")
    for label, result in (("init.py + menu.py (fake nuke)", plugin), ("import httpx, pydantic (reference)",
                                                                        reference)):
        print(f"{label:36} {result['median_ms']:>10.2f} {result['min_ms']:>8.2f} {result['max_ms']:>8.2f}")
    ratio = float(plugin["median_ms"]) / float(reference["median_ms"])  # type: ignore[arg-type]
    print(f"plugin / reference: {ratio:.3f}")
    print(f"heavy modules loaded by the plugin at start-up: {plugin['heavy'] or 'none'}")
    ok = float(plugin["median_ms"]) < 20.0 and not plugin["heavy"]  # type: ignore[arg-type]
    print("target (< 20 ms, nothing heavy):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
