"""The add-on's moving parts, in plain Python (no ``bpy``): worker threads and the hand-off to the main thread.

Workers never touch ``bpy``. They post :class:`Event` objects into a :class:`Handoff`; a ``bpy.app.timers``
callback on the main thread calls :meth:`Runtime.pump`, which applies the events to :class:`UIState` (what the
panels draw) and returns the notable ones (finished jobs, failures) for the caller to report. Headless, timers never
fire, so tests and scripts call :meth:`Runtime.pump` themselves.

Nothing here imports tether's heavy modules at import time: the ``backend`` callables do, on the worker.
"""

from __future__ import annotations

import enum
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, TypeVar


class Abortable(Protocol):
    def abort(self) -> None: ...  # tether.http.BaseClient's: ends its requests in flight and its waits


C = TypeVar("C", bound=Abortable)


class Phase(str, enum.Enum):
    IDLE = "idle"
    CHECKING = "checking"  # preflight: scene facts, dependencies, the farm's lists
    UPLOADING = "uploading"
    CREATING = "creating"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def busy(self) -> bool:
        return self in (Phase.CHECKING, Phase.UPLOADING, Phase.CREATING)


@dataclass
class Event:
    kind: str  # submit | jobs | changes | catalog | summary | action | login | fetch
    data: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SubmitStatus:
    phase: Phase = Phase.IDLE
    done_bytes: int = 0
    total_bytes: int = 0
    files_done: int = 0
    files_total: int = 0
    message: str = ""
    job_id: str = ""
    warnings: List[str] = field(default_factory=list)

    @property
    def factor(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass
class JobRow:
    """One job as the panel shows it (a copy of a registry record, made on the worker)."""

    job_id: str
    title: str
    state: str  # the normalised state value (queued, running, held, completed, failed, cancelled, unknown)
    label: str  # what to show: the vendor's own word when we do not know it
    progress: float
    source: str = ""
    scene: str = ""
    output_dir: str = ""
    error: str = ""
    tasks: int = 0
    completed: int = 0
    running: int = 0
    failed: int = 0
    waiting: int = 0
    fetched_to: str = ""
    profile: str = ""
    came_home: bool = False  # the agent downloaded its outputs to ``fetched_to`` by itself
    handoff: int = 0  # not a job yet: the agent's queue entry (waiting, uploading, or failed)
    service: str = "farm"  # the panel that lists it: the farm's Jobs, or Move's

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


@dataclass
class Notice:
    level: str  # INFO | WARNING | ERROR
    text: str


@dataclass
class UIState:
    """Everything the panels draw. Written only on the main thread, by :meth:`Runtime.pump`."""

    submit: SubmitStatus = field(default_factory=SubmitStatus)
    jobs: List[JobRow] = field(default_factory=list)
    jobs_error: str = ""
    catalog: Dict[str, List[Tuple[str, str, str]]] = field(default_factory=dict)
    catalog_error: str = ""
    catalog_time: float = 0.0  # when the shown lists were fetched (seconds since the epoch); 0: none shown
    catalog_cached: bool = False  # the shown lists came from disk and no fresh ones arrived yet
    catalog_key: str = ""  # "<profile> <farm url>": whose lists are shown
    catalog_running: bool = False  # a fetch of fresh lists is under way
    summary: Optional[Dict[str, Any]] = None
    summary_key: Optional[Tuple[Any, ...]] = None
    summary_running: bool = False
    login: str = ""  # "" unknown, else a sentence for the preferences
    fetching: Dict[str, float] = field(default_factory=dict)  # job id -> 0..1
    notices: List[Notice] = field(default_factory=list)

    def lists_note(self, online: bool = True, now: Optional[float] = None) -> str:
        """How old the farm lists are, for a small label: "" when no lists are shown."""
        if not self.catalog or not self.catalog_time:
            return ""
        when = when_text(self.catalog_time, now)
        if self.catalog_error or not online:
            return f"Offline: farm lists from {when}"
        if self.catalog_cached and self.catalog_running:
            return f"Farm lists as of {when}, refreshing..."
        return f"Farm lists as of {when}"

    def not_listed(self, chosen: Dict[str, str]) -> List[Notice]:
        """A choice the shown lists do not offer (any more), said, never changed: ERROR for what the farm would
        refuse (instance type, Blender version), INFO for a project (the farm creates a missing one)."""
        out: List[Notice] = []
        when = when_text(self.catalog_time) if self.catalog_time else "now"
        for kind, value in chosen.items():
            listed = self.catalog.get(kind)
            if not value or listed is None or value in {item[0] for item in listed}:
                continue
            if kind == "project":
                if value != "default":
                    out.append(Notice("INFO", f"Project '{value}' is not in the farm's list (as of {when}): "
                                              "the farm creates it"))
                continue
            what = LIST_NAMES.get(kind, kind)
            out.append(Notice("ERROR", f"{what} '{value}' is not in the farm's list any more (as of {when}): "
                                       "choose another, or the farm will refuse the job"))
        return out

    def notice(self, level: str, text: str) -> Notice:
        item = Notice(level, text)
        self.notices.append(item)
        del self.notices[:-8]  # the panel shows the last few
        return item


LIST_NAMES = {"instance_type": "Instance type", "blender_version": "Blender version", "project": "Project"}


def when_text(stamp: float, now: Optional[float] = None) -> str:
    """A local time for a label: the clock time today, with the date on another day."""
    local = time.localtime(stamp)
    today = time.localtime(time.time() if now is None else now)
    if local[:3] == today[:3]:
        return time.strftime("%H:%M", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


class Handoff:
    """Worker -> main thread mailbox. ``post`` from any thread; ``drain`` on the main thread within a time budget."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def post(self, kind: str, **data: Any) -> None:
        self._queue.put(Event(kind, data))

    def drain(self, budget_s: float = 0.004, max_items: int = 500) -> List[Event]:
        """What arrived, stopping early when the budget is spent so a flood of events cannot stall the UI."""
        out: List[Event] = []
        deadline = time.perf_counter() + budget_s
        while len(out) < max_items:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
            if time.perf_counter() > deadline:
                break
        return out

    def empty(self) -> bool:
        return self._queue.empty()


class WorkerTask:
    """One piece of work on a daemon thread that posts its outcome as ``kind`` events to the hand-off.

    A subclass gives :meth:`work` (what the thread runs; it returns the final event's data) and the words and phases
    of the two ways it can end early: cancelled (``cancel()`` was asked for, or the work raised CancelledByUser)
    or failed (any other exception, said for a person by :func:`error_text`). The work hands the clients it makes
    to :meth:`uses`: ``cancel()`` aborts them, so a request in flight or a wait between retries ends at once
    instead of at the next chunk or poll.
    """

    kind = ""
    thread_name = "tether-worker"
    cancelled_phase: Any = "cancelled"
    failed_phase: Any = "failed"
    cancelled_message = "cancelled"

    def __init__(self, handoff: Handoff) -> None:
        self.handoff = handoff
        self.cancel_requested = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self._clients: List[Abortable] = []
        self._clients_lock = threading.Lock()

    def work(self) -> Dict[str, Any]:
        raise NotImplementedError

    def launch(self, **first: Any) -> None:
        """Post ``first`` (so the panel shows the task at once), then start the thread."""
        self.handoff.post(self.kind, **first)
        self.thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self.thread.start()

    def uses(self, client: C) -> C:
        """Abort ``client`` (a :class:`tether.http.BaseClient`) on :meth:`cancel`, at once if it was asked for
        already; returns it."""
        with self._clients_lock:
            self._clients.append(client)
        if self.cancel_requested.is_set():
            client.abort()
        return client

    def cancel(self) -> None:
        self.cancel_requested.set()
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:
            client.abort()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: Optional[float] = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _main(self) -> None:
        try:
            result = self.work()
        except BaseException as exc:
            if self.cancel_requested.is_set() or type(exc).__name__ == "CancelledByUser":
                self.handoff.post(self.kind, phase=self.cancelled_phase, message=self.cancelled_message)
            else:
                self.handoff.post(self.kind, phase=self.failed_phase, message=error_text(exc))
            return
        self.handoff.post(self.kind, **result)


class SubmitTask(WorkerTask):
    """One submission on a worker thread. ``run(progress)`` does the work; ``progress(event)`` returns False to stop.

    Transfer progress arrives many times a second; only a throttled copy is posted so the main thread stays idle.
    """

    kind = "submit"
    thread_name = "tether-submit"
    cancelled_phase = Phase.CANCELLED
    failed_phase = Phase.FAILED
    cancelled_message = "submission cancelled; nothing was created"

    def __init__(self, run: Callable[[Callable[[Any], bool]], Dict[str, Any]], handoff: Handoff,
                 post_every: float = 0.1) -> None:
        super().__init__(handoff)
        self._run = run
        self._post_every = post_every
        self._last_post = 0.0

    def start(self) -> None:
        self.launch(phase=Phase.CHECKING, message="checking the scene")

    def work(self) -> Dict[str, Any]:
        return dict(phase=Phase.DONE, **self._run(self.progress))

    def progress(self, event: Any) -> bool:
        """The transfer's callback. Returning False makes the transfer stop and raise CancelledByUser."""
        if self.cancel_requested.is_set():
            return False
        info = describe_transfer(event)
        now = time.monotonic()
        final = info.get("phase") == Phase.CREATING
        if final or now - self._last_post >= self._post_every:
            self._last_post = now
            self.handoff.post(self.kind, **info)
        return True


def describe_transfer(event: Any) -> Dict[str, Any]:
    """Normalise a tether.transfer progress event (or a plain ``(done, total)``) into SubmitStatus fields."""
    if isinstance(event, tuple) and len(event) == 2:
        return {"phase": Phase.UPLOADING, "done_bytes": int(event[0]), "total_bytes": int(event[1])}
    get = lambda *names: next((getattr(event, n) for n in names if getattr(event, n, None) is not None), None)  # noqa: E731
    done = get("bytes_done", "done_bytes", "done", "sent")
    total = get("bytes_total", "total_bytes", "total")
    files_done = get("files_done")
    files_total = get("files_total")
    stage = str(get("phase", "stage", "kind") or "upload")
    info: Dict[str, Any] = {"phase": Phase.UPLOADING}
    if done is not None:
        info["done_bytes"] = int(done)
    if total is not None:
        info["total_bytes"] = int(total)
    if files_done is not None:
        info["files_done"] = int(files_done)
    if files_total is not None:
        info["files_total"] = int(files_total)
    name = get("path", "name", "file")
    verb = "hashing" if "hash" in stage.lower() else "uploading"
    info["message"] = f"{verb} {Path(str(name)).name}" if name else verb
    return info


def error_text(exc: BaseException) -> str:
    """An error for a person: tether's own messages as they are (already redacted), others with their type."""
    try:
        from tether.errors import TetherError, redact
    except ImportError:  # tether not importable: the message is all we have
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TetherError):
        return str(exc)
    return redact(f"{type(exc).__name__}: {exc}")


def row_from_record(rec: Any) -> JobRow:
    """A registry JobRecord as a JobRow (on the worker: the record's fields are plain values)."""
    extra = dict(getattr(rec, "extra", {}) or {})
    raw = extra.get("counts")
    counts: Dict[str, Any] = raw if isinstance(raw, dict) else {}

    def count(name: str) -> int:
        try:
            return int(counts.get(name) or 0)
        except (TypeError, ValueError):
            return 0

    return JobRow(
        job_id=str(rec.job_id), title=rec.title or "", state=rec.state.value, label=rec.state_label,
        progress=float(rec.progress or 0.0), source=rec.source or "", scene=str(extra.get("scene") or ""),
        output_dir=rec.output_dir or "", error=rec.error or "", tasks=count("tasks"), completed=count("completed"),
        running=count("running"), failed=count("failed"), waiting=count("waiting"),
        fetched_to=str(extra.get("fetched_to") or ""), profile=rec.profile or "",
        came_home=bool(extra.get("agent_fetch") and getattr(rec, "fetched_at", None)), service=rec.service,
    )


def row_from_handoff(handoff: Any) -> JobRow:
    """A submission the agent holds (a ``tether.agent.HandOff``) as a JobRow: its scene, its state in a few words and
    its upload's progress; failed, with the agent's reason."""
    entry = handoff.entry
    source = entry.request.get("scene") or entry.request.get("source_label") or ""  # a farm's .blend, Move's video
    return JobRow(job_id="", title=entry.title, state="failed" if handoff.failed else "queued", label=handoff.words,
                  progress=handoff.progress, source=str(source),
                  scene=str(handoff.record.get("scene") or ""), error=entry.error or "", profile=entry.profile,
                  handoff=entry.id, service=entry.service)


HANDOFF_LOOK = 1.0  # how often the jobs are listed again while the agent holds a submission not yet a job
MIN_CYCLE = 0.25  # the shortest cycle: a watcher whose poll returns at once and asks for no wait does not spin


class Monitor:
    """Polls the registry's farm and Move jobs on a worker thread (``tether.watch.Watcher``) and posts rows and changes.

    ``make_watcher()`` and ``list_rows()`` come from the backend. ``kick()`` wakes the loop at once (after a submit
    or an action); otherwise it sleeps as long as the watcher says, so an idle Blender costs no requests. A watcher
    that subscribes to the Tether agent waits for the agent's next cycle in ``poll_once`` itself and asks for no
    sleep after it: a cycle is then as long as the agent's (at least :data:`MIN_CYCLE`).
    """

    def __init__(self, make_watcher: Callable[[], Any], list_rows: Callable[[], List[JobRow]], handoff: Handoff,
                 idle_delay: float = 30.0) -> None:
        self._make_watcher = make_watcher
        self._list_rows = list_rows
        self._handoff = handoff
        self._idle = idle_delay
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.watcher: Any = None

    def start(self) -> None:
        if self.alive():
            return
        self._stop.clear()
        self.thread = threading.Thread(target=self._main, name="tether-monitor", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def kick(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.thread is not None:
            self.thread.join(timeout)
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    def cycle(self) -> float:
        """One poll: changes, then the fresh rows. Returns how long to wait. Plain Python, so tests drive it."""
        started = time.monotonic()
        return max(self._cycle(), MIN_CYCLE - (time.monotonic() - started))

    def _cycle(self) -> float:
        try:
            if self.watcher is None:
                self.watcher = self._make_watcher()
            # a service that keeps failing (Move with no key, a farm down for the night) is warned about once, when
            # it starts, and shown in the jobs list while it lasts (the watcher's failing), not every cycle
            was_failing = set(self.watcher.failing)
            changes = [c for c in self.watcher.poll_once()
                       if c.error is None or (c.service, c.profile) not in was_failing]
            if changes:
                self._handoff.post("changes", changes=changes)
            rows = self._list_rows()
            self._handoff.post("jobs", rows=rows, error="; ".join(self.watcher.failing.values()))
            pending = not self.watcher.done
            delay = float(self.watcher.next_delay()) if pending else self._idle
            if any(row.handoff and not row.finished for row in rows):  # its upload's progress moves meanwhile
                delay = min(delay, HANDOFF_LOOK)
            return delay
        except Exception as exc:  # the monitor must outlive a bad profile or an unreachable farm
            self._handoff.post("jobs", rows=None, error=error_text(exc))
            self.watcher = None
            return self._idle

    def _main(self) -> None:
        while not self._stop.is_set():
            delay = self.cycle()
            self._wake.wait(delay)
            self._wake.clear()


def run_in_thread(name: str, work: Callable[[], Dict[str, Any]], handoff: Handoff, kind: str,
                  **tag: Any) -> threading.Thread:
    """Run ``work`` on a daemon thread; post ``kind`` with its result (or ``error``) and ``tag``."""

    def main() -> None:
        try:
            result = work()
        except Exception as exc:
            handoff.post(kind, error=error_text(exc), **tag)
            return
        handoff.post(kind, **{**tag, **result, "error": ""})

    thread = threading.Thread(target=main, name=f"tether-{name}", daemon=True)
    thread.start()
    return thread


class Runtime:
    """The add-on's live state between register() and unregister()."""

    def __init__(self) -> None:
        self.handoff = Handoff()
        self.ui = UIState()
        self.submit_task: Optional[SubmitTask] = None
        self.monitor: Optional[Monitor] = None
        self.threads: List[threading.Thread] = []
        self.auto_started = False  # the panel's first draw started the catalog fetch and the monitor
        self.lists_loaded = False  # the farm lists kept on disk were asked for (also with online access off)
        self.auto_fetch: Dict[str, str] = {}  # job id -> folder, fetched when the job completes
        self.on_fetch: Optional[Callable[[str, str], None]] = None  # (job id, folder): start a fetch
        self.on_open: Optional[Callable[[str], None]] = None  # open a folder in the file browser

    @property
    def busy(self) -> bool:
        return bool(
            (self.submit_task is not None and self.submit_task.alive())
            or any(t.is_alive() for t in self.threads)
            or (self.monitor is not None and self.monitor.alive())
            or not self.handoff.empty()
        )

    def track(self, thread: threading.Thread) -> None:
        self.threads = [t for t in self.threads if t.is_alive()]
        self.threads.append(thread)

    def pump(self, budget_s: float = 0.004) -> List[Notice]:
        """Apply what the workers posted to the UI state. Main thread only. Returns notices to report now."""
        notices: List[Notice] = []
        for event in self.handoff.drain(budget_s):
            notice = self.apply(event)
            if notice is not None:
                notices.append(notice)
        return notices

    def apply(self, event: Event) -> Optional[Notice]:
        ui = self.ui
        data = event.data
        if event.kind == "submit":
            status = ui.submit
            for name, value in data.items():
                if hasattr(status, name):
                    setattr(status, name, value)
            phase = data.get("phase")
            if phase == Phase.DONE:
                status.done_bytes = status.total_bytes
                if self.monitor is not None:
                    self.monitor.kick()
                if data.get("fetch_dir"):
                    self.auto_fetch[status.job_id] = str(data["fetch_dir"])
                return ui.notice("INFO", status.message or f"submitted job {status.job_id}")
            if phase == Phase.FAILED:
                return ui.notice("ERROR", f"submission failed: {status.message}")
            if phase == Phase.CANCELLED:
                return ui.notice("WARNING", status.message)
            return None
        if event.kind == "jobs":
            if data.get("rows") is not None:
                ui.jobs = list(data["rows"])
            ui.jobs_error = str(data.get("error") or "")
            return None
        if event.kind == "changes":
            last: Optional[Notice] = None
            for change in data.get("changes", []):
                kind = getattr(getattr(change, "kind", None), "value", "")
                if kind == "finished":
                    level = "WARNING" if change.failed else "INFO"
                    last = ui.notice(level, change.message)
                    job_id = str(change.job_id)
                    folder = self.auto_fetch.pop(job_id, None)
                    if folder and not change.failed and self.on_fetch is not None:
                        self.on_fetch(job_id, folder)
                elif kind in ("error", "missing"):
                    last = ui.notice("WARNING", change.message)
            return last
        if event.kind == "catalog":
            return self._apply_catalog(data)
        if event.kind == "summary":
            ui.summary_running = False
            if data.get("key") == ui.summary_key:
                ui.summary = dict(data.get("summary") or {"errors": [data.get("error") or "no summary"]})
                if data.get("error"):
                    ui.summary = {"errors": [str(data["error"])], "warnings": []}
            return None
        if event.kind == "fetch":
            job_id = str(data.get("job_id"))
            if "factor" in data and not data.get("done"):
                ui.fetching[job_id] = float(data["factor"])
                return None
            ui.fetching.pop(job_id, None)
            if self.monitor is not None:
                self.monitor.kick()
            if data.get("error"):
                return ui.notice("ERROR", f"fetching job {job_id} failed: {data['error']}")
            if data.get("open") and self.on_open is not None:
                self.on_open(str(data.get("folder")))
            return ui.notice("INFO", f"job {job_id}: {data.get('count', 0)} files in {data.get('folder')}")
        if event.kind == "action":
            if self.monitor is not None:
                self.monitor.kick()
            if data.get("error"):
                return ui.notice("ERROR", f"{data.get('action')} job {data.get('job_id')}: {data['error']}")
            return ui.notice("INFO", f"{data.get('action')} job {data.get('job_id')}: done")
        if event.kind == "login":
            ui.login = str(data.get("error") or data.get("state") or "")
            return ui.notice("ERROR", ui.login) if data.get("error") and data.get("report") else None
        return None

    def _apply_catalog(self, data: Dict[str, Any]) -> Optional[Notice]:
        """Lists from disk show at once; fresh ones replace them. A failed fetch keeps what is shown."""
        ui = self.ui
        cached = bool(data.get("cached"))
        if not cached:
            ui.catalog_running = False
        if data.get("error"):
            ui.catalog_error = str(data["error"])
            return None
        lists = data.get("lists")
        if lists is None:
            return None
        key = str(data.get("key") or "")
        if cached and ui.catalog and not ui.catalog_cached and ui.catalog_key == key:
            return None  # this farm's fresh lists are already shown
        ui.catalog = {str(k): [tuple(item) for item in v] for k, v in dict(lists).items()}
        ui.catalog_time = float(data.get("fetched_at") or 0.0)
        ui.catalog_cached = cached
        ui.catalog_key = key
        if not cached:
            ui.catalog_error = ""
        return None

    def shutdown(self) -> None:
        if self.submit_task is not None:
            self.submit_task.cancel()
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor = None
        if self.submit_task is not None:
            self.submit_task.join(2.0)
            self.submit_task = None


__all__ = ["LIST_NAMES", "Event", "Handoff", "JobRow", "Monitor", "Notice", "Phase", "Runtime", "SubmitStatus",
           "SubmitTask", "UIState", "WorkerTask", "describe_transfer", "error_text", "row_from_record", "run_in_thread",
           "when_text"]
