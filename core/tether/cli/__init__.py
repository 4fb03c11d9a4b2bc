"""The `tether` command. Each subcommand lives in its own module with a ``register(subparsers)`` function."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from .. import __version__

# module name -> registered lazily so a broken optional part never takes the whole command down
COMMAND_MODULES = (
    "config_cmd",   # tether config show / tether login
    "frames_cmd",   # tether frames
    "farm_cmd",     # tether farm submit|projects|instances|packages|billing
    "jobs_cmd",     # tether jobs [list|watch|cancel|fetch]
    "serve_cmd",    # tether serve
    "demo_cmd",     # tether demo
    "blender_cmd",  # tether blender build-extension
    "autopilot_cmd",  # tether autopilot submit|import|jobs|quota
    "tensorpix_cmd",  # tether tensorpix ...
    "clipzy_cmd",   # tether clipzy ...
    "move_cmd",     # tether move ...
    "install_cmd",  # tether install / tether doctor
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether",
        description="Send work from Nuke and Blender to cloud job services and bring the results back.",
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    parser.add_argument("--profile", help="settings profile to use (default: the configured one, else 'local')")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..errors import TetherError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TetherError as exc:
        print(f"tether: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
