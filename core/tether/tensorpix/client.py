"""Client for TensorPix (seed 002): video upload and readiness, jobs, ML models, balance, typed.

Auth is ``Authorization: Token <key>`` on every API call, never on a presigned URL (those go to storage). Lists are
Django REST pages, followed through ``next``. A video's ``file`` and a job's ``output_video.file`` are presigned URLs
that expire: a download refused with 403 fetches the job (or video) again for a fresh URL and resumes.

The job state never reads meaning into the integer ``status`` (see :mod:`.models`): ``output_video`` present ->
COMPLETED; ``"IN_QUEUE"`` -> QUEUED; ``finished`` set without an output -> FAILED (the job says it stopped, and made
nothing); anything else -> UNKNOWN with the status shown as itself, e.g. ``unknown (3)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Type, TypeVar

import httpx
from pydantic import BaseModel

from ..creation import FreshUploads, MarkedByVideo
from ..errors import AuthError, BadRequest, InputError, ServiceError, TetherError
from ..http import LIST_KEYS, BaseClient, HeaderAuth, RetryPolicy
from ..jobs import Job, JobOutput, JobState, jobs_by_id_from_pages
from ..poll import Backoff, Clock, PollTimeout, poll_until, polls
from ..progress import Progress
from ..spec import SPECS
from ..transfer import post_file
from .models import IN_QUEUE, Balance, InputVideo, JobCreate, JobFromUrl, MLModel, Page, TensorPixJob

SERVICE = "tensorpix"
# The key of the local TensorPix stand-in (tether_services.tensorpix). Not a secret: it opens nothing but 127.0.0.1.
LOCAL_API_KEY = SPECS[SERVICE].local_key or ""  # the local stand-in's fixed key
PAGE_SIZE = 50
URL_REFRESHES = 3

M = TypeVar("M", bound=BaseModel)


def raw_status(tj: TensorPixJob) -> str:
    return "" if tj.status is None else str(tj.status)


def derive_state(tj: TensorPixJob) -> JobState:
    if tj.output_video is not None:
        return JobState.COMPLETED
    if isinstance(tj.status, str) and tj.status.strip().upper() == IN_QUEUE:
        return JobState.QUEUED
    if tj.finished is not None:
        return JobState.FAILED
    return JobState.UNKNOWN


def to_job(tj: TensorPixJob) -> Job:
    state = derive_state(tj)
    outputs: List[JobOutput] = []
    if tj.output_video is not None:
        out = tj.output_video
        outputs.append(JobOutput(name=out.name or f"tensorpix_{tj.id}.mp4", url=out.file, size=out.size,
                                 kind="video"))
    error = None
    if state is JobState.FAILED:
        error = (f"the job finished without an output video (status {raw_status(tj) or 'none'})"
                 + (f": {tj.description}" if tj.description else ""))
    progress = 100.0 if state is JobState.COMPLETED else (tj.processing_progress or 0.0)
    title = tj.input_video.name if tj.input_video is not None else ""
    return Job(service=SERVICE, id=str(tj.id), title=title, state=state, raw_state=raw_status(tj),
               progress=progress, created_at=tj.started, finished_at=tj.finished, outputs=outputs, error=error,
               vendor=tj)


class TensorPixClient(MarkedByVideo, BaseClient, service=SERVICE):
    """Typed access to TensorPix. Implements :class:`tether.jobs.JobService`."""

    def __init__(self, base_url: str, *, token: Optional[str] = None, profile: str = "local", timeout: float = 30.0,
                 retry: Optional[RetryPolicy] = None) -> None:
        super().__init__(service=SERVICE, base_url=base_url, timeout=timeout,
                         retry=retry or RetryPolicy.for_service(SERVICE),
                         auth_hint=SPECS[SERVICE].login_hint(profile))
        self.profile = profile
        self.auth = HeaderAuth("Authorization", token, prefix="Token") if token else None
        self.storage = self.storage_client(auth_hint="the presigned URL was refused")
        self._fresh = FreshUploads()  # uploads no job has used yet: a lost create is found by its video



    # --- errors ---------------------------------------------------------------------------------------------
    def error_for(self, response: httpx.Response) -> ServiceError:
        error = super().error_for(response)
        text = error.server_message.lower()
        if response.status_code == 400 and ("quota" in text or "storage" in text):
            return BadRequest("tensorpix: the account's storage quota is full, so the upload was refused; delete "
                              "old videos in TensorPix (or upgrade the plan) and send again",
                              service=SERVICE, status=400, server_message=error.server_message,
                              request_id=error.request_id, method=error.method, url=error.url)
        return error

    # --- pagination -----------------------------------------------------------------------------------------
    def page(self, path: str, item: Type[M], *, limit: int = PAGE_SIZE, offset: int = 0,
             params: Optional[Dict[str, Any]] = None) -> Page[M]:
        body = self.json("GET", path, params={**(params or {}), "limit": limit, "offset": offset})
        return self._as_page(body, item, f"GET {path}")

    def _as_page(self, body: Any, item: Type[M], what: str) -> Page[M]:
        """A list reply as a Django REST page. The docs show ``{count, next, previous, results}``; a list under
        another key, or a bare list, is taken too, and ``bounded`` is False when the reply says nothing of more
        pages (the walk then asks for the next offset, see :meth:`iter_pages`)."""
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            return self.parse(Page[item], {**body, "bounded": True}, what)  # type: ignore[valid-type]
        items = self._items(body, what, LIST_KEYS)
        meta = body if isinstance(body, dict) else {}
        count = meta.get("count", meta.get("total"))
        return self.parse(Page[item], {"count": count if isinstance(count, int) else None,  # type: ignore[valid-type]
                                       "next": meta.get("next"), "results": items,
                                       "bounded": "next" in meta}, what)

    def iter_pages(self, path: str, item: Type[M], *, limit: int = PAGE_SIZE) -> Iterator[M]:
        """Every item of a list, page after page: through ``next`` while there is one; where the reply says nothing
        of other pages, at the next offset. The walk ends on a page that brings no item not seen before, so a
        server that ignores ``limit``/``offset`` (its whole list every time) is read once."""
        current = self.page(path, item, limit=limit)
        seen: Set[str] = set()
        while True:
            fresh = [r for r in current.results if str(getattr(r, "id", r)) not in seen]
            yield from fresh
            seen.update(str(getattr(r, "id", r)) for r in fresh)
            if not fresh or (current.count is not None and len(seen) >= current.count):
                return
            if current.next:
                # DRF gives the full URL; httpx keeps an absolute one as is
                current = self._as_page(self.json("GET", current.next), item, "GET next page")
            elif current.bounded:
                return
            else:
                current = self.page(path, item, limit=limit, offset=len(seen))

    # --- models, balance ------------------------------------------------------------------------------------
    def models(self) -> List[MLModel]:
        return list(self.iter_pages("/api/ml-models/", MLModel))

    def balance(self) -> Balance:
        path = "/api/accounts/profile/balance/"
        return self.parse(Balance, self.json("GET", path), f"GET {path}")

    # --- videos ---------------------------------------------------------------------------------------------
    def upload_video(self, path: Path, progress: Optional[Progress] = None) -> InputVideo:
        """``progress(done, total)`` as bytes go; returning False stops the upload (:class:`CancelledByUser`)."""
        started = time.monotonic()
        response = post_file(self, "/api/videos/", Path(path), progress)
        video = self.parse(InputVideo, self.body_of(response, "POST", "/api/videos/"), "POST /api/videos/")
        self._fresh.note(video.id, video.created_at, response, started)
        return video

    def get_video(self, video_id: int) -> InputVideo:
        return self.parse(InputVideo, self.json("GET", f"/api/videos/{video_id}/"), "GET /api/videos/{id}/")

    def wait_ready(self, video_id: int, *, timeout: float = 600.0, interval: float = 0.2,
                   clock: Optional[Clock] = None) -> InputVideo:
        """Poll until the video's ``file`` is set (the service has processed the upload)."""
        try:
            ticks = polls(lambda: self.get_video(video_id), key=lambda video: video.ready,
                          backoff=Backoff(interval, max(interval, 5.0)), timeout=timeout,
                          clock=clock or Clock(sleep=self.pause))
            video = poll_until(ticks, lambda video: video.ready)
        except PollTimeout:
            raise ServiceError(f"tensorpix: video {video_id} was not ready after {timeout:g} s; check it in "
                               "TensorPix, then create the job with its id", service=SERVICE) from None
        assert video is not None  # nothing cancels this loop
        return video

    # --- jobs -----------------------------------------------------------------------------------------------
    def create_job(self, payload: JobCreate) -> TensorPixJob:
        """Create the job once: a lost or unreadable reply is followed by a look for the job of this submission's
        own video (:mod:`tether.creation`), and it is sent again only when TensorPix made none."""
        body = payload.payload()
        return self._fresh.create(self, payload.input_video,
                                  lambda: self.parse(TensorPixJob, self.json("POST", "/api/jobs/", json=body),
                                                     "POST /api/jobs/"), self.iter_jobs, self._marker)

    @staticmethod
    def _marker(tj: Any) -> Optional[str]:
        return str(tj.input_video.id) if isinstance(tj, TensorPixJob) and tj.input_video is not None else None

    def marker_of(self, job: Job) -> Optional[str]:
        return self._marker(job.vendor)

    def remote_jobs(self) -> Iterator[Job]:
        """TensorPix's own list of this account's jobs."""
        return (to_job(tj) for tj in self.iter_jobs())

    def create_job_from_url(self, payload: JobFromUrl) -> TensorPixJob:
        body = self.json("POST", "/api/jobs/from-url/", json=payload.payload())
        return self.parse(TensorPixJob, body, "POST /api/jobs/from-url/")

    def get_tensorpix_job(self, job_id: str) -> TensorPixJob:
        return self.parse(TensorPixJob, self.json("GET", f"/api/jobs/{job_id}/"), "GET /api/jobs/{id}/")

    def get_job(self, job_id: str) -> Job:
        return to_job(self.get_tensorpix_job(job_id))

    def iter_jobs(self, limit: int = PAGE_SIZE) -> Iterator[TensorPixJob]:
        return self.iter_pages("/api/jobs/", TensorPixJob, limit=limit)

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        """List pages until every wanted job is seen; ask directly for those the list did not show."""
        return jobs_by_id_from_pages(job_ids, self.remote_jobs, self.get_job, list_from=3)

    def cancel_job(self, job_id: str) -> None:
        raise InputError(f"TensorPix publishes no way to cancel a job: job {job_id} runs to the end (cancel it in "
                         "the TensorPix web app if it must stop)")

    # --- outputs --------------------------------------------------------------------------------------------
    def download_output(self, job_id: str, dest: Path, progress: Optional[Progress] = None) -> Path:
        """Download the enhanced video into ``dest``; an expired presigned URL is replaced by a fresh one."""
        from ..transfer import download

        for attempt in range(URL_REFRESHES + 1):
            tj = self.get_tensorpix_job(job_id)
            out = tj.output_video
            if out is None:
                job = to_job(tj)
                if job.state is JobState.FAILED:
                    raise InputError(f"tensorpix job {job_id}: {job.error}")
                raise InputError(f"tensorpix job {job_id} has no output video yet ({job.state_label}): "
                                 "wait for it to finish")
            if not out.file:
                raise ServiceError(f"tensorpix: job {job_id}'s output video has no file URL (deleted?)",
                                   service=SERVICE)
            name = out.name or f"tensorpix_{job_id}.mp4"
            try:
                return download(self.storage, out.file, dest, Path(name).name, size=out.size, progress=progress)
            except AuthError:
                if attempt >= URL_REFRESHES:
                    raise
                continue  # the presigned URL expired: ask for the job again to get a fresh one
        raise TetherError("unreachable")  # pragma: no cover

    def fetch_outputs(self, job_id: str, dest: Path,
                      progress: Optional[Progress] = None) -> List[Path]:
        return [self.download_output(job_id, dest, progress)]


__all__ = ["LOCAL_API_KEY", "SERVICE", "TensorPixClient", "derive_state", "raw_status", "to_job"]
