"""`tether demo`: the whole round trip with no account: local services, a small scene, a render, the frames."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="render a small scene on the local farm and fetch the frames (no account needed)",
        description="The whole round trip with no account: start the local services on a free port, build a small "
                    "Blender scene, render it on the local farm and fetch the frames into --out; then send those "
                    "frames through the local Autopilot (a Nuke script of mattes, camera and depth), TensorPix, "
                    "Clipzy and Move, as `tether SERVICE submit` would (--farm-only stops after the render). "
                    "Nothing outside this machine is contacted; the services stop when it ends.")
    demo.add_argument("--out", type=Path, default=Path("tether-demo"), help="where the frames go (./tether-demo)")
    demo.add_argument("--frames", default="1-24", help="frames to render (default 1-24; e.g. 1-24x2 for every other)")
    demo.add_argument("--chunk-size", type=int, default=4, help="frames per task (default 4)")
    demo.add_argument("--workers", type=int, default=2, help="local render worker processes (default 2)")
    demo.add_argument("--port", type=int, default=0, help="port for the local services (default: any free one)")
    demo.add_argument("--farm-only", action="store_true",
                      help="only the render; skip the round trips through Autopilot, TensorPix, Clipzy and Move")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from tether.farm.client import FarmClient
    from tether.farm.submit import FarmOptions, submit
    from tether.registry import JobRegistry
    from tether.settings import get_secret

    from .follow import follow_and_fetch
    from .progress import TransferBars, status_console

    try:
        from tether_services.farm.scenes import build_demo_scene
        from tether_services.server import LocalServices
    except ImportError as exc:
        from tether.errors import ConfigError

        raise ConfigError(f"the local services are not installed ({exc}); install with: pip install 'tether[demo]'") \
            from None

    console = status_console()
    out = args.out.resolve()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tether-demo-"))
    steps = 4 if args.farm_only else 6
    console.print(f"[bold]1/{steps}[/] starting the local services (render workers: {args.workers})")
    with LocalServices(port=args.port, state_dir=work / "services", workers=args.workers) as services:
        console.print(f"      {services.base_url}")
        console.print(f"[bold]2/{steps}[/] building a small scene")
        scene = Path(build_demo_scene(work / "scene" / "tether_demo.blend", frames="1-24", size=128,
                                      samples=8)["blend"])
        console.print(f"      {scene}")
        password = get_secret("local", "farm", "password")
        client = FarmClient(services.url("farm"), email="artist@tether.local",
                            password=password.get_secret_value() if password else "tether-local", profile="local")
        registry = JobRegistry()
        console.print(f"[bold]3/{steps}[/] submitting frames {args.frames} in chunks of {args.chunk_size}")
        with TransferBars(console) as bars:
            result = submit(
                client, FarmOptions(scene=scene, frames=args.frames, chunk_size=args.chunk_size,
                                    project="tether-demo", title="Tether demo", out_dir=out),
                registry=registry, progress=bars.update,
            )
        console.print(f"      job {result.job.id}: {len(result.preflight.frames)} frames, "
                      f"{len(result.preflight.chunks)} tasks")
        console.print(f"[bold]4/{steps}[/] rendering, then fetching the frames")
        code = follow_and_fetch("farm", [result.job.id], profile="local", out=out, console=console, client=client,
                                registry=registry, interval=0.5, max_interval=2.0)
        client.close()
        nk = None
        if code == 0 and not args.farm_only:
            console.print(f"[bold]5/{steps}[/] sending the rendered frames to the local Autopilot "
                          "(roto, tracking, depth) and writing the import as a Nuke script")
            nk, code = _autopilot_round_trip(services.url("autopilot"), out, registry, console)
        if code == 0 and not args.farm_only:
            console.print(f"[bold]6/{steps}[/] the rendered clip through the local TensorPix (upscale), Clipzy "
                          "(style from a template) and Move (motion capture to an FBX rig)")
            code = _clip_round_trips(services.port, out, work, console)
    shutil.rmtree(work, ignore_errors=True)
    if code == 0:
        frames = sorted(out.glob("frame_*"))
        console.print(f"[green]done[/] in {time.monotonic() - started:.0f} s: {len(frames)} frames in {out}")
        for frame in frames[:3]:
            console.print(f"      {frame}")
        if len(frames) > 3:
            console.print(f"      ... {frames[-1]}")
        if nk is not None:
            console.print(f"      Nuke script with mattes, camera and depth: {nk}")
        for label, folder in (("enhanced clip (TensorPix)", "tensorpix"), ("styled clip (Clipzy)", "clipzy"),
                              ("FBX rig (Move)", "move")):
            made = sorted(p for p in (out / folder).glob("*") if p.suffix in (".mp4", ".mov", ".fbx"))
            if made:
                console.print(f"      {label}: {made[0]}")
    return code


def _clip_round_trips(port: int, out: Path, work: Path, console: Any) -> int:
    """The same commands a pipeline runs (`tether tensorpix|clipzy|move ...`), on a clip made from the render."""
    import os

    from . import main

    movie = _frames_to_movie(sorted(out.glob("frame_*.png")), out / "tether_demo.mp4")
    template = _template_movie(work / "template.mp4")
    runs = [
        ("tensorpix", ["tensorpix", "submit", str(movie), "--model", "1", "--wait", "--out", str(out / "tensorpix")]),
        ("clipzy", ["clipzy", "submit", str(movie), "--template", str(template), "--wait", "--out",
                    str(out / "clipzy")]),
        ("move", ["move", "submit", str(movie), "--wait", "--out", str(out / "move")]),
    ]
    before = os.environ.get("TETHER_LOCAL_PORT")
    os.environ["TETHER_LOCAL_PORT"] = str(port)  # the `local` profile points at this run's services
    try:
        for name, argv in runs:
            if main(argv) != 0:
                console.print(f"[red]{name} round trip failed[/]")
                return 1
    finally:
        if before is None:
            os.environ.pop("TETHER_LOCAL_PORT", None)
        else:
            os.environ["TETHER_LOCAL_PORT"] = before
    return 0


def _frames_to_movie(frames: List[Path], movie: Path, fps: int = 24) -> Path:
    import av
    import numpy as np
    from PIL import Image

    first = np.asarray(Image.open(frames[0]).convert("RGB"))
    with av.open(str(movie), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = first.shape[0] - first.shape[0] % 2, first.shape[1] - first.shape[1] % 2
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            pixels = np.asarray(Image.open(frame).convert("RGB"))[: stream.height, : stream.width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return movie


def _template_movie(movie: Path) -> Path:
    """A warm, orange-graded clip whose look Clipzy transfers onto the render."""
    import av
    import numpy as np

    with av.open(str(movie), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        ramp = np.linspace(0, 1, 64)[None, :, None]
        for i in range(8):
            pixels = (np.array([230, 120 + 8 * i, 40]) * (0.4 + 0.6 * ramp)).repeat(64, axis=0).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return movie


def _autopilot_round_trip(url: str, out: Path, registry: Any, console: Any) -> Tuple[Optional[Path], int]:
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
    from tether.autopilot.submit import ServiceChoice, submit
    from tether.nukeimport import import_to_nk

    from .follow import follow_and_fetch

    frames = sorted(out.glob("frame_*.png"))
    if len(frames) < 2 or len(frames) != int(frames[-1].stem.split("_")[-1]) - int(frames[0].stem.split("_")[-1]) + 1:
        console.print("      skipped: Autopilot needs a clip without gaps (render with step 1)")
        return None, 0
    pattern = str(out / "frame_####.png")
    with AutopilotClient(url, api_key=LOCAL_API_KEY, profile="local") as client:
        sub = submit(client, pattern, ServiceChoice(roto=True, tracking=True, depth=True), registry=registry,
                          out_dir=out / "autopilot")
        console.print(f"      job {sub.job.id}: {sub.clip.frame_count} frames")
        code = follow_and_fetch("autopilot", [sub.job.id], profile="local", console=console, client=client,
                                registry=registry, interval=0.5, max_interval=2.0)
        if code != 0:
            return None, code
        results = client.fetch_results(sub.job.id, out / "autopilot")
    record = registry.find(sub.job.id, service="autopilot")[0]
    nk, description = import_to_nk(record.extra, results, out / "autopilot" / "tether_demo.nk", job_id=sub.job.id,
                                   standalone=True)
    console.print(f"      {len(frames)} frames in, {len(description.nodes)} Nuke nodes out")
    return nk, 0
