"""The local Clipzy ML Engine: the seed-001 contract over real HTTP, mounted at ``/clipzy``, routes under ``/api/v1``.

Every reply is the envelope: ``{"success": true, "message", "data"}`` or
``{"success": false, "message", "error": {"detail", "code"}}`` with codes ``UNSUPPORTED_FORMAT`` (415),
``FILE_TOO_LARGE`` (413), ``VIDEO_NOT_FOUND`` / ``JOB_NOT_FOUND`` (404), ``JOB_ALREADY_PROCESSING`` (409),
``UNAUTHORIZED`` (401) and ``VALIDATION_ERROR`` (422). ``JOB_TIMEOUT`` is the code of a job's ``error`` when it runs
longer than :attr:`LocalClipzy.job_timeout`.

Routes: ``GET /health``; ``POST /videos/upload`` (multipart ``file``, optional ``template_video_id`` and
``webhook_url``, kept as the video's defaults for its jobs) -> ``{video_id, filename, file_size_bytes, uploaded_at,
metadata{duration_seconds, fps, width, height, resolution, frame_count, codec, has_audio}}`` (read with PyAV);
``GET /videos/{id}``; ``POST /jobs`` ``{video_id, template_video_id, config, webhook_url}`` (201);
``GET /jobs/{id}``; ``GET /jobs/{id}/result`` (JobDetailResponse: ``style_json``, ``output_video_url``, ``error``,
``processing_time_seconds``); ``GET /jobs?page=&page_size=`` -> ``{items, total, page, page_size, pages}`` (the key
is :attr:`LocalClipzy.list_key`; ``None`` answers a bare list: the vendor's key is unknown; :attr:`list_form` switches
to the other shapes the vendor's silence allows, see :meth:`LocalClipzy._page`);
``GET /files/{job_id}/{name}`` (the output). There is no cancel route, as in the vendor's API.

Jobs run on a thread: ``queued`` -> ``processing`` (``current_stage`` video_analysis, style_extraction,
style_application, rendering; ``progress_percent`` rising) -> ``completed`` | ``failed``. The work is the colour
transfer of :mod:`.style`. Knobs the tests set on the object (``local_services.service("clipzy")``): ``token`` (when
set, every route wants ``Authorization: Bearer <token>``, as behind a studio proxy), ``output_urls`` (``"http"``,
``"root"``: a root-relative ``/static/...`` path, as an engine serving its outputs as static files answers, or
``"file"``: a ``file://`` URL on this host, as a self-hosted engine answers), ``webhook_form`` (``"envelope"`` or
``"flat"``), ``list_key``, ``list_form``, ``max_page_size``, ``dedup_uploads``, ``max_upload_bytes``,
``job_timeout``, and ``hold(stage)``/``release()`` to keep a job at a stage so a client can be seen reading it.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

from ..journal import Journal, revive_all
from ..workers import JobWorkers, WorkerHandles
from . import style

FORMATS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
STATUS_OF_CODE = {"UNSUPPORTED_FORMAT": 415, "FILE_TOO_LARGE": 413, "VIDEO_NOT_FOUND": 404, "JOB_NOT_FOUND": 404,
                  "JOB_ALREADY_PROCESSING": 409, "UNAUTHORIZED": 401, "VALIDATION_ERROR": 422}
TERMINAL = ("completed", "failed", "cancelled")


class EngineError(Exception):
    def __init__(self, code: str, detail: str, message: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.message = message or detail


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def ok(data: Any, message: str = "ok", status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "message": message, "data": data}, status_code=status)


@dataclass
class Video:
    video_id: str
    filename: str
    path: Path
    file_size_bytes: int
    metadata: Dict[str, Any]
    template_video_id: Optional[str] = None
    webhook_url: Optional[str] = None
    uploaded_at: str = field(default_factory=_now)

    def view(self) -> Dict[str, Any]:
        return {"video_id": self.video_id, "filename": self.filename, "file_size_bytes": self.file_size_bytes,
                "uploaded_at": self.uploaded_at, "metadata": self.metadata,
                "template_video_id": self.template_video_id}


@dataclass
class EJob:
    job_id: str
    video_id: str
    template_video_id: str
    config: Dict[str, Any]
    webhook_url: Optional[str]
    file_base: str  # absolute URL of /files/ on this engine, as the creating request reached it
    status: str = "queued"
    progress_percent: int = 0
    current_stage: Optional[str] = None
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    style_json: Optional[Dict[str, Any]] = None
    output: Optional[Path] = None
    output_video_url: Optional[str] = None
    error: Optional[Dict[str, Any]] = None
    processing_time_seconds: Optional[float] = None

    def view(self) -> Dict[str, Any]:
        return {"job_id": self.job_id, "video_id": self.video_id, "status": self.status,
                "progress_percent": self.progress_percent, "current_stage": self.current_stage,
                "created_at": self.created_at, "updated_at": self.updated_at, "started_at": self.started_at,
                "completed_at": self.completed_at, "template_video_id": self.template_video_id}

    def detail(self) -> Dict[str, Any]:
        return {**self.view(), "style_json": self.style_json, "output_video_url": self.output_video_url,
                "error": self.error, "processing_time_seconds": self.processing_time_seconds}


class LocalClipzy(WorkerHandles):
    def __init__(self, state_dir: Path, workers: int = 2, token: Optional[str] = None) -> None:
        self.state_dir = Path(state_dir)
        self.uploads = self.state_dir / "videos"
        self.outputs = self.state_dir / "outputs"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.output_urls = "http"
        self.webhook_form = "envelope"
        self.list_key: Optional[str] = "items"
        self.list_form = "paged"  # or "drf", "bare", "whole" (_page)
        self.max_page_size = 100  # the engine's cap on page_size, whatever the client asks
        self.dedup_uploads = False  # True: an upload of bytes already uploaded answers that earlier video
        self.max_upload_bytes = 500 * 1024 * 1024
        self.job_timeout = 600.0
        self.webhook_log: List[Dict[str, Any]] = []
        self.videos: Dict[str, Video] = {}
        self.jobs: Dict[str, EJob] = {}
        self._lock = threading.RLock()
        self._hold_stage: Optional[str] = None
        self._held = threading.Event()
        self._release = threading.Event()
        self._release.set()
        self.worker_count = workers
        self.workers = JobWorkers(workers, "clipzy")
        self.journal = Journal(self.state_dir, self._snapshot)
        self._restore()
        self.app = self._build()

    # --- kept across restarts -------------------------------------------------------------------------------
    def _snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {"videos": list(self.videos.values()), "jobs": list(self.jobs.values())}

    def _restore(self) -> None:
        """The journal's videos and jobs back; a job a restart interrupted runs again from the start."""
        data = self.journal.load() or {}
        self.videos = revive_all(Video, data.get("videos"), "video_id")
        self.jobs = revive_all(EJob, data.get("jobs"), "job_id")
        for job in self.jobs.values():
            if job.status not in TERMINAL:
                job.status, job.progress_percent, job.current_stage = "queued", 0, None
                self.workers.submit(self._run, job)

    # --- test knobs -------------------------------------------------------------------------------------------
    def hold(self, stage: str) -> None:
        """Keep every job that reaches ``stage`` there until :meth:`release`."""
        self._held.clear()
        self._release.clear()
        self._hold_stage = stage

    def release(self) -> None:
        self._hold_stage = None
        self._release.set()

    def wait_held(self, timeout: float = 30.0) -> bool:
        return self._held.wait(timeout)

    def close(self) -> None:
        """Stop: a job in flight stops at its next stage (a held one too) and is run again from the start by the
        next engine on this state folder; returns once no job thread is left."""
        self.workers.closing.set()
        self.release()
        super().close()

    # --- work -----------------------------------------------------------------------------------------------
    def _set(self, job: EJob, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            job.updated_at = _now()
        self.journal.save()

    def _run(self, job: EJob) -> None:
        if not self.workers.wait_turn():
            return
        started = time.monotonic()
        self._set(job, status="processing", started_at=_now(), current_stage="video_analysis", progress_percent=1)

        def stage(name: str, percent: int) -> None:
            if self.workers.stopped():
                raise InterruptedError
            if time.monotonic() - started > self.job_timeout:
                raise TimeoutError
            self._set(job, current_stage=name, progress_percent=percent)
            if self._hold_stage == name:
                self._held.set()
                self._release.wait()
            if self.workers.stopped():
                raise InterruptedError

        try:
            video, template = self.videos[job.video_id], self.videos[job.template_video_id]
            dest = self.outputs / job.job_id / f"{Path(video.filename).stem}_styled.mp4"
            dest.parent.mkdir(parents=True, exist_ok=True)
            style_json = style.style_clip(video.path, template.path, dest, stage)
            if time.monotonic() - started > self.job_timeout:
                raise TimeoutError
            if self.output_urls == "file":
                url = dest.resolve().as_uri()
            elif self.output_urls == "root":
                url = f"{urlsplit(job.file_base).path.split('/api/v1/')[0]}/static/{job.job_id}/{dest.name}"
            else:
                url = f"{job.file_base}{job.job_id}/{dest.name}"
            self._set(job, status="completed", progress_percent=100, current_stage=None, style_json=style_json,
                      output=dest, output_video_url=url)
        except InterruptedError:
            return  # closed: the journal keeps it unfinished, so the next engine runs it again
        except TimeoutError:
            self._set(job, status="failed", current_stage=None, error={
                "code": "JOB_TIMEOUT", "detail": f"processing took longer than {self.job_timeout:g} s"})
        except Exception as exc:  # the job fails with the reason; the engine keeps serving
            self._set(job, status="failed", current_stage=None,
                      error={"code": "PROCESSING_FAILED", "detail": str(exc) or type(exc).__name__})
        self._set(job, completed_at=_now(), processing_time_seconds=round(time.monotonic() - started, 3))
        self._deliver(job)

    def _deliver(self, job: EJob) -> None:
        if not job.webhook_url:
            return
        if self.webhook_form == "flat":
            body: Dict[str, Any] = {"job_id": job.job_id, "status": job.status,
                                    "progress_percent": job.progress_percent,
                                    "output_video_url": job.output_video_url,
                                    "processing_time_seconds": job.processing_time_seconds}
        else:
            body = {"success": job.status == "completed", "message": f"job {job.status}", "data": job.detail()}
        entry: Dict[str, Any] = {"url": job.webhook_url, "job_id": job.job_id, "form": self.webhook_form}
        try:
            entry["status"] = httpx.post(job.webhook_url, json=body, timeout=10.0).status_code
        except httpx.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        self.webhook_log.append(entry)

    # --- helpers --------------------------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        if self.token and request.headers.get("authorization", "") != f"Bearer {self.token}":
            raise EngineError("UNAUTHORIZED", "missing or wrong Authorization: Bearer token",
                              "Authentication required")

    def video(self, video_id: str) -> Video:
        with self._lock:
            found = self.videos.get(video_id)
        if found is None:
            raise EngineError("VIDEO_NOT_FOUND", f"no video with id {video_id}", "Video not found")
        return found

    def job(self, job_id: str) -> EJob:
        with self._lock:
            found = self.jobs.get(job_id)
        if found is None:
            raise EngineError("JOB_NOT_FOUND", f"no job with id {job_id}", "Job not found")
        return found

    async def upload(self, request: Request) -> Video:
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise EngineError("VALIDATION_ERROR", "the multipart field 'file' is required")
        name = Path(upload.filename or "video").name
        if Path(name).suffix.lower() not in FORMATS:
            raise EngineError("UNSUPPORTED_FORMAT", f"{name}: supported formats are {', '.join(FORMATS)}",
                              "Unsupported video format")
        video_id = uuid.uuid4().hex
        path = self.uploads / video_id / name
        path.parent.mkdir(parents=True)
        size = 0
        with open(path, "wb") as out:
            while True:
                chunk = await upload.read(1024 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_upload_bytes:
                    out.close()
                    path.unlink()
                    raise EngineError("FILE_TOO_LARGE", f"{name} is over the {self.max_upload_bytes} byte limit",
                                      "File too large")
                out.write(chunk)
        try:
            metadata = style.probe(path)
        except style.VideoError as exc:
            path.unlink()
            raise EngineError("UNSUPPORTED_FORMAT", f"{name}: {exc}", "Unsupported video format") from None
        if self.dedup_uploads:  # an engine that keeps one video per content hands back the earlier upload
            same = self._same_video(path, size)
            if same is not None:
                shutil.rmtree(path.parent, ignore_errors=True)
                return same
        template = form.get("template_video_id")
        webhook = form.get("webhook_url")
        if isinstance(template, str) and template:
            self.video(template)
        video = Video(video_id, name, path, size, metadata,
                      template if isinstance(template, str) and template else None,
                      webhook if isinstance(webhook, str) and webhook else None)
        with self._lock:
            self.videos[video_id] = video
        self.journal.save()
        return video

    def _same_video(self, path: Path, size: int) -> Optional[Video]:
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        with self._lock:
            return next((v for v in self.videos.values() if v.path != path and v.file_size_bytes == size
                         and v.path.is_file() and hashlib.md5(v.path.read_bytes()).hexdigest() == digest), None)

    def create(self, body: Any, file_base: str) -> EJob:
        if not isinstance(body, dict) or not isinstance(body.get("video_id"), str):
            raise EngineError("VALIDATION_ERROR", "the body must be a JSON object with video_id (a string)")
        # JobCreateRequest (seed 001) has these four fields, the three ids and URLs strings: nothing else is read.
        unknown = sorted(set(body) - {"video_id", "template_video_id", "config", "webhook_url"})
        if unknown:
            raise EngineError("VALIDATION_ERROR", f"unknown field(s) {', '.join(unknown)}: JobCreateRequest has "
                                                  "video_id, template_video_id, config and webhook_url")
        for name in ("template_video_id", "webhook_url"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise EngineError("VALIDATION_ERROR", f"{name} must be a string, got {type(body[name]).__name__}")
        video = self.video(body["video_id"])
        template_id = body.get("template_video_id") or video.template_video_id
        if not template_id:
            raise EngineError("VALIDATION_ERROR", "this engine styles from a template: give template_video_id")
        self.video(str(template_id))
        config = body.get("config") or {}
        if not isinstance(config, dict):
            raise EngineError("VALIDATION_ERROR", "config must be an object")
        with self._lock:
            busy = [j for j in self.jobs.values() if j.video_id == video.video_id and j.status not in TERMINAL]
            if busy:
                raise EngineError("JOB_ALREADY_PROCESSING",
                                  f"video {video.video_id} already has job {busy[0].job_id} {busy[0].status}",
                                  "Job already processing")
            job = EJob(uuid.uuid4().hex, video.video_id, str(template_id), config,
                       body.get("webhook_url") or video.webhook_url, file_base)
            self.jobs[job.job_id] = job
        self.journal.save()
        self.workers.submit(self._run, job)
        return job

    def _page(self, request: Request, jobs: List[Dict[str, Any]], page: int, size: int) -> Any:
        """One page of ``GET /jobs`` in the form ``list_form`` names (seed 001 calls the list paginated and shows
        no shape): ``paged`` ``{<list_key>, total, page, page_size, pages}``, ``drf`` ``{count, next, previous,
        results}`` (next/previous full URLs), ``bare`` the page as a list, ``whole`` every job whatever the page."""
        items = jobs[(page - 1) * size: page * size]
        if self.list_form == "whole":
            return jobs
        if self.list_form == "bare" or self.list_key is None:
            return items
        if self.list_form == "drf":
            def link(at: int) -> str:
                return str(request.url.include_query_params(page=at, page_size=size))

            return {"count": len(jobs), "next": link(page + 1) if page * size < len(jobs) else None,
                    "previous": link(page - 1) if page > 1 else None, "results": items}
        return {self.list_key: items, "total": len(jobs), "page": page, "page_size": size,
                "pages": max(1, -(-len(jobs) // size))}

    # --- app ------------------------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title="Clipzy ML Engine (local)")

        @app.exception_handler(EngineError)
        async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
            return JSONResponse({"success": False, "message": exc.message,
                                 "error": {"detail": exc.detail, "code": exc.code}},
                                status_code=STATUS_OF_CODE.get(exc.code, 400))

        @app.get("/api/v1/health")
        def health(request: Request) -> Any:
            self._auth(request)
            return ok({"status": "healthy", "version": "local", "workers": self.worker_count})

        @app.post("/api/v1/videos/upload")
        async def upload(request: Request) -> Any:
            self._auth(request)
            video = await self.upload(request)
            return ok(video.view(), "Video uploaded", 201)

        @app.get("/api/v1/videos/{video_id}")
        def get_video(video_id: str, request: Request) -> Any:
            self._auth(request)
            return ok(self.video(video_id).view())

        @app.post("/api/v1/jobs")
        async def create_job(request: Request) -> Any:
            self._auth(request)
            try:
                body = await request.json()
            except ValueError:
                raise EngineError("VALIDATION_ERROR", "the body must be JSON") from None
            base = str(request.url_for("get_file", job_id="JOB", name="NAME")).rsplit("JOB/NAME", 1)[0]
            job = self.create(body, base)
            return ok(job.view(), "Job created", 201)

        @app.get("/api/v1/jobs")
        def list_jobs(request: Request) -> Any:
            self._auth(request)
            try:
                page = max(1, int(request.query_params.get("page", "1")))
                size = min(100, max(1, int(request.query_params.get("page_size", "20"))))
            except ValueError:
                raise EngineError("VALIDATION_ERROR", "page and page_size must be integers") from None
            size = min(size, self.max_page_size)
            with self._lock:
                jobs = sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
            return ok(self._page(request, [j.view() for j in jobs], page, size))

        @app.get("/api/v1/jobs/{job_id}")
        def get_job(job_id: str, request: Request) -> Any:
            self._auth(request)
            return ok(self.job(job_id).view())

        @app.get("/api/v1/jobs/{job_id}/result")
        def get_result(job_id: str, request: Request) -> Any:
            self._auth(request)
            return ok(self.job(job_id).detail())

        @app.get("/static/{job_id}/{name}")
        @app.get("/api/v1/files/{job_id}/{name}", name="get_file")
        def get_file(job_id: str, name: str, request: Request) -> Any:
            self._auth(request)
            job = self.job(job_id)
            if job.output is None or job.output.name != name or not job.output.is_file():
                raise EngineError("JOB_NOT_FOUND", f"job {job_id} has no output named {name}", "Output not found")
            return FileResponse(job.output, media_type="video/mp4", filename=name)

        return app


def create_service(state_dir: Path, options: Any) -> LocalClipzy:
    extra = getattr(options, "extra", {}) or {}
    return LocalClipzy(Path(state_dir), workers=int(getattr(options, "workers", 2) or 2),
                       token=getattr(options, "access_key", None) or extra.get("clipzy_token"))


__all__ = ["LocalClipzy", "create_service"]
