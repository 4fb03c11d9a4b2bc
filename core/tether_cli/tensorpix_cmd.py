"""`tether tensorpix submit|jobs|status|fetch|cancel|models|balance`: TensorPix video enhancement from the command line.

``submit CLIP --model 1 [--model 2] [--resolution 1080] [--wait] [--out DIR]`` (also ``enhance``) uploads a movie,
waits until TensorPix has processed the upload, creates the job and records it; ``--out`` follows it and downloads the
result; ``--dry-run`` prints the job body it would post. An image sequence (``plate.####.exr``,
``plate.1001-1100#.exr``, ``--frames``) is encoded to a movie first, as the Nuke panel does
(:func:`.service_cmd.clip_to_send`), and its colour transform recorded, so ``import`` reads the result back on it.
A job's ``status`` is an integer TensorPix does not document: it is printed as itself, never translated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict

from .service_cmd import ServiceCommand, clip_to_send, handed_off, out_folder, print_preview
from .service_cmd import client as service_client


def register(subparsers: Any) -> None:
    sub = ServiceCommand(subparsers, "tensorpix")

    sub.add("models", help="list the ML models (ids for --model)", func=cmd_models, json_option=True)

    sub.add("balance", help="the account's balance in USD", func=cmd_balance, json_option=True)

    enhance = sub.add(
        "submit", aliases=["enhance"], help="upload a movie (or an image sequence, encoded) and enhance it",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether tensorpix models                                   # the model ids
  tether tensorpix submit shot.mov --model 1 --dry-run      # the job body it would post
  tether tensorpix submit shot.mov --model 1 --resolution 2160 --wait --out enhanced/
  tether tensorpix submit plate.1001-1100%04d.exr --model 1 --colorspace ACEScg --out enhanced/""")
    enhance.add_argument("clip", help="a movie file (.mp4, .mov, .mkv), or an image sequence such as plate.####.exr "
                                      "(sent as an H.264 movie in a display colour space)")
    enhance.add_argument("--model", type=int, action="append", default=[], metavar="ID", required=True,
                         help="ML model id from `tether tensorpix models` (repeatable)")
    enhance.add_argument("--resolution", type=int, help="output height in pixels (-1: the service's default)")
    enhance.add_argument("--container", choices=("mp4", "mov", "mkv"))
    enhance.add_argument("--codec", choices=("libx264", "libx265", "prores_ks", "libvpx-vp9", "mpeg4"))
    enhance.add_argument("--grain", type=int, help="film grain to add, 0-100")
    enhance.add_argument("--stabilization", type=int, help="stabilisation smoothing, 0-100")
    enhance.add_argument("--fps-factor", type=float, help="frame interpolation factor, 1-8")
    enhance.add_argument("--speed", type=float, help="playback speed (e.g. 0.5 for slow motion)")
    enhance.add_argument("--sharpen", type=int, help="sharpen strength, 0-100")
    enhance.add_argument("--start-frame", type=int, help="first frame to enhance (0-based)")
    enhance.add_argument("--end-frame", type=int, help="last frame to enhance (0-based, inclusive)")
    enhance.add_argument("--preview", action="store_true", help="enhance a short preview only")
    sub.sequence_options(enhance)
    sub.submit_options(enhance, "the movie and options (a sequence is encoded to check it)",
                       "download the enhanced video here")
    enhance.set_defaults(func=cmd_enhance)

    jobs = sub.add("jobs", help="list TensorPix jobs (every page)", func=cmd_jobs, json_option=True)
    jobs.add_argument("--limit", type=int, default=0, help="show at most this many (0: all)")
    sub.clip_import()
    sub.finish()


def _console() -> Any:
    from rich.console import Console

    return Console()


def cmd_models(args: argparse.Namespace) -> int:
    with service_client(args) as client:
        models = client.models()
    if args.json:
        print(json.dumps([m.model_dump(mode="json") for m in models], indent=2))
        return 0
    console = _console()
    for m in models:
        console.print(f"{m.id:>4}  {m.name}  (upscale x{m.upscale_factor or 1:g}, fps x{m.fps_boost_factor or 1:g}, "
                      f"max {m.max_resolution or '-'}p)")
    return 0


def cmd_balance(args: argparse.Namespace) -> int:
    with service_client(args) as client:
        balance = client.balance()
    if args.json:
        print(json.dumps({"balance_usd": balance.balance_usd}))
    else:
        _console().print(f"balance: {balance.balance_usd} USD")
    return 0


def _options(args: argparse.Namespace) -> Dict[str, Any]:
    opts: Dict[str, Any] = {
        "ml_models": args.model, "output_resolution": args.resolution, "container": args.container,
        "codec": args.codec, "grain": args.grain, "stabilization_smoothing": args.stabilization,
        "fps_interpolation_factor": args.fps_factor, "playback_speed": args.speed, "sharpen_strength": args.sharpen,
        "start_frame": args.start_frame, "end_frame": args.end_frame, "preview": args.preview or None,
    }
    return {k: v for k, v in opts.items() if v is not None}


def cmd_enhance(args: argparse.Namespace) -> int:
    from tether.agent import use_agent
    from tether.registry import JobRegistry
    from tether.submission import DocumentPreview
    from tether.tensorpix.submit import handoff_request, preview, submit

    from .progress import status_console

    console = status_console()  # progress and notes go to stderr: with --json, stdout holds the one JSON document
    options = _options(args)
    with clip_to_send(args, console) as clip:
        if args.dry_run:
            with service_client(args) as client:
                doc = preview(client, str(clip.path), options).document()
            print_preview(DocumentPreview({**doc, "upload": clip.preview(doc["upload"])}))
            return 0
        registry = JobRegistry()
        out = out_folder(args.out)
        # where the output starts in the sent clip: an import puts it on the plate frame it came from
        extra = {**clip.extra, "first_index": int(args.start_frame or 0)}
        client = service_client(args)
        with client:
            if not args.wait and use_agent(args.no_agent):
                preview(client, str(clip.path), options)  # every check (the model ids too) before the agent takes it
                if handed_off(args, "tensorpix", lambda: handoff_request(
                        str(clip.path), options, out_dir=out, source_label=clip.source, extra=extra,
                        keep=clip.staged), profile=client.profile, title=Path(clip.source).name, out=out,
                        console=console):
                    return 0
            done = submit(client, str(clip.path), options, registry=registry, out_dir=out, source_label=clip.source,
                          extra=extra)
    job_id = str(done.job.id)
    if args.json and not (args.wait or args.out):
        print(json.dumps({"job_id": job_id, "job": job_id, "video": done.video.id}))
        return 0
    console.print(f"[green]job {job_id}[/] created for {Path(clip.source).name} (video {done.video.id})")
    if not (args.wait or args.out):
        return 0
    from .follow import follow_and_fetch

    with service_client(args) as client:
        code = follow_and_fetch("tensorpix", [job_id], profile=args.profile, out=out, client=client,
                                registry=registry, interval=0.5, console=console)
        if args.json:
            job = client.get_job(job_id)
            fetched = sorted(str(p) for p in out.iterdir() if p.is_file()) if out is not None and code == 0 else []
            print(json.dumps({"job_id": job_id, "job": job_id, "video": done.video.id, "state": job.state.value,
                              "files": fetched}))
    return code


def cmd_jobs(args: argparse.Namespace) -> int:
    from tether.tensorpix.client import to_job

    rows = []
    with service_client(args) as client:
        for tj in client.iter_jobs():
            rows.append((tj, to_job(tj)))
            if args.limit and len(rows) >= args.limit:
                break
    if args.json:
        print(json.dumps([{"id": j.id, "state": j.state.value, "status": tj.status, "label": j.state_label,
                           "progress": j.progress, "output": tj.output_video.name if tj.output_video else None}
                          for tj, j in rows], indent=2))
        return 0
    console = _console()
    for tj, job in rows:
        models = ",".join(str(m.id) for m in tj.ml_models)
        console.print(f"{job.id:>8}  {job.state_label:<14} {job.progress:5.1f}%  models {models}  {job.title}"
                      + (f"  -> {tj.output_video.name}" if tj.output_video else ""))
    return 0
