from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Placeholder until this command lands."""
    del subparsers
    _ = argparse
