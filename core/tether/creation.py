"""No orphan, no duplicate: a job create whose reply was lost or unreadable.

Every service's create carries a client marker the service keeps with the job (where, per service, is
:attr:`tether.spec.ServiceSpec.create_marker`: a uuid in the job's metadata or environment, or the freshly uploaded
video only this submission uses, shown by :func:`made_by_this_upload` not to be an earlier upload that a
deduplicating server handed back). When the reply to the create is lost (the connection dropped after the request
may have reached the service, or a gateway answered 502/503/504) or cannot be read, :func:`create_once` looks for
the job by that marker in the service's own list instead of guessing:

- found: that job is the answer, as if the reply had arrived;
- not found after a lost reply: the service did not make it, so the create is sent again (``resend`` times at most);
- not found after an unreadable reply (the service answered 2xx: it made the job) or when no resend is left:
  :class:`UnconfirmedJob`, which the submit modules record in the job registry as ``unconfirmed-<marker>``
  (:func:`recording_unconfirmed`) and whose message says how to find and adopt the real one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar

import httpx

from .errors import ProtocolError, ServiceError
from .spec import spec_for

if TYPE_CHECKING:
    from .handoff import Steps
    from .http import BaseClient
    from .jobs import Job
    from .registry import JobRegistry

T = TypeVar("T")
GATEWAY_STATUSES = (502, 503, 504)
UNCONFIRMED_PREFIX = "unconfirmed-"


class UnconfirmedJob(ServiceError):
    """A create that may have made a job which the service's list does not show (yet)."""

    def __init__(self, message: str, *, service: str, marker: str) -> None:
        super().__init__(message, service=service)
        self.marker = marker

    @property
    def record_id(self) -> str:
        """The id the job registry keeps it under until it is adopted."""
        return f"{UNCONFIRMED_PREFIX}{self.marker}"


def made_by_this_upload(created: Optional[datetime], response: httpx.Response, started: float,
                        slack: float = 2.0) -> bool:
    """Whether an upload's reply names a file this upload made, so that a job found on it after a lost create reply
    can only be this submission's. A server that deduplicates uploads hands back the file of an earlier upload of
    the same bytes, whose older jobs must not pass for the new one: the file's creation time must not be earlier
    than this upload's start, both on the server's clock (the reply's ``Date`` less the time the upload took, with
    ``slack`` for Date's whole seconds). Without either time it cannot be shown, so it counts as not made here
    (a lost create reply on it is then unconfirmed, never adopted)."""
    date = response.headers.get("date")
    if created is None or not date:
        return False
    try:
        now = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return False
    if now.tzinfo is None or created.tzinfo is None:
        return False
    took = time.monotonic() - started
    return created >= now - timedelta(seconds=took + slack)


class FreshUploads:
    """The videos a client's uploads made that no job has used yet, for the services whose create carries no
    free-form field (TensorPix, Clipzy): the video it names is its marker, but only a video this submission's upload
    made (:func:`made_by_this_upload`) is its alone, so only then is a job whose create reply was lost looked up by
    it; otherwise the create is unconfirmed."""

    LOOKUP = 200  # the newest jobs searched for the one a lost create reply would have named

    def __init__(self) -> None:
        self._videos: Set[str] = set()

    def note(self, video_id: Any, created: Optional[datetime], response: httpx.Response, started: float) -> None:
        """An upload's reply: its video is kept when the upload made it (not a video handed back for its bytes)."""
        if made_by_this_upload(created, response, started):
            self._videos.add(str(video_id))

    def own(self, video_id: Any) -> None:
        """A fresh upload of this submission made by an earlier process (a resumed hand-off), in no job yet."""
        self._videos.add(str(video_id))

    def __contains__(self, video_id: object) -> bool:
        return str(video_id) in self._videos

    def create(self, client: BaseClient, video_id: Any, send: Callable[[], T], jobs: Callable[[], Iterable[T]],
               marker_of: Callable[[T], Optional[str]]) -> T:
        """:func:`create_once` marked by ``video_id``: looked up among the newest of ``jobs()`` (by
        ``marker_of(job)``) only when this client's upload made the video; a create uses it up."""
        marker = str(video_id)
        own = marker in self._videos
        self._videos.discard(marker)
        find = (lambda: next((job for job in islice(jobs(), self.LOOKUP) if marker_of(job) == marker), None)
                ) if own else None
        return create_once(client, marker, send, find)


class MarkedByVideo:
    """What a client whose creates are marked by their video (TensorPix, Clipzy) tells its submit module."""

    _fresh: FreshUploads

    def fresh(self, video_id: Any) -> bool:
        """Whether this client's upload made ``video_id`` (not a video the server handed back for the same bytes)."""
        return video_id in self._fresh

    def own_upload(self, video_id: Any) -> None:
        """A fresh upload of this submission made by an earlier process (a resumed hand-off) and, as just looked up,
        in no job: a lost create reply is then looked for by it, as for an upload of this client's."""
        self._fresh.own(video_id)

    def video_once(self, steps: Steps, upload: Callable[[], Any]) -> Tuple[Any, Optional[Job]]:
        """The submission's video, ``upload()``-ed once (the step ``video`` of ``steps``), and the job an attempt that
        was cut off after it may have made (:func:`tether.handoff.made_before`, found by the video). It is looked
        for only when that upload made the video: a video the server handed back for the same bytes may carry an
        older job, so then the create goes, unconfirmed if its reply is lost. Not found, the video is this
        submission's own, as an upload of this process's is."""
        from .handoff import made_before

        def run() -> List[Any]:
            video_id = upload()
            return [video_id, self.fresh(video_id)]

        video_id, fresh = steps.once("video", run)
        if not (steps.resumed("video") and fresh):
            return video_id, None
        earlier = made_before(self, str(video_id))
        if earlier is None:
            self.own_upload(video_id)
        return video_id, earlier


def reply_lost(exc: ServiceError) -> bool:
    """The request may have reached the service but its reply never came back whole."""
    return exc.maybe_sent or exc.status in GATEWAY_STATUSES


def create_once(client: BaseClient, marker: str, send: Callable[[], T], find: Optional[Callable[[], Optional[T]]],
                *, resend: int = 1, lookups: int = 3) -> T:
    """``send()`` the create through ``client``; when its reply is lost or unreadable, ``find()`` the job by
    ``marker`` (a lookup that fails is tried ``lookups`` times); send again only when the service surely made none.
    Between tries it waits as the client's retry policy says; ``client.abort()`` ends the wait, and nothing is sent
    again after it (:class:`~tether.errors.CancelledByUser` when the list showed no job; unconfirmed when a lookup
    was cut short). ``find`` is None when the
    marker is not this create's alone (a video an earlier job used): nothing is looked up or sent again, and the
    create is unconfirmed."""
    service, mark = client.service, client.aborts
    for attempt in range(1, resend + 2):
        try:
            return send()
        except ProtocolError as exc:  # a 2xx the client cannot read: the job was made
            cause: ServiceError = exc
            made = True
        except ServiceError as exc:
            if not reply_lost(exc):
                raise
            cause, made = exc, False
        if find is None:
            raise _unconfirmed(service, marker, cause, "its marker is not its own (an earlier job used it too)"
                               ) from cause
        found, looked = _look(client, mark, find, lookups)
        if found is not None:
            return found
        if made or not looked or attempt > resend:
            why = "its job list does not show it" if looked else "its job list could not be read either"
            raise _unconfirmed(service, marker, cause, why) from cause
        client.pause(client.retry.delay(attempt, None), mark)
        client.cancelled(mark, "the job create", "its list showed no job, so none was made")
    raise AssertionError("unreachable")  # pragma: no cover


def _look(client: BaseClient, mark: int, find: Callable[[], Optional[T]], lookups: int
          ) -> tuple[Optional[T], bool]:
    """(the job or None, whether the list could be read at all)."""
    for attempt in range(1, lookups + 1):
        try:
            return find(), True
        except ServiceError:
            if attempt < lookups:
                client.pause(client.retry.delay(attempt, None), mark)
            if client.aborts != mark:
                break
    return None, False


def _unconfirmed(service: str, marker: str, cause: ServiceError, why: str) -> UnconfirmedJob:
    spec = spec_for(service)
    return UnconfirmedJob(
        f"{service}: the reply to the job create was lost or unreadable ({cause}), and {why}: the job may or may "
        f"not exist. Recorded as unconfirmed ({UNCONFIRMED_PREFIX}{marker}) instead of sending it again; "
        f"`tether {service} jobs --remote` lists {spec.title}'s jobs (this one has {spec.create_marker} {marker}) "
        f"and `tether jobs adopt {service} JOB_ID` records the right one", service=service, marker=marker)


def create_recorded(client: Any, registry: Optional[JobRegistry], create: Callable[[], T],
                    job_id: Callable[[T], Any], *, title: str, source: Optional[str], output_dir: Any = None,
                    extra: Optional[Dict[str, Any]] = None, earlier: Optional[Job] = None,
                    reply: Callable[[T], Dict[str, Any]] = lambda job: {}) -> T:
    """Every submit's last step: the vendor's job, either ``earlier``'s (the one a cut-off attempt made, see
    :func:`tether.handoff.made_before`) or ``create()``'s (an :class:`UnconfirmedJob` kept in ``registry`` as such),
    recorded in ``registry`` under ``job_id(job)`` for ``client``'s service and profile. ``reply(job)``: record
    fields the service's answer gives (its state, its own title), over those given here."""
    fields: Dict[str, Any] = {"profile": client.profile, "title": title, "source": source, "output_dir": output_dir,
                              "extra": extra}
    job = earlier.vendor if earlier is not None else None
    if job is None:
        with recording_unconfirmed(registry, client.service, **fields):
            job = create()
    if registry is not None:
        registry.record(service=client.service, job_id=str(job_id(job)), **{**fields, **reply(job)})
    return job


@contextmanager
def recording_unconfirmed(registry: Optional[JobRegistry], service: str, *, profile: str, title: str,
                          source: Optional[str], output_dir: Any = None,
                          extra: Optional[Dict[str, Any]] = None) -> Iterator[None]:
    """Around a submit's create: an :class:`UnconfirmedJob` is kept in ``registry`` (with what the submit would have
    recorded, never polled: it has no id the service knows) before it propagates."""
    try:
        yield
    except UnconfirmedJob as exc:
        if registry is not None:
            from .jobs import JobState

            registry.record(service=service, job_id=exc.record_id, profile=profile, title=title, source=source,
                            output_dir=output_dir, state=JobState.UNKNOWN, raw_state="unconfirmed", error=str(exc),
                            extra={**(extra or {}), "unconfirmed": True, "marker": exc.marker})
        raise


__all__ = ["UNCONFIRMED_PREFIX", "FreshUploads", "MarkedByVideo", "UnconfirmedJob", "create_once", "create_recorded",
           "made_by_this_upload", "recording_unconfirmed", "reply_lost"]
