"""Progress bars for hashing, uploading and downloading (rich), fed by the core's progress callbacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Dict, Optional

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def status_console() -> Console:
    """Where commands say what they do (stderr, so stdout stays for results). Lines are never broken at the
    console's width: a piped log or a CI job shows an id or a path whole, on one line."""
    return Console(stderr=True, soft_wrap=True)


class _Announce(logging.Handler):
    """What the library says while it works (``rate limited by Autopilot, waiting 20 s``) on the status console."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            status_console().print(record.getMessage(), markup=False, highlight=False)
        except Exception:  # logging's own rule: a handler never raises into the caller
            self.handleError(record)


@contextmanager
def announcing() -> Iterator[None]:
    """While a command runs, the library's warnings (``tether.*`` loggers) are printed to stderr as they happen."""
    handler = _Announce(logging.WARNING)
    logger = logging.getLogger("tether")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class TransferBars:
    """One bar per phase (hash, upload, download); ``update`` is a transfer progress callback."""

    LABELS = {"hash": "hashing", "encode": "encoding", "upload": "uploading", "download": "downloading"}

    def __init__(self, console: Optional[Console] = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<12}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=console or status_console(), transient=False,
        )
        self.tasks: Dict[str, TaskID] = {}
        self._started = False

    def __enter__(self) -> TransferBars:
        # Started by the first event: a submit refused before any transfer leaves no empty bar line behind.
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.progress.stop()

    def _task(self, phase: str, total: Optional[int]) -> TaskID:
        if not self._started:
            self.progress.start()
            self._started = True
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(self.LABELS.get(phase, phase), total=total or None)
        return self.tasks[phase]

    def update(self, event: Any) -> Optional[bool]:
        phase = str(getattr(event, "phase", "upload"))
        total = getattr(event, "bytes_total", None)
        done = getattr(event, "bytes_done", 0)
        self.progress.update(self._task(phase, total), completed=done, total=total or None)
        return None

    def bytes(self, phase: str, done: int, total: int) -> bool:
        """For callbacks of the ``(done, total) -> bool`` shape (downloads)."""
        self.progress.update(self._task(phase, total), completed=done, total=total or None)
        return True
