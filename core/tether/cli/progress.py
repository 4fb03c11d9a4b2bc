"""Progress bars for hashing, uploading and downloading (rich), fed by the core's progress callbacks."""

from __future__ import annotations

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


class TransferBars:
    """One bar per phase (hash, upload, download); ``update`` is a transfer progress callback."""

    LABELS = {"hash": "hashing", "upload": "uploading", "download": "downloading"}

    def __init__(self, console: Optional[Console] = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<12}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=console or Console(stderr=True), transient=False,
        )
        self.tasks: Dict[str, TaskID] = {}

    def __enter__(self) -> TransferBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: Any) -> Optional[bool]:
        phase = str(getattr(event, "phase", "upload"))
        total = getattr(event, "bytes_total", None)
        done = getattr(event, "bytes_done", 0)
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(self.LABELS.get(phase, phase), total=total or None)
        self.progress.update(self.tasks[phase], completed=done, total=total or None)
        return None

    def bytes(self, phase: str, done: int, total: int) -> bool:
        """For callbacks of the ``(done, total) -> bool`` shape (downloads)."""
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(self.LABELS.get(phase, phase), total=total or None)
        self.progress.update(self.tasks[phase], completed=done, total=total or None)
        return True
