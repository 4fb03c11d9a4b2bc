"""The one way a test waits for something another thread or process does: on a condition, never a fixed sleep.

The timeout only guards a hang; it is generous so that a loaded machine is slower, not failing. Importable from
tests/, tests/nuke and tests/blender (tests/ is on sys.path under pytest) and by the Python 3.9 PySide2 driver.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar, Union

T = TypeVar("T")

PATIENCE = 60.0  # how long a test waits on an event, a thread or a condition before calling it a hang
PATIENCE_MS = int(PATIENCE * 1000)  # the same for pytest-qt's waitUntil/waitSignal, which count milliseconds


def eventually(probe: Callable[[], T], until: Optional[Callable[[T], object]] = None, *, timeout: float = PATIENCE,
               message: Union[str, Callable[[], str]] = "the condition", pump: Optional[Callable[[], object]] = None,
               interval: float = 0.02) -> T:
    """Call ``probe()`` until its value is truthy (or, with ``until``, until ``until(value)`` is), and return that
    value. ``pump`` runs before each try (an event loop or timer queue the waited-for work is delivered through).
    After ``timeout`` seconds: AssertionError naming ``message`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        if pump is not None:
            pump()
        value = probe()
        if (until(value) if until is not None else value):
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}; last seen: {value!r}")
        time.sleep(interval)
