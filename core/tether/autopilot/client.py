"""Client for Slapshot Autopilot (seed 000): jobs, inferences, quota, presigned uploads and results, typed.

Auth is the ``x-api-key`` header on every call to the API, and never on a presigned URL (those go to storage, which
must not see the key). A job has no single status: its state is derived from the counters (``total``,
``total_pending``, ``total_running``, ``total_completed``, ``total_failed``, ``total_cancelled``), and a job where some
inferences failed is reported as FAILED with "2 of 3 inferences failed: ..." even though the others produced files
(``counts["partial"]`` is 1 then, and the completed outputs can still be fetched).

``create_job`` is never blindly repeated: each submission carries ``metadata.tether_submission`` (a uuid), and when
its reply is lost or unreadable the client looks the job up by that metadata (:mod:`tether.creation`), so a flaky
network makes neither a duplicate nor an orphan.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from ..creation import create_once
from ..errors import InputError, NotFound, ServiceError
from ..http import BaseClient, HeaderAuth, RetryPolicy
from ..jobs import Job, JobOutput, JobState, jobs_by_id_from_pages, map_state, walk_pages
from ..progress import Progress
from ..spec import SPECS
from ..transfer import put_file, upload_source
from .models import (
    EXPORT_TYPES,
    STATES,
    AutopilotJob,
    Inference,
    InferencePage,
    JobCreate,
    JobPage,
    Quota,
    ResultLink,
    UploadTicket,
)
from .results import ResultFiles, classify, unpack_into

SERVICE = "autopilot"
MARKER_KEY = "tether_submission"  # in the job's metadata: tether.spec's create_marker
LOCAL_API_KEY = SPECS[SERVICE].local_key or ""  # the local stand-in's fixed key
ASSET_TYPES = ("video", "mask")
CHUNK = 1024 * 1024



def describe_failures(aj: AutopilotJob) -> Optional[str]:
    """'2 of 3 inferences failed: tracking: needs 2 frames; ...' or None when nothing failed or was cancelled."""
    parts: List[str] = []
    if aj.total_failed:
        reasons = [f"{i.type or 'inference'} {i.id}: {i.error or 'no reason given'}" for i in aj.inferences
                   if map_state(i.status, STATES) is JobState.FAILED]
        text = f"{aj.total_failed} of {aj.total} inferences failed"
        parts.append(f"{text}: {'; '.join(reasons)}" if reasons else text)
    if aj.total_cancelled and aj.total_cancelled < aj.total:
        parts.append(f"{aj.total_cancelled} of {aj.total} inferences cancelled")
    return "; ".join(parts) or None


def derive_state(aj: AutopilotJob) -> JobState:
    """The job's state from its counters (the API reports no single status)."""
    if aj.total <= 0:
        return map_state(aj.status, STATES) if aj.status else JobState.QUEUED
    if aj.total_pending or aj.total_running:
        started = aj.total_running + aj.total_completed + aj.total_failed + aj.total_cancelled
        return JobState.RUNNING if started else JobState.QUEUED
    if aj.total_failed:
        return JobState.FAILED
    if aj.total_cancelled:
        return JobState.CANCELLED
    if aj.total_completed >= aj.total:
        return JobState.COMPLETED
    return JobState.UNKNOWN


def to_job(aj: AutopilotJob) -> Job:
    state = derive_state(aj)
    done = aj.total_completed + aj.total_failed + aj.total_cancelled
    progress = aj.percent_complete or (100.0 * done / aj.total if aj.total else 0.0)
    if state.finished:
        progress = 100.0
    raw = aj.status or (f"{aj.total_completed}/{aj.total} completed" if aj.total else "no inferences yet")
    outputs = [JobOutput(name=export, kind=kind) for kind, export in expected_exports(aj)]
    title = str(aj.metadata.get("shot") or aj.metadata.get("title") or aj.metadata.get("source") or "")
    return Job(
        service=SERVICE, id=aj.id, title=title, state=state, raw_state=raw, progress=progress,
        created_at=aj.created_at, updated_at=aj.updated_at, outputs=outputs, error=describe_failures(aj),
        counts={
            "tasks": aj.total, "pending": aj.total_pending, "running": aj.total_running,
            "completed": aj.total_completed, "failed": aj.total_failed, "cancelled": aj.total_cancelled,
            "partial": int(bool(aj.total_failed or aj.total_cancelled) and aj.total_completed > 0),
        },
        vendor=aj,
    )


_KIND = {"roto": "matte", "tracking": "camera", "depth_map": "depth", "smart_vectors": "vectors"}


def expected_exports(aj: AutopilotJob) -> List[tuple[str, str]]:
    """(kind, export_type) the job's completed inferences should offer; every known one if the reply lists none."""
    found: List[tuple[str, str]] = []
    asked = aj.metadata.get("export_types")
    asked = {str(k): str(v) for k, v in asked.items()} if isinstance(asked, dict) else {}
    inferences = aj.inferences
    if not inferences:
        return [(_KIND[svc], asked.get(svc, ex[0])) for svc, ex in EXPORT_TYPES.items()]
    for inf in inferences:
        if map_state(inf.status, STATES) is not JobState.COMPLETED:
            continue
        default = [asked[inf.type]] if inf.type in asked else EXPORT_TYPES.get(inf.type, [])[:1]
        exports = inf.export_types or default
        for export in exports:
            pair = (_KIND.get(inf.type, inf.type), export)
            if pair not in found:
                found.append(pair)
    return found


def safe_name(url: str, fallback: str) -> str:
    """A file name from a URL's last path segment that cannot climb out of a folder."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name or fallback


class PresignedUploads:
    """The seam for uploads. The known route is the ComfyUI node's (``/api/comfyui/assets/upload``); when Slapshot
    documents another, a subclass changes ``ticket`` and nothing else moves."""

    route = "/api/comfyui/assets/upload"

    def ticket(self, client: AutopilotClient, file_name: str, asset_type: str, upload_id: str) -> UploadTicket:
        # asking again for the same upload_id only signs another URL: safe to retry
        body = client.json("GET", self.route, params={"upload_id": upload_id, "asset_type": asset_type,
                                                      "file_name": file_name})
        return client.parse(UploadTicket, body, f"GET {self.route}")

    def put(self, client: AutopilotClient, ticket: UploadTicket, path: Path,
            progress: Optional[Progress] = None) -> None:
        put_file(client.storage, ticket.upload_url, path, progress, CHUNK)


@dataclass
class ResultDownload:
    export_type: str
    path: Path


class AutopilotClient(BaseClient, service=SERVICE):
    """Typed access to Autopilot. Implements :class:`tether.jobs.JobService`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Optional[str] = None,
        profile: str = "local",
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
        uploads: Optional[PresignedUploads] = None,
    ) -> None:
        super().__init__(service=SERVICE, base_url=base_url, timeout=timeout,
                         retry=retry or RetryPolicy.for_service(SERVICE),
                         auth_hint=SPECS[SERVICE].login_hint(profile))
        self.profile = profile
        self.auth = HeaderAuth("x-api-key", api_key) if api_key else None
        self.uploads = uploads or PresignedUploads()
        # presigned URLs (storage): same retries and errors, no API key
        self.storage = self.storage_client(auth_hint="the presigned URL was refused: it may have expired; try again")



    # --- jobs -----------------------------------------------------------------------------------------------
    @staticmethod
    def _filters(service: Optional[str], status: Optional[str], metadata: Optional[Dict[str, Any]],
                 page: int) -> Dict[str, Any]:
        import json

        params: Dict[str, Any] = {"page": page}
        if service:
            params["service"] = service
        if status:
            params["status"] = status
        if metadata:
            params["metadata"] = json.dumps(metadata, separators=(",", ":"), sort_keys=True)
        return params

    def list_jobs(self, *, service: Optional[str] = None, status: Optional[str] = None,
                  metadata: Optional[Dict[str, Any]] = None, page: int = 1) -> JobPage:
        body = self.json("GET", "/api/jobs", params=self._filters(service, status, metadata, page))
        return self.parse_page(JobPage, body, "GET /api/jobs", page=page)

    def iter_jobs(self, **filters: Any) -> Iterator[AutopilotJob]:
        def fetch(page: int) -> Tuple[List[AutopilotJob], bool]:
            result = self.list_jobs(page=page, **filters)
            return result.items, result.has_more(len(result.items))

        return walk_pages(fetch, lambda job: str(job.id))

    def get_autopilot_job(self, job_id: str) -> AutopilotJob:
        return self.parse(AutopilotJob, self.json("GET", f"/api/jobs/{job_id}"), "GET /api/jobs/{id}")

    def get_job(self, job_id: str) -> Job:
        return to_job(self.get_autopilot_job(job_id))

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        """List pages until every wanted job is seen; ask directly for those the list did not show."""
        return jobs_by_id_from_pages(job_ids, self.remote_jobs, self.get_job, list_from=3)

    def create_job(self, payload: JobCreate) -> AutopilotJob:
        """Create the job once: a lost or unreadable reply is followed by a look for it by its submission marker
        (:mod:`tether.creation`), and it is sent again only when the service made none."""
        marker = str(payload.metadata.get(MARKER_KEY) or uuid.uuid4())
        payload = payload.model_copy(update={"metadata": {**payload.metadata, MARKER_KEY: marker}})
        body = payload.payload()
        return create_once(self, marker,
                           lambda: self.parse(AutopilotJob, self.json("POST", "/api/jobs", json=body),
                                              "POST /api/jobs"),
                           lambda: self._find_created(marker))

    def _find_created(self, marker: str) -> Optional[AutopilotJob]:
        # filtered by the service; checked here too, as a service that ignores the filter lists every job
        found = self.list_jobs(metadata={MARKER_KEY: marker}).items
        return next((job for job in found if str(job.metadata.get(MARKER_KEY)) == marker), None)

    def remote_jobs(self) -> Iterator[Job]:
        """The service's own list of this key's jobs."""
        return (to_job(aj) for aj in self.iter_jobs())

    def marker_of(self, job: Job) -> Optional[str]:
        meta = getattr(job.vendor, "metadata", None)
        return str(meta[MARKER_KEY]) if isinstance(meta, dict) and meta.get(MARKER_KEY) else None

    def cancel_job(self, job_id: str) -> None:
        self.cancel(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel every inference of a job. False when the service no longer knows it (404: already gone)."""
        response = self.request("DELETE", f"/api/jobs/{job_id}", expect=(404,))
        return response.status_code != 404

    # --- inferences -----------------------------------------------------------------------------------------
    def list_inferences(self, *, service: Optional[str] = None, status: Optional[str] = None,
                        metadata: Optional[Dict[str, Any]] = None, page: int = 1) -> InferencePage:
        body = self.json("GET", "/api/inferences", params=self._filters(service, status, metadata, page))
        return self.parse_page(InferencePage, body, "GET /api/inferences", page=page)

    def get_inference(self, inference_id: str) -> Inference:
        return self.parse(Inference, self.json("GET", f"/api/inferences/{inference_id}"), "GET /api/inferences/{id}")

    def cancel_inference(self, inference_id: str) -> bool:
        response = self.request("DELETE", f"/api/inferences/{inference_id}", expect=(404,))
        return response.status_code != 404

    # --- quota ----------------------------------------------------------------------------------------------
    def quota(self) -> Quota:
        return self.parse(Quota, self.json("GET", "/api/user/limit"), "GET /api/user/limit")

    # --- uploads --------------------------------------------------------------------------------------------
    def upload(self, path: Path, *, asset_type: str = "video", file_name: Optional[str] = None,
               progress: Optional[Progress] = None) -> str:
        """Upload one file through a presigned URL, streamed from disk; returns the ``s3_key`` for ``source_path``."""
        if asset_type not in ASSET_TYPES:
            raise InputError(f"asset_type must be one of {', '.join(ASSET_TYPES)}, not {asset_type!r}")
        path = upload_source(path)
        ticket = self.uploads.ticket(self, file_name or path.name, asset_type, str(uuid.uuid4()))
        self.uploads.put(self, ticket, path, progress)
        return ticket.s3_key

    # --- results --------------------------------------------------------------------------------------------
    def result_link(self, job_id: str, export_type: str) -> str:
        body = self.json("GET", f"/api/comfyui/{job_id}/result", params={"export_type": export_type.lower()})
        link = self.parse(ResultLink, body if isinstance(body, dict) else {}, "GET /api/comfyui/{id}/result").link
        if not link:
            keys = ", ".join(sorted(body)) if isinstance(body, dict) else type(body).__name__
            raise ServiceError(f"autopilot: the result of job {job_id} ({export_type}) names no download link "
                               f"(expected download_url, url or presigned_url; got {keys})", service=SERVICE)
        return link

    def download_result(self, job_id: str, export_type: str, dest: Path,
                        progress: Optional[Progress] = None) -> Path:
        """Download one export into ``dest`` through :func:`tether.transfer.download`: a temporary name, resume with
        Range after a dropped connection, size checked, then renamed."""
        from ..transfer import download

        link = self.result_link(job_id, export_type)
        client = self if not urlsplit(link).scheme else self.storage
        return download(client, link, dest, safe_name(link, f"{export_type}.bin"), progress=progress)

    def fetch_results(self, job_id: str, dest: Path, export_types: Optional[Iterable[str]] = None,
                      progress: Optional[Progress] = None) -> ResultFiles:
        """Download and unpack a job's results into ``dest/<export_type>/`` and classify the files.

        This is the hook ``tether autopilot import`` and the Nuke plug-in build on. ``ResultFiles.first_frame`` is
        the plate frame of output frame 1 when the job was submitted by Tether (``metadata.first_frame``).
        """
        aj = self.get_autopilot_job(job_id)
        state = derive_state(aj)
        if not state.finished:
            raise InputError(f"autopilot job {job_id} is {state.value} "
                             f"({aj.total_completed}/{aj.total} inferences done): wait for it to finish")
        wanted = list(export_types) if export_types else [export for _, export in expected_exports(aj)]
        out = ResultFiles(root=dest)
        for export in wanted:
            folder = dest / export
            # beside the folder, not in it: a failed or cancelled download stays for the next fetch to resume
            staging = dest / f".{export}.download"
            try:
                download = self.download_result(job_id, export, staging, progress)
            except NotFound:
                if export_types:
                    raise
                continue  # listed when the reply names no inferences: this job simply has none of that kind
            try:
                files = unpack_into(download, folder)
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # a refused archive is not worth resuming
            part = classify(files, folder, export)
            part.exports[export] = folder
            out.merge(part)
        first = aj.metadata.get("first_frame")
        out.first_frame = int(first) if isinstance(first, (int, str)) and str(first).lstrip("-").isdigit() else None
        return out

    def fetch_outputs(self, job_id: str, dest: Path,
                      progress: Optional[Progress] = None) -> List[Path]:
        result = self.fetch_results(job_id, dest, progress=progress)
        return sorted(p for p in dest.rglob("*") if p.is_file()) if result.exports else []


__all__ = ["LOCAL_API_KEY", "AutopilotClient", "PresignedUploads", "derive_state", "describe_failures",
           "safe_name", "to_job"]
