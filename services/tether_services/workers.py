"""The work queue every local job service runs its jobs on, with the handles the tests use: pause, resume, close."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional


class JobWorkers:
    """A pool of workers; :meth:`pause` holds new and waiting jobs in their first state until :meth:`resume`, so a
    test can see a job queued, cancel it or restart the client before it runs."""

    def __init__(self, workers: int, name: str) -> None:
        self.running = threading.Event()
        self.running.set()
        self.closing = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def submit(self, work: Callable[..., Any], *args: Any) -> None:
        self._pool.submit(work, *args)

    def stopped(self, cancel: Optional[threading.Event] = None) -> bool:
        return self.closing.is_set() or (cancel is not None and cancel.is_set())

    def wait_turn(self, cancel: Optional[threading.Event] = None) -> bool:
        """Wait while paused. False when the service is closing or ``cancel`` was set: the job must not run."""
        while not self.running.wait(0.05):
            if self.stopped(cancel):
                return False
        return not self.stopped(cancel)

    def close(self) -> None:
        self.closing.set()
        self.running.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class WorkerHandles:
    """The test handles of a local service whose jobs run on ``self.workers``: new and waiting jobs stay in their
    first state between :meth:`pause` and :meth:`resume`; :meth:`close` stops the workers."""

    workers: JobWorkers

    def pause(self) -> None:
        self.workers.pause()

    def resume(self) -> None:
        self.workers.resume()

    def close(self) -> None:
        self.workers.close()


__all__ = ["JobWorkers", "WorkerHandles"]
