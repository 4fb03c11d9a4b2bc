"""``tether blender build-extension``: the Blender extension zips, built by ``tether_install.extension``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from tether_install.extension import PLATFORMS, PYTHONS

    blender = subparsers.add_parser("blender", help="Blender extension tools")
    sub = blender.add_subparsers(dest="blender_command", metavar="COMMAND")
    build = sub.add_parser(
        "build-extension",
        help="build the Blender extension zip (one per platform) with its wheels bundled",
        description="Build blender_addon/ into an installable extension zip per platform, wheels bundled for "
                    "Blender 4.2-5.0 (Python 3.11) and 5.1+ (Python 3.13), validated with Blender's blender_ext.py.",
    )
    build.add_argument("--platform", action="append", choices=sorted(PLATFORMS), dest="platforms",
                       help="platform to build for (repeat; default: all)")
    build.add_argument("--python", action="append", choices=PYTHONS, dest="pythons",
                       help="Blender's Python to bundle compiled wheels for (repeat; default: 3.11 and 3.13)")
    build.add_argument("--out", type=Path, default=Path("dist"), help="folder for the zips (default: dist)")
    build.add_argument("--wheelhouse", type=Path, default=None,
                       help="take wheels from this folder only (no index): for offline builds and tests")
    build.add_argument("--source", type=Path, default=None,
                       help="the add-on folder (default: the add-on that ships with Tether)")
    build.add_argument("--blender-ext", type=Path, default=None, help="path to blender_ext.py (default: found)")
    build.set_defaults(func=run_build)
    blender.set_defaults(func=lambda args: (blender.print_help(), 2)[1])


def run_build(args: argparse.Namespace) -> int:
    from tether_install.extension import PLATFORMS, PYTHONS, build_extension

    zips = build_extension(
        platforms=args.platforms or sorted(PLATFORMS), pythons=args.pythons or list(PYTHONS), out=args.out,
        wheelhouse=args.wheelhouse, source=args.source, blender_ext=args.blender_ext,
    )
    for path in zips:
        print(path)
    return 0
