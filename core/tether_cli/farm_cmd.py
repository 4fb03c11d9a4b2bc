"""`tether farm submit|jobs|status|fetch|cancel|projects|instances|packages|billing`: submit a .blend to the render
farm, follow its jobs, and look at what the farm offers."""

from __future__ import annotations

import argparse
import json
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from tether.errors import InputError
from tether.fileio import SHOWN, human_bytes

from .service_cmd import ServiceCommand, handed_off, print_jobs
from .service_cmd import client as service_client


def _env_pairs(values: List[str]) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"--env '{item}' must be NAME=VALUE")
        env[name] = value
    return env


def register(subparsers: Any) -> None:
    sub = ServiceCommand(subparsers, "farm")

    submit = sub.add(
        "submit", help="submit a .blend: validate, upload what the farm lacks, create the job",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether farm submit shot.blend --dry-run                    # what would be sent, sending nothing
  tether farm submit shot.blend --frames 1001-1100 --chunk-size 10 --scout fml:3 --wait
  tether farm submit shot.blend --frames 1-240x2 --out renders/ --json   # wait, fetch, print JSON""")
    submit.add_argument("scene", type=Path, help="the .blend file")
    submit.add_argument("--frames", help="frame spec (default: the scene's start-end and step), e.g. 1-100x2")
    submit.add_argument("--chunk-size", type=int, default=1, help="frames per task (default 1)")
    submit.add_argument("--scout", default="", help="scout frames rendered first, e.g. fml:3 or auto:5")
    submit.add_argument("--instance-type", help="instance id (see `tether farm instances`)")
    submit.add_argument("--blender-version", help="package id (see `tether farm packages`); default: newest")
    submit.add_argument("--project", default="default", help="farm project (created if missing)")
    submit.add_argument("--title", help="job title (default: scene name and frames)")
    submit.add_argument("--output-path", help="the farm-side output path (default renders/<scene>/<time>)")
    submit.add_argument("--extra", action="append", default=[], type=Path, metavar="FILE",
                        help="an extra file to upload (repeatable)")
    submit.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable for the render (repeatable)")
    submit.add_argument("--preemptible", action="store_true", help="use spot/preemptible instances")
    submit.add_argument("--retries", type=int, default=0, help="retries for a preempted task")
    submit.add_argument("--scene-name", help="render this scene of the file instead of the active one")
    submit.add_argument("--allow-missing", action="store_true",
                        help="submit even though files are missing (the farm renders without them)")
    submit.add_argument("--project-root", type=Path,
                        help="the folder whose layout the farm keeps (default: the scene's folder); files outside "
                             "it go under _outside_project/ in the bundle")
    sub.submit_options(submit, "and show the payload", "fetch the frames here when the job completes")
    submit.set_defaults(func=cmd_submit)

    for name, helptext in (("projects", "list projects"), ("instances", "list instance types"),
                           ("packages", "list Blender versions"), ("billing", "current billing period")):
        p = sub.add(name, help=helptext)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=cmd_list, what=name)
    jobs = sub.add("jobs", help="list the farm's jobs")
    jobs.add_argument("--status", action="append", metavar="STATUS", help="only jobs in this state (repeatable)")
    jobs.add_argument("--project", help="only this project's jobs")
    jobs.add_argument("--limit", type=int, default=50, help="stop after this many jobs (default 50)")
    jobs.add_argument("--json", action="store_true", help="print JSON")
    jobs.set_defaults(func=cmd_jobs)
    sub.finish()


def print_preflight(check: Any, console: Any) -> None:
    """The check's summary (a dry run prints it to stdout, so `> file` keeps it)."""
    console.print(f"[bold]{check.facts.path.name}[/] scene '{check.facts.scene}', engine {check.facts.engine}")
    console.print(f"  frames    {check.frame_spec} ({len(check.frames)} frames, {len(check.chunks)} tasks, "
                  f"{check.scout_tasks} scout tasks)")
    if check.scout_frames:
        console.print(f"  scout     {', '.join(map(str, check.scout_frames))}")
    console.print(f"  files     {1 + len(check.deps.found) + len(check.extra_files)} to upload, "
                  f"{human_bytes(check.upload_size)}; {len(check.deps.missing)} missing")
    for path in check.deps.missing[:SHOWN]:
        console.print(f"  [yellow]missing[/]   {path} (used by {check.deps.missing_from.get(path, '?')})")
    if len(check.deps.missing) > SHOWN:
        console.print(f"  [yellow]missing[/]   ... and {len(check.deps.missing) - SHOWN} more")
    for warning in check.warnings:
        console.print(f"  [yellow]warning[/]   {warning}")
    for error in check.errors:
        console.print(f"  [red]error[/]     {error}")


def cmd_submit(args: argparse.Namespace) -> int:
    from tether.agent import use_agent
    from tether.farm.submit import FarmOptions, handoff_request, preview, submit
    from tether.registry import JobRegistry

    from .progress import TransferBars, status_console

    console = status_console()
    opts = FarmOptions(
        scene=args.scene, frames=args.frames, chunk_size=args.chunk_size, scout=args.scout,
        instance_type=args.instance_type, blender_version=args.blender_version, project=args.project,
        title=args.title, output_path=args.output_path, out_dir=args.out.resolve() if args.out else None,
        extra_files=args.extra, environment=_env_pairs(args.env), preemptible=args.preemptible,
        preemptible_retries=args.retries, scene_name=args.scene_name, allow_missing=args.allow_missing,
        project_root=args.project_root,
    )
    client = service_client(args)
    if args.dry_run:
        check = preview(client, opts)
        if args.json:
            print(check.to_json())  # the same document the Blender add-on's Preview Payload writes
        else:
            from rich.console import Console

            out = Console(soft_wrap=True)  # stdout: the dry run's answer is its output
            print_preflight(check, out)
            payload = check.document()["payload"]
            if payload is not None:
                out.print_json(json.dumps(payload))
        return 0 if check.ok else 1
    if not args.wait and use_agent(args.no_agent):
        preview(client, opts).raise_errors()  # every check, before the agent is asked to take anything
        if handed_off(args, "farm", lambda: handoff_request(opts), profile=client.profile,
                      title=opts.title or opts.scene.stem, out=opts.out_dir, console=console):
            return 0
    with TransferBars(console) as bars:
        result = submit(client, opts, registry=JobRegistry(), progress=bars.update)
    up = result.upload
    console.print(f"[green]submitted[/] job {result.job.id} '{result.job.job_title}': "
                  f"{len(result.preflight.frames)} frames in {len(result.preflight.chunks)} tasks; uploaded "
                  f"{human_bytes(up.bytes_sent)} of {human_bytes(up.bytes_total)} "
                  f"({up.files_skipped} files already on the farm)")
    for warning in result.preflight.warnings:
        console.print(f"[yellow]warning[/] {warning}")
    code = 0
    if args.wait or args.out:
        from .follow import follow_and_fetch

        code = follow_and_fetch("farm", [result.job.id], profile=args.profile, out=args.out, console=console)
    if args.json:
        print(json.dumps({"job_id": result.job.id, "title": result.job.job_title,
                          "frames": result.preflight.frame_spec, "tasks": len(result.preflight.chunks),
                          "bytes_sent": up.bytes_sent, "bytes_total": up.bytes_total}))
    return code


def cmd_jobs(args: argparse.Namespace) -> int:
    from tether.farm.client import to_job

    if args.limit < 1:
        raise InputError("--limit must be 1 or more")
    with service_client(args) as client:
        jobs = [to_job(j) for j in islice(client.iter_jobs(status=args.status, project=args.project), args.limit)]
    print_jobs(jobs, args.json, ("job", "title", "state", "progress", "error"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    client = service_client(args)
    rows: List[Any]
    if args.what == "billing":
        period = client.billing_current()
        data: Optional[Any] = period.model_dump(mode="json")
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(period.describe())
        return 0
    listers: Dict[str, Callable[[], Sequence[Any]]] = {
        "projects": client.projects, "instances": client.instances, "packages": client.packages}
    rows = list(listers[args.what]())
    if args.json:
        # One JSON document (an array), like every other `--json` listing.
        print(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return 0
    if not rows:
        print(f"the farm lists no {args.what}")
        return 0
    from .tables import print_table

    keys = list(rows[0].model_dump().keys())
    print_table(keys, [[_cell(row.model_dump(mode="json").get(k)) for k in keys] for row in rows],
                title=f"farm {args.what}")
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
