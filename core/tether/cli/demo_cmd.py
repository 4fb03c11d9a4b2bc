"""`tether demo`: the whole round trip with no account: local services, a small scene, a render, the frames."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="render a small scene on the local farm and fetch the frames (no account needed)")
    demo.add_argument("--out", type=Path, default=Path("tether-demo"), help="where the frames go (./tether-demo)")
    demo.add_argument("--frames", default="1-12x1", help="frames to render (default 1-12)")
    demo.add_argument("--chunk-size", type=int, default=3, help="frames per task (default 3)")
    demo.add_argument("--workers", type=int, default=2, help="local render worker processes (default 2)")
    demo.add_argument("--port", type=int, default=0, help="port for the local services (default: any free one)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..farm.client import FarmClient
    from ..farm.submit import FarmOptions, FarmSubmitter
    from ..registry import JobRegistry
    from ..settings import get_secret
    from .follow import follow_and_fetch
    from .progress import TransferBars

    try:
        from tether_services.farm.scenes import build_demo_scene
        from tether_services.server import LocalServices
    except ImportError as exc:
        from ..errors import ConfigError

        raise ConfigError(f"the local services are not installed ({exc}); install with: pip install 'tether[demo]'") \
            from None

    console = Console(stderr=True)
    out = args.out.resolve()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tether-demo-"))
    console.print(f"[bold]1/4[/] starting the local services (render workers: {args.workers})")
    with LocalServices(port=args.port, state_dir=work / "services", workers=args.workers) as services:
        console.print(f"      {services.base_url}")
        console.print("[bold]2/4[/] building a small scene")
        scene = Path(build_demo_scene(work / "scene" / "tether_demo.blend", frames="1-24", size=128,
                                      samples=8)["blend"])
        console.print(f"      {scene}")
        password = get_secret("local", "farm", "password")
        client = FarmClient(services.url("farm"), email="artist@tether.local",
                            password=password.get_secret_value() if password else "tether-local", profile="local")
        registry = JobRegistry()
        submitter = FarmSubmitter(client, registry=registry)
        console.print(f"[bold]3/4[/] submitting frames {args.frames} in chunks of {args.chunk_size}")
        with TransferBars(console) as bars:
            result = submitter.submit(
                FarmOptions(scene=scene, frames=args.frames, chunk_size=args.chunk_size, project="tether-demo",
                            title="Tether demo", out_dir=out),
                progress=bars.update,
            )
        console.print(f"      job {result.job.id}: {len(result.preflight.frames)} frames, "
                      f"{len(result.preflight.chunks)} tasks")
        console.print("[bold]4/4[/] rendering, then fetching the frames")
        code = follow_and_fetch("farm", [result.job.id], profile="local", out=out, console=console, client=client,
                                registry=registry, interval=0.5, max_interval=2.0)
        client.close()
    if code == 0:
        frames = sorted(p for p in out.rglob("*") if p.is_file())
        console.print(f"[green]done[/] in {time.monotonic() - started:.0f} s: {len(frames)} frames in {out}")
        for frame in frames[:3]:
            console.print(f"      {frame}")
        if len(frames) > 3:
            console.print(f"      ... {frames[-1]}")
    return code
