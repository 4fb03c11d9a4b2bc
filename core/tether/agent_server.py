"""The Tether agent process: one per user, owning hand-off uploads, job watching and downloads (see :mod:`tether.agent`
for the channel and the clients' side).

Three threads besides the server's: the **worker** takes the queue (the registry's ``queue`` table) an entry at a
time and runs its service's ``run_handoff`` (upload, create, record); the **watcher** polls every service once per
cycle for all unfinished jobs (:class:`tether.watch.Watcher`: list pages, not one GET per job) and publishes the
view that `tether jobs watch` subscribes to; a finished job handed off with an output folder has its outputs
downloaded there (verified, atomic: the client's ``fetch_outputs``) and the user is told.

The server is the standard library's ``http.server`` on a Unix socket (or loopback with a token): the agent must run
where only the base wheels are installed, without the local services' uvicorn. Its log holds no secret: every line
passes through :func:`tether.errors.redact`, and no request body or header is logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Set, Tuple
from urllib.parse import parse_qs, urlparse

from .agent import (
    ENDPOINT_KEY,
    LOCK_NAME,
    PORT_NAME,
    QUEUE_WAITING,
    RECORD_KEY,
    SETTLED_KEPT,
    SOCKET_NAME,
    TOKEN_HEADER,
    UNIX_SOCKETS,
    bring_home,
    cancel_made,
    handoff_module,
    job_view,
    new_token,
    runtime_dir,
    service_client,
)
from .errors import AuthError, CancelledByUser, ConfigError, InputError, ServiceError, TetherError, redact
from .jobs import JobService, JobState
from .poll import Clock
from .registry import JobRegistry, QueueEntry, utcnow
from .transfer import Overtaken, Throttle, yielding
from .watch import ChangeKind, ClientFactory, JobChange, Watcher

log = logging.getLogger("tether.agent")

RETRIES = 5  # attempts of a hand-off that met a passing fault (no reply, 5xx, 429) before it is failed
RETRY_DELAY = 15.0
IDLE_LOOK = 1.0  # the queue is looked at this often even without a wake (a submitter killed before it woke us)
PRUNE_EVERY = 24 * 3600.0  # settled hand-offs older than SETTLED_KEPT are pruned at start and this often after


class AgentRunning(ConfigError):
    """Another agent of this user holds the lock."""


def _lock(folder: Path) -> Any:
    """Hold ``agent.lock`` for the life of the process: one agent per user, and a crashed one leaves no stale lock."""
    fh = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - held open until the process ends
    try:
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise AgentRunning("a Tether agent already runs for this user (`tether agent status`)") from None
    return fh


def one_line(exc: BaseException) -> str:
    """An unexpected error in one line for a reply or the log: its type and its message, redacted."""
    return redact(" ".join(f"{type(exc).__name__}: {exc}".split()))


def traceback_of(exc: BaseException) -> str:
    """Its traceback, redacted (the last line repeats the message), for a debug line; the log's formatter redacts
    too, but a handler someone else added (a DCC's) would not."""
    import traceback

    return redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    agent: Agent
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("request %s", self.requestline)

    def address_string(self) -> str:
        return "local"

    def _reply(self, status: int, body: Dict[str, Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _allowed(self) -> bool:
        token = self.agent.token
        if token is None:  # the Unix socket: its 0600 mode is the lock
            return True
        import hmac

        return hmac.compare_digest(self.headers.get(TOKEN_HEADER, ""), token)

    def _route(self, method: str) -> None:
        if self.agent.stopped:  # a kept-alive connection outlives the listening socket: it ends with the agent
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if not self._allowed():
            self._reply(403, {"error": "missing or wrong agent token"})
            return
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        handler = self.agent.routes.get((method, url.path))
        if handler is None:
            self._reply(404, {"error": f"no route {method} {url.path}"})
            return
        try:
            self._reply(200, handler(query))
        except TetherError as exc:  # refused, with the reason (a service that cannot cancel): no traceback
            self._reply(400, {"error": redact(str(exc))})
        except Exception as exc:  # one bad request never stops the agent
            said = one_line(exc)
            log.error("request %s failed: %s", url.path, said)
            log.debug("request %s failed:\n%s", url.path, traceback_of(exc))
            self._reply(500, {"error": said})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


class Agent:
    """The agent: ``serve()`` in the foreground (``tether agent``), or ``start()`` on threads (tests)."""

    def __init__(self, folder: Optional[Path] = None, registry: Optional[JobRegistry] = None,
                 clients: Optional[ClientFactory] = None, *, fast: float = 2.0, cap: float = 30.0,
                 notify: Optional[Callable[[str, str], None]] = None, bandwidth: Optional[float] = None) -> None:
        """``bandwidth``: a cap on upload bytes per second over every hand-off (None: as fast as the link)."""
        from .clients import client_for

        self.folder = folder or runtime_dir()
        self.registry = registry or JobRegistry()
        self.clients: ClientFactory = clients or client_for
        self.notify = notify or notify_user
        self.fast, self.cap = fast, cap
        self.throttle = Throttle(bandwidth) if bandwidth else None
        self.token: Optional[str] = None
        self.paused = False
        self.started = time.time()
        self.current: Dict[str, Any] = {}  # what the worker does now (entry, bytes)
        self.cycle = 0
        self.snapshot: Dict[str, Any] = {"cycle": 0, "jobs": [], "missing": [], "errors": {},
                                         "registry": str(self.registry.path)}
        self.fetched: List[str] = []
        self._stop = threading.Event()
        self._work = threading.Event()  # the queue may have something
        self._poll = threading.Event()  # poll now (a job was just made)
        self._cycled = threading.Condition()
        self._threads: List[threading.Thread] = []
        self._server: Any = None
        self._closer: Optional[threading.Thread] = None
        self._lock_file: Any = None
        self._fetching: Set[Tuple[str, str]] = set()
        self.fetching: Optional[Tuple[str, str]] = None  # the job whose results download now
        self._homed = threading.Condition()  # notified whenever a download of results ends
        self._cancelling: Set[int] = set()  # running hand-offs asked to stop; the worker drops them
        self._settled = threading.Condition()  # notified whenever the worker is done with an entry
        self.next_prune = 0.0  # time.time() of the queue's next pruning
        self.routes: Dict[Tuple[str, str], Callable[[Dict[str, str]], Dict[str, Any]]] = {
            ("GET", "/status"): lambda q: self.status(),
            ("GET", "/queue"): lambda q: self.queue(q.get("states", "")),
            ("GET", "/jobs"): lambda q: self.jobs(int(q.get("after", -1)), float(q.get("wait", 0))),
            ("GET", "/home"): lambda q: self.home(q.get("service", ""), q.get("job", ""), float(q.get("wait", 0))),
            ("POST", "/wake"): lambda q: self._wake(poll=q.get("poll") == "1"),
            ("POST", "/pause"): lambda q: self.pause(),
            ("POST", "/resume"): lambda q: self.resume(),
            ("POST", "/stop"): lambda q: self.stop(),
            ("POST", "/cancel"): lambda q: self.cancel(int(q.get("id", 0)), float(q.get("wait", 30))),
        }

    # --- life -----------------------------------------------------------------------------------------------------
    def _bind(self) -> None:
        self._lock_file = _lock(self.folder)
        handler = type("Handler", (_Handler,), {"agent": self})
        if UNIX_SOCKETS:
            path = self.folder / SOCKET_NAME
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a dead agent's socket (we hold the lock, so no live one owns it)
            old = os.umask(0o177)  # the socket is born 0600: no moment when another user could connect
            try:
                self._server = _UnixServer(str(path), handler)
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
        else:  # pragma: no cover - Windows
            self.token = new_token(self.folder)
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            (self.folder / PORT_NAME).write_text(str(self._server.server_address[1]))

    def start(self) -> Agent:
        """Bind the channel and run the server, worker and watcher on daemon threads until :meth:`stop`."""
        self._bind()
        resumed = self.registry.requeue_running()
        if resumed:
            log.info("resuming %d hand-off(s) a stopped agent left running", resumed)
        self.prune()
        for name, target in (("server", self._serve), ("worker", self._worker), ("watcher", self._watcher)):
            thread = threading.Thread(target=target, name=f"tether-agent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._closer = threading.Thread(target=self._close_when_stopped, name="tether-agent-closer", daemon=True)
        self._closer.start()
        log.info("agent %d listening in %s", os.getpid(), self.folder)
        return self

    def serve(self) -> None:
        """Run until stopped (``tether agent stop``, SIGTERM or Ctrl-C)."""
        self.start()
        closer = self._closer
        assert closer is not None
        try:
            while closer.is_alive():
                closer.join(0.5)
        finally:
            self.close()

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def _close_when_stopped(self) -> None:
        self._stop.wait()
        self._work.set()
        self._poll.set()
        for condition in (self._cycled, self._homed):
            with condition:
                condition.notify_all()
        self._server.shutdown()
        self._server.server_close()
        if UNIX_SOCKETS:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / SOCKET_NAME).unlink()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._lock_file is not None:
            self._lock_file.close()
        log.info("agent stopped")

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop and wait until everything has stopped."""
        self._stop.set()
        if self._closer is not None and self._closer is not threading.current_thread():
            self._closer.join(timeout=60)

    # --- routes -----------------------------------------------------------------------------------------------------
    def status(self) -> Dict[str, Any]:
        counts: Dict[str, int] = {}
        for entry in self.registry.queue():
            counts[entry.state] = counts.get(entry.state, 0) + 1
        return {"pid": os.getpid(), "paused": self.paused, "uptime": round(time.time() - self.started, 1),
                "bandwidth": self.throttle.rate if self.throttle is not None else None, "queue": counts,
                "current": dict(self.current), "cycle": self.cycle, "watching": len(self.snapshot["jobs"]),
                "fetched": list(self.fetched[-20:])}

    def queue(self, states: str = "") -> Dict[str, Any]:
        """The queue in the order it is taken (``states``: a comma-separated filter); the entry uploading now carries
        its ``phase``, ``bytes_done`` and ``bytes_total``, which only this process knows."""
        current = dict(self.current)
        entries = []
        for entry in self.registry.queue([s for s in states.split(",") if s] or None):
            row = entry.to_dict()
            if current.get("entry") == entry.id:
                row.update({k: current[k] for k in ("phase", "bytes_done", "bytes_total") if k in current})
            entries.append(row)
        return {"entries": entries}

    def _wake(self, poll: bool = False) -> Dict[str, Any]:
        """Look at the queue now; with ``poll``, also start a watch cycle now (a subscriber follows a job this
        agent has not polled yet: recorded by a DCC that submitted in-process)."""
        self._work.set()
        if poll:
            self._poll.set()
        return {"ok": True}

    def pause(self) -> Dict[str, Any]:
        """Stop taking hand-offs; an upload in flight stops at its next block and goes back to the queue."""
        self.paused = True
        log.info("paused")
        return self.status()

    def resume(self) -> Dict[str, Any]:
        self.paused = False
        self._work.set()
        log.info("resumed")
        return self.status()

    def stop(self) -> Dict[str, Any]:
        log.info("stop requested")
        self._stop.set()
        self._work.set()
        return {"ok": True, "pid": os.getpid()}

    def cancel(self, entry_id: int, wait: float = 30.0) -> Dict[str, Any]:
        """Cancel hand-off ``entry_id``: a waiting one is dropped at once, one uploading stops at its next block or
        confirmed step (held ``wait`` seconds for it); either way its kept folder goes and no job is made. One that
        is a job already has the job cancelled on its service, as any job. The entry as it ends, with
        ``cancelled_job`` when the service was asked."""
        entry = self.registry.queue_entry(entry_id)
        if entry is None:
            raise ConfigError(f"the agent's queue has no entry {entry_id}: `tether agent queue` lists them")
        made = cancel_made(entry, self.clients)
        if made is not None:
            log.info("hand-off %d: %s job %s cancelled on the service", entry_id, entry.service, entry.job_id)
            return made
        if entry.state == "cancelled":
            return entry.to_dict()
        with self._settled:
            self._cancelling.add(entry_id)
        dropped = self.registry.withdraw(entry_id)
        if dropped is not None:  # it was waiting: nothing was sent for it in this attempt
            self._dropped(dropped)
            return dropped.to_dict()
        deadline = time.monotonic() + min(max(wait, 0.0), 60.0)
        with self._settled:  # the worker has it: it stops between blocks or steps and drops it
            while entry_id in self._cancelling and time.monotonic() < deadline:
                now = self.registry.queue_entry(entry_id)
                if now is None or now.state != "running":
                    break
                self._settled.wait(deadline - time.monotonic())
            ended = self.registry.queue_entry(entry_id)
            missed = ended is not None and ended.state == "done" and entry_id in self._cancelling
            if missed:  # made into a job before the worker heard of the cancel: cancelled as a job
                self._cancelling.discard(entry_id)
        if missed:
            return self.cancel(entry_id)
        assert ended is not None
        return ended.to_dict()

    def _dropped(self, entry: QueueEntry) -> None:
        """A cancelled hand-off is over: its kept folder goes, and whoever waits on the cancel hears it."""
        from .handoff import release

        release(entry.request)
        with self._settled:
            self._cancelling.discard(entry.id)
            self._settled.notify_all()
        log.info("hand-off %d (%s '%s') cancelled", entry.id, entry.service, entry.title)

    def jobs(self, after: int, wait: float) -> Dict[str, Any]:
        """The watched jobs as of the latest cycle; with ``wait``, held until a cycle newer than ``after`` ran."""
        deadline = time.monotonic() + min(max(wait, 0.0), 60.0)
        with self._cycled:
            while self.cycle <= after and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cycled.wait(left)
            return dict(self.snapshot)

    def home(self, service: str, job_id: str, wait: float) -> Dict[str, Any]:
        """Whether ``service`` job ``job_id``'s results came home (its record's ``fetched_at``), held until they do or
        ``wait`` seconds passed: ``fetched``, ``fetching`` (its download runs now) and ``known`` (it is recorded)."""
        deadline = time.monotonic() + min(max(wait, 0.0), 60.0)
        with self._homed:
            while True:
                rec = self.registry.get(service, job_id)
                left = deadline - time.monotonic()
                if rec is None or rec.fetched_at is not None or left <= 0 or self._stop.is_set():
                    break
                self._homed.wait(left)
        return {"fetched": rec is not None and rec.fetched_at is not None, "known": rec is not None,
                "fetching": self.fetching == (service, job_id)}

    def prune(self) -> int:
        """Delete the queue's settled hand-offs (done, failed, cancelled) older than :data:`SETTLED_KEPT`, and what
        a failed one kept for a retry; waiting and uploading ones, and their kept files, stay. At start and once every
        :data:`PRUNE_EVERY` after; how many went."""
        from datetime import timedelta

        from .handoff import release

        self.next_prune = time.time() + PRUNE_EVERY
        try:
            gone = self.registry.prune_queue(utcnow() - timedelta(seconds=SETTLED_KEPT))
            live = {e.request.get("kept") for e in self.registry.queue(QUEUE_WAITING)}
        except Exception as exc:  # the registry busy or unreadable: the next day's try
            log.warning("pruning the queue: %s", redact(str(exc)))
            return 0
        for entry in gone:
            if entry.request.get("kept") not in live:
                release(entry.request)
        if gone:
            log.info("pruned %d settled hand-off(s) older than %g days", len(gone), SETTLED_KEPT / 86400)
        return len(gone)

    # --- the worker: hand-offs ----------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while not self._stop.is_set():
            self._work.clear()
            if time.time() >= self.next_prune:
                self.prune()
            entry = None if self.paused else self.registry.claim()
            if entry is None:
                self._work.wait(IDLE_LOOK)
                continue
            self._run(entry)

    def _progress(self, entry: QueueEntry) -> Callable[[Any], Optional[bool]]:
        def on(progress: Any) -> Optional[bool]:
            self.current = {"entry": entry.id, "service": entry.service, "title": entry.title,
                            "phase": progress.phase, "bytes_done": progress.bytes_done,
                            "bytes_total": progress.bytes_total}
            # False: the upload stops at its next block
            return not (self.paused or self._stop.is_set() or entry.id in self._cancelling)

        return on

    def _client(self, service: str, profile: str, endpoint: str = "") -> ContextManager[JobService]:
        """A client of its own for one hand-off or one fetch, closed after it (the factory makes a new one a call);
        ``endpoint``: the hand-off's own service URL (the profile's credentials still)."""
        return service_client(service, profile, endpoint, self.clients)

    def _checkpoint(self, entry: QueueEntry) -> Callable[[Dict[str, Any]], None]:
        """A confirmed step is kept; a cancel asked for meanwhile stops the hand-off there, before the next step
        (an upload held by the service has no block left to stop at: its create is the next step)."""

        def on(done: Dict[str, Any]) -> None:
            self.registry.checkpoint(entry.id, done)
            if entry.id in self._cancelling:
                raise CancelledByUser(f"hand-off {entry.id} was cancelled")

        return on

    def _run(self, entry: QueueEntry) -> None:
        log.info("hand-off %d (%s '%s'): attempt %d", entry.id, entry.service, entry.title, entry.attempts)
        self.current = {"entry": entry.id, "service": entry.service, "title": entry.title}
        endpoint = str(entry.request.get(ENDPOINT_KEY) or "")
        try:
            try:
                if entry.id in self._cancelling:  # cancelled as the worker claimed it
                    raise CancelledByUser(f"hand-off {entry.id} was cancelled")
                module = handoff_module(entry.service)
                with self._client(entry.service, entry.profile, endpoint) as client, \
                        yielding(self._outranked(entry)):
                    job_id = module.run_handoff(client, entry.request, registry=self.registry,
                                                resumed=entry.resumed, progress=self._progress(entry),
                                                throttle=self.throttle, checkpoint=self._checkpoint(entry))
            except Exception:
                if entry.id not in self._cancelling:
                    raise
                settled = self.registry.settle(entry.id, "cancelled")
                self._dropped(settled or entry)
                return
        except Overtaken:
            self.registry.give_way(entry.id)
            log.info("hand-off %d gives way between files to one of higher priority; it resumes after", entry.id)
        except CancelledByUser:
            self.registry.settle(entry.id, "queued")
            log.info("hand-off %d set back in the queue (paused or stopping)", entry.id)
        except (InputError, AuthError, ConfigError) as exc:
            self._fail(entry, str(exc))
        except ServiceError as exc:
            passing = exc.status is None or exc.status >= 500 or exc.status == 429
            if passing and entry.attempts < RETRIES:
                self.registry.settle(entry.id, "queued", error=str(exc))
                log.warning("hand-off %d: %s; trying again", entry.id, redact(str(exc)))
                self._stop.wait(RETRY_DELAY)
            else:
                self._fail(entry, str(exc))
        except Exception as exc:  # the agent outlives any one hand-off
            log.debug("hand-off %d failed:\n%s", entry.id, traceback_of(exc))
            self._fail(entry, one_line(exc) if not isinstance(exc, TetherError) else str(exc))
        else:
            # the submitter's title (a Nuke panel's "node (file)"), as a send in-process records it
            self.registry.record(service=entry.service, job_id=job_id, title=entry.title,
                                 output_dir=entry.output_dir,
                                 extra={**(entry.request.get(RECORD_KEY) or {}),
                                        **({ENDPOINT_KEY: endpoint} if endpoint else {}),
                                        "agent_fetch": bool(entry.fetch and entry.output_dir), "handoff": entry.id})
            self.registry.settle(entry.id, "done", job_id=job_id)
            log.info("hand-off %d: %s job %s created", entry.id, entry.service, job_id)
            if entry.id in self._cancelling:  # cancelled after its last step: the job goes, as any job's cancel
                self._cancel_made(entry, job_id)
            self._poll.set()
        finally:
            self.current = {}
            with self._settled:
                self._settled.notify_all()

    def _cancel_made(self, entry: QueueEntry, job_id: str) -> None:
        try:
            cancel_made(dataclasses.replace(entry, state="done", job_id=job_id), self.clients)
            log.info("hand-off %d: cancelled as it became %s job %s: the job is cancelled", entry.id, entry.service,
                     job_id)
        except Exception as exc:
            log.warning("hand-off %d: %s job %s was made as it was cancelled, and cancelling it failed: %s",
                        entry.id, entry.service, job_id, redact(str(exc)))
        finally:
            with self._settled:
                self._cancelling.discard(entry.id)

    def _outranked(self, entry: QueueEntry) -> Callable[[], bool]:
        """Asked before each file of ``entry``'s upload: a queued hand-off of higher priority overtakes it there.
        One indexed read of the registry (tens of microseconds), so it is asked every time: a hand-off from another
        process is seen at the next file without a wake."""
        return lambda: self.registry.outranked(entry.id)

    def _fail(self, entry: QueueEntry, message: str) -> None:
        self.registry.settle(entry.id, "failed", error=message)
        log.error("hand-off %d failed: %s", entry.id, redact(message))
        self.notify("Tether: submission failed", f"{entry.service} '{entry.title}': {message}")

    # --- the watcher: one poller per machine ----------------------------------------------------------------------
    def _watcher(self) -> None:
        watcher = Watcher(self.registry, self.clients, fast=self.fast, cap=self.cap, endpoints=True)

        def wait(seconds: float) -> None:  # a hand-off or a stop sets _poll: the next cycle starts at once
            self._poll.wait(seconds)
            self._poll.clear()

        try:
            self._poll.clear()
            for changes in watcher.follow(until_done=False, cancelled=self._stop.is_set, clock=Clock(sleep=wait)):
                self._publish(watcher, changes)
                for change in changes:
                    self._on_change(change)
                self._pending_fetches()
        finally:
            watcher.close()

    def _publish(self, watcher: Watcher, changes: List[JobChange]) -> None:
        followed = watcher.followed
        snapshot = {
            "cycle": self.cycle + 1,
            "jobs": [job_view(r).model_dump(mode="json") for r in followed if not r.missing],
            "missing": [[r.service, r.job_id] for r in followed if r.missing],
            "errors": {f"{c.service}|{c.profile}": c.message for c in changes if c.kind is ChangeKind.ERROR},
            "registry": str(self.registry.path),  # a subscriber with another registry polls for itself
        }
        with self._cycled:
            self.cycle += 1
            self.snapshot = snapshot
            self._cycled.notify_all()

    def _on_change(self, change: JobChange) -> None:
        if change.kind is ChangeKind.ERROR:
            log.warning("%s", redact(change.message))
            return
        log.info("%s", redact(change.message))
        after = change.after
        if (change.kind is ChangeKind.FINISHED and after is not None and after.extra.get("handoff")
                and after.state is not JobState.COMPLETED):
            self.notify("Tether: job did not complete", change.message)

    def _pending_fetches(self) -> None:
        """Completed hand-off jobs whose outputs are asked for here and not yet fetched."""
        for rec in self.registry.unfetched():  # all of them: an old one is not left behind by newer jobs
            if rec.extra.get("agent_fetch") and rec.key not in self._fetching:
                self._fetch(rec)

    def _fetch(self, rec: Any) -> None:
        self._fetching.add(rec.key)
        self.fetching = rec.key
        try:
            with self._client(rec.service, rec.profile, str(rec.extra.get(ENDPOINT_KEY) or "")) as client:
                files = bring_home(client, self.registry, rec)
        except Exception as exc:  # kept for the next cycle: the service may answer then
            self._fetching.discard(rec.key)
            log.warning("fetching %s job %s: %s", rec.service, rec.job_id, redact(str(exc)))
            return
        finally:
            self.fetching = None
            with self._homed:  # a DCC's import waiting for these results (home) reads them now
                self._homed.notify_all()
        self.fetched.append(f"{rec.service}:{rec.job_id}")
        log.info("%s job %s: %d file(s) downloaded to %s", rec.service, rec.job_id, len(files), rec.output_dir)
        self.notify("Tether: results are home", f"{rec.title or rec.job_id}: {len(files)} file(s) in {rec.output_dir}")


def notify_user(title: str, message: str) -> None:
    """An OS notification through desktop-notifier (``pip install 'tether[agent]'``) where a desktop can show it;
    the log line is written either way, and is all there is on a headless machine or without the library."""
    log.info("notice: %s: %s", title, redact(message))
    try:
        from desktop_notifier import DesktopNotifierSync
    except ImportError:
        return
    # Without a session bus (ssh, a render node) it logs its own traceback and shows nothing: our line stands.
    logging.getLogger("desktop_notifier").setLevel(logging.CRITICAL)
    with contextlib.suppress(Exception):
        DesktopNotifierSync(app_name="Tether").send(title=title, message=redact(message)[:250])


_HANDLERS: List[logging.Handler] = []  # what configure_logging added: a later call replaces them, never stacks


def configure_logging(path: Optional[Path], verbose: bool = False, stderr: bool = True) -> None:
    """Log lines to ``path`` (0600) and, with ``stderr``, the terminal; every line is redacted, so no secret reaches
    the log. A later call replaces the handlers an earlier one added (each line is written once)."""
    from .fileio import private_file

    class Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    formatter = Redacting("%(asctime)s %(levelname)s %(message)s")
    handlers: List[logging.Handler] = [logging.StreamHandler()] if stderr else []
    if path is not None:
        private_file(path)
        handlers.append(logging.FileHandler(path))
    root = logging.getLogger("tether")
    while _HANDLERS:
        earlier = _HANDLERS.pop()
        root.removeHandler(earlier)
        earlier.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
        _HANDLERS.append(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


__all__ = ["Agent", "AgentRunning", "configure_logging", "notify_user"]
