"""`tether move submit|jobs|status|fetch|cancel|verify-webhook`: Move (Move.ai) motion capture from the command line.

``submit VIDEO`` uploads an MP4/MOV/AVI, makes a single-camera take and a job (``--output`` picks the output
types, ``--start``/``--end`` the clip window in seconds); ``--dry-run`` prints the take and job it would create,
``--wait`` follows it, ``--out DIR`` downloads its outputs (``MAIN_FBX.fbx``...). ``verify-webhook`` checks a
Svix delivery read from standard input and prints its JSON body; the secret comes from
``TETHER_MOVE_WEBHOOK_SECRET``, ``--secret-file`` or the keyring, never the command line (which ``ps`` shows), and a
delivery id is accepted once.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import islice
from pathlib import Path
from typing import Any

from tether.errors import InputError

from .service_cmd import ServiceCommand, handed_off, out_folder, output_folder, print_jobs, print_preview
from .service_cmd import client as service_client


def register(subparsers: Any) -> None:
    outputs = "MAIN_FBX, MAIN_BLEND, MAIN_USDC, ALL_FBX (zip), RENDER_VIDEO, MOTION_DATA"  # checked in move.submit
    sub = ServiceCommand(subparsers, "move")

    submit = sub.add(
        "submit", help="upload a video and start a motion-capture job",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  tether move submit actor.mp4 --dry-run                                # what it would send
  tether move submit actor.mp4 --wait --out mocap/                      # an FBX rig
  tether move submit actor.mp4 --output MAIN_FBX --output MAIN_BLEND --track-fingers""")
    submit.add_argument("video", type=Path, help="an .mp4, .mov or .avi file")
    submit.add_argument("--name", default="", help="take and job name (default: the file's name)")
    submit.add_argument("--output", action="append", metavar="TYPE", type=str.upper,
                        help=f"output type, repeatable: {outputs} (default MAIN_FBX)")
    submit.add_argument("--start", type=float, help="clip window start, seconds")
    submit.add_argument("--end", type=float, help="clip window end, seconds")
    submit.add_argument("--track-fingers", action="store_true", help="job option trackFingers")
    sub.submit_options(submit, "the video and options", "download the outputs here")
    submit.set_defaults(func=cmd_submit)

    jobs = sub.add("jobs", help="list Move jobs (newest first), following the cursor", func=cmd_jobs, json_option=True)
    jobs.add_argument("--take", help="only the jobs of this take id")
    jobs.add_argument("--first", type=int, default=20, help="page size (default 20)")
    jobs.add_argument("--limit", type=int, default=50, help="stop after this many jobs (default 50)")

    fetch = sub.add("fetch", help="download a finished job's outputs")
    fetch.add_argument("job", help="job id")
    fetch.add_argument("--out", type=Path, metavar="DIR",
                       help="folder for the outputs (default: the one recorded when it was submitted)")
    fetch.add_argument("--output", action="append", metavar="TYPE", type=str.upper,
                       help="only these output types (default: all the job has)")
    fetch.set_defaults(func=cmd_fetch)

    hook = sub.add("verify-webhook", help="verify a Svix-signed webhook body read from standard input")
    hook.add_argument("--secret-file", type=Path, metavar="FILE",
                      help="a file holding the endpoint's whsec_... secret (default: $TETHER_MOVE_WEBHOOK_SECRET, "
                           "else the keyring's move webhook_secret)")
    hook.add_argument("--secret", help=argparse.SUPPRESS)  # refused: argv is visible to every user in `ps`
    hook.add_argument("--id", dest="svix_id", required=True, help="the svix-id header")
    hook.add_argument("--timestamp", dest="svix_timestamp", required=True, help="the svix-timestamp header")
    hook.add_argument("--signature", dest="svix_signature", required=True, help="the svix-signature header")
    hook.set_defaults(func=cmd_verify_webhook)
    sub.finish()


def cmd_submit(args: argparse.Namespace) -> int:
    from tether.move.submit import MoveRequest, handoff_request, preview, submit
    from tether.registry import JobRegistry

    from .progress import TransferBars, status_console

    console = status_console()
    out = out_folder(args.out)
    req = MoveRequest(video=args.video, name=args.name, outputs=args.output or ["MAIN_FBX"], start=args.start,
                      end=args.end, options={"trackFingers": True} if args.track_fingers else {})
    if args.dry_run:
        print_preview(preview(None, req))
        return 0
    registry = JobRegistry()
    with service_client(args) as client:
        if not args.wait and handed_off(args, "move", lambda: handoff_request(req, out_dir=out),
                                        profile=client.profile, title=req.name or Path(req.video).stem, out=out,
                                        console=console):
            return 0
        with TransferBars(console) as bars:
            sub = submit(client, req, registry=registry, out_dir=out,
                               progress=lambda done, total: bars.bytes("upload", done, total))
        facts = sub.facts
        window = f" from {sub.window.start_time:g}-{sub.window.end_time:g} s" if sub.window else ""
        length = f", {sub.frames} frames at {facts.fps:g} fps{window}" if sub.frames and facts.fps else ""
        console.print(f"[green]submitted[/] Move job {sub.job.id} (take {sub.take_id}{length}): "
                      f"{sub.job.raw_state or 'no state yet'}")
        code = 0
        files: list = []
        if args.wait or out:
            from .follow import follow_and_fetch

            code = follow_and_fetch("move", [sub.job.id], profile=args.profile, console=console, client=client,
                                    registry=registry, out=out)
            if out is not None and code == 0:
                files = sorted(str(p) for p in out.iterdir() if p.is_file())
        if args.json:
            print(json.dumps({"job_id": sub.job.id, "take_id": sub.take_id, "file_id": sub.file_id,
                              "fps": facts.fps, "frames": sub.frames, "files": files,
                              "start": sub.window.start_time if sub.window else None,
                              "end": sub.window.end_time if sub.window else None}))
        return code


def cmd_jobs(args: argparse.Namespace) -> int:
    from tether.move.client import to_job

    if args.first < 1 or args.limit < 1:
        raise InputError("--first and --limit must be 1 or more")
    with service_client(args) as client:
        listed = client.iter_jobs(first=min(args.first, args.limit), take_id=args.take)
        jobs = [to_job(mj) for mj in islice(listed, args.limit)]
    print_jobs(jobs, args.json, ("job", "title", "state", "progress", "outputs"))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from tether.registry import JobRegistry

    out = output_folder(args)
    with service_client(args) as client:
        files = client.fetch_outputs(args.job, out, keys=args.output or None)
    JobRegistry().mark_fetched("move", args.job, out)
    for path in files:
        print(path)
    return 0


def cmd_verify_webhook(args: argparse.Namespace) -> int:
    from tether.errors import register_secret
    from tether.move.webhooks import DeliveryLog, WebhookVerificationError, verify
    from tether.settings import active_profile, data_dir, get_secret

    if args.secret is not None:
        raise InputError("--secret would show the secret to every user in `ps`: set TETHER_MOVE_WEBHOOK_SECRET, "
                         "give --secret-file FILE, or store it in the keyring as move webhook_secret")
    if args.secret_file is not None:
        try:
            secret = args.secret_file.read_text("utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read the webhook secret from {args.secret_file}: {exc.strerror}") from None
    else:
        stored = get_secret(active_profile(args.profile).name, "move", "webhook_secret")
        secret = stored.get_secret_value() if stored is not None else ""
    if not secret:
        raise InputError("no webhook secret: set TETHER_MOVE_WEBHOOK_SECRET, give --secret-file FILE, or store it "
                         "in the keyring as move webhook_secret")
    register_secret(secret)
    body = sys.stdin.buffer.read()
    headers = {"svix-id": args.svix_id, "svix-timestamp": args.svix_timestamp, "svix-signature": args.svix_signature}
    try:
        payload = verify(secret, headers, body, log=DeliveryLog(data_dir() / "webhook-deliveries.sqlite"))
    except WebhookVerificationError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(payload))
    return 0
