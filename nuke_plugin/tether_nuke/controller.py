"""The job monitor's controller: every Nuke service's jobs in one list, followed until they finish; no Qt, so it is
tested as plain Python.

- One :class:`~tether_nuke.service.ServiceController` per service (Autopilot, TensorPix, Clipzy: :data:`ADAPTERS`),
  made on first use and shared by everything in the session that sends to that service (the panel's Send, the
  dialogs), so there is one client per service and profile. Sending, importing and cancelling go through them.
- A job watcher per service with unfinished jobs follows them on a thread of its own until they finish (nothing
  follows while nothing is unfinished): through the running Tether agent's cycles while one runs (it polls each
  service once per cycle for every job of the machine), else by polling the service
  (:func:`tether.agent.watcher_for`). One follower per job: a job a service controller follows
  itself (sent with ``follow``) is skipped here and shown from that controller's ``"job"`` events.
- Every job is recorded in the shared registry (``tether.registry``) with the plate's facts and the frames sent,
  so closing Nuke loses nothing: a new session lists the jobs and imports finished ones exactly as they were sent.
- A send the Tether agent took (:mod:`tether.agent`) is listed from the agent's queue until it is a job: waiting,
  uploading (with its bytes) or failed; read while the agent holds any of the Nuke services' hand-offs, this
  session's or an earlier one's, and once one becomes a job it is followed as any other.
- Listeners get ``(kind, payload)`` events on whatever thread produced them: ``"jobs"`` (the list changed),
  ``"handoffs"`` (:meth:`JobController.handoffs` changed), ``"handed off"`` (``(service, queue entry)``),
  ``"handoff cancelled"`` (the queue entry as :func:`tether.agent.cancel` ended it),
  ``"submitted"`` (``(service, job id)``), ``"encoding"``/``"uploading"`` (``(service, node, done, total)``),
  ``"awaiting home"`` (``(service, job id, waiting)``: an import waits for the agent to bring the results home),
  ``"imported"``, ``"error"``, ``"quota"``, ``"changes"``, ``"stale"`` (``(service, text)`` while a service does not
  answer; text ``""`` once it does again). The panel forwards them to Qt's thread with a signal.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from tether.agent import watcher_for
from tether.errors import ConfigError, InputError
from tether.nukeimport import PlateFacts
from tether.poll import Backoff, Clock, polls
from tether.registry import JobRecord, JobRegistry
from tether.watch import ChangeKind, JobChange, Watcher

from .autopilot import AutopilotAdapter
from .clipservices import ClipzyNukeAdapter, TensorPixAdapter
from .failure import failure
from .service import AGENT_WAIT, HANDOFF_POLL, INCLUDE_ALL, ServiceAdapter, ServiceController
from .work import BackgroundWork

ADAPTERS: Dict[str, Callable[[], ServiceAdapter]] = {
    "autopilot": AutopilotAdapter, "tensorpix": TensorPixAdapter, "clipzy": ClipzyNukeAdapter}


class JobController(BackgroundWork):
    def __init__(
        self,
        registry: Optional[JobRegistry] = None,
        profile: Optional[str] = None,
        controllers: Optional[Dict[str, ServiceController]] = None,
        poll_fast: float = 2.0,
        poll_cap: float = 30.0,
        download_root: Optional[Path] = None,
    ) -> None:
        """``controllers`` (service -> controller) replace the ones made on first use from :data:`ADAPTERS` with
        this registry, profile and ``download_root/<service>``; they are closed with this controller."""
        self.registry = registry or JobRegistry()
        self.profile = profile
        self.download_root = download_root
        super().__init__(1, "tether-nuke")
        self._watch_threads: Dict[str, threading.Thread] = {}
        self._poll = (poll_fast, poll_cap)
        self._services: Dict[str, ServiceController] = {}
        self._silent_since: Dict[str, float] = {}  # service -> when its watcher's asks started failing
        self._handoffs: List[Any] = []  # tether.agent.HandOff of the Nuke services, as last read
        self._handoff_thread: Optional[threading.Thread] = None
        for controller in (controllers or {}).values():
            self._adopt(controller)

    def _adopt(self, controller: ServiceController) -> ServiceController:
        self._services[controller.service] = controller
        controller.add_listener(functools.partial(self._from_service, controller.service))
        return controller

    # --- the services ---------------------------------------------------------------------------------------------
    def services(self) -> Tuple[str, ...]:
        """Every Nuke service: :data:`ADAPTERS`, then any other given to the constructor."""
        return (*ADAPTERS, *(name for name in self._services if name not in ADAPTERS))

    def service(self, name: str) -> ServiceController:
        """The service's controller (made on first use; no network until it is asked for something)."""
        with self._lock:
            controller = self._services.get(name)
            if controller is not None:
                return controller
            if name not in ADAPTERS:
                raise InputError(f"'{name}' jobs cannot be handled in Nuke (known: {', '.join(self.services())})")
            fast, cap = self._poll
            root = self.download_root / name if self.download_root is not None else None
            return self._adopt(ServiceController(ADAPTERS[name](), self.registry, profile=self.profile,
                                                 download_root=root, poll=fast, poll_cap=cap))

    def label(self, service: str) -> str:
        try:
            return self.service(service).adapter.label
        except InputError:
            return service

    def _from_service(self, service: str, kind: str, payload: Any) -> None:
        """An event of one of this controller's service controllers (any thread)."""
        if kind in ("imported", "error", "quota"):
            self._emit(kind, payload)
        elif kind in ("encoding", "uploading", "awaiting home"):  # (service, node, done, total), (service, job, on)
            self._emit(kind, (service, *payload))
        if kind in ("imported", "job"):  # fetched now, or its state or progress moved
            self._emit("jobs", self.jobs())
        elif kind == "submitted":
            self._emit("submitted", (service, payload))
            self._emit("jobs", self.jobs())
            self.watch()
        elif kind == "handed off":
            self._emit("handed off", (service, payload.entry))
            self.watch_handoffs()
        elif kind in ("released", "cancelled"):  # its follower stopped before the end, or it was cancelled
            self.watch()

    # --- reading ----------------------------------------------------------------------------------------------------
    def jobs(self) -> List[JobRecord]:
        """Every job of the Nuke services, newest first."""
        services = set(self.services())
        return [record for record in self.registry.list() if record.service in services]

    def handoffs(self) -> List[Any]:
        """The Nuke services' sends the agent holds, not yet jobs (:class:`tether.agent.HandOff`: waiting,
        uploading, or failed lately), as last read from its queue."""
        with self._lock:
            return list(self._handoffs)

    def record(self, service: str, job_id: str) -> Optional[JobRecord]:
        return self.registry.get(service, job_id)

    def cancel_note(self, service: str) -> Optional[str]:
        """Why ``service``'s jobs cannot be cancelled from Nuke (shown instead of pretending), or None."""
        return self.service(service).cancel_note()

    def follows(self, key: Tuple[str, str]) -> bool:
        """A service controller polls this ``(service, job id)`` itself."""
        with self._lock:
            controller = self._services.get(key[0])
        return controller is not None and controller.follows(key[1])

    # --- actions (each returns a Future; errors are also sent as "error" events) --------------------------------------
    def submit(self, service: str, plate: PlateFacts, options: Any, script: str = "",
               follow: bool = False, force: bool = False, home: bool = True) -> Future[Any]:
        """Send ``plate`` to ``service``; the monitor follows the job unless ``follow`` leaves it to the service's
        controller (which then imports it when it completes). ``force`` sends a clip already sent with these
        options (else the Future fails with ``AlreadySent`` naming the earlier job). ``home``: the agent brings the
        results home beside the saved script."""
        return self.service(service).submit(plate, options, script=script, follow=follow, force=force, home=home)

    def import_job(self, service: str, job_id: str, plate: Optional[PlateFacts] = None,
                   include: Tuple[str, ...] = INCLUDE_ALL, onto: bool = False) -> Future[Dict[str, str]]:
        """Import a finished job beside its Read; ``plate`` with ``onto`` imports it onto that Read instead (an
        earlier job's results for the same frames)."""
        return self.service(service).import_job(job_id, plate, include, onto=onto)

    def cancel(self, service: str, job_id: str) -> Future[bool]:
        return self.service(service).cancel(job_id)

    def cancel_handoff(self, entry: int) -> Future[Dict[str, Any]]:
        """Cancel a send the agent holds (:func:`tether.agent.cancel`): it stops uploading, its kept movie goes and
        no job is made; one the agent made into a job meanwhile is cancelled on its service. The entry as it ended;
        its row leaves the list (``"handoffs"``)."""

        def work() -> Dict[str, Any]:
            from tether import agent

            ended = agent.cancel(entry)
            with self._lock:
                self._handoffs = [h for h in self._handoffs if h.entry.id != entry]
            self._emit("handoffs", self.handoffs())
            self._emit("handoff cancelled", ended)
            if ended.get("job_id"):
                self._emit("jobs", self.jobs())
                self.watch()
            return ended

        return self._task(f"cancelling the send the Tether agent holds (queue entry {entry})", work)

    def quota(self, service: str) -> Future[Any]:
        return self.service(service).quota()

    # --- watching -------------------------------------------------------------------------------------------------
    def watch(self) -> List[str]:
        """Follow each service's unfinished jobs, one watcher thread per service that has any, until they finish
        (called again by each submit and refresh). Returns the services being followed."""
        if self._stop.is_set():
            return []
        services = set(self.services())
        active = {r.service for r in self.registry.list(unfinished_only=True)
                  if not r.missing and not self.follows(r.key)}
        fast, cap = self._poll
        with self._lock:
            for service in sorted(active & services):
                thread = self._watch_threads.get(service)
                if thread is not None and thread.is_alive():
                    continue
                # the jobs a service controller follows itself are left to it: followed once, not twice
                scope: Dict[str, Any] = dict(wait=AGENT_WAIT, service=service, fast=fast, cap=cap,
                                             skip=self.follows, shared_clients=True)
                try:
                    watcher = watcher_for(self.registry, self._service_client, **scope)
                except ConfigError:  # a TETHER_AGENT the next send names: the jobs are polled from here meanwhile
                    watcher = watcher_for(self.registry, self._service_client, no_agent=True, **scope)
                thread = threading.Thread(target=self._follow, args=(service, watcher),
                                          name=f"tether-nuke-watch-{service}", daemon=True)
                self._watch_threads[service] = thread
                thread.start()
            return sorted(s for s, t in self._watch_threads.items() if t.is_alive())

    def watch_handoffs(self) -> bool:
        """Read the agent's queue on a thread of its own while it holds hand-offs of the Nuke services (none is read
        with ``TETHER_AGENT=off``). Returns whether that thread runs."""
        from tether import agent

        try:
            if self._stop.is_set() or not agent.use_agent():
                return False
        except ConfigError:  # a TETHER_AGENT the send says is wrong
            return False
        with self._lock:
            if self._handoff_thread is None or not self._handoff_thread.is_alive():
                self._handoff_thread = threading.Thread(target=self._follow_handoffs, daemon=True,
                                                        name="tether-nuke-handoffs")
                self._handoff_thread.start()
            return True

    def _follow_handoffs(self) -> None:
        """Until none waits or uploads: ``"handoffs"`` when they move, and ``"jobs"`` (with a watch of the jobs) once
        one of them left the queue as a job."""
        from tether import agent

        fast, cap = HANDOFF_POLL
        services = self.services()

        def key(seen: List[Any]) -> object:
            return [(h.entry.id, h.entry.state, h.entry.error, h.bytes_done) for h in seen]

        try:
            ticks = polls(lambda: agent.handoffs(services), key=key, backoff=Backoff(fast, cap),
                          cancelled=self._stop.is_set, clock=Clock(sleep=self._stop.wait))
            for tick in ticks:
                waiting = {h.entry.id for h in tick.value if not h.failed}
                if tick.changed:
                    with self._lock:
                        gone = {h.entry.id for h in self._handoffs if not h.failed} - waiting
                        self._handoffs = list(tick.value)
                    self._emit("handoffs", list(tick.value))
                    if gone:  # made into jobs (recorded by the agent): listed and followed from here
                        self._emit("jobs", self.jobs())
                        self.watch()
                if not waiting:
                    break
        except Exception as exc:
            self._emit("error", failure("reading the Tether agent's queue", exc))

    def _service_client(self, service: str, profile: Optional[str]) -> Any:
        return self.service(service).client(profile)

    def watching(self) -> List[str]:
        """The services whose jobs are being polled now."""
        with self._lock:
            return sorted(s for s, t in self._watch_threads.items() if t.is_alive())

    def _follow(self, service: str, watcher: Watcher) -> None:
        """Until ``service``'s jobs finish: each cycle says whether the service answered (``"stale"``), and what
        moved."""
        try:
            for changes in watcher.follow(True, self._stop.is_set, Clock(sleep=self._stop.wait)):
                self._answered(service, [c for c in changes if c.kind is ChangeKind.ERROR])
                if changes:
                    self._changed(changes)
        except Exception as exc:
            self._emit("error", failure(f"following {self.label(service)} jobs", exc))
            return
        finally:
            watcher.close()
        with self._lock:
            if self._watch_threads.get(service) is threading.current_thread():
                del self._watch_threads[service]
        self.watch()  # a job recorded after the watcher's last look is followed by a new one

    def _answered(self, service: str, failed: List[JobChange]) -> None:
        """After each watcher cycle: a ``"stale"`` event when ``service`` stops answering (``(service, since)``,
        since as ``HH:MM``) and when it answers again (``(service, "")``)."""
        with self._lock:
            was = service in self._silent_since
            if failed and not was:
                self._silent_since[service] = time.time()
            elif not failed and was:
                del self._silent_since[service]
            since = self._silent_since.get(service)
        if bool(failed) != was:
            self._emit("stale", (service, time.strftime("%H:%M", time.localtime(since)) if since else ""))

    def _changed(self, changes: List[JobChange]) -> None:
        self._emit("changes", changes)
        self._emit("jobs", self.jobs())

    def close(self) -> None:
        super().close()
        with self._lock:
            services = list(self._services.values())  # kept: a closed one still names its service and cancel rule
        for controller in services:
            controller.close()


__all__ = ["ADAPTERS", "JobController"]
