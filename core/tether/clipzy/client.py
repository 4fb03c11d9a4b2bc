"""Client for the Clipzy ML Engine (seed 001): style a clip from a template video, typed.

The engine is self-hosted at ``http://{host}/api/v1`` and has no auth of its own; a deployment behind a proxy may
want ``Authorization: Bearer <token>``, sent only when a token is configured. Every reply is the envelope
``{success, message, data}``: ``data`` is unwrapped, and ``{success: false, message, error: {detail, code}}`` becomes
one of the typed errors below, whose message says what to do.

Honest gaps of the vendor API, handled as such:

- there is no cancel route although the ``cancelled`` state exists: :meth:`ClipzyClient.cancel_job` raises
  :class:`CancelNotSupported` instead of pretending;
- ``output_video_url`` may be a ``file://`` URL on the engine host: when that path is readable here (a shared mount,
  or the engine on this machine) the file is copied, otherwise :class:`OutputOnEngineHost` says where it is and what
  to do, rather than failing on an unknown URL scheme;
- ``style_json`` is written beside the downloaded video as ``<video stem>.style.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type, Union
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from ..creation import FreshUploads, MarkedByVideo
from ..errors import (
    AuthError,
    BadRequest,
    Conflict,
    InputError,
    NotFound,
    ProtocolError,
    ServiceError,
    TetherError,
    TransferError,
)
from ..fileio import write_text_atomic
from ..http import BaseClient, HeaderAuth, RetryPolicy, request_id_of
from ..jobs import Job, JobOutput, JobState, jobs_by_id_from_pages, map_state, walk_pages
from ..progress import Progress
from ..transfer import download, post_file
from .models import STATES, ClipzyJob, JobCreate, JobPage, Video

SERVICE = "clipzy"
API_PREFIX = "/api/v1"
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


# --- typed errors, one per envelope code ------------------------------------------------------------------------
ERRORS: Dict[str, Type[ServiceError]] = {}


HINTS = {  # what the user can do about each envelope code: the typed error's message
    "UNSUPPORTED_FORMAT": "the engine cannot read this file: convert it to an H.264 .mp4 or .mov and upload again",
    "FILE_TOO_LARGE": ("the file is over the engine's upload limit: trim the clip or lower its resolution or bitrate "
                       "(or raise the limit on the engine)"),
    "VIDEO_NOT_FOUND": ("the engine does not know that video id: upload the clip (and the template) again; uploads "
                        "may not survive an engine restart"),
    "JOB_NOT_FOUND": ("the engine does not know that job: check the id with `tether clipzy jobs`; jobs may not "
                      "survive an engine restart"),
    "JOB_ALREADY_PROCESSING": ("that video already has a job queued or processing: follow it with `tether clipzy "
                               "status JOB` and submit again once it has finished"),
    "JOB_TIMEOUT": "the engine gave up on the job: try a shorter clip, or raise the engine's job timeout",
}


class EngineError:
    """A typed error for one envelope ``code`` (kept in :data:`ERRORS` under it); its message is its hint
    (:data:`HINTS`)."""

    code: ClassVar[str] = ""
    hint: ClassVar[str] = ""

    def __init_subclass__(cls, *, code: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code, cls.hint = code, HINTS.get(code, "")
        ERRORS[code] = cls  # type: ignore[assignment]  # each subclass is a ServiceError too


class UnsupportedFormat(EngineError, BadRequest, code="UNSUPPORTED_FORMAT"): ...
class FileTooLarge(EngineError, BadRequest, code="FILE_TOO_LARGE"): ...
class VideoNotFound(EngineError, NotFound, code="VIDEO_NOT_FOUND"): ...
class JobNotFound(EngineError, NotFound, code="JOB_NOT_FOUND"): ...
class JobAlreadyProcessing(EngineError, Conflict, code="JOB_ALREADY_PROCESSING"): ...
class JobTimeout(EngineError, ServiceError, code="JOB_TIMEOUT"): ...


class Unauthorized(EngineError, AuthError, code="UNAUTHORIZED"): ...  # the hint is the profile's: where the token goes


class CancelNotSupported(TetherError):
    """Clipzy has no cancel route: nothing was sent."""


class OutputOnEngineHost(TransferError):
    """The output is a ``file://`` path on the engine machine that this machine cannot read."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


# --- helpers ----------------------------------------------------------------------------------------------------
def api_base(url: str) -> str:
    """``http://host`` or ``http://host/api/v1`` -> ``http://host/api/v1``."""
    url = url.rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def parse_job(body: Any) -> ClipzyJob:
    """A job from a reply or a webhook body: the envelope (``data`` holds the job) or the flat form."""
    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    if not isinstance(body, dict):
        raise ValueError(f"a Clipzy job is a JSON object, not {type(body).__name__}")
    if "success" in body and isinstance(body.get("data"), dict):
        data = dict(body["data"])
        if body.get("success") is False and not data.get("error") and isinstance(body.get("error"), dict):
            data["error"] = body["error"]
        body = data
    return ClipzyJob.model_validate(body)


def to_job(cj: ClipzyJob) -> Job:
    state = map_state(cj.status, STATES) if cj.status else JobState.UNKNOWN
    progress = 100.0 if state is JobState.COMPLETED else cj.progress_percent
    outputs = [JobOutput(name=_name_of(cj.output_video_url, f"{cj.job_id}.mp4"), url=cj.output_video_url,
                         kind="video")] if cj.output_video_url else []
    return Job(service=SERVICE, id=cj.job_id, state=state, raw_state=cj.status,
               progress=progress, created_at=cj.created_at, updated_at=cj.updated_at,
               finished_at=cj.completed_at, outputs=outputs, error=cj.error_text, vendor=cj)


def parse_webhook(body: Union[bytes, str, Dict[str, Any]]) -> Job:
    """The engine's webhook body, in either form, as the common :class:`Job` view (no signature to check)."""
    return to_job(parse_job(body))


def stage_text(job: Job) -> str:
    """What to show in a UI: 'processing: applying the style (45%)', or the state and error."""
    cj = job.vendor if isinstance(job.vendor, ClipzyJob) else None
    if job.state is JobState.RUNNING:
        stage = cj.stage_text if cj else ""
        return f"processing: {stage} ({job.progress:.0f}%)" if stage else f"processing ({job.progress:.0f}%)"
    if job.state is JobState.FAILED and job.error:
        return f"failed: {job.error}"
    return job.state_label


def _name_of(url: Optional[str], fallback: str) -> str:
    name = unquote(urlsplit(url or "").path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name or fallback


def local_path_of(file_url: str) -> str:
    """The path of a ``file://`` URL (``file:///data/out.mp4``, ``file://host/share/out.mp4``)."""
    parts = urlsplit(file_url)
    path = unquote(parts.path)
    if parts.netloc and parts.netloc != "localhost":
        return f"//{parts.netloc}{path}"
    if re.match(r"^/[A-Za-z]:/", path):  # file:///C:/out.mp4
        return path[1:]
    return path


@dataclass
class ClipzyResult:
    job: ClipzyJob
    video: Path
    style_json: Optional[Path]


class ClipzyClient(MarkedByVideo, BaseClient, service=SERVICE):
    """Typed access to one Clipzy engine. Implements :class:`tether.jobs.JobService`."""

    def __init__(self, base_url: str, *, token: Optional[str] = None, profile: str = "local",
                 timeout: float = 30.0, retry: Optional[RetryPolicy] = None) -> None:
        hint = (f"the engine (or the proxy in front of it) wants a Bearer token: run `tether login clipzy --profile "
                f"{profile}` or set TETHER_CLIPZY_TOKEN")
        super().__init__(service=SERVICE, base_url=api_base(base_url), timeout=timeout,
                         retry=retry or RetryPolicy.for_service(SERVICE), auth_hint=hint)
        self.profile = profile
        self.auth = HeaderAuth("Authorization", token, prefix="Bearer") if token else None
        # output URLs on another host get the same retries, without our token
        self.storage = self.storage_client("output")
        self._fresh = FreshUploads()  # uploads no job has used yet: a lost create is found by its video


    # --- the envelope ---------------------------------------------------------------------------------------
    def error_for(self, response: httpx.Response) -> ServiceError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        kind = ERRORS.get(code)
        if kind is None:
            return super().error_for(response)
        detail = str(error.get("detail") or "") if isinstance(error, dict) else ""
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
        hint = getattr(kind, "hint", "") or self.auth_hint
        server = "; ".join(p for p in (message, detail) if p) + f" ({code})"
        method = response.request.method
        url = str(response.request.url.copy_with(query=None))
        return kind(f"clipzy: {hint}", service=SERVICE, status=response.status_code, server_message=server,
                    request_id=request_id_of(response), method=method, url=url)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send, unwrap the envelope, return ``data``."""
        return self.unwrap(self.request(method, path, **kwargs), method, path)

    def unwrap(self, response: httpx.Response, method: str, path: str) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise ProtocolError(f"clipzy: {method} {path} answered {response.status_code} with a body that is not "
                                "JSON; is the URL the engine's (http://HOST, the client adds /api/v1)?",
                                service=SERVICE, status=response.status_code, server_message=response.text[:200],
                                request_id=request_id_of(response), method=method, url=str(response.request.url)
                                ) from None
        if isinstance(body, dict) and "success" in body:
            if body.get("success") is False:
                raise self.error_for(response)  # an error envelope under a 2xx status
            return body.get("data")
        return body  # an engine without the envelope: take the body as the data

    # --- health and uploads ---------------------------------------------------------------------------------
    def health(self) -> Dict[str, Any]:
        data = self.call("GET", "/health")
        return data if isinstance(data, dict) else {"status": data}

    def upload(self, path: Union[str, Path], *, template_video_id: Optional[str] = None,
               webhook_url: Optional[str] = None, progress: Optional[Progress] = None) -> Video:
        """``progress(done, total)`` as bytes go; returning False stops the upload (:class:`CancelledByUser`)."""
        form = {k: v for k, v in (("template_video_id", template_video_id), ("webhook_url", webhook_url)) if v}
        started = time.monotonic()
        response = post_file(self, "/videos/upload", Path(path), progress, data=form)
        video = self.parse(Video, self.unwrap(response, "POST", "/videos/upload"), "POST /videos/upload")
        self._fresh.note(video.video_id, video.uploaded_at, response, started)
        return video

    # --- jobs -----------------------------------------------------------------------------------------------
    def create_job(self, video_id: str, template_video_id: Optional[str] = None, *,
                   config: Optional[Dict[str, Any]] = None, webhook_url: Optional[str] = None) -> ClipzyJob:
        """Start the job once: a lost or unreadable reply is followed by a look for the job of this submission's
        own video (:mod:`tether.creation`), and it is sent again only when the engine made none."""
        payload = JobCreate(video_id=video_id, template_video_id=template_video_id, config=config,
                            webhook_url=webhook_url)
        body = payload.payload()
        return self._fresh.create(self, video_id,
                                  lambda: self.parse(ClipzyJob, self.call("POST", "/jobs", json=body), "POST /jobs"),
                                  self.iter_jobs, lambda cj: cj.video_id)

    def marker_of(self, job: Job) -> Optional[str]:
        return job.vendor.video_id if isinstance(job.vendor, ClipzyJob) else None

    def remote_jobs(self) -> Iterator[Job]:
        """The engine's own list of jobs."""
        return (to_job(cj) for cj in self.iter_jobs())

    def style(self, clip: Union[str, Path], template: Union[str, Path], *, config: Optional[Dict[str, Any]] = None,
              webhook_url: Optional[str] = None) -> ClipzyJob:
        """Upload ``clip`` (and ``template`` unless it is a video id the engine has) and start a styling job."""
        template_id = self.template_id(template)
        video = self.upload(clip)
        return self.create_job(video.video_id, template_id, config=config, webhook_url=webhook_url)

    def template_id(self, template: Union[str, Path]) -> str:
        """A template given as a file here is uploaded; anything else is taken as the engine's video id."""
        path = Path(template)
        if path.is_file():
            return self.upload(path).video_id
        text = str(template)
        if "/" in text or "\\" in text or path.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(f"template {text}: no such file (give a video file, or the video id of an upload)")
        return text

    def get_clipzy_job(self, job_id: str) -> ClipzyJob:
        return self.parse(ClipzyJob, self.call("GET", f"/jobs/{job_id}"), "GET /jobs/{id}")

    def get_job(self, job_id: str) -> Job:
        cj = self.get_clipzy_job(job_id)
        if map_state(cj.status, STATES) is JobState.FAILED and cj.error is None:
            # JobResponse carries no error: the reason is only in the result (one more request, failed jobs only)
            with contextlib.suppress(ServiceError):
                cj = self.result(job_id)
        return to_job(cj)

    def result(self, job_id: str) -> ClipzyJob:
        return self.parse(ClipzyJob, self.call("GET", f"/jobs/{job_id}/result"), "GET /jobs/{id}/result")

    def list_jobs(self, page: int = 1, page_size: int = 20) -> JobPage:
        data = self.call("GET", "/jobs", params={"page": page, "page_size": page_size})
        return self.parse_page(JobPage, data, "GET /jobs", page=page, page_size=page_size)

    def iter_jobs(self, page_size: int = 50) -> Iterator[ClipzyJob]:
        def fetch(page: int) -> Tuple[List[ClipzyJob], bool]:
            result = self.list_jobs(page, page_size)
            return result.items, result.has_more()

        return walk_pages(fetch, lambda job: job.job_id)

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        """List pages until every wanted job is seen; ask directly for those the list did not show."""
        return jobs_by_id_from_pages(job_ids, self.remote_jobs, self.get_job, list_from=3)

    def cancel_job(self, job_id: str) -> None:
        raise CancelNotSupported(
            f"Clipzy has no cancel route, so job {job_id} cannot be cancelled from here and nothing was sent; "
            "it will finish or fail on its own (stop it on the engine host if you must)")

    # --- results --------------------------------------------------------------------------------------------
    def fetch_result(self, job_id: str, dest: Union[str, Path], progress: Optional[Progress] = None) -> ClipzyResult:
        """Download the styled video into ``dest`` and write ``style_json`` beside it."""
        cj = self.result(job_id)
        state = map_state(cj.status, STATES)
        if state is not JobState.COMPLETED:
            why = f": {cj.error_text}" if cj.error_text else ""
            if cj.error and cj.error.code == JobTimeout.code:
                why += f"; {JobTimeout.hint}"
            if state.finished:
                raise InputError(f"clipzy job {job_id} is {cj.status or 'unknown'} and has no output{why}")
            raise InputError(f"clipzy job {job_id} is {cj.status or 'unknown'} ({cj.progress_percent:.0f}%): "
                             "wait for it to finish")
        url = cj.output_video_url
        if not url:
            raise ProtocolError(f"clipzy: job {job_id} completed but its result names no output_video_url",
                                service=SERVICE)
        if url.startswith("/"):  # root-relative (``/static/...``): the engine's host, not under /api/v1
            url = urljoin(self.base_url, url)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        name = _name_of(url, f"{job_id}.mp4")
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            video = self._copy_engine_file(job_id, url, dest / name)
        elif scheme in ("http", "https", ""):
            client = self if self._same_origin(url) else self.storage
            video = download(client, url, dest, name, progress=progress)
        else:
            raise TransferError(f"clipzy: job {job_id}'s output URL {url} has the scheme '{scheme}', which Tether "
                                "cannot fetch; download it by hand")
        style_path: Optional[Path] = None
        if cj.style_json is not None:
            style_path = video.with_name(f"{video.stem}.style.json")
            write_text_atomic(style_path, json.dumps(cj.style_json, indent=2, sort_keys=True))
        return ClipzyResult(job=cj, video=video, style_json=style_path)

    def fetch_outputs(self, job_id: str, dest: Path,
                      progress: Optional[Progress] = None) -> List[Path]:
        result = self.fetch_result(job_id, dest, progress)
        return [result.video] + ([result.style_json] if result.style_json else [])

    def _same_origin(self, url: str) -> bool:
        if not urlsplit(url).scheme:
            return True
        mine, theirs = urlsplit(self.base_url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme.lower(), theirs.netloc.lower())

    def _copy_engine_file(self, job_id: str, url: str, target: Path) -> Path:
        path = local_path_of(url)
        source = Path(path)
        if not source.is_file() or not os.access(source, os.R_OK):
            raise OutputOnEngineHost(
                f"clipzy: job {job_id} finished, but the engine gave its output as a file on the engine machine "
                f"({url}), not a download link. The file is at {path} on the engine host, and this machine cannot "
                f"read that path: mount the engine's output folder here at the same path, or copy the file from the "
                f"engine host, or configure the engine to serve outputs over HTTP", path)
        tmp = target.with_name(f".{target.name}.part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return target


__all__ = [
    "ERRORS", "CancelNotSupported", "ClipzyClient", "ClipzyResult", "FileTooLarge", "JobAlreadyProcessing",
    "JobNotFound", "JobTimeout", "OutputOnEngineHost", "Unauthorized", "UnsupportedFormat", "VideoNotFound",
    "api_base", "local_path_of", "parse_job", "parse_webhook", "stage_text", "to_job",
]
