"""What every `tether SERVICE ...` command shares: its parser, described by :mod:`tether.spec`."""

from __future__ import annotations

import argparse
from typing import Any

from tether.spec import SPECS


def service_parser(subparsers: Any, service: str) -> Any:
    """``tether SERVICE``'s action subparsers; without an action the command prints its help (exit 2)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(service, help=SPECS[service].summary)
    actions = parser.add_subparsers(dest=f"{service}_command", metavar="ACTION")

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)
    return actions
