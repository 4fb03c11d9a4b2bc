"""`tether autopilot submit|jobs|status|fetch|cancel|quota|import`: Slapshot Autopilot from the command line.

``submit CLIP`` takes a movie (.mov/.mp4) or an image sequence (``shot.####.exr``, ``shot.%04d.png``); a sequence is
sent as an H.264 movie in a display colour space (``--colorspace``/``--ocio``/``--display-colorspace``; see
:mod:`tether.encode`), and its first frame is recorded with the job so results line up with the plate's frames.
``fetch JOB`` (also ``results``) downloads and unpacks a finished job's results; ``import JOB --nk OUT.nk`` writes
them as a Nuke script (both build on :meth:`tether.autopilot.client.AutopilotClient.fetch_results`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional

from tether.errors import InputError

from .service_cmd import ServiceCommand, colour_choice, handed_off, out_folder, output_folder
from .service_cmd import client as service_client


def _flag(value: Optional[bool]) -> Optional[str]:
    return None if value is None else ("True" if value else "False")


def register(subparsers: Any) -> None:
    sub = ServiceCommand(subparsers, "autopilot")

    submit = sub.add(
        "submit", help="check, upload and submit a clip",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether autopilot submit plate.####.exr --roto --dry-run
  tether autopilot submit scan.1001-1050%04d.dpx --roto --colorspace Cineon    # these frames, in Nuke's Cineon
  tether autopilot submit plate.%04d.exr --roto --tracking --lens 35 --sensor 36 24 --wait --out results/
  tether autopilot submit shot.mov --depth --depth-export mov --json""")
    submit.add_argument("clip", help="a movie file, or an image sequence such as shot.####.png or shot.%%04d.png")
    submit.add_argument("--roto", action="store_true", help="mattes of the moving subject")
    submit.add_argument("--tracking", action="store_true", help="a camera solve")
    submit.add_argument("--depth", action="store_true", help="depth maps")
    submit.add_argument("--smart-vectors", action="store_true", help="motion vectors (EXR)")
    submit.add_argument("--depth-export", choices=("jpg", "mov"), help="depth as JPEG frames (default) or a movie")
    submit.add_argument("--fps", type=float, help="tracking: working frames per second (default: the clip's)")
    submit.add_argument("--lens", type=float, help="tracking: focal length in mm")
    submit.add_argument("--sensor", nargs=2, type=float, metavar=("WIDTH", "HEIGHT"),
                        help="tracking: sensor width and height in mm (both)")
    submit.add_argument("--near", type=float, help="tracking: estimated closest point, metres")
    submit.add_argument("--far", type=float, help="tracking: estimated farthest point, metres")
    submit.add_argument("--distortion", action=argparse.BooleanOptionalAction, default=None,
                        help="tracking: calculate lens distortion (ST maps)")
    submit.add_argument("--fix-focal", action=argparse.BooleanOptionalAction, default=None,
                        help="tracking: keep the focal length fixed")
    submit.add_argument("--fix-sensor", action=argparse.BooleanOptionalAction, default=None,
                        help="tracking: keep the sensor size fixed")
    sub.sequence_options(submit)
    submit.add_argument("--output-path", help="service-side output key prefix (default tether/<clip>/<id>)")
    submit.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="job metadata, e.g. --meta project=Chocolate --meta shot=ch01 (repeatable)")
    submit.add_argument("--force", action="store_true",
                        help="send even when the same frames were sent with the same options before (by default "
                             "that job's results are offered instead: --wait/--out follow and fetch it)")
    sub.submit_options(submit, "the clip and options", "download and unpack the results here")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add("jobs", help="list Autopilot jobs", func=cmd_jobs, json_option=True)
    jobs.add_argument("--service", choices=("roto", "tracking", "depth_map", "smart_vectors"))
    jobs.add_argument("--status", choices=("pending", "running", "completed", "failed", "cancelled"))
    jobs.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata filter")
    jobs.add_argument("--page", type=int, default=1)

    sub.add("quota", help="frames used and whether the account is over its limit", func=cmd_quota, json_option=True)

    results = sub.add("fetch", aliases=["results"], help="download and unpack a finished job's results")
    results.add_argument("job", help="job id")
    results.add_argument("--out", type=Path, metavar="DIR",
                         help="folder for the results (default: the one recorded when it was submitted)")
    results.add_argument("--export", action="append", default=[], metavar="TYPE",
                         help="export type (hard_mattes, mb_mattes, tracking, jpg, mov, exr); default: all it has")
    results.add_argument("--json", action="store_true")
    results.set_defaults(func=cmd_results)

    imp = sub.add(
        "import", help="write a finished job's mattes, camera and depth as a Nuke .nk script",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether autopilot import JOB_ID --nk shot010_autopilot.nk            # a whole script, with the plate's Read
  tether autopilot import JOB_ID --nk paste.nk --snippet              # nodes to paste beside the plate""")
    imp.add_argument("job", help="job id (from `tether autopilot jobs` or `tether jobs`)")
    imp.add_argument("--nk", type=Path, required=True, metavar="OUT.nk",
                     help="the .nk script to write (an existing one gets this import added as the next version, "
                          "_v002 nodes beside _v001: nothing in it is replaced)")
    imp.add_argument("--out", type=Path, help="folder for the downloaded results (default: beside the .nk)")
    imp.add_argument("--snippet", action="store_true",
                     help="write a snippet to paste with the plate's Read selected, not a script that opens alone")
    imp.set_defaults(func=cmd_import)

    cancel = sub.add("cancel", help="cancel a job")
    cancel.add_argument("job", help="job id")
    cancel.set_defaults(func=cmd_cancel)
    sub.finish()


def _meta(pairs: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--meta '{item}' must be KEY=VALUE")
        try:
            out[key] = json.loads(value)  # numbers stay numbers: {"project_id": 123}
        except ValueError:
            out[key] = value
    return out


def _choice(args: argparse.Namespace) -> Any:
    from tether.autopilot.submit import ServiceChoice

    tracking: Dict[str, Any] = {
        "working_fps": args.fps, "lens": args.lens, "estimated_closest_point": args.near,
        "estimated_farthest_point": args.far, "calculate_distortion": _flag(args.distortion),
        "fix_focal_length": _flag(args.fix_focal), "fix_sensor_size": _flag(args.fix_sensor),
    }
    if args.sensor:
        tracking["sensor_width"], tracking["sensor_height"] = args.sensor
    tracking = {k: v for k, v in tracking.items() if v is not None}
    if tracking and not args.tracking:
        raise InputError(f"tracking options ({', '.join(sorted(tracking))}) were given without --tracking")
    if args.depth_export and not args.depth:
        raise InputError("--depth-export was given without --depth")
    return ServiceChoice(roto=args.roto, tracking=args.tracking, depth=args.depth, smart_vectors=args.smart_vectors,
                         depth_export=args.depth_export, tracking_metadata=tracking)


def _print_results(result: Any, console: Any) -> None:
    offset = f" (output frame 1 = plate frame {result.first_frame})" if result.first_frame is not None else ""
    console.print(f"[green]results[/] in {result.root}{offset}: {result.summary()}")
    for seq in result.mattes:
        console.print(f"  matte   {seq.hashes}  {seq.first}-{seq.last}")
    for cam in result.cameras:
        console.print(f"  camera  {cam}")
    for item in result.depth:
        console.print(f"  depth   {getattr(item, 'hashes', item)}")
    for seq in result.vectors:
        console.print(f"  vectors {seq.hashes}")
    for path, why in result.unknown:
        console.print(f"  [yellow]unknown[/] {path}: {why}")


def _result_json(result: Any) -> Dict[str, Any]:
    return {
        "root": str(result.root), "first_frame": result.first_frame,
        "mattes": [s.hashes for s in result.mattes], "cameras": [str(c) for c in result.cameras],
        "depth": [getattr(d, "hashes", str(d)) for d in result.depth], "vectors": [s.hashes for s in result.vectors],
        "unknown": [{"path": str(p), "why": w} for p, w in result.unknown],
    }


def cmd_submit(args: argparse.Namespace) -> int:
    from tether.autopilot.submit import preview, submit

    from .progress import TransferBars, status_console

    console = status_console()
    client = service_client(args)
    choice = _choice(args)
    colour = colour_choice(args)
    out = out_folder(args.out)
    with client:
        if args.dry_run:
            # the body a send posts (asset and job metadata included), as the Nuke panel's preview shows it
            pv = preview(client, args.clip, choice, output_path=args.output_path, metadata=_meta(args.meta),
                         colour=colour, frames=args.frames)
            clip, quota, sent = pv.prepared.clip, pv.prepared.quota, pv.prepared.transform
            how = f"; sent as H.264 in {sent.target} (from {sent.source})" if sent is not None else ""
            summary = (f"{clip.source}: {clip.kind}, {clip.frame_count} frames ({clip.first_frame}-{clip.last_frame})"
                       f"{how}; quota left: {quota.remaining if quota and quota.remaining is not None else 'unknown'}")
            if not args.json:  # the dry run's answer goes to stdout, so `> file` keeps it; --json is one document
                print(summary)
            print(pv.to_json() if args.json else json.dumps(pv.payload.payload(), indent=2))
            return 0
        from tether.autopilot.submit import AlreadySent, handoff_request
        from tether.registry import JobRegistry

        registry = JobRegistry()
        data: Dict[str, Any] = {}
        try:
            with TransferBars(console) as bars:
                # checked and encoded here; uploaded, created and recorded by the agent
                if not args.wait and handed_off(
                        args, "autopilot", lambda: handoff_request(
                            client, args.clip, choice, output_path=args.output_path, metadata=_meta(args.meta),
                            registry=registry, out_dir=out, force=args.force, colour=colour, frames=args.frames,
                            encode_progress=lambda done, total: bars.bytes("encode", done, total)),
                        profile=client.profile, title=Path(args.clip).name, out=out, console=console):
                    return 0
                sub = submit(client, args.clip, choice, output_path=args.output_path, metadata=_meta(args.meta),
                             registry=registry, out_dir=out, force=args.force, colour=colour, frames=args.frames,
                             progress=lambda done, total: bars.bytes("upload", done, total),
                             encode_progress=lambda done, total: bars.bytes("encode", done, total))
        except AlreadySent as sent:
            # no paying twice: the earlier job answers this send (followed and fetched like a new one); a hand-off
            # the agent still holds answers it once it is a job
            console.print(f"[yellow]not sent[/]: {sent}")
            job_id = sent.job_id or (_handed_job(sent.handoff) if args.wait or out else None)
            data = {"job_id": job_id, "reused": True, **({"handoff": sent.handoff} if sent.handoff else {})}
            if job_id is None:  # not followed, or the hand-off failed or was cancelled
                if args.wait or out:
                    console.print(f"[red]hand-off {sent.handoff} did not become a job[/]: `tether agent queue` "
                                  "says why")
                if args.json:
                    print(json.dumps(data))
                return 1 if args.wait or out else 0
        else:
            clip = sub.clip
            job_id = sub.job.id
            asked = ", ".join(spec["type"] for spec in choice.specs("x"))
            console.print(f"[green]submitted[/] Autopilot job {job_id}: {clip.frame_count} frames "
                          f"({clip.first_frame}-{clip.last_frame}), asked for {asked}")
            data = {"job_id": job_id, "reused": False, "s3_key": sub.s3_key, "first_frame": clip.first_frame,
                    "frames": clip.frame_count}
        code = 0
        result = None
        if args.wait or out:
            from .follow import follow_and_fetch

            code = follow_and_fetch("autopilot", [job_id], profile=args.profile, console=console,
                                    client=client, registry=registry, fetch_hint=out is not None)
            if out is not None:
                job = client.get_job(job_id)
                if job.counts.get("completed"):  # a partial failure still brings back what completed
                    result = client.fetch_results(job_id, out)
                    registry.mark_fetched("autopilot", job_id, out)
                    _print_results(result, console)
        if args.json:
            if result is not None:
                data["results"] = _result_json(result)
            print(json.dumps(data))
        return code


def _handed_job(entry_id: Optional[int]) -> Optional[str]:
    """The job the agent makes of hand-off ``entry_id`` (followed until it is one); None when it failed or was
    cancelled instead."""
    from tether.agent import follow_handoff

    ended = follow_handoff(int(entry_id or 0))
    return ended.entry.job_id if ended is not None and ended.entry.state == "done" else None


def cmd_import(args: argparse.Namespace) -> int:
    from tether.nukeimport import import_to_nk
    from tether.registry import JobRegistry

    from .progress import status_console

    console = status_console()
    registry = JobRegistry()
    records = registry.find(args.job, service="autopilot")
    if not records:
        raise InputError(f"Autopilot job {args.job} is not in the job registry ({registry.path}): only jobs sent "
                         "from this machine know their plate's frames; send the clip with `tether autopilot submit`")
    record = records[0]
    nk = args.nk.resolve()
    dest = (args.out or nk.parent / f"{nk.stem}_results").resolve()
    with service_client(args) as client:
        results = client.fetch_results(args.job, dest)
    registry.mark_fetched("autopilot", args.job, dest)
    # the panel's own path: the plate and film back recorded at submit (from Nuke or here), a version of its own
    path, description = import_to_nk(record.extra, results, nk, job_id=args.job, standalone=not args.snippet)
    console.print(f"[green]wrote[/] {path} ({len(description.nodes)} nodes; results in {dest})")
    for note in description.notes:
        console.print(f"  [yellow]note[/] {note}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from tether.autopilot.client import to_job

    from .progress import status_console
    from .tables import print_table

    with service_client(args) as client:
        page = client.list_jobs(service=args.service, status=args.status, metadata=_meta(args.meta) or None,
                                page=args.page)
    jobs = [to_job(aj) for aj in page.items]
    if args.json:
        print(json.dumps([{**j.model_dump(mode="json"), "state_label": j.state_label} for j in jobs]))
        return 0
    print_table(("job", "title", "state", "done", "failed", "progress", "error"),
                [(j.id, j.title, j.state_label, f"{j.counts['completed']}/{j.counts['tasks']}",
                  str(j.counts["failed"]), f"{j.progress:.0f}%", j.error or "") for j in jobs])
    more = f" (more: --page {page.page + 1})" if page.has_more(len(page.items)) else ""
    status_console().print(f"page {page.page}, {len(jobs)} job(s){more}")
    return 0


def cmd_quota(args: argparse.Namespace) -> int:
    with service_client(args) as client:
        quota = client.quota()
    if args.json:
        print(json.dumps({**quota.model_dump(mode="json"), "limit": quota.limit, "remaining": quota.remaining}))
        return 0
    limit = f" of {quota.limit}" if quota.limit is not None else ""
    state = "ABOVE THE LIMIT" if quota.is_above_limit else "within the limit"
    print(f"{quota.frames_inferenced}{limit} frames used, tier {quota.subscription_tier or 'unknown'}: {state}")
    return 1 if quota.is_above_limit else 0


def cmd_results(args: argparse.Namespace) -> int:
    from tether.registry import JobRegistry

    from .progress import status_console

    out = output_folder(args)
    with service_client(args) as client:
        result = client.fetch_results(args.job, out, export_types=args.export or None)
    JobRegistry().mark_fetched("autopilot", args.job, out)
    if args.json:
        print(json.dumps(_result_json(result)))
    else:
        _print_results(result, status_console())
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with service_client(args) as client:
        gone = not client.cancel(args.job)
        if gone:
            # Cancelling twice is harmless, but a mistyped id must not look like success to a script.
            raise InputError(f"Autopilot has no job {args.job} (already deleted, or a wrong id: "
                             "`tether autopilot jobs` lists them)")
        from tether.registry import JobRegistry

        with JobRegistry() as registry:
            if registry.get("autopilot", args.job) is not None:  # the registry says what the service now says
                registry.update_from(client.get_job(args.job), getattr(client, "profile", ""))
    print(f"job {args.job} cancelled")
    return 0
