"""Watching many jobs: HTTP requests per poll cycle, counted by the local farm's own request log.

Creates ``--jobs`` (500) real jobs on the local farm over its API, records them in a temporary job registry, runs
``Watcher.poll_once`` and counts the requests the farm answered during that one cycle. Side by side, in the same
run: the naive way (one ``GET /api/jobs/{id}`` per job). Target: pages, not jobs (500 jobs at 100 per page = 5).

Then three followers at once (two DCC sessions and a ``tether jobs watch``): each polling the farm on its own, one
cycle each, against the same three subscribed to a running agent (``tether.agent.watcher_for``), counted over a few
of the agent's cycles. Target: the agent's pages per cycle, whatever the number of followers.

Nothing renders: the farm gets a chunk executor with no free slot (the executor seam of the local farm), so the
jobs stay queued, as on a busy farm; every fifth job is also held through the API, so the cycle sees mixed states.

    .venv/bin/python benchmarks/bench_watch.py [--jobs 500] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from tether.farm.client import FarmClient
from tether.farm.models import JobCreate
from tether.registry import JobRegistry
from tether.watch import Watcher

FAKE_BLEND = b"BLENDER-v405" + b"\0" * 4096  # never opened: nothing renders in this benchmark


class NoFreeSlots:
    """A ChunkExecutor whose slots are all taken: jobs queue and never render."""

    slots = 0

    def worker_pids(self) -> List[int]:
        return []

    def submit(self, chunk: Any, on_frame: Optional[Callable[[int, str], None]] = None) -> Any:
        raise RuntimeError("no free slot")  # the farm never calls this with slots == 0

    def shutdown(self) -> None:
        return None


def measure(label: str, services: Any, action: Callable[[], Any], jobs: int) -> Dict[str, Any]:
    services.requests.clear()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    records = [r for r in services.requests.all() if r.service == "farm"]
    return {
        "case": label, "jobs": jobs, "requests": len(records),
        "list_pages": sum(1 for r in records if r.method == "GET" and r.path.rstrip("/").endswith("/api/jobs")),
        "seconds": round(seconds, 4),
    }


def queued_jobs(client: FarmClient, count: int) -> List[str]:
    """``count`` real jobs on the local farm (whose executor has no free slot), every fifth held; their ids."""
    md5 = hashlib.md5(FAKE_BLEND).hexdigest()
    if not client.check_md5(md5, len(FAKE_BLEND), "bench/scene.blend").exists:
        client.upload_file(io.BytesIO(FAKE_BLEND), md5=md5, path="bench/scene.blend")

    def create(i: int) -> str:
        payload = JobCreate(job_title=f"bench {i:04d}", project="default", instance_type="cpu-standard-8",
                            frame_range="1-10", chunk_size=5, blender_version="blender-5-0",
                            output_path=f"renders/bench/{i:04d}", upload_paths=["bench/scene.blend"])
        return client.create_job(payload).id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(count)))
        list(pool.map(client.hold, ids[::5]))
    return ids


def followers(services: Any, registry: JobRegistry, client: FarmClient, work: Path, jobs: int,
              count: int = 3, cycles: int = 4) -> List[Dict[str, Any]]:
    """``count`` followers polling on their own (one cycle each), then subscribed to an agent (``cycles`` of its
    cycles): the farm's requests, per cycle."""
    import os

    from tether import agent
    from tether.agent_server import Agent
    from tether_services.farm.engine import EMAIL, PASSWORD

    own = [Watcher(registry, lambda service, profile: client) for _ in range(count)]
    for watcher in own:
        watcher.poll_once()  # past the first cycle's writes, as the steady case above
    rows = [measure(f"{count} followers, polling", services, lambda: [w.poll_once() for w in own], jobs)]
    os.environ["TETHER_RUNTIME_DIR"] = str(work / "run")
    os.environ["TETHER_AGENT"] = "auto"
    live = Agent(agent.runtime_dir(), registry, fast=0.2, cap=0.2, notify=lambda title, text: None,
                 clients=lambda service, profile: FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD,
                                                             profile="local")).start()
    subscribed = [agent.watcher_for(registry, lambda service, profile: client, wait=5.0) for _ in range(count)]
    try:
        for watcher in subscribed:
            watcher.poll_once()
        start = live.cycle

        def follow() -> None:
            while live.cycle < start + cycles:
                for watcher in subscribed:
                    watcher.poll_once()

        row = measure(f"{count} followers, via agent/cycle", services, follow, jobs)
        row["cycles"] = live.cycle - start
        row["subscribed"] = all(getattr(w, "subscribed", False) for w in subscribed)
        row["requests"] = round(row["requests"] / row["cycles"], 2)  # per agent cycle, as the polling row's one
        row["list_pages"] = round(row["list_pages"] / row["cycles"], 2)
        row["seconds"] = round(row["seconds"] / row["cycles"], 4)  # the agent's cadence (0.2 s), not work
        rows.append(row)
    finally:
        for watcher in [*own, *subscribed]:
            watcher.close()
        live.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from tether_services.farm.engine import EMAIL, PASSWORD
    from tether_services.server import LocalServices

    work = Path(tempfile.mkdtemp(prefix="tether-bench-watch-"))
    with LocalServices(port=0, state_dir=work / "services", workers=1) as services:
        farm = getattr(services.farm, "farm", services.farm)  # the LocalFarm, behind its HTTP frame or not
        farm._executor = NoFreeSlots()  # before the first job: the farm starts its executor lazily
        client = FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD, profile="local")
        started = time.perf_counter()
        ids = queued_jobs(client, args.jobs)
        setup = time.perf_counter() - started

        registry = JobRegistry(work / "jobs.sqlite")
        for job_id in ids:
            registry.record(service="farm", job_id=job_id, profile="local", source="bench/scene.blend")

        watcher = Watcher(registry, lambda service, profile: client)
        rows: List[Dict[str, Any]] = []
        changes: List[Any] = []
        rows.append(measure("watcher, first cycle", services, lambda: changes.extend(watcher.poll_once()), len(ids)))
        rows.append(measure("watcher, steady cycle", services, watcher.poll_once, len(ids)))
        rows.append(measure("naive: one GET per job", services, lambda: [client.get_job(i) for i in ids], len(ids)))
        oldest = ids[:10]  # the farm lists newest first: the oldest are on the last page
        few = Watcher(registry, lambda service, profile: client, jobs=[("farm", i) for i in oldest])
        rows.append(measure("watcher, 10 oldest of them", services, few.poll_once, len(oldest)))
        states = sorted({c.after.state.value for c in changes if c.after is not None})
        rows.extend(followers(services, registry, client, work, len(ids)))
        registry.close()
        client.close()

    naive = rows[2]
    for row in rows:
        row["requests_vs_naive"] = round(row["requests"] / naive["requests"], 4) if naive["requests"] else None
        row["time_vs_naive"] = round(row["seconds"] / naive["seconds"], 4) if naive["seconds"] else None
    summary = {"jobs_created": len(ids), "setup_seconds": round(setup, 2), "first_cycle_changes": len(changes),
               "states_seen": states, "rows": rows}
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{len(ids)} jobs created (every fifth held) in {setup:.1f} s; first cycle reported {len(changes)} "
          f"changes (states: {', '.join(states) or '-'})")
    print(f"{'case':<30} {'jobs':>5} {'requests':>9} {'pages':>6} {'seconds':>8} {'req/naive':>10} {'time/naive':>11}")
    for row in rows:
        print(f"{row['case']:<30} {row['jobs']:>5} {row['requests']:>9} {row['list_pages']:>6} {row['seconds']:>8.3f} "
              f"{row['requests_vs_naive']:>10} {row['time_vs_naive']:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
