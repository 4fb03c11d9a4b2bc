"""What every service's hand-off to the agent (:mod:`tether.agent`) shares, so each ``run_handoff`` is its own
``submit`` path with persisted steps and not a second copy of it.

- :class:`Steps`: the steps of one submission the service confirmed (an upload's key, a take's id), by name. A step
  already done is not done again. In-process (``submit``) they live in memory; handed off, each is written into the
  agent's queue entry the moment the service confirmed it (``checkpoint``), so an agent killed -9 resumes after it
  and re-sends nothing the service confirmed.
- :func:`made_before`: on a resumed hand-off, the job an earlier attempt may have created (killed between the
  service's reply and the record), found in the service's own list by the create's marker
  (:attr:`tether.spec.ServiceSpec.create_marker`), so a resumed hand-off never makes a second job.
- :func:`agent_progress`: one file's ``progress(done, total)`` as the agent's events, paced by its bandwidth cap.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar

if TYPE_CHECKING:
    from .jobs import Job
    from .progress import Progress
    from .transfer import ProgressCallback, Throttle

DONE_KEY = "done"  # a queue entry's request keeps its confirmed steps here
LOOKUP_JOBS = 200  # the newest jobs searched for one an earlier attempt made
T = TypeVar("T")
Checkpoint = Callable[[Dict[str, Any]], None]


class Steps:
    """Steps a service confirmed, by name; ``checkpoint(done)`` persists them after each new one."""

    def __init__(self, done: Optional[Dict[str, Any]] = None, checkpoint: Optional[Checkpoint] = None) -> None:
        self.done: Dict[str, Any] = dict(done or {})
        self.earlier = frozenset(self.done)
        self.checkpoint = checkpoint

    @classmethod
    def of(cls, request: Dict[str, Any], checkpoint: Optional[Checkpoint] = None) -> Steps:
        """The steps a queued request holds from an earlier attempt."""
        return cls(request.get(DONE_KEY), checkpoint)

    def resumed(self, name: str) -> bool:
        """Whether ``name`` was done by an earlier attempt (so this process did not see the service confirm it)."""
        return name in self.earlier

    def once(self, name: str, run: Callable[[], T]) -> T:
        if name in self.done:
            return self.done[name]  # type: ignore[no-any-return,unused-ignore]
        value = run()
        self.done[name] = value
        if self.checkpoint is not None:
            self.checkpoint(dict(self.done))
        return value


def made_before(client: Any, marker: str, limit: int = LOOKUP_JOBS) -> Optional[Job]:
    """The job carrying ``marker`` among the service's newest ``limit`` (its :class:`~tether.jobs.JobService`
    ``remote_jobs`` and ``marker_of``), or None."""
    return next((job for job in islice(client.remote_jobs(), limit) if client.marker_of(job) == marker), None)


def kept_folder(marker: str) -> Path:
    """A new folder of one hand-off's own under Tether's data folder, for a file made for it (an encoded movie) that
    must outlive the submitting process; its ``run_handoff`` removes it once the job is recorded."""
    from .fileio import private_dir
    from .settings import data_dir

    folder = private_dir(data_dir()) / "handoff" / marker
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def keep_file(path: Path) -> Path:
    """A staged file (a movie encoded into a folder that goes with the submitting block) moved into a hand-off
    folder of its own (:func:`kept_folder`), so it outlives the submitter until the agent has sent it."""
    import shutil
    import uuid

    folder = kept_folder(uuid.uuid4().hex)
    return Path(shutil.move(str(path), str(folder / Path(path).name)))


def release(request: Dict[str, Any]) -> None:
    """Remove the hand-off's own folder (``request["kept"]``), once its job is recorded."""
    import shutil

    if request.get("kept"):
        shutil.rmtree(request["kept"], ignore_errors=True)


def agent_progress(progress: Optional[ProgressCallback], throttle: Optional[Throttle], name: str) -> Optional[Progress]:
    """A client's one-file ``progress(done, total)`` reported as the agent's upload events and paced by its bandwidth
    cap (each block waits for its bytes before it is sent); False from ``progress`` stops the upload."""
    if progress is None and throttle is None:
        return None
    from .transfer import TransferProgress

    sent = [0]

    def on(done: int, total: int) -> Optional[bool]:
        if throttle is not None and done > sent[0]:
            throttle.take(done - sent[0])
        sent[0] = done
        if progress is None:
            return None
        return progress(TransferProgress(phase="upload", file=name, bytes_done=done, bytes_total=total,
                                         files_done=int(done >= total), files_total=1))

    return on


__all__ = ["DONE_KEY", "Checkpoint", "Steps", "agent_progress", "keep_file", "kept_folder", "made_before", "release"]
