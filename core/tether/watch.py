"""Follow the registry's unfinished jobs: a plain-Python polling state machine.

It has no thread and no event loop of its own, so the CLI calls it in a loop, a Blender add-on runs it on a worker
thread and hands the changes to ``bpy.app.timers``, and Nuke runs it on a ``threading.Thread``. Each
:meth:`Watcher.poll_once` asks every (service, profile) once for all of its jobs (``jobs_by_id``: list pages, not
one GET per job), stores the answers in the registry and returns what changed. :meth:`Watcher.next_delay` says
how long to wait: short while jobs move, growing towards a cap while nothing does, reset by any change.
A service that fails is reported as an event and backed off; it never stops the watcher.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

from .errors import TetherError, redact
from .jobs import Job, JobService, JobState
from .poll import SYSTEM_CLOCK, Backoff, Clock
from .registry import ENDPOINT_KEY, JobRecord, JobRegistry

ClientFactory = Callable[[str, Optional[str]], JobService]
Key = Tuple[str, str]


class ChangeKind(str, enum.Enum):
    PROGRESS = "progress"  # same state, progress moved
    STATE = "state"  # a state transition that does not finish the job
    FINISHED = "finished"  # the job reached completed, failed or cancelled
    MISSING = "missing"  # the service no longer knows the job
    ERROR = "error"  # the service could not be asked (one event per service and profile)


@dataclass(frozen=True)
class JobChange:
    kind: ChangeKind
    service: str
    profile: str
    job_id: Optional[str] = None  # None for ERROR: it concerns every job of that service and profile
    before: Optional[JobRecord] = None
    after: Optional[JobRecord] = None
    message: str = ""
    error: Optional[BaseException] = None
    job: Optional[Job] = None  # the view it was read from: the service's (its vendor reply with it) or the agent's

    @property
    def state_changed(self) -> bool:
        return self.before is not None and self.after is not None and self.before.state != self.after.state

    @property
    def failed(self) -> bool:
        """Finished without completing (failed or cancelled)."""
        after = self.after
        return self.kind is ChangeKind.FINISHED and after is not None and after.state is not JobState.COMPLETED


def _describe(kind: ChangeKind, before: Optional[JobRecord], after: JobRecord) -> str:
    label = f"{after.service} job {after.job_id}"
    if kind is ChangeKind.PROGRESS:
        return f"{label}: {after.state_label} {after.progress:.0f}%"
    was = f"{before.state_label} -> " if before is not None else ""
    text = f"{label}: {was}{after.state_label}"
    if not after.state.finished:
        text += f" {after.progress:.0f}%"
    if after.error and after.state in (JobState.FAILED, JobState.UNKNOWN):
        text += f": {after.error}"
    return text


def diff(before: Optional[JobRecord], after: JobRecord) -> Optional[JobChange]:
    """What moved between two views of one job, or None."""
    # A raw value first learnt (recorded as "", then the service's "queued") is not a transition.
    same_raw = not before.raw_state or before.raw_state == after.raw_state if before is not None else False
    if before is not None and before.state == after.state and same_raw:
        if abs(before.progress - after.progress) < 1e-6:
            return None
        kind = ChangeKind.PROGRESS
    elif after.state.finished:
        kind = ChangeKind.FINISHED
    elif before is None:
        return None  # first sight of an unfinished job is not a change
    else:
        kind = ChangeKind.STATE
    return JobChange(kind, after.service, after.profile, after.job_id, before, after, _describe(kind, before, after))


def _same(rec: JobRecord, job: Job) -> bool:
    """Whether storing ``job`` would change nothing that ``rec`` (the registry's row) says of it."""
    return (rec.state is job.state and rec.raw_state == job.raw_state and rec.progress == job.progress
            and rec.error == job.error and (not job.title or job.title == rec.title)
            and (not job.counts or rec.extra.get("counts") == dict(job.counts)))


class Watcher:
    """Poll the unfinished jobs of ``registry`` (all of them, or only ``jobs``) and report changes.

    ``clients(service, profile)`` builds the client for a service; each is made once and reused. Delays
    (:class:`tether.poll.Backoff`): ``fast`` after a cycle in which something moved, then times ``factor`` per quiet
    cycle up to ``cap``; a failing service doubles the delay (at least ``2 * fast``), and a ``Retry-After`` it sent
    is waited out in full.
    """

    def __init__(
        self,
        registry: JobRegistry,
        clients: ClientFactory,
        *,
        jobs: Optional[Iterable[Key]] = None,
        service: Optional[str] = None,
        profile: Optional[str] = None,
        fast: float = 2.0,
        cap: float = 60.0,
        factor: float = 1.5,
        skip: Optional[Callable[[Key], bool]] = None,
        endpoints: bool = False,
        shared_clients: bool = False,
    ) -> None:
        """``skip(key)`` True leaves that unfinished job to someone else this cycle (e.g. a dialog that follows the
        job itself): it is neither polled nor reported. ``endpoints``: a job recorded with its own service URL
        (``extra[ENDPOINT_KEY]``: a Blender scene's farm override, handed to the agent) is polled there, with its
        profile's credentials, not at the profile's URL (the agent's watcher; a DCC's own watcher has one URL).
        ``shared_clients``: the clients ``clients`` gives are the caller's (a DCC's, which sends and imports through
        them too): :meth:`close` leaves them open."""
        self.backoff = Backoff(fast, cap, factor)  # checks 0 < fast <= cap and factor >= 1
        self.registry = registry
        self.clients = clients
        self.only: Optional[Set[Key]] = {(s, str(i)) for s, i in jobs} if jobs is not None else None
        self.service = service
        self.profile = profile
        self.skip = skip
        self.endpoints = endpoints
        self.shared_clients = shared_clients
        self.cycles = 0
        self.failing: Dict[Tuple[str, str], str] = {}  # (service, profile) -> its error in the latest cycle
        self._clients: Dict[Tuple[str, str, str], JobService] = {}
        self._seen: Dict[Key, JobRecord] = {}  # what this watcher last saw of each job it follows
        self._pending: Set[Key] = set()  # unfinished jobs after the last cycle
        self._lock = threading.Lock()

    # --- the state machine -----------------------------------------------------------------------------------
    def poll_once(self) -> List[JobChange]:
        """One cycle: one ``jobs_by_id`` per (service, profile) with unfinished jobs. Never raises for a service."""
        with self._lock:
            changes: List[JobChange] = []
            records = self._unfinished()
            self._catch_up(records, changes)
            groups: Dict[Tuple[str, str, str], List[JobRecord]] = {}
            for rec in records:
                endpoint = str(rec.extra.get(ENDPOINT_KEY) or "") if self.endpoints else ""
                groups.setdefault((rec.service, rec.profile, endpoint), []).append(rec)
            failed = False
            for (service, profile, endpoint), members in sorted(groups.items()):
                if not self._poll_group(service, profile, members, changes, endpoint):
                    failed = True
            self._pending = {k for k, rec in self._seen.items() if not rec.finished and not rec.missing}
            self.cycles += 1
            self.failing = {(c.service, c.profile): c.message for c in changes if c.kind is ChangeKind.ERROR}
            moved = any(c.kind is not ChangeKind.ERROR for c in changes)
            if failed:
                waits = [w for w in (getattr(c.error, "retry_after", None) for c in changes) if w is not None]
                self.backoff.failed(max(waits) if waits else None)
            else:
                self.backoff.step(moved)
            return changes

    def next_delay(self) -> float:
        """Seconds to wait before the next :meth:`poll_once`."""
        return self.backoff.delay

    @property
    def done(self) -> bool:
        """Every followed job has finished (or vanished) as of the last cycle."""
        return self.cycles > 0 and not self._pending

    @property
    def followed(self) -> List[JobRecord]:
        """The latest view of every job this watcher has seen, in the order first seen."""
        return list(self._seen.values())

    def _unfinished(self) -> List[JobRecord]:
        records = self.registry.list(service=self.service, profile=self.profile, unfinished_only=True)
        return [r for r in records if not r.missing and (self.only is None or r.key in self.only)
                and not (self.skip is not None and self.skip(r.key))]

    def _catch_up(self, records: List[JobRecord], changes: List[JobChange]) -> None:
        """Jobs we followed that another process (or thread) finished or forgot since the last cycle."""
        polled = {r.key for r in records}
        for key in [k for k in self._pending if k not in polled]:
            now = self.registry.get(*key)
            if now is None:  # forgotten: stop following
                self._seen.pop(key, None)
                continue
            change = diff(self._seen.get(key), now)
            if now.missing and (change is None or change.kind is not ChangeKind.FINISHED):
                change = JobChange(ChangeKind.MISSING, now.service, now.profile, now.job_id, self._seen.get(key), now,
                                   now.error or f"{now.service} job {now.job_id} was not found on the service")
            if change is not None:
                changes.append(change)
            self._seen[key] = now
        if self.only is not None:
            # Jobs asked for that are already finished still count as followed (for exit codes and tables).
            for key in self.only:
                if key not in self._seen and key not in polled:
                    rec = self.registry.get(*key)
                    if rec is not None:
                        self._seen[key] = rec

    def _client(self, service: str, profile: str, endpoint: str = "") -> JobService:
        client = self._clients.get((service, profile, endpoint))
        if client is None:
            from .clients import client_at

            client = client_at(service, profile, endpoint, self.clients)
            self._clients[(service, profile, endpoint)] = client
        return client

    def _poll_group(self, service: str, profile: str, members: List[JobRecord], changes: List[JobChange],
                    endpoint: str = "") -> bool:
        ids = [r.job_id for r in members]
        try:
            current: Dict[str, Job] = self._client(service, profile, endpoint).jobs_by_id(ids)
        except Exception as exc:  # a watcher in a DCC thread must outlive any one failing service
            where = f"{service} (profile '{profile}')" if profile else service
            text = str(exc) if isinstance(exc, TetherError) else redact(f"{type(exc).__name__}: {exc}")
            changes.append(JobChange(ChangeKind.ERROR, service, profile, None, message=f"{where}: {text}", error=exc))
            for rec in members:
                self._seen.setdefault(rec.key, rec)
            return False
        answered = [job for job_id, job in current.items() if job_id in ids]
        # Only what moved is written: a job the service (or the agent, whose view a subscriber reads) reports as the
        # registry already holds it costs no write, however many watchers follow it.
        held = {r.job_id: r for r in members}
        written = {after.job_id: (before_db, after) for before_db, after in
                   self.registry.update_many([job for job in answered if not _same(held[job.id], job)], profile)}
        for job in answered:
            before_db, after = written.get(job.id, (held[job.id], held[job.id]))
            before = self._seen.get(after.key, before_db)
            change = diff(before, after)
            if change is not None:
                changes.append(dataclasses.replace(change, job=job))
            self._seen[after.key] = after
        for rec in members:
            if rec.job_id in current:
                continue
            message = (f"{service} job {rec.job_id} was not found on the service (deleted there?); "
                       f"`tether jobs forget {rec.job_id}` removes it from the registry")
            gone = self.registry.mark_missing(service, rec.job_id, message) or rec
            changes.append(JobChange(ChangeKind.MISSING, service, profile, rec.job_id, self._seen.get(rec.key, rec),
                                     gone, message))
            self._seen[rec.key] = gone
        return True

    # --- the one loop ---------------------------------------------------------------------------------------
    def follow(
        self,
        until_done: bool = True,
        cancelled: Callable[[], bool] = lambda: False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Iterator[List[JobChange]]:
        """Poll, yield each cycle's changes (maybe none), wait :meth:`next_delay`, again; ends when every followed
        job finished (``until_done``), or ``cancelled()``. ``clock.sleep`` may be an ``Event.wait`` so a stop ends
        the wait at once. The command's watch, the DCCs' threads and :meth:`run` all follow jobs through this."""
        while not cancelled():
            yield self.poll_once()
            if (until_done and self.done) or cancelled():
                return
            clock.sleep(self.next_delay())

    def run(
        self,
        on_changes: Callable[[List[JobChange]], None],
        stop: Optional[threading.Event] = None,
        until_done: bool = True,
    ) -> None:
        """Poll until every followed job finished (``until_done``) or ``stop`` is set. For a worker thread."""
        stop = stop or threading.Event()
        for changes in self.follow(until_done, stop.is_set, Clock(sleep=stop.wait)):
            if changes:
                on_changes(changes)

    def close(self) -> None:
        """Close the clients this watcher made (not the caller's, with ``shared_clients``)."""
        for (_, _, endpoint), client in self._clients.items():
            if endpoint or not self.shared_clients:
                client.close()
        self._clients.clear()


__all__ = ["ChangeKind", "ClientFactory", "JobChange", "Watcher", "diff"]
