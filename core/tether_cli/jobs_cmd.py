"""`tether jobs ...`: the jobs recorded on this machine: list, watch, cancel, fetch, forget."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from tether.errors import AuthError, ConfigError, InputError
from tether.poll import Clock

if TYPE_CHECKING:
    from tether.jobs import JobService
    from tether.registry import JobRecord, JobRegistry
    from tether.watch import JobChange, Watcher

DEFAULT_LIMIT = 20


def make_client(service: str, profile: Optional[str]) -> JobService:
    """The client for a recorded job (a module attribute so tests can hand in an in-process service)."""
    from tether.clients import client_for

    return client_for(service, profile)


def open_registry() -> JobRegistry:
    from tether.registry import JobRegistry

    return JobRegistry()


def register(subparsers: Any) -> None:
    jobs = subparsers.add_parser(
        "jobs", help="the jobs submitted from this machine: list, watch, cancel, fetch, forget",
        description="Jobs submitted from this machine are recorded locally, so nothing is lost on a restart. "
                    "Without an action: list them.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether jobs                          # unfinished jobs and the latest few, every service
  tether jobs --service farm --all --json
  tether jobs watch JOB_ID             # follow until it finishes
  tether jobs fetch JOB_ID --out renders/""",
    )
    _list_options(jobs, argparse_default=True)
    jobs.set_defaults(func=cmd_list)
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")

    listing = sub.add_parser("list", help="list recorded jobs (default: unfinished ones and the latest few)")
    _list_options(listing, argparse_default=False)
    listing.set_defaults(func=cmd_list)

    watch = sub.add_parser("watch", help="follow jobs until they finish (exit code 1 if any did not complete)")
    watch.add_argument("ids", nargs="*", metavar="ID", help="job ids (default: every unfinished job)")
    _service_option(watch)
    watch.add_argument("--interval", type=float, default=2.0, metavar="S",
                       help="seconds between polls while jobs move (default 2); slows down to --max-interval")
    watch.add_argument("--max-interval", type=float, default=60.0, metavar="S",
                       help="longest wait between polls while nothing changes (default 60)")
    watch.set_defaults(func=cmd_watch)

    cancel = sub.add_parser("cancel", help="cancel a job on its service")
    cancel.add_argument("id", metavar="ID")
    _service_option(cancel)
    cancel.set_defaults(func=cmd_cancel)

    fetch = sub.add_parser("fetch", help="download a completed job's outputs")
    fetch.add_argument("id", metavar="ID")
    _service_option(fetch)
    fetch.add_argument("--out", type=Path, metavar="DIR", help="where to put them (default: the job's output folder)")
    fetch.set_defaults(func=cmd_fetch)

    adopt = sub.add_parser("adopt", help="record a job the service has but this machine does not (made elsewhere, "
                                         "or an unconfirmed create's)")
    adopt.add_argument("service", metavar="SERVICE", help="the job's service (e.g. farm)")
    adopt.add_argument("id", metavar="JOB_ID", nargs="?",
                       help="its id on the service (`tether SERVICE jobs --remote`)")
    adopt.add_argument("--marker", metavar="MARKER",
                       help="instead of JOB_ID: the one job carrying this submission marker (an unconfirmed "
                            "create's message names it)")
    adopt.add_argument("--out", type=Path, metavar="DIR", help="where `tether jobs fetch` puts its outputs")
    adopt.set_defaults(func=cmd_adopt)

    forget = sub.add_parser("forget", help="remove a job from the local registry (the service keeps it)")
    forget.add_argument("id", metavar="ID")
    _service_option(forget)
    forget.set_defaults(func=cmd_forget)


def cmd_adopt(args: argparse.Namespace) -> int:
    """Record a job the service knows; an unconfirmed create of the same marker hands over what it recorded."""
    from tether.creation import UNCONFIRMED_PREFIX
    from tether.spec import spec_for

    spec = spec_for(args.service)
    if (args.id is None) == (args.marker is None):
        raise InputError("give the job's id or --marker MARKER (one of them)")
    with spec.client_class().from_profile(args.profile) as client:
        if args.marker is not None:
            carrying = [j for j in client.remote_jobs() if client.marker_of(j) == args.marker]
            if len(carrying) != 1:
                found = ", ".join(j.id for j in carrying) or "none"
                raise InputError(f"{args.service}: {len(carrying)} jobs carry the marker {args.marker} ({found}); "
                                 "adopt one by its id (`tether jobs adopt SERVICE JOB_ID`)")
            job = carrying[0]
        else:
            job = client.get_job(args.id)
        marker = client.marker_of(job)
        profile = client.profile
    registry = open_registry()
    stand_in = registry.get(args.service, f"{UNCONFIRMED_PREFIX}{marker}") if marker else None
    registry.update_from(job, profile)
    if stand_in is not None:
        extra = {k: v for k, v in stand_in.extra.items() if k not in ("unconfirmed", "marker")}
        registry.record(service=args.service, job_id=job.id, title=stand_in.title, source=stand_in.source,
                        output_dir=stand_in.output_dir, extra=extra)
        registry.forget(args.service, stand_in.job_id)
    if args.out is not None:
        registry.record(service=args.service, job_id=job.id, output_dir=args.out)
    replaced = f", in place of the unconfirmed {stand_in.job_id}" if stand_in is not None else ""
    print(f"recorded {args.service} job {job.id} ({job.state_label}){replaced}: `tether jobs watch {job.id}` "
          "follows it")
    return 0


def _service_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: `tether jobs --service farm watch` must not be reset by the action's own default.
    parser.add_argument("--service", default=argparse.SUPPRESS, help="the job's service (e.g. farm)")


def _list_options(parser: argparse.ArgumentParser, argparse_default: bool) -> None:
    def default(value: Any) -> Any:
        return value if argparse_default else argparse.SUPPRESS

    parser.add_argument("--service", default=default(None), help="only this service's jobs (e.g. farm)")
    parser.add_argument("--all", action="store_true", default=default(False), help="every recorded job")
    parser.add_argument("--limit", type=int, default=default(DEFAULT_LIMIT), metavar="N",
                        help=f"finished jobs shown besides the unfinished ones (default {DEFAULT_LIMIT})")
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON")


# --- helpers -------------------------------------------------------------------------------------------------
def _is_tty() -> bool:
    return sys.stdout.isatty()


def age(when: datetime, now: Optional[datetime] = None) -> str:
    seconds = max(0.0, ((now or datetime.now(timezone.utc)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _progress(rec: JobRecord) -> str:
    counts = rec.extra.get("counts") or {}
    text = f"{rec.progress:.0f}%"
    if isinstance(counts, dict) and counts.get("tasks"):
        text += f" ({counts.get('completed', 0)}/{counts['tasks']} tasks)"
    return text


def _row(rec: JobRecord) -> Tuple[str, ...]:
    return (rec.service, rec.job_id, rec.title, rec.state_label, _progress(rec), rec.source or "-",
            rec.output_dir or "-", age(rec.submitted_at))


HEADERS = ("SERVICE", "ID", "TITLE", "STATE", "PROGRESS", "SOURCE", "OUTPUT", "AGE")
SHRINKABLE = (2, 5, 6)  # TITLE, SOURCE, OUTPUT


def _rich_table(records: List[JobRecord], title: Optional[str] = None) -> Any:
    from rich.table import Table

    colours = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "held": "magenta"}
    table = Table(title=title, header_style="bold")
    for name in HEADERS:
        table.add_column(name.lower(), overflow="fold")
    for rec in records:
        cells = list(_row(rec))
        colour = colours.get(rec.state.value)
        if colour:
            cells[3] = f"[{colour}]{cells[3]}[/]"
        table.add_row(*cells)
    return table


def _resolve(registry: JobRegistry, job_id: str, service: Optional[str]) -> JobRecord:
    matches = registry.find(job_id, service)
    if not matches:
        where = f"{service} job" if service else "job"
        raise InputError(
            f"{where} {job_id} is not in the job registry ({registry.path}); `tether jobs --all` lists the jobs "
            "recorded there (jobs submitted from another machine or user are not)"
        )
    if len(matches) > 1:
        services = ", ".join(m.service for m in matches)
        raise InputError(f"job id {job_id} is recorded for several services ({services}): add --service NAME")
    return matches[0]


# --- commands ------------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    registry = open_registry()
    service = getattr(args, "service", None)
    profile = getattr(args, "profile", None)
    if args.all:
        records = registry.list(service=service, profile=profile)
    else:
        # What needs attention (everything unfinished) plus the latest few, newest first.
        picked: Dict[Tuple[str, str], JobRecord] = {
            r.key: r for r in registry.list(service=service, profile=profile, unfinished_only=True)
        }
        for rec in registry.list(service=service, profile=profile, limit=max(0, args.limit)):
            picked.setdefault(rec.key, rec)
        records = sorted(picked.values(), key=lambda r: (r.submitted_at, r.job_id), reverse=True)
    if args.json:
        json.dump([r.to_dict() for r in records], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    total = registry.count()
    if not records:
        print(f"no jobs recorded in {registry.path}" if total == 0 else
              f"no jobs match ({total} recorded in {registry.path})")
        return 0
    if _is_tty():
        from rich.console import Console

        Console().print(_rich_table(records))
    else:
        from .tables import plain_table, plain_width

        # a pipe gets the terminal's width too: the title, source and output paths give way, the id never
        print(plain_table(HEADERS, [_row(r) for r in records], plain_width(), SHRINKABLE))
    if len(records) < total and not args.all and service is None and profile is None:
        print(f"{len(records)} of {total} recorded jobs shown; --all shows every one")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from tether import agent
    from tether.jobs import JobState

    if args.interval <= 0:
        raise InputError(f"--interval must be more than 0 seconds, not {args.interval}")
    registry = open_registry()
    service = getattr(args, "service", None)
    if args.ids:
        start = [_resolve(registry, job_id, service) for job_id in args.ids]
        keys: Optional[List[Tuple[str, str]]] = [r.key for r in start]
    else:
        start = [r for r in registry.list(service=service, profile=args.profile, unfinished_only=True)
                 if not r.missing]
        keys = None
        if not start:
            print(f"no unfinished jobs to watch in {registry.path}")
            return 0
    scope: Dict[str, Any] = dict(jobs=keys, service=service if keys is None else None,
                                 profile=args.profile if keys is None else None, fast=args.interval,
                                 cap=max(args.interval, args.max_interval))
    # A running agent's one watcher is subscribed to instead of polling the services a second time.
    watcher = agent.watcher_for(registry, make_client, **scope)
    try:
        if _is_tty():
            _watch_live(watcher)
        else:
            _watch_plain(watcher, start)
    except KeyboardInterrupt:
        again = " ".join(["tether jobs watch", *args.ids])
        print(f"stopped watching; the jobs keep running on their services: `{again}` follows them again",
              file=sys.stderr)
        raise
    finally:
        watcher.close()
    followed = watcher.followed
    not_completed = [r for r in followed if r.state is not JobState.COMPLETED]
    for rec in not_completed:
        print(f"{rec.service} job {rec.job_id} {rec.state_label}" + (f": {rec.error}" if rec.error else ""),
              file=sys.stderr)
    return 1 if not_completed else 0


def _raise_if_hopeless(changes: List[JobChange]) -> None:
    """Missing credentials or a refused login do not fix themselves: stop with the message instead of polling."""
    for change in changes:
        if isinstance(change.error, (ConfigError, AuthError)):
            raise change.error


def _watch_plain(watcher: Watcher, start: List[JobRecord]) -> None:
    for rec in start:
        print(f"{rec.service} job {rec.job_id}: {rec.state_label} {rec.progress:.0f}%", flush=True)
    last_error: Dict[Tuple[str, str], str] = {}  # (service, profile) -> the error printed last
    for changes in watcher.follow(clock=Clock(monotonic=time.monotonic, sleep=time.sleep)):
        _raise_if_hopeless(changes)
        for change in changes:
            if change.error is None:
                last_error.pop((change.service, change.profile), None)
                print(change.message, flush=True)
            elif last_error.get((change.service, change.profile)) != change.message:
                # A service that stays down is said once, not once per poll, in a log that runs for hours.
                last_error[(change.service, change.profile)] = change.message
                print(f"{change.message} (retrying with back-off; Ctrl-C stops watching, the jobs keep running)",
                      file=sys.stderr, flush=True)


def _watch_live(watcher: Watcher) -> None:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    console = Console()
    state: Dict[str, Any] = {"next": time.monotonic(), "errors": []}  # next: monotonic time of the next poll

    def render() -> Any:
        if state["next"] is None:
            footer = Text("every watched job has finished", style="dim")
        else:
            wait = max(0.0, state["next"] - time.monotonic())
            footer = Text(f"next poll in {wait:.0f} s; Ctrl+C stops watching (the jobs keep running)", style="dim")
        parts: List[Any] = [_rich_table(watcher.followed), footer]
        parts += [Text(message, style="red") for message in state["errors"]]
        return Group(*parts)

    def wait(seconds: float) -> None:
        state["next"] = time.monotonic() + seconds
        time.sleep(seconds)

    with Live(console=console, get_renderable=render, refresh_per_second=2, transient=False):
        for changes in watcher.follow(clock=Clock(sleep=wait)):
            _raise_if_hopeless(changes)
            state["errors"] = [c.message for c in changes if c.error is not None]
        state["next"] = None


def cmd_cancel(args: argparse.Namespace) -> int:
    registry = open_registry()
    rec = _resolve(registry, args.id, getattr(args, "service", None))
    client = make_client(rec.service, rec.profile or args.profile)
    client.cancel_job(rec.job_id)
    job = client.get_job(rec.job_id)
    after = registry.update_from(job, rec.profile)
    print(f"{rec.service} job {rec.job_id}: {after.state_label}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from tether.jobs import JobState

    from .progress import TransferBars, status_console

    registry = open_registry()
    rec = _resolve(registry, args.id, getattr(args, "service", None))
    dest = args.out or (Path(rec.output_dir) if rec.output_dir else None)
    if dest is None:
        raise InputError(f"{rec.service} job {rec.job_id} has no recorded output folder: add --out DIR")
    client = make_client(rec.service, rec.profile or args.profile)
    job = client.get_job(rec.job_id)
    after = registry.update_from(job, rec.profile)
    if after.state is not JobState.COMPLETED:
        raise InputError(
            f"{rec.service} job {rec.job_id} is {after.state_label}, not completed: nothing to fetch yet"
            + ("" if after.state.finished else f" (`tether jobs watch {rec.job_id}` follows it)")
        )
    console = status_console()
    with TransferBars(console) as bars:
        files = client.fetch_outputs(rec.job_id, dest, progress=lambda done, total: bars.bytes("download", done, total))
    registry.mark_fetched(rec.service, rec.job_id, dest)
    print(f"fetched {len(files)} files of {rec.service} job {rec.job_id} into {dest}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    registry = open_registry()
    rec = _resolve(registry, args.id, getattr(args, "service", None))
    registry.forget(rec.service, rec.job_id)
    note = "" if rec.finished else f" (it is {rec.state_label} and keeps running there: `tether jobs cancel` stops it)"
    print(f"forgot {rec.service} job {rec.job_id}; the service still has it{note}")
    return 0
