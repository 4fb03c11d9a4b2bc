"""``tether frames SPEC``: show what a frame spec means (frames, chunks, scout frames) before submitting it."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, List, Optional, Sequence

_FRAMES_SHOWN = (10, 5)  # head and tail of a long frame list
_CHUNKS_SHOWN = (10, 5)  # head and tail of a long chunk table
_SCOUT_ROWS = 15  # scout chunks always shown, up to this many


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "frames",
        help="check a frame spec: its frames, chunks and scout frames",
        description=(
            "Show the frames a spec selects, how they split into chunks (tasks) and which chunks hold scout frames. "
            "Specs: 1-100, 1-100x2, 1,5,10-20, -10--1, and fml:N / auto:N relative to --base."
        ),
        epilog="Negative frames are specs, not options: tether frames -3-1, tether frames -10--1 --chunk-size 2.",
    )
    # argparse takes an argument that starts with '-' for an option unless it looks like one negative number;
    # a frame spec (-3-1, -10--1x2, -5,-1) is read as a value here too (this parser has no option like -1).
    parser._negative_number_matcher = re.compile(r"^-\d[\d,x:\-]*$")
    parser.add_argument("spec", metavar="SPEC", help="frame spec, e.g. 1-100x2 or 1,5,10-20 (or fml:3 with --base)")
    parser.add_argument("--chunk-size", type=int, default=1, metavar="N", help="frames per chunk (default 1)")
    parser.add_argument("--scout", metavar="SPEC", default=None, help="scout frames, e.g. fml:3, auto:5 or 1,50")
    parser.add_argument("--base", metavar="SPEC", default=None, help="range fml:N / auto:N in SPEC pick from")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tether import frames as F
    from tether.errors import InputError

    base = F.parse(args.base) if args.base else None
    if base is None and F.is_relative(args.spec):
        raise InputError(f'"{args.spec.strip()}" picks frames from a base range: add --base, e.g. --base 1-250')
    job = F.parse(args.spec, base=base)
    planned = F.plan(job, args.chunk_size, args.scout)

    if args.json:
        data = planned.to_dict()
        data["input"] = args.spec
        data["base"] = base.format() if base is not None else None
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif _is_tty():
        _print_rich(planned, args.spec)
    else:
        _print_plain(planned, args.spec)
    return 0


def _is_tty() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def abbreviate(frames: Sequence[int], ellipsis: str = "...") -> str:
    """``1, 2, 3`` for short lists; head, ellipsis and tail for long ones."""
    head, tail = _FRAMES_SHOWN
    if len(frames) <= head + tail + 1:
        return ", ".join(str(f) for f in frames)
    return ", ".join([*(str(f) for f in frames[:head]), ellipsis, *(str(f) for f in frames[-tail:])])


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _rows(planned: Any) -> List[Optional[int]]:
    """Chunk indices to show, with None where rows are skipped; scout chunks are always among them."""
    n = len(planned.chunks)
    head, tail = _CHUNKS_SHOWN
    if n <= head + tail + 1:
        return list(range(n))
    keep = set(range(head)) | set(range(n - tail, n))
    keep |= {c.index for c in planned.scout_chunks[:_SCOUT_ROWS]}
    rows: List[Optional[int]] = []
    previous = -1
    for index in sorted(keep):
        if index != previous + 1:
            rows.append(None)
        rows.append(index)
        previous = index
    return rows


def _summary(planned: Any, spec: str) -> List[str]:
    from tether.frames import format_frames

    count = len(planned.frames)
    canonical = planned.frames.format()
    given = "" if spec.strip() == canonical else f"  from {_clip(spec.strip())}"
    lines = [
        f"frames: {count} ({_clip(canonical)}){given}",
        f"chunks: {len(planned.chunks)} of up to {planned.chunk_size} frame{'s' if planned.chunk_size != 1 else ''}",
    ]
    if planned.scout_frames:
        lines.append(
            f"scout frames: {len(planned.scout_frames)} ({_clip(format_frames(planned.scout_frames))}) "
            f"from {_clip(planned.scout_spec)}"
        )
        if planned.scout_ignored:
            lines.append(f"  ignored, not in the job: {abbreviate(planned.scout_ignored)}")
        lines.append(
            f"  {len(planned.scout_chunks)} chunk(s) render first; {len(planned.held_chunks)} held until released"
        )
    else:
        lines.append("scout frames: none (every chunk renders)")
    return lines


def _print_plain(planned: Any, spec: str) -> None:
    summary = _summary(planned, spec)
    out = [summary[0], f"  {abbreviate(planned.frames.frames)}", summary[1]]
    width = max(len(c.spec) for c in planned.chunks)
    out.append(f"  {'#':>5}  {'frames':<{width}}  {'count':>5}  scout")
    for index in _rows(planned):
        if index is None:
            out.append(f"  {'...':>5}")
            continue
        chunk = planned.chunks[index]
        out.append(f"  {chunk.index:>5}  {chunk.spec:<{width}}  {chunk.count:>5}  {'yes' if chunk.scout else ''}")
    out.extend(summary[2:])
    print("\n".join(line.rstrip() for line in out))


def _print_rich(planned: Any, spec: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, highlight=False)
    summary = _summary(planned, spec)
    console.print(f"[bold]{summary[0]}[/bold]", markup=True)
    console.print(f"  {abbreviate(planned.frames.frames, ellipsis='…')}", markup=False)
    table = Table(title=summary[1], title_justify="left", show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("frames")
    table.add_column("count", justify="right")
    table.add_column("scout", justify="center")
    for index in _rows(planned):
        if index is None:
            table.add_row("…", "…", "", "")
            continue
        chunk = planned.chunks[index]
        table.add_row(str(chunk.index), chunk.spec, str(chunk.count), "[green]yes[/green]" if chunk.scout else "")
    console.print(table)
    for line in summary[2:]:
        console.print(line, markup=False)
