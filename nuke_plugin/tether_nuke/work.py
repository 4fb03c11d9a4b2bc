"""Work off Nuke's main thread whose outcomes reach listeners as ``(kind, payload)`` events; no Qt, no service.

:class:`BackgroundWork` is the base of the per-service :class:`~tether_nuke.service.ServiceController` and of the job
monitor's :class:`~tether_nuke.controller.JobController`. Listeners are called on whatever thread produced the event
(the panel and the dialogs forward them to Qt's thread with a signal); an ``"error"`` payload is a
:class:`~tether_nuke.failure.Failure`: artist words and the technical detail. Workers never touch nodes: an import's
description is applied on the main thread by :meth:`BackgroundWork._apply`, queued through ``run_on_main``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Tuple, TypeVar

from tether.errors import CancelledByUser

from .failure import failure

log = logging.getLogger("tether")
Event = Tuple[str, Any]
Listener = Callable[[str, Any], None]
T = TypeVar("T")


class BackgroundWork:
    """A small worker pool and its listeners."""

    _what = ""  # names the service in error text, e.g. "TensorPix "

    def __init__(self, workers: int, thread_name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)
        self._listeners: List[Listener] = []
        self._close_hooks: List[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` first thing in :meth:`close`, on the closing thread: a panel stops the timers that would
        ask this again before the pool is gone."""
        self._close_hooks.append(hook)

    def remove_close_hook(self, hook: Callable[[], None]) -> None:
        if hook in self._close_hooks:
            self._close_hooks.remove(hook)

    def _emit(self, kind: str, payload: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, payload)
            except Exception:  # a broken listener must not stop a worker
                log.exception("Tether: a listener failed on %s", kind)

    def _task(self, what: str, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` on the pool; a failure is also sent as an ``"error"`` event saying what was being done."""

        def run() -> T:
            try:
                return work()
            except CancelledByUser:  # asked for: whoever cancelled hears it from the Future, it is no failure
                raise
            except Exception as exc:
                self._emit("error", failure(what, exc))
                raise

        return self._pool.submit(run)

    def _apply(self, job_id: str, description: Any, done: Future[Dict[str, str]]) -> None:
        from .importer import apply_description  # main thread

        try:
            applied = apply_description(description)
        except Exception as exc:
            self._emit("error", failure(f"importing {self._what}job {job_id}", exc))
            done.set_exception(exc)
            return
        self._emit("imported", (job_id, applied))
        done.set_result(applied.names)

    def close(self) -> None:
        for hook in list(self._close_hooks):
            try:
                hook()
            except Exception:  # one broken hook must not keep the pool open
                log.exception("Tether: a close hook failed")
        self._stop.set()
        self._pool.shutdown(wait=False)


__all__ = ["BackgroundWork", "Event", "Listener"]
