"""The one door from worker threads to Nuke's nodes.

Nuke's nodes may only be touched on the main thread; ``nuke.executeInMainThread`` queues a call there, and calling
it *from* the main thread hangs Nuke, so :func:`run_on_main` checks which thread it is on first. Workers pass node
*names*, never Node objects: a node may be deleted or renamed while a job runs, and is looked up again on arrival.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import nuke


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_on_main(call: Callable[..., Any], *args: Any) -> None:
    """Run ``call(*args)`` on Nuke's main thread: now when already there, else queued (never waits for it)."""
    if on_main_thread():
        call(*args)
    else:
        nuke.executeInMainThread(call, args)
