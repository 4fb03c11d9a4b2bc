"""The one job view every service maps onto.

Each client turns its vendor's reply into a :class:`Job`; the vendor's own model is kept beside it in ``vendor``
so nothing the service said is lost. A vendor state we do not know is never guessed: it becomes
``JobState.UNKNOWN`` and ``raw_state`` carries the vendor's value, shown to the user as it is.
"""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Set, Tuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .progress import Progress


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class JobOutput(BaseModel):
    """One file (or archive) a job produced."""

    model_config = ConfigDict(extra="allow")

    name: str
    url: Optional[str] = None
    size: Optional[int] = None
    md5: Optional[str] = None
    kind: Optional[str] = None  # e.g. "frame", "matte", "camera", "depth", "video", "fbx"


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str
    id: str
    title: str = ""
    state: JobState
    raw_state: str = Field("", description="the vendor's own state value, verbatim")
    progress: float = Field(0.0, ge=0.0, le=100.0)
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    outputs: List[JobOutput] = Field(default_factory=list)
    error: Optional[str] = None
    # e.g. {"tasks": 12, "completed": 4, "running": 2, "failed": 0, "held": 6}
    counts: Dict[str, int] = Field(default_factory=dict)
    vendor: Optional[Any] = Field(None, description="the vendor's reply, as its own pydantic model", exclude=True)

    @field_validator("progress", mode="before")
    @classmethod
    def _clamp(cls, value: Any) -> float:
        try:
            number = float(value or 0.0)
        except (TypeError, ValueError):
            return 0.0
        return min(100.0, max(0.0, number))

    @property
    def state_label(self) -> str:
        """What to show a person: the normalised state, or the vendor's own value when we do not know it."""
        if self.state is JobState.UNKNOWN:
            return f"unknown ({self.raw_state})" if self.raw_state else "unknown"
        return self.state.value


def map_state(raw: Any, table: Dict[str, JobState]) -> JobState:
    """Look a vendor state up loosely: case, spaces, dashes and underscores do not matter."""
    key = str(raw).strip().lower().replace(" ", "_").replace("-", "_")
    return table.get(key, JobState.UNKNOWN)


class JobService(Protocol):
    """What the job registry and `tether jobs` need from any service client."""

    service: str

    def get_job(self, job_id: str) -> Job: ...

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        """The current view of many jobs, with as few requests as the API allows (list pages, not one GET each)."""
        ...

    def remote_jobs(self) -> Iterator[Job]:
        """The service's own list of this account's jobs (not only those recorded here), as its pages come."""
        ...

    def marker_of(self, job: Job) -> Optional[str]:
        """The client marker its create carried (:attr:`tether.spec.ServiceSpec.create_marker`), when it shows."""
        ...

    def cancel_job(self, job_id: str) -> None: ...

    def fetch_outputs(
        self, job_id: str, dest: Path, progress: Optional[Progress] = None
    ) -> List[Path]:
        """Download the job's outputs into ``dest``; ``progress(done_bytes, total_bytes)`` returns False to stop."""
        ...

    def abort(self) -> None:
        """End the requests in flight now, from any thread (a Cancel, a closing panel)."""
        ...

    def close(self) -> None:
        """Release the connections; whoever made the client closes it."""
        ...


T = TypeVar("T")


def walk_pages(fetch: Callable[[int], Tuple[Sequence[T], bool]], key: Callable[[T], str]) -> Iterator[T]:
    """Every item of a numbered-page list: ``fetch(page)`` gives a page's items and whether the server says more
    follow. The walk also ends on a page that brings no id not seen before, so a server that ignores the paging
    parameters (and sends its whole list for every page) is read once, not forever."""
    seen: Set[str] = set()
    page = 1
    while True:
        items, more = fetch(page)
        fresh = [item for item in items if key(item) not in seen]
        yield from fresh
        if not fresh or not more:
            return
        seen.update(key(item) for item in fresh)
        page += 1


def jobs_by_id_from_pages(
    job_ids: Iterable[str], listed: Callable[[], Iterable[Job]], get: Callable[[str], Job], *, list_from: int = 1,
) -> Dict[str, Job]:
    """Many jobs with few requests: walk the list pages (``listed``) until every wanted job is seen, then ask
    directly (``get``) for those the list did not show; a 404 there means the job is gone and it is left out.
    With fewer than ``list_from`` jobs wanted, direct requests are cheaper than pages."""
    from .errors import NotFound

    wanted = {str(j) for j in job_ids}
    found: Dict[str, Job] = {}
    if len(wanted) >= list_from:
        for job in listed():
            if job.id in wanted:
                found[job.id] = job
                if len(found) == len(wanted):
                    return found
    for job_id in sorted(wanted - found.keys()):
        try:
            found[job_id] = get(job_id)
        except NotFound:
            continue
    return found
