"""The agent at rest: CPU and memory over a minute while it watches 500 jobs, with what it asked the farm.

Creates ``--jobs`` (500) real jobs on the local farm (queued and held, nothing renders: see bench_watch.py), records
them in a temporary registry, starts ``tether agent`` as its own process on a temporary runtime folder, waits for
its first cycle, then samples its CPU time (/proc) and resident memory for ``--seconds`` (60). Side by side, in the
same run: a baseline process that imports the same modules and sleeps, so the figures read as "the agent's cost
over an idle Python with Tether loaded". Linux only (/proc).

    .venv/bin/python benchmarks/bench_agent.py [--jobs 500] [--seconds 60] [--json]
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
from typing import Any, Dict

from bench_watch import NoFreeSlots, queued_jobs

TICKS = os.sysconf("SC_CLK_TCK")
BASELINE = "import time, tether.agent_server, tether.farm.client, tether.farm.submit; time.sleep(3600)"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory(pid: int) -> Dict[str, float]:
    values = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(values["VmRSS"].split()[0]) / 1024, "peak_rss_mb": int(values["VmHWM"].split()[0]) / 1024}


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    from tether.agent import AgentClient
    from tether.farm.client import FarmClient
    from tether.registry import JobRegistry
    from tether_services.farm.engine import EMAIL, PASSWORD
    from tether_services.server import LocalServices

    work = Path(tempfile.mkdtemp(prefix="tether-bench-agent-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
           "TETHER_DATA_DIR": str(work / "data"), "TETHER_CONFIG_DIR": str(work / "config"),
           "TETHER_RUNTIME_DIR": str(work / "run")}
    with LocalServices(port=0, state_dir=work / "services", workers=1) as services:
        farm = getattr(services.farm, "farm", services.farm)
        farm._executor = NoFreeSlots()
        env["TETHER_LOCAL_PORT"] = str(services.port)
        with FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD, profile="local") as client:
            ids = queued_jobs(client, args.jobs)
        with JobRegistry(work / "data" / "jobs.sqlite") as registry:
            for job_id in ids:
                registry.record(service="farm", job_id=job_id, profile="local")
        agent = subprocess.Popen([sys.executable, "-m", "tether_cli", "agent", "--detached"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        baseline = subprocess.Popen([sys.executable, "-c", BASELINE], env=env)
        try:
            os.environ["TETHER_RUNTIME_DIR"] = env["TETHER_RUNTIME_DIR"]
            deadline = time.monotonic() + 60
            status: Dict[str, Any] = {}
            while time.monotonic() < deadline:
                try:
                    with AgentClient(work / "run") as channel:
                        status = channel.status()
                    if status["cycle"] >= 1 and status["watching"] >= len(ids):
                        break
                except Exception:
                    pass
                time.sleep(0.2)
            else:
                raise SystemExit(f"the agent did not watch the {len(ids)} jobs within 60 s: {status}")
            services.requests.clear()
            cycles0 = status["cycle"]
            cpu0, base0, started = cpu_seconds(agent.pid), cpu_seconds(baseline.pid), time.monotonic()
            time.sleep(args.seconds)
            seconds = time.monotonic() - started
            cpu, base_cpu = cpu_seconds(agent.pid) - cpu0, cpu_seconds(baseline.pid) - base0
            with AgentClient(work / "run") as channel:
                status = channel.status()
            mem, base_mem = memory(agent.pid), memory(baseline.pid)
            requests = [r for r in services.requests.all() if r.service == "farm"]
            figures = {
                "jobs_watched": status["watching"], "seconds": round(seconds, 1),
                "agent": {"cpu_seconds": round(cpu, 3), "cpu_percent": round(100 * cpu / seconds, 3), **mem,
                          "threads": threads(agent.pid)},
                "baseline_idle_python": {"cpu_seconds": round(base_cpu, 3), **base_mem},
                "rss_vs_baseline": round(mem["rss_mb"] / base_mem["rss_mb"], 3),
                "cycles": status["cycle"] - cycles0, "farm_requests": len(requests),
                "list_pages": sum(1 for r in requests if r.method == "GET" and r.path.endswith("/api/jobs")),
                "per_job_gets": sum(1 for r in requests if r.method == "GET" and "/api/jobs/" in r.path),
            }
        finally:
            for proc in (agent, baseline):
                proc.terminate()
                proc.wait(30)
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    a, b = figures["agent"], figures["baseline_idle_python"]
    print(f"agent watching {figures['jobs_watched']} jobs for {figures['seconds']} s: {a['cpu_seconds']} CPU s "
          f"({a['cpu_percent']}%), RSS {a['rss_mb']:.1f} MB (peak {a['peak_rss_mb']:.1f}), {a['threads']} threads")
    print(f"baseline idle Python with the same imports: {b['cpu_seconds']} CPU s, RSS {b['rss_mb']:.1f} MB; "
          f"agent RSS / baseline {figures['rss_vs_baseline']}")
    print(f"{figures['cycles']} poll cycles, {figures['farm_requests']} farm requests "
          f"({figures['list_pages']} list pages, {figures['per_job_gets']} per-job GETs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
