"""One seam for every service Nuke sends a Read's clip to (Autopilot, TensorPix, Clipzy): an adapter says what is
particular to its service, :class:`ServiceController` does the rest the same way for all of them.

The adapter (:class:`ServiceAdapter`; ``tether_nuke.autopilot.AutopilotAdapter``, the clip services' in
``tether_nuke.clipservices``):

- ``service``/``label``/``suffix``: the registry's service name, the words shown, the imported nodes' name suffix;
- ``client(profile)``: the service's client (a :class:`tether.jobs.JobService`);
- ``stage(plate, folder, progress)`` -> what is uploaded (a staged sequence's pattern, or one movie);
- ``submit(client, upload, options, registry, label, extra, progress, *, upload_progress)`` -> :class:`Sent` (the
  job id, where the output starts in the sent clip, and what the record keeps besides the plate); ``progress(done,
  total)`` follows the encode of a sequence into a movie, wherever the adapter does it, ``upload_progress`` the
  upload's bytes, and returning False from either cancels the send;
- ``fetch(client, job_id, dest)`` -> what came back into ``dest``; ``describe(plate, fetched, record, include)`` ->
  the :class:`~tether.nukeimport.ImportDescription` of the nodes to make;
- ``handoff_request(client, upload, options, registry, label, extra, progress)`` ->
  :class:`~tether.nukeimport.model.HandOffRequest`: the same send handed to the agent (the service's
  ``handoff_request`` JSON, the command line's; what is staged for the send moves where it outlives Nuke);
- optional: ``frame_limit`` (the most frames a job takes), ``quota(client)``, ``can_cancel`` (default True),
  ``cancel(client, job_id)`` (default: the client's ``cancel_job``), ``cancel_note`` (why it cannot cancel) and
  ``came_home(dest, record)`` (``fetch``'s result read from a folder the agent downloaded the results into).

The controller checks the plate and stages it on a worker, then hands the send to the Tether agent (started if
none runs: :func:`tether.agent.offer`), which uploads, creates and records the job even once Nuke is closed; where
there is no agent (``TETHER_AGENT=off``, none can be started) it sends in-process as before. Either way the job is
recorded with everything a later session's import needs (the plate, the frames sent, the profile), optionally
followed and imported when it completes, and imported on request: the nodes are described on the worker and made
on the main thread. No Qt.
"""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol, Set, Tuple, Union

from tether.errors import CancelledByUser, InputError, ServiceError
from tether.jobs import Job, JobService, JobState
from tether.nukeimport import ImportDescription, PlateFacts, check_plate, nuke_plate
from tether.nukeimport.model import HandOffRequest, Sent
from tether.poll import Clock
from tether.progress import Progress
from tether.registry import JobRecord, JobRegistry
from tether.watch import ChangeKind

from .failure import Failure, failure
from .mainthread import run_on_main
from .work import BackgroundWork

INCLUDE_ALL = ("roto", "camera", "depth")  # what an Autopilot import makes unless told otherwise
HANDOFF_POLL = (0.5, 3.0)  # how often the agent's queue is read while it holds a send of this session's
AGENT_WAIT = 1.0  # the longest a follower waits for the agent's next cycle: a closing panel stops it no later


@dataclass(frozen=True)
class HandedOff:
    """A send's Future when the agent took it: its queue entry (the job id comes with ``"submitted"`` later)."""

    service: str
    entry: int


class ServiceAdapter(Protocol):
    service: str
    label: str
    suffix: str

    def client(self, profile: Optional[str]) -> JobService: ...

    def stage(self, plate: PlateFacts, folder: Path, progress: Optional[Progress] = None) -> Any: ...

    def submit(self, client: Any, upload: Any, options: Any, registry: JobRegistry, label: str,
               extra: Dict[str, Any], progress: Optional[Progress] = None, *,
               upload_progress: Optional[Progress] = None) -> Sent: ...

    def handoff_request(self, client: Any, upload: Any, options: Any, registry: JobRegistry, label: str,
                        extra: Dict[str, Any], progress: Optional[Progress] = None) -> HandOffRequest: ...

    def fetch(self, client: Any, job_id: str, dest: Path) -> Any: ...

    def describe(self, plate: PlateFacts, fetched: Any, record: JobRecord,
                 include: Tuple[str, ...]) -> ImportDescription: ...


class ServiceController(BackgroundWork):
    """Submit, follow, import and cancel for one adapter, on worker threads; events go to listeners.

    Events: ``"encoding"`` (``(node, frames done, frames)`` while a sequence becomes a movie), ``"uploading"``
    (``(node, bytes done, bytes)``, a percent at a time; :meth:`cancel_send` stops either), ``"handed off"``
    (:class:`HandedOff`: the agent has the send), ``"submitted"`` (job id, once recorded, by this send or by the
    agent), ``"job"`` (:class:`tether.jobs.Job`, as it changes while followed here), ``"imported"`` (``(job_id,
    Applied)``), ``"awaiting home"`` (``(job_id, True)`` while an import waits for the running agent to bring the
    job's results home, ``(job_id, False)`` once it goes on), ``"error"`` (text), ``"released"`` (job id: no
    longer followed here although unfinished), ``"cancelled"`` (job id), ``"quota"`` (the service's quota).
    """

    def __init__(self, adapter: ServiceAdapter, registry: Optional[JobRegistry] = None,
                 client_factory: Optional[Callable[[Optional[str]], JobService]] = None, profile: Optional[str] = None,
                 download_root: Optional[Path] = None, poll: float = 2.0, poll_cap: float = 15.0) -> None:
        self.adapter = adapter
        self.service = adapter.service
        self.registry = registry or JobRegistry()
        self.profile = profile
        self._factory = client_factory or adapter.client
        self.download_root = download_root or self.registry.path.parent / adapter.service
        super().__init__(2, f"tether-{adapter.service}")
        self._what = f"{adapter.label} "
        self._poll = (poll, poll_cap)
        self._clients: Dict[Optional[str], JobService] = {}
        self._following: Set[str] = set()
        self._sends: Set[threading.Event] = set()  # one per send in flight: set to cancel its encode

    def client(self, profile: Optional[str] = None) -> Any:
        """The service's client for ``profile`` (a job's recorded profile), else this controller's; made once."""
        key = profile or self.profile
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._factory(key)
            return client

    def forget_clients(self) -> List[JobService]:
        """Make clients afresh from the settings on the next request (the URL or key was changed); the clients
        dropped, whose requests in flight end as they would have."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        return clients

    def follows(self, job_id: str) -> bool:
        """This controller polls the job itself (it was sent with ``follow``): nobody else needs to."""
        with self._lock:
            return str(job_id) in self._following

    # --- cancelling (honest about services that cannot) ------------------------------------------------------------
    @property
    def can_cancel(self) -> bool:
        return bool(getattr(self.adapter, "can_cancel", True))

    def cancel_note(self) -> Optional[str]:
        """Why this service's jobs cannot be cancelled from Nuke, or None when they can."""
        if self.can_cancel:
            return None
        note = getattr(self.adapter, "cancel_note", None)
        return str(note) if note else (f"{self.adapter.label} has no cancel route: its jobs cannot be cancelled from "
                                       "here and finish or fail on their own")

    def cancel(self, job_id: str) -> Future[bool]:
        """Cancel on the service (worker); a service without a cancel route is refused here, nothing is sent."""

        def work() -> bool:
            note = self.cancel_note()
            if note is not None:
                raise InputError(note)
            record = self.registry.get(self.service, job_id)
            client = self.client(record.profile if record is not None else None)
            cancel = getattr(self.adapter, "cancel", None)
            answer = cancel(client, job_id) if callable(cancel) else client.cancel_job(job_id)
            self._emit("cancelled", job_id)
            return answer is None or bool(answer)

        return self._task(f"cancelling {self.adapter.label} job {job_id}", work)

    def quota(self) -> Future[Any]:
        """The service's quota (an ``"error"`` event for a service that does not publish one)."""

        def work() -> Any:
            ask = getattr(self.adapter, "quota", None)
            if not callable(ask):
                raise InputError(f"{self.adapter.label} publishes no quota")
            quota = ask(self.client())
            self._emit("quota", quota)
            return quota

        return self._task("asking for the quota", work)

    # --- sending ----------------------------------------------------------------------------------------------------
    def cancel_send(self) -> None:
        """Stop the sends in flight at their next encoded frame or uploaded block: nothing is recorded, and their
        Futures raise :class:`CancelledByUser` (no ``"error"`` event: it was asked for)."""
        with self._lock:
            for cancelled in self._sends:
                cancelled.set()

    def submit(self, plate: PlateFacts, options: Any, script: str = "", follow: bool = True,
               asked: str = "", force: bool = False, home: bool = True) -> Future[Union[str, HandedOff]]:
        """Send the plate (its facts read on the main thread beforehand); the Future gives the job id, or
        :class:`HandedOff` when the Tether agent took the send (it uploads and creates the job, Nuke may close; the
        job id comes with ``"submitted"`` once the agent recorded it). ``follow``: this controller polls the job and
        imports it when it completes (else whoever lists the jobs follows it). ``asked`` says what the options ask
        for, in a few words, for the job list. ``force`` sends a clip the adapter knows was sent with these options
        already (Autopilot: the Future fails with :class:`tether.autopilot.submit.AlreadySent`, naming the earlier
        job, whose results ``import_job(..., onto=True)`` brings onto this plate). ``home``: a send the agent takes
        from a saved script has its results downloaded beside the comp once the job finishes (:func:`home_for`),
        which the import then uses. ``"encoding"`` and ``"uploading"`` events follow the send; :meth:`cancel_send`
        stops it until it is handed off."""

        def work() -> Union[str, HandedOff]:
            # the disk is checked here, off the main thread: a network share may take a while to list
            check_plate(plate, check_disk=True, frame_limit=getattr(self.adapter, "frame_limit", None),
                        service=self.adapter.label).raise_first()
            label = f"{script}:{plate.node}" if script else plate.node
            extra = {"plate": plate.to_dict(), "script": script, **({"asked": asked} if asked else {})}
            cancelled = threading.Event()

            def encoding(done: int, total: int) -> bool:
                self._emit("encoding", (plate.node, done, total))
                return not (cancelled.is_set() or self._stop.is_set())

            shown = [-1]

            def uploading(done: int, total: int) -> bool:
                percent = done * 100 // total if total else -1
                if percent != shown[0]:  # a percent at most: an upload reads in 64 KiB blocks
                    shown[0] = percent
                    self._emit("uploading", (plate.node, done, total))
                return not (cancelled.is_set() or self._stop.is_set())

            forcing = {"force": True} if force else {}
            with self._lock:
                self._sends.add(cancelled)
            try:
                with tempfile.TemporaryDirectory(prefix=f"tether-{self.service}-") as tmp:
                    upload = self.adapter.stage(plate, Path(tmp), progress=encoding)
                    if not uploading(0, 0):  # cancelled as the encode ended
                        raise CancelledByUser(f"the send of {plate.node} was cancelled before its upload")
                    client = self.client()
                    profile = str(getattr(client, "profile", "") or "")
                    title = f"{plate.node} ({Path(plate.file).name})"
                    record: Dict[str, Any] = {}  # what a send here records besides, filled in with the request

                    def request() -> Dict[str, Any]:
                        handed = self.adapter.handoff_request(client, upload, options, self.registry, label, extra,
                                                              progress=encoding, **forcing)
                        record.update({**extra, **handed.extra, "first_index": handed.first_index,
                                       "frame_count": plate.frame_count})
                        return handed.request

                    entry = self._offer(request, profile, title, record,
                                        home_for(script, plate.node, self.service) if home else None)
                    if entry is None:
                        sent = self.adapter.submit(client, upload, options, self.registry, label, extra,
                                                   progress=encoding, upload_progress=uploading, **forcing)
            finally:
                with self._lock:
                    self._sends.discard(cancelled)
            if entry is not None:
                return self._handed_off(entry, follow)
            # everything an import from a later session needs: the plate (with its sent frames), where the output
            # starts in the sent clip, and the profile whose client fetches it
            self.registry.record(service=self.service, job_id=sent.job_id, profile=profile, title=title,
                                 extra={**extra, **sent.extra, "first_index": sent.first_index,
                                        "frame_count": plate.frame_count})
            if follow:  # taken before "submitted": that event starts the monitor's watchers, which then skip it
                self.take(sent.job_id)
            self._emit("submitted", sent.job_id)
            return sent.job_id

        return self._task(f"sending the clip to {self.adapter.label}", work)

    # --- handing off to the agent -------------------------------------------------------------------------------
    def _offer(self, request: Callable[[], Dict[str, Any]], profile: str, title: str,
               record: Dict[str, Any], home: Optional[Path] = None) -> Any:
        """The agent's queue entry for this send, or None to send it here (:func:`tether.agent.offer`'s rule). The
        job's record is given ``record``, the facts a send here records, filled in by ``request()`` (the hand-off
        reads it after), so a later import works alike. ``home``: where the agent downloads the results (None: it
        does not)."""
        from tether import agent

        if not callable(getattr(self.adapter, "handoff_request", None)):
            return None
        return agent.offer(self.service, request, profile=profile, title=title, output_dir=home,
                           fetch=home is not None, record=record)

    def _handed_off(self, entry: Any, follow: bool) -> HandedOff:
        """The agent has the send: say so, and wait on a thread of its own (the pool's are for sends, follows and
        imports) for its job, which is then ``"submitted"`` and, with ``follow``, followed and imported here.
        Closed before that (Nuke exits), nothing is lost: the agent records the job and the next session follows
        it."""
        handed = HandedOff(self.service, int(entry.id))
        self._emit("handed off", handed)
        threading.Thread(target=self._await_job, args=(handed.entry, follow), daemon=True,
                         name=f"tether-{self.service}-handoff-{handed.entry}").start()
        return handed

    def _await_job(self, entry_id: int, follow: bool) -> None:
        from tether import agent

        fast, cap = HANDOFF_POLL
        try:
            seen = agent.follow_handoff(entry_id, lambda handed: not self._stop.is_set(),
                                        clock=Clock(sleep=self._stop.wait), interval=fast, cap=cap)
        except Exception as exc:
            self._emit("error", failure(f"waiting for the agent's {self.adapter.label} hand-off {entry_id}", exc))
            return
        entry = seen.entry if seen is not None else None
        if entry is None or entry.state == "cancelled" or self._stop.is_set():  # a cancel is no failure
            return
        if entry.state == "done" and entry.job_id:
            if follow:
                self.take(entry.job_id)
            self._emit("submitted", entry.job_id)
        else:
            self._emit("error", Failure(f"the Tether agent could not send {entry.title} to {self.adapter.label}"
                                        + (f": {entry.error}" if entry.error else "")))

    def take(self, job_id: str) -> None:
        """Follow the job here (a worker polls it) and import it when it completes; the monitor leaves it alone
        until this controller lets it go (``"released"``)."""
        with self._lock:
            self._following.add(str(job_id))
        self._pool.submit(self._follow_and_import, str(job_id))

    def _follow_and_import(self, job_id: str) -> None:
        """The job's one follower in this session (the monitor skips it: :meth:`follows`)."""
        finished = False
        try:
            job = self.follow(job_id)
            if job is None:  # closed before the first ask
                return
            finished = job.state.finished
            if job.state is JobState.COMPLETED:
                self.import_job(job_id).result()
            elif finished:
                self._emit("error", Failure(f"{self.adapter.label} job {job_id} {job.state_label}"
                                            + (f": {job.error}" if job.error else "")))
        except Exception as exc:
            self._emit("error", failure(f"following {self.adapter.label} job {job_id}", exc))
        finally:
            with self._lock:
                self._following.discard(str(job_id))
            if not finished:  # closed, or polling failed, before the end: the monitor may follow it from here
                self._emit("released", job_id)

    def follow(self, job_id: str) -> Optional[Job]:
        """Follow the job until it finishes or the controller closes (worker thread), a ``"job"`` event each time it
        moves: through the running agent's cycles while one runs (no request of its own to the service), else
        polling the service, backing off while nothing changes (:func:`tether.agent.watcher_for`). The last view of
        the job (None when closed before the first look); a service that does not answer ends the follow with its
        error (the monitor takes the job over)."""
        from tether.agent import job_view, watcher_for

        fast, cap = self._poll
        watcher = watcher_for(self.registry, lambda service, profile: self.client(profile), wait=AGENT_WAIT,
                              jobs=[(self.service, str(job_id))], fast=fast, cap=cap, shared_clients=True)
        try:
            for changes in watcher.follow(True, self._stop.is_set, Clock(sleep=self._stop.wait)):
                for change in changes:
                    if change.kind is ChangeKind.ERROR:
                        raise change.error or ServiceError(change.message, service=self.service)
                    if change.after is not None:
                        self._emit("job", change.job or job_view(change.after))
        finally:
            watcher.close()
        record = self.registry.get(self.service, str(job_id))
        return job_view(record) if record is not None and watcher.cycles else None

    # --- importing ----------------------------------------------------------------------------------------------------
    def import_job(self, job_id: str, plate: Optional[PlateFacts] = None,
                   include: Tuple[str, ...] = INCLUDE_ALL, onto: bool = False) -> Future[Dict[str, str]]:
        """Download what came back (worker), then make its nodes beside the plate (main thread); the Future gives
        spec name -> node name once they exist.

        The plate is the Read the clip was sent from (a job from an earlier Nuke session imports the same way);
        ``plate`` stands in for a job sent without one (from the command line), and with ``onto`` replaces it (the
        results of an earlier job on the same frames, offered instead of sending them again). A job the agent was
        asked to bring home is read from its home folder, once: the import waits for the running agent's download
        there, or downloads there itself when no agent runs.
        """
        done: Future[Dict[str, str]] = Future()
        label = self.adapter.label

        def work() -> None:
            record = self.registry.get(self.service, job_id)
            if record is None:
                raise InputError(f"{label} job {job_id} is not in the job list")
            stored = nuke_plate(record.extra)
            facts = plate if onto or stored is None else stored
            if facts is None:
                raise InputError(f"{label} job {job_id} was not sent from Nuke: its plate is unknown; "
                                 "select the plate's Read and import again")
            fetched = self._came_home(record)
            if fetched is None and record.extra.get("agent_fetch") and record.output_dir:
                fetched = self._home(record)
            if fetched is None:
                dest = self.download_root / job_id
                fetched = self.adapter.fetch(self.client(record.profile or None), job_id, dest)
                if not record.extra.get("agent_fetch"):  # a copy here does not stand for the results' home
                    self.registry.mark_fetched(self.service, job_id, dest)
            if record.extra.get("agent_fetch"):  # told apart from the agent's download, which is no import
                self.registry.record(service=self.service, job_id=job_id, extra={"imported": True})
            description = self.adapter.describe(facts, fetched, record, include)
            run_on_main(self._apply, job_id, description, done)

        future = self._task(f"importing {label} job {job_id}", work)
        future.add_done_callback(lambda f: done.set_exception(f.exception()) if f.exception() else None)
        return done

    def _home(self, record: JobRecord) -> Any:
        """The results of a job the agent was asked to bring home, read from there: waited for while an agent runs
        (it downloads them once it sees the job complete, maybe after this import began), brought home here as
        the agent would when none runs. None when a running agent did not bring them (the import fetches a copy
        of its own, home left to the agent)."""
        from tether import agent

        waited: List[bool] = []

        def waiting() -> None:  # said while it lasts (it may last the agent's whole download), cleared after
            waited.append(True)
            self._emit("awaiting home", (record.job_id, True))

        try:
            came = agent.await_home(self.registry, self.service, record.job_id, cancelled=self._stop.is_set,
                                    waiting=waiting)
        except agent.AgentNotRunning:
            agent.bring_home(self.client(record.profile or None), self.registry, record)
            came = self.registry.get(self.service, record.job_id)
        finally:
            if waited:
                self._emit("awaiting home", (record.job_id, False))
        if self._stop.is_set():
            raise CancelledByUser(f"the import of {self.adapter.label} job {record.job_id} stopped: Nuke closes")
        return self._came_home(came) if came is not None else None

    def _came_home(self, record: JobRecord) -> Any:
        """What the agent downloaded for the job (its folder read by the adapter's ``came_home``), or None: not
        downloaded by the agent, or no longer all there (then the import downloads it again)."""
        read = getattr(self.adapter, "came_home", None)
        folder = record.extra.get("fetched_to") or record.output_dir
        home = Path(folder) if folder and record.extra.get("agent_fetch") and record.fetched_at else None
        if not callable(read) or home is None or not home.is_dir():
            return None
        try:
            return read(home, record)
        except (OSError, InputError):
            return None

    def close(self) -> None:
        super().close()
        for client in self.forget_clients():
            client.abort()  # an upload or download in flight ends now, not at the server's reply
            client.close()


def home_for(script: str, node: str, service: str) -> Optional[Path]:
    """Where the agent brings a send's results home: a folder of its own beside the saved comp
    (``<comp folder>/tether/<node>_<service>_<time>``, so two sends never mix their files); None for an unsaved
    script, whose results are downloaded when imported, as before."""
    if not script:
        return None
    from tether.agent import home_folder

    return home_folder(Path(script).absolute().parent / "tether", f"{node}_{service}")


__all__ = ["INCLUDE_ALL", "Sent", "ServiceAdapter", "ServiceController", "home_for"]
