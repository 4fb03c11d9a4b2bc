"""Follow jobs until they finish, with a progress bar each, then fetch their outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from tether.jobs import Job, JobService, JobState
from tether.poll import SYSTEM_CLOCK, Backoff, Clock, Tick, poll_until, polls

from .progress import status_console


def follow_and_fetch(
    service: str,
    job_ids: List[str],
    *,
    profile: Optional[str] = None,
    out: Optional[Path] = None,
    console: Optional[Console] = None,
    client: Optional[JobService] = None,
    registry: Any = None,
    interval: float = 1.0,
    max_interval: float = 10.0,
    fetch_hint: Optional[bool] = None,
) -> int:
    """Return 0 when every job completed (and was fetched, if ``out``), 1 otherwise.

    Ctrl-C stops following (the jobs keep running) and says how to resume; ``fetch_hint`` says whether that
    includes fetching, for callers that fetch by themselves (default: whether ``out`` is given).
    """
    from tether.clients import client_for

    console = console or status_console()
    client = client or client_for(service, profile)
    if registry is None:
        from tether.registry import JobRegistry

        registry = JobRegistry()
    try:
        jobs = _follow(service, job_ids, client, registry, profile, console, interval, max_interval)
    except KeyboardInterrupt:
        print_resume_hint(service, job_ids, console, fetch=out is not None if fetch_hint is None else fetch_hint)
        raise
    failed = [j for j in jobs.values() if j.state is not JobState.COMPLETED]
    for job in failed:
        console.print(f"[red]job {job.id} {job.state_label}[/]" + (f": {job.error}" if job.error else ""))
    if out is not None:
        from .progress import TransferBars

        for job in jobs.values():
            if job.state is not JobState.COMPLETED:
                continue
            try:
                with TransferBars(console) as transfer:
                    files = client.fetch_outputs(job.id, out,
                                                 progress=lambda d, t: transfer.bytes("download", d, t))
            except KeyboardInterrupt:
                print_resume_hint(service, [job.id], console, fetch=True, finished=True)
                raise
            registry.mark_fetched(service, job.id, out)
            console.print(f"[green]fetched[/] {len(files)} files of job {job.id} into {out}")
    return 1 if failed else 0


def print_resume_hint(service: str, job_ids: List[str], console: Console, *, fetch: bool,
                      finished: bool = False) -> None:
    """After Ctrl-C: the jobs live on at the service and in the job registry; say how to pick them up again."""
    ids = " ".join(job_ids)
    steps = [] if finished else [f"`tether jobs watch {ids}` follows {'it' if len(job_ids) == 1 else 'them'} again"]
    if fetch:
        steps.append(f"`tether jobs fetch {job_ids[0]}` downloads the outputs (finished files are kept)"
                     if len(job_ids) == 1 else "`tether jobs fetch ID` downloads each one's outputs")
    where = "the download" if finished else f"following; {service} job {ids} keeps running on the service"
    console.print(f"stopped {where}: " + "; ".join(steps), markup=False, highlight=False, soft_wrap=True)


def _follow(service: str, job_ids: List[str], client: JobService, registry: Any, profile: Optional[str],
            console: Console, interval: float, max_interval: float, clock: Clock = SYSTEM_CLOCK) -> Dict[str, Job]:
    jobs: Dict[str, Job] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("{task.fields[state]}"), console=console) as bars:
        tasks: Dict[str, TaskID] = {
            job_id: bars.add_task(f"job {job_id}", total=100, state="") for job_id in job_ids
        }

        def show(tick: Tick[Dict[str, Job]]) -> None:
            for job_id, job in tick.value.items():
                jobs[job_id] = job
                registry.update_from(job, profile or "")
                label = job.state_label + (f" ({job.counts.get('completed', 0)}/{job.counts.get('tasks', 0)} tasks)"
                                           if job.counts.get("tasks") else "")
                bars.update(tasks[job_id], completed=job.progress, state=label)

        ticks = polls(lambda: client.jobs_by_id(job_ids), backoff=Backoff(interval, max(interval, max_interval)),
                      key=lambda current: sorted((i, j.state, j.progress) for i, j in current.items()), clock=clock)
        poll_until(ticks, lambda _: len(jobs) == len(job_ids) and all(j.state.finished for j in jobs.values()), show)
    return jobs
