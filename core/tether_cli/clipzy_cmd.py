"""`tether clipzy submit|jobs|status|fetch|cancel|health|upload`: the Clipzy ML Engine from the command line.

``submit CLIP --template TEMPLATE`` (also ``style``) uploads both (a template that is not a file here is taken as the
engine's video id) and starts the job; an image sequence (``plate.####.exr``, ``plate.1001-1100#.exr``, ``--frames``)
is encoded to a movie first, as the Nuke panel does (:func:`.service_cmd.clip_to_send`), its colour transform
recorded; ``--wait`` follows it showing the current stage; ``--out DIR`` also downloads
the styled MP4 and writes its ``style_json`` beside it (``fetch``, also ``result``, does that for a finished job);
``--dry-run`` prints the job body it would post. ``cancel`` says plainly that Clipzy has no cancel route.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional

from tether.errors import InputError
from tether.poll import SYSTEM_CLOCK, Backoff, Clock, Tick, poll_until, polls

from .service_cmd import ServiceCommand, clip_to_send, handed_off, out_folder, output_folder, print_preview
from .service_cmd import client as service_client


def register(subparsers: Any) -> None:
    sub = ServiceCommand(subparsers, "clipzy")

    sub.add("health", help="is the engine up?", func=cmd_health, json_option=True)

    upload = sub.add("upload", help="upload a video and print its id and metadata", func=cmd_upload, json_option=True)
    upload.add_argument("file", type=Path)
    upload.add_argument("--template", metavar="VIDEO_ID", help="template video id to keep with the upload")
    upload.add_argument("--webhook", metavar="URL", help="URL the engine POSTs to when a job ends")

    style = sub.add(
        "submit", aliases=["style"], help="style a clip like a template clip",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether clipzy submit shot.mp4 --template look.mp4 --dry-run
  tether clipzy submit shot.mp4 --template look.mp4 --wait --out styled/
  tether clipzy submit plate.%04d.exr --frames 1001-1050 --template look.mp4 --out styled/""")
    style.add_argument("clip", help="the clip to style (.mp4, .mov, ...), or an image sequence such as "
                                    "plate.####.exr (sent as an H.264 movie in a display colour space)")
    style.add_argument("--template", required=True, help="the template video file, or the video id of an upload")
    style.add_argument("--config", metavar="JSON", help="engine config object, e.g. '{\"strength\": 0.8}'")
    style.add_argument("--webhook", metavar="URL", help="URL the engine POSTs to when the job ends")
    sub.sequence_options(style)
    sub.submit_options(style, "the clip and options (a sequence is encoded to check it)", "download the result here")
    style.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    style.set_defaults(func=cmd_style)

    jobs = sub.add("jobs", help="list the engine's jobs", func=cmd_jobs, json_option=True)
    jobs.add_argument("--page", type=int, default=1)
    jobs.add_argument("--page-size", type=int, default=20)

    status = sub.add("status", help="a job's state, progress and current stage", func=cmd_status, json_option=True)
    status.add_argument("job")

    result = sub.add("fetch", aliases=["result"], help="download a finished job's video and style_json")
    result.add_argument("job")
    result.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for the video (default: the one recorded when it was submitted)")
    result.add_argument("--json", action="store_true")
    result.set_defaults(func=cmd_result)

    sub.clip_import()
    sub.finish()


def _job_json(cj: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = cj.model_dump(mode="json", exclude_none=True)
    return data


def cmd_health(args: argparse.Namespace) -> int:
    with service_client(args) as client:
        data = client.health()
    print(json.dumps(data) if args.json else f"clipzy at {client.base_url}: {data.get('status', data)}")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    with service_client(args) as client:
        video = client.upload(args.file, template_video_id=args.template, webhook_url=args.webhook)
    if args.json:
        print(json.dumps(video.model_dump(mode="json")))
    else:
        m = video.metadata
        print(f"{video.video_id}  {video.filename}  {video.file_size_bytes} bytes  {m.resolution or '?'}  "
              f"{m.fps or '?'} fps  {m.duration_seconds or '?'} s")
    return 0


def cmd_style(args: argparse.Namespace) -> int:
    from tether.clipzy.submit import ClipzyRequest, handoff_request, preview, submit
    from tether.registry import JobRegistry
    from tether.submission import DocumentPreview

    from .progress import status_console

    console = status_console()
    config: Optional[Dict[str, Any]] = None
    if args.config:
        try:
            config = json.loads(args.config)
        except ValueError as exc:
            raise InputError(f"--config is not JSON ({exc})") from None
        if not isinstance(config, dict):
            raise InputError("--config must be a JSON object")
    with clip_to_send(args, console) as clip:
        req = ClipzyRequest(clip=clip.path, template=args.template, config=config, webhook_url=args.webhook)
        if args.dry_run:
            doc = preview(None, req).document()
            print_preview(DocumentPreview({**doc, "uploads": [clip.source if u == str(clip.path) else u
                                                              for u in doc["uploads"]],
                                           "clip": clip.preview({"source": clip.source})}))
            return 0
        out = out_folder(args.out)
        registry = JobRegistry()
        with service_client(args) as client:
            if not args.wait and handed_off(args, "clipzy", lambda: handoff_request(
                    req, out_dir=out, source_label=Path(clip.source).name, extra=clip.extra, keep=clip.staged),
                    profile=client.profile, title=Path(clip.source).name, out=out, console=console):
                return 0
            sub = submit(client, req, registry=registry, out_dir=out, source_label=Path(clip.source).name,
                         extra=clip.extra)
            cj = sub.job
            console.print(f"[green]submitted[/] Clipzy job {cj.job_id} (template video {sub.template_video_id})")
            code = 0
            data: Dict[str, Any] = {"job_id": cj.job_id, "video_id": sub.video_id,
                                    "template_video_id": sub.template_video_id}
            if args.wait or out is not None:
                try:
                    job = follow(client, cj.job_id, console, registry, args.interval)
                except KeyboardInterrupt:
                    from .follow import print_resume_hint

                    print_resume_hint("clipzy", [cj.job_id], console, fetch=out is not None)
                    raise
                data["status"] = job.raw_state
                if job.state.value != "completed":
                    code = 1
                elif out is not None:
                    result = client.fetch_result(cj.job_id, out)
                    registry.mark_fetched("clipzy", cj.job_id, out)
                    console.print(f"[green]fetched[/] {result.video}" +
                                  (f" and {result.style_json.name}" if result.style_json else ""))
                    data["video"] = str(result.video)
                    data["style_json"] = str(result.style_json) if result.style_json else None
    if args.json:
        print(json.dumps(data))
    return code


def follow(client: Any, job_id: str, console: Any, registry: Any = None, interval: float = 1.0,
           clock: Clock = SYSTEM_CLOCK) -> Any:
    """Poll until the job ends, printing each new stage; return the last :class:`tether.jobs.Job`."""
    from tether.clipzy.client import stage_text

    def show(tick: Tick[Any]) -> None:
        if registry is not None:
            registry.update_from(tick.value, client.profile)
        if tick.changed:
            console.print(f"job {job_id}: {stage_text(tick.value)}")

    ticks = polls(lambda: client.get_job(job_id), key=stage_text, backoff=Backoff(interval, max(interval, 10.0)),
                  clock=clock)
    return poll_until(ticks, lambda job: bool(job.state.finished), show)


def cmd_jobs(args: argparse.Namespace) -> int:
    from tether.clipzy.client import stage_text, to_job

    with service_client(args) as client:
        page = client.list_jobs(args.page, args.page_size)
    if args.json:
        print(json.dumps({"items": [_job_json(j) for j in page.items], "page": page.page, "total": page.total}))
        return 0
    if not page.items:
        print("no jobs")
    for cj in page.items:
        print(f"{cj.job_id}  {stage_text(to_job(cj)):<40}  video {cj.video_id}  created {cj.created_at or '?'}")
    if page.has_more():
        print(f"(more: --page {page.page + 1})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from tether.clipzy.client import stage_text, to_job

    with service_client(args) as client:
        cj = client.get_clipzy_job(args.job)
    if args.json:
        print(json.dumps(_job_json(cj)))
    else:
        print(f"{cj.job_id}: {stage_text(to_job(cj))}")
    return 0


def cmd_result(args: argparse.Namespace) -> int:
    from tether.registry import JobRegistry

    out = output_folder(args)
    with service_client(args) as client:
        result = client.fetch_result(args.job, out)
    JobRegistry().mark_fetched("clipzy", args.job, out)
    if args.json:
        print(json.dumps({"video": str(result.video),
                          "style_json": str(result.style_json) if result.style_json else None}))
    else:
        print(result.video)
        if result.style_json:
            print(result.style_json)
    return 0
