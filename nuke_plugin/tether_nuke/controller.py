"""Submission, watching and importing, off Nuke's main thread; no Qt, so it is tested as plain Python.

- :meth:`JobController.submit`, :meth:`import_job`, :meth:`cancel` and :meth:`quota` run on a small worker pool and
  return a Future; a job watcher (``tether.watch.Watcher``) per service with unfinished jobs polls on a thread of its
  own until they finish (nothing polls while nothing is unfinished).
- The job list is every Nuke service's: Autopilot, and the clip services (TensorPix, Clipzy), whose import and cancel
  go through their :class:`~tether_nuke.clipservices.ClipServiceController` (held here, one per service), so a clip
  job sent from its dialog in an earlier session is followed and imported from the same list.
- Workers never touch nodes. The plate's facts are read on the main thread *before* a submission; an import builds
  its node description on the worker and hands it to :func:`mainthread.run_on_main`, where the plate is found again
  by name and the nodes are made in one undo step.
- Every job is recorded in the shared registry (``tether.registry``) with the plate's facts and the frames sent,
  so closing Nuke loses nothing: a new session lists the jobs and imports finished ones exactly as they were sent.
- One follower per job: a clip job sent from a dialog is polled by that dialog's controller (which imports it when it
  completes), so the monitor's watchers skip it (:data:`FOLLOWED`) and show its progress from the controller's events.
- Listeners get ``(kind, payload)`` events on whatever thread produced them: ``"jobs"`` (the list changed),
  ``"submitted"``, ``"imported"``, ``"error"``, ``"quota"``. The panel forwards them to Qt's thread with a signal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar

from tether.autopilot.client import AutopilotClient
from tether.autopilot.models import MAX_FRAMES
from tether.autopilot.submit import ServiceChoice, submit_clip
from tether.errors import InputError, TetherError
from tether.nukeimport import PlateFacts, ResultFiles, check_plate, describe_import, format_ranges
from tether.registry import JobRecord, JobRegistry
from tether.watch import JobChange, Watcher

from .mainthread import run_on_main

if TYPE_CHECKING:
    from .clipservices import ClipServiceController

SERVICE = "autopilot"
Event = Tuple[str, Any]
Listener = Callable[[str, Any], None]
ClientFactory = Callable[[Optional[str]], Any]
T = TypeVar("T")


def send_metadata(plate: PlateFacts) -> Dict[str, Any]:
    """The job metadata a send from Nuke adds (the panel's preview shows the same)."""
    return {"nuke_read": plate.node}


def stage_sequence(plate: PlateFacts, folder: Path) -> str:
    """Link exactly the frames to send (the Read's first..last, one view) into ``folder``; return their pattern.

    The core packs every frame matching a pattern; a Read often uses part of a longer sequence, so the frames are
    linked (symlink, else hard link, else copied) into a folder of their own, keeping names and numbers.
    """
    pattern = plate.pattern
    first, last = plate.sent_range
    missing = plate.missing_frames()
    if missing:
        raise InputError(f"Read {plate.node}: frames {format_ranges(missing)} are missing from {pattern.path}")
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(first, last + 1):
        source = Path(pattern.frame(number))
        target = folder / source.name
        try:
            os.symlink(source.resolve(), target)
        except OSError:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
    head = Path(pattern.head).name
    token = "#" * pattern.padding if pattern.padding > 1 else "%d"
    return str(folder / f"{head}{token}{pattern.tail}")


class FollowedJobs:
    """The ``(service, job id)`` a clip-service controller is polling itself in this session (any thread)."""

    def __init__(self) -> None:
        self._keys: Set[Tuple[str, str]] = set()
        self._lock = threading.Lock()

    def add(self, service: str, job_id: str) -> None:
        with self._lock:
            self._keys.add((service, str(job_id)))

    def discard(self, service: str, job_id: str) -> None:
        with self._lock:
            self._keys.discard((service, str(job_id)))

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys


FOLLOWED = FollowedJobs()


class BackgroundWork:
    """A small worker pool whose outcomes reach listeners as ``(kind, payload)`` events. Workers never touch
    nodes: an import's description is applied on the main thread by :meth:`_apply` through ``run_on_main``."""

    _what = ""  # names the service in error text, e.g. "TensorPix "

    def __init__(self, workers: int, thread_name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)
        self._listeners: List[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, kind: str, payload: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, payload)
            except Exception:  # a broken listener must not stop a worker
                import logging

                logging.getLogger("tether").exception("Tether: a listener failed on %s", kind)

    def _task(self, what: str, work: Callable[[], T]) -> Future[T]:
        def run() -> T:
            try:
                return work()
            except Exception as exc:
                text = str(exc) if isinstance(exc, TetherError) else f"{type(exc).__name__}: {exc}"
                self._emit("error", f"{what}: {text}")
                raise

        return self._pool.submit(run)

    def _apply(self, job_id: str, description: Any, done: Future[Dict[str, str]]) -> None:
        from .importer import apply_description  # main thread

        try:
            applied = apply_description(description)
        except Exception as exc:
            self._emit("error", f"importing {self._what}job {job_id}: {exc}")
            done.set_exception(exc)
            return
        self._emit("imported", (job_id, applied))
        done.set_result(applied.names)

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False)


class JobController(BackgroundWork):
    def __init__(
        self,
        registry: Optional[JobRegistry] = None,
        client_factory: Optional[ClientFactory] = None,
        profile: Optional[str] = None,
        download_root: Optional[Path] = None,
        workers: int = 2,
        poll_fast: float = 2.0,
        poll_cap: float = 30.0,
        clip_controllers: Optional[Dict[str, ClipServiceController]] = None,
    ) -> None:
        """``clip_controllers`` (service -> controller) replace the ones made on first use from
        ``clipservices.ADAPTERS`` with this registry and profile; they are closed with this controller."""
        self.registry = registry or JobRegistry()
        self.profile = profile
        self._factory: ClientFactory = client_factory or AutopilotClient.from_profile
        self.download_root = download_root or self.registry.path.parent / "autopilot"
        super().__init__(workers, "tether-nuke")
        self._watch_threads: Dict[str, threading.Thread] = {}
        self._poll = (poll_fast, poll_cap)
        self._clients: Dict[Optional[str], Any] = {}
        self._clip: Dict[str, ClipServiceController] = {}
        for name, clip in (clip_controllers or {}).items():
            self._clip[name] = clip
            clip.add_listener(self._from_clip)

    def _client(self, profile: Optional[str] = None) -> Any:
        key = profile if profile is not None else self.profile
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._factory(key)
                self._clients[key] = client
            return client

    # --- the services ---------------------------------------------------------------------------------------------
    def services(self) -> Tuple[str, ...]:
        """Autopilot first, then every clip service (``clipservices.ADAPTERS`` and any given to the constructor)."""
        from .clipservices import ADAPTERS  # imports this module: loaded on use

        return (SERVICE, *ADAPTERS, *(name for name in self._clip if name not in ADAPTERS))

    def clip(self, service: str) -> ClipServiceController:
        """The clip service's controller (made on first use; no network until it is asked for something)."""
        from .clipservices import ADAPTERS, ClipServiceController

        with self._lock:
            clip = self._clip.get(service)
            if clip is None:
                if service not in ADAPTERS:
                    raise InputError(f"'{service}' jobs cannot be handled in Nuke "
                                     f"(known: {', '.join(self.services())})")
                fast, cap = self._poll
                clip = self._clip[service] = ClipServiceController(ADAPTERS[service](), self.registry,
                                                                   profile=self.profile, poll=fast, poll_cap=cap)
                clip.add_listener(self._from_clip)
            return clip

    def label(self, service: str) -> str:
        if service == SERVICE:
            return "Autopilot"
        try:
            return self.clip(service).adapter.label
        except InputError:
            return service

    def owns(self, clip: Any) -> bool:
        """``clip`` is one of this controller's clip-service controllers (its events reach this one already)."""
        with self._lock:
            return any(mine is clip for mine in self._clip.values())

    def _from_clip(self, kind: str, payload: Any) -> None:
        self.clip_event(kind, payload)

    def clip_event(self, kind: str, payload: Any) -> None:
        """An event of a clip-service controller (this one's, or a dialog's: ``commands.tell_the_monitor``). Any
        thread. A job that controller follows itself is shown from its ``"job"`` events, never polled here too."""
        if kind in ("imported", "error"):
            self._emit(kind, payload)
        if kind in ("imported", "job"):  # fetched now, or its state or progress moved
            self._emit("jobs", self.jobs())
        elif kind == "submitted":
            self.job_added()
        elif kind == "released":  # its controller stopped following it before it finished: the monitor takes over
            self.watch()

    def job_added(self) -> None:
        """A job was sent elsewhere (a clip-service dialog): list it now and follow it. Any thread."""
        self._emit("jobs", self.jobs())
        self.watch()

    def _service_client(self, service: str, profile: Optional[str]) -> Any:
        return self._client(profile) if service == SERVICE else self.clip(service).client(profile)

    # --- reading ----------------------------------------------------------------------------------------------------
    def jobs(self) -> List[JobRecord]:
        """Every job of the Nuke services, newest first."""
        services = set(self.services())
        return [record for record in self.registry.list() if record.service in services]

    def record(self, job_id: str, service: str = SERVICE) -> Optional[JobRecord]:
        return self.registry.get(service, job_id)

    def cancel_note(self, service: str) -> Optional[str]:
        """Why ``service``'s jobs cannot be cancelled from Nuke (shown instead of pretending), or None."""
        return None if service == SERVICE else self.clip(service).cancel_note()

    # --- actions (each returns a Future; errors are also sent as "error" events) --------------------------------------
    def quota(self) -> Future[Any]:
        def work() -> Any:
            quota = self._client().quota()
            self._emit("quota", quota)
            return quota

        return self._task("asking for the quota", work)

    def submit(self, plate: PlateFacts, choice: ServiceChoice, script: str = "") -> Future[str]:
        """Upload the plate's frames and create the job (worker thread). The Future gives the job id."""

        def work() -> str:
            # the disk is checked here, off the main thread: a network share may take a while to list
            check_plate(plate, check_disk=True, frame_limit=MAX_FRAMES).raise_first()
            with tempfile.TemporaryDirectory(prefix="tether-plate-") as tmp:
                spec = plate.file if plate.is_movie else stage_sequence(plate, Path(tmp))
                client = self._client()
                label = f"{script}:{plate.node}" if script else plate.node
                submission = submit_clip(client, spec, choice, registry=self.registry, source_label=label,
                                         metadata=send_metadata(plate), source=plate.file)
            sent = plate.sent_range
            if submission.clip.frame_count != plate.frame_count:
                raise InputError(f"{submission.clip.frame_count} frames were sent for the {plate.frame_count} of "
                                 f"Read {plate.node}: import will not line up")
            sensor = choice.tracking_metadata
            self.registry.record(
                service=SERVICE, job_id=submission.job.id, title=f"{plate.node} ({plate.file.rsplit('/', 1)[-1]})",
                extra={"plate": {**plate.to_dict(), "sent": list(sent)}, "script": script,
                       "sensor": [sensor["sensor_width"], sensor["sensor_height"]]
                       if sensor.get("sensor_width") and sensor.get("sensor_height") else None},
            )
            self._emit("submitted", submission.job.id)
            self._emit("jobs", self.jobs())
            self.watch()
            return str(submission.job.id)

        return self._task("sending the clip", work)

    def cancel(self, job_id: str, service: str = SERVICE) -> Future[bool]:
        if service != SERVICE:
            return self.clip(service).cancel(job_id)

        def work() -> bool:
            gone = bool(self._client().cancel(job_id))
            self.watch()
            return gone

        return self._task(f"cancelling job {job_id}", work)

    def import_job(self, job_id: str, plate: Optional[PlateFacts] = None,
                   include: Tuple[str, ...] = ("roto", "camera", "depth"),
                   service: str = SERVICE) -> Future[Dict[str, str]]:
        """Download, classify and describe on a worker; create the nodes on the main thread.

        ``plate`` replaces the recorded plate (a job sent from the command line has none); the Future gives
        spec name -> node name once the nodes exist. A clip service's job is imported by its controller.
        """
        if service != SERVICE:
            return self.clip(service).import_job(job_id, plate)
        done: Future[Dict[str, str]] = Future()

        def work() -> None:
            record = self.record(job_id)
            if record is None:
                raise InputError(f"job {job_id} is not in the job list")
            facts = plate
            if facts is None:
                stored = record.extra.get("plate")
                if not stored:
                    raise InputError(f"job {job_id} was not sent from Nuke: select the plate's Read and import again")
                facts = PlateFacts.from_dict(stored)
            elif record.extra.get("frame_count") and record.extra.get("first_frame") is not None:
                first = int(record.extra["first_frame"])
                facts = PlateFacts.from_dict({**facts.to_dict(),
                                              "sent": [first, first + int(record.extra["frame_count"]) - 1]})
            dest = self.download_root / job_id
            results = self._client(record.profile or None).fetch_results(job_id, dest)
            self.registry.mark_fetched(SERVICE, job_id, dest)
            sensor = record.extra.get("sensor")
            description = describe_import(facts, ResultFiles.from_classified(results), job_id=job_id,
                                          sensor=(float(sensor[0]), float(sensor[1])) if sensor else None,
                                          include=include)
            run_on_main(self._apply, job_id, description, done)

        future = self._task(f"importing job {job_id}", work)
        future.add_done_callback(lambda f: done.set_exception(f.exception()) if f.exception() else None)
        return done

    # --- watching -------------------------------------------------------------------------------------------------
    def watch(self) -> List[str]:
        """Follow each service's unfinished jobs, one watcher thread per service that has any, until they finish
        (called again by each submit and refresh). Returns the services being followed."""
        if self._stop.is_set():
            return []
        services = set(self.services())
        active = {r.service for r in self.registry.list(unfinished_only=True)
                  if not r.missing and r.key not in FOLLOWED}
        fast, cap = self._poll
        with self._lock:
            for service in sorted(active & services):
                thread = self._watch_threads.get(service)
                if thread is not None and thread.is_alive():
                    continue
                # the jobs a dialog's controller follows are left to it: polled once, not twice
                watcher = Watcher(self.registry, self._service_client, service=service, fast=fast, cap=cap,
                                  skip=FOLLOWED.__contains__)
                thread = threading.Thread(target=self._follow, args=(service, watcher),
                                          name=f"tether-nuke-watch-{service}", daemon=True)
                self._watch_threads[service] = thread
                thread.start()
            return sorted(s for s, t in self._watch_threads.items() if t.is_alive())

    def watching(self) -> List[str]:
        """The services whose jobs are being polled now."""
        with self._lock:
            return sorted(s for s, t in self._watch_threads.items() if t.is_alive())

    def _follow(self, service: str, watcher: Watcher) -> None:
        try:
            watcher.run(self._changed, stop=self._stop, until_done=True)
        except Exception as exc:
            self._emit("error", f"following {self.label(service)} jobs: {exc}")
            return
        with self._lock:
            if self._watch_threads.get(service) is threading.current_thread():
                del self._watch_threads[service]
        self.watch()  # a job recorded after the watcher's last look is followed by a new one

    def _changed(self, changes: List[JobChange]) -> None:
        self._emit("changes", changes)
        self._emit("jobs", self.jobs())

    def close(self) -> None:
        super().close()
        with self._lock:
            clips = list(self._clip.values())  # kept: a closed one still names its service and cancel rule
            for client in self._clients.values():
                close = getattr(client, "close", None)
                if callable(close):
                    close()
            self._clients.clear()
        for clip in clips:
            clip.remove_listener(self._from_clip)
            clip.close()


__all__ = ["FOLLOWED", "SERVICE", "FollowedJobs", "JobController", "send_metadata", "stage_sequence"]
