"""The local TensorPix: the seed-002 contract over real HTTP, mounted at ``/tensorpix``.

Auth: ``Authorization: Token local-tensorpix-key`` (:data:`API_KEY`) on every ``/api/...`` route; missing or wrong ->
401 ``{"detail": ...}`` (Django REST's words). Errors are DRF-shaped: ``{"detail": ...}`` or ``{"field": ["..."]}``.

Routes (below the mount prefix):

- ``POST /api/videos/`` multipart ``file`` -> 201 with ``file: null``; ready (``file`` = a presigned URL) after
  ``ready_delay`` seconds. Over the storage quota (``storage_limit`` bytes) -> 400 ``{"detail": "Storage quota
  exceeded ..."}``. ``GET /api/videos/`` (paged), ``GET /api/videos/{id}/``.
- ``POST /api/jobs/`` ``{input_video, ml_models, ...}`` -> 201; ``POST /api/jobs/from-url/`` ``{url, ml_models, ...}``
  (the service fetches ``url``); ``GET /api/jobs/`` (paged, newest first); ``GET /api/jobs/{id}/``.
- ``GET /api/ml-models/`` (paged); ``GET /api/accounts/profile/balance/`` -> ``{"balance_usd": "12.50"}``.
- Presigned files: ``/_store/<key>?expires=<unix>&signature=<hmac>``, no token; expired -> 403.

Lists: ``{count, next, previous, results}`` with ``limit`` (default 10, max 100) and ``offset``; ``next``/``previous``
are full URLs. **The integer statuses are this local service's own** (the vendor publishes none):
:data:`STATUSES` ``0`` waiting, ``1`` processing, ``2`` encoding, ``3`` done, ``4`` failed; ``finished`` is set on
3 and 4; a failure's reason goes in ``description``. The client never reads meaning into them.

Test handles: ``pause()``/``resume()`` (jobs stay at 0), ``set_status(job_id, value)``, ``list_form``,
``max_limit``, ``status_form``, ``dedup_uploads``, ``expire_next_urls(n)``
(the next ``n`` presigned URLs are issued already expired), ``ready_delay``, ``storage_limit``, ``balance_usd``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..journal import Journal, revive_all
from ..presign import Presigner
from ..workers import JobWorkers, WorkerHandles
from . import processing

API_KEY = "local-tensorpix-key"
OWNER = "artist@tether.local"
STATUSES = {0: "waiting", 1: "processing", 2: "encoding", 3: "done", 4: "failed"}
STATUS_WORDS = {0: "IN_QUEUE", 1: "PROCESSING", 2: "ENCODING", 3: "COMPLETED", 4: "FAILED"}
URL_TTL = 600
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
MODELS: List[Dict[str, Any]] = [
    {"id": 1, "name": "Upscale x2", "task": 1, "cost_weight": 1.0, "upscale_factor": 2, "fps_boost_factor": 1,
     "priority": 1, "max_resolution": 4320},
    {"id": 2, "name": "Denoise", "task": 2, "cost_weight": 0.5, "upscale_factor": 1, "fps_boost_factor": 1,
     "priority": 2, "max_resolution": 4320},
    {"id": 3, "name": "Frame interpolation x2", "task": 3, "cost_weight": 1.0, "upscale_factor": 1,
     "fps_boost_factor": 2, "priority": 3, "max_resolution": 2160},
    {"id": 4, "name": "Upscale x4", "task": 1, "cost_weight": 2.0, "upscale_factor": 4, "fps_boost_factor": 1,
     "priority": 4, "max_resolution": 4320},
    {"id": 5, "name": "Restore (denoise + sharpen)", "task": 2, "cost_weight": 1.5, "upscale_factor": 1,
     "fps_boost_factor": 1, "priority": 5, "max_resolution": 4320},
]
OPTION_FIELDS = ("output_resolution", "container", "codec", "preview", "comparison", "grain",
                 "stabilization_smoothing", "fps_interpolation_factor", "playback_speed", "sharpen_strength",
                 "start_frame", "end_frame", "description")
CONTAINERS = ("mp4", "mov", "mkv")
CODECS = ("libx264", "libx265", "prores_ks", "libvpx-vp9", "mpeg4")


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body if isinstance(body, dict) else {"detail": str(body)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class Video:
    id: int
    name: str
    path: Optional[Path]
    size: int
    facts: Dict[str, Any]
    ready_at: float
    external_url: Optional[str] = None
    created_at: str = field(default_factory=_now)


@dataclass
class TJob:
    id: int
    video: Optional[Video]
    options: Dict[str, Any]
    models: List[Dict[str, Any]]
    status: Any = 0
    progress: float = 0.0
    started: str = field(default_factory=_now)
    finished: Optional[str] = None
    description: Optional[str] = None
    output: Optional[Dict[str, Any]] = None
    output_path: Optional[Path] = None
    cost: float = 0.0


class LocalTensorPix(WorkerHandles):
    def __init__(self, state_dir: Path, ready_delay: float = 0.3, storage_limit: int = 2 * 1024 ** 3,
                 api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.state_dir = Path(state_dir)
        self.store = self.state_dir / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.ready_delay = ready_delay
        self.storage_limit = storage_limit
        self.balance_usd = 25.0
        self.list_form = "drf"  # or "paged", "bare", "whole" (paged())
        self.max_limit = MAX_LIMIT  # the service's cap on limit, whatever the client asks
        # The status integers' meanings are unpublished and the docs name the word IN_QUEUE (seed 002): "integer"
        # answers this service's own integers, "words" the same states as upper-case words (STATUS_WORDS).
        self.status_form = "integer"
        self.dedup_uploads = False  # True: an upload of bytes already uploaded answers that earlier video
        # a route name of our own: url_for searches the whole mounted app, and other services have a "get_object"
        self.presigner = Presigner(self.store, put_route=None, get_route="tensorpix_object", ttl=URL_TTL,
                                   error=lambda status, message: ApiError(status, message))
        self._lock = threading.RLock()
        self._videos: Dict[int, Video] = {}
        self._jobs: Dict[int, TJob] = {}
        self._next_id = 100
        self._expire_next = 0
        self.workers = JobWorkers(4, "tensorpix")
        self.journal = Journal(self.state_dir, self._snapshot)
        self._restore()
        self.app = self._build()

    # --- kept across restarts -------------------------------------------------------------------------------
    def _snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {"videos": list(self._videos.values()), "jobs": list(self._jobs.values()),
                    "next_id": self._next_id, "balance_usd": self.balance_usd}

    def _restore(self) -> None:
        """The journal's videos and jobs back; a job a restart interrupted runs again from the start (one still
        fetching its URL fails: the URL is not kept)."""
        data = self.journal.load() or {}
        self._next_id = int(data.get("next_id", self._next_id))
        self.balance_usd = float(data.get("balance_usd", self.balance_usd))
        self._videos = revive_all(Video, data.get("videos"), "id")
        self._jobs = revive_all(TJob, data.get("jobs"), "id")
        for job in self._jobs.values():
            if job.video is not None:
                job.video = self._videos.get(job.video.id, job.video)
            if job.status in (3, 4):
                continue
            if job.video is None:
                job.status, job.finished = 4, _now()
                job.description = "failed: interrupted by a restart of the local service while fetching its URL"
            else:
                job.status, job.progress = 0, 0.0
                self.workers.submit(self._run, job, None)

    # --- test handles ---------------------------------------------------------------------------------------
    def set_status(self, job_id: int, value: Any) -> None:
        with self._lock:
            self._jobs[int(job_id)].status = value

    def expire_next_urls(self, count: int) -> None:
        with self._lock:
            self._expire_next = count

    # --- ids, signing, auth ---------------------------------------------------------------------------------
    def _new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def presign(self, request: Request, path: Path) -> str:
        key = path.resolve().relative_to(self.store.resolve()).as_posix()
        with self._lock:
            expired = self._expire_next > 0
            if expired:
                self._expire_next -= 1
        return self.presigner.url(request, "GET", key, expired=expired)

    def _auth(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header:
            raise ApiError(401, "Authentication credentials were not provided.")
        scheme, _, key = header.partition(" ")
        if scheme != "Token":  # seed 002: 'Token' is the required prefix (not Bearer, not the bare key)
            raise ApiError(401, "Invalid token header. Use 'Authorization: Token <key>'.")
        if not hmac.compare_digest(key.strip(), self.api_key):
            raise ApiError(401, "Invalid token.")

    # --- views ----------------------------------------------------------------------------------------------
    def video_view(self, request: Request, video: Video) -> Dict[str, Any]:
        ready = video.path is not None and time.time() >= video.ready_at
        return {"id": video.id, "name": video.name, "created_at": video.created_at, "size": video.size,
                "owner": OWNER, "thumbnail": None, "external_url": video.external_url,
                "file": self.presign(request, video.path) if ready and video.path else None,
                **{k: video.facts.get(k) for k in ("width", "height", "n_frames", "framerate", "codec_id")},
                "bitrate": None, "bit_depth": 8, "chroma_subsampling": "4:2:0", "color_space": "bt709"}

    def job_view(self, request: Request, job: TJob) -> Dict[str, Any]:
        out = None
        if job.output is not None and job.output_path is not None:
            out = {**job.output, "file": self.presign(request, job.output_path)}
        return {"id": job.id, "started": job.started, "preview": bool(job.options.get("preview")),
                "description": job.description, "cost_usd": f"{job.cost:.2f}",
                "status": STATUS_WORDS.get(job.status, job.status) if self.status_form == "words" else job.status,
                "eta_s": None if job.finished else max(0, int((100 - job.progress) / 20)),
                "finished": job.finished, "processing_progress": round(job.progress, 1),
                "input_video": self.video_view(request, job.video) if job.video else None,
                "output_video": out, "ml_models": job.models,
                **{k: job.options.get(k) for k in OPTION_FIELDS if k not in ("preview", "description")}}

    def paged(self, request: Request, items: List[Any]) -> Any:
        """One page in the form ``list_form`` names: ``drf`` (the docs' Django REST page), or one the vendor could
        answer as well (``paged``: ``{items, next, total}``; ``bare``: the page as a list; ``whole``: every item
        whatever ``limit``/``offset`` ask)."""
        q = request.query_params
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            offset = int(q.get("offset", 0))
        except ValueError:
            raise ApiError(400, {"detail": "limit and offset must be whole numbers"}) from None
        limit = max(1, min(limit, self.max_limit))
        offset = max(0, offset)

        def link(at: int) -> str:
            return str(request.url.include_query_params(limit=limit, offset=at))

        page = items[offset:offset + limit]
        following = link(offset + limit) if offset + limit < len(items) else None
        if self.list_form == "whole":
            return items
        if self.list_form == "bare":
            return page
        if self.list_form == "paged":
            return {"items": page, "next": following, "total": len(items)}
        return {"count": len(items), "next": following,
                "previous": link(max(0, offset - limit)) if offset > 0 else None, "results": page}

    # --- videos ---------------------------------------------------------------------------------------------
    def used_bytes(self) -> int:
        with self._lock:
            return sum(v.size for v in self._videos.values())

    def add_video(self, name: str, data: bytes, external_url: Optional[str] = None) -> Video:
        if self.dedup_uploads:  # a service that keeps one video per content hands back the earlier upload
            digest = hashlib.md5(data).hexdigest()
            with self._lock:
                same = next((v for v in self._videos.values() if v.path is not None and v.path.is_file()
                             and v.size == len(data) and hashlib.md5(v.path.read_bytes()).hexdigest() == digest), None)
            if same is not None:
                return same
        if self.used_bytes() + len(data) > self.storage_limit:
            raise ApiError(400, {"detail": f"Storage quota exceeded: {self.used_bytes()} of {self.storage_limit} "
                                           "bytes used. Delete videos or upgrade your plan."})
        video_id = self._new_id()
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip("._") or "video"
        path = self.store / "videos" / str(video_id) / safe
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        try:
            facts = processing.probe(path)
        except processing.ClipError as exc:
            path.unlink()
            raise ApiError(400, {"file": [str(exc)]}) from None
        video = Video(id=video_id, name=safe, path=path, size=len(data), facts=facts,
                      ready_at=time.time() + self.ready_delay, external_url=external_url)
        with self._lock:
            self._videos[video_id] = video
        self.journal.save()
        return video

    def video(self, video_id: int) -> Video:
        with self._lock:
            video = self._videos.get(video_id)
        if video is None:
            raise ApiError(404, "Not found.")
        return video

    # --- jobs -----------------------------------------------------------------------------------------------
    def options(self, body: Dict[str, Any], known: tuple) -> Dict[str, Any]:
        errors: Dict[str, List[str]] = {}
        unknown = sorted(set(body) - set(known) - set(OPTION_FIELDS) - {"ml_models"})
        for name in unknown:
            errors[name] = ["Unknown field."]
        opts = {k: body.get(k) for k in OPTION_FIELDS}
        if opts["container"] is not None and opts["container"] not in CONTAINERS:
            errors["container"] = [f"\"{opts['container']}\" is not a valid choice."]
        if opts["codec"] is not None and opts["codec"] not in CODECS:
            errors["codec"] = [f"\"{opts['codec']}\" is not a valid choice."]
        # The seed shows these as integers: a JSON float is refused, as a strict reading of the seed would.
        for name in ("grain", "stabilization_smoothing", "sharpen_strength", "start_frame", "end_frame",
                     "output_resolution"):
            value = opts[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < -1):
                errors[name] = ["A valid integer is required."]
        for name in ("fps_interpolation_factor", "playback_speed"):
            value = opts[name]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < -1):
                errors[name] = ["A valid number is required."]
        if errors:
            raise ApiError(400, errors)
        return opts

    def models_of(self, ids: Any) -> List[Dict[str, Any]]:
        if not isinstance(ids, list) or not ids:
            raise ApiError(400, {"ml_models": ["This list may not be empty."]})
        by_id = {m["id"]: m for m in MODELS}
        bad = [i for i in ids if i not in by_id]
        if bad:
            raise ApiError(400, {"ml_models": [f"Invalid pk \"{bad[0]}\" - object does not exist."]})
        return [by_id[i] for i in ids]

    def create_job(self, body: Any, video: Optional[Video], url: Optional[str] = None) -> TJob:
        models = self.models_of(body.get("ml_models"))
        opts = self.options(body, ("input_video", "url"))
        job = TJob(id=self._new_id(), video=video, options=opts, models=models,
                   cost=round(0.01 * sum(m["cost_weight"] for m in models) * ((video.facts.get("n_frames") or 10)
                                                                                if video else 10), 2))
        with self._lock:
            self._jobs[job.id] = job
        self.journal.save()
        self.workers.submit(self._run, job, url)
        return job

    def _set(self, job: TJob, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
        if set(changes) != {"progress"}:  # progress alone is not worth a write per frame
            self.journal.save()

    def _run(self, job: TJob, url: Optional[str]) -> None:
        if not self.workers.wait_turn():
            return

        def check() -> None:
            if self.workers.stopped():
                raise InterruptedError

        try:
            if job.video is None and url is not None:
                import httpx

                reply = httpx.get(url, timeout=30, follow_redirects=True)
                if reply.status_code != 200:
                    raise processing.ClipError(f"fetching {url} answered HTTP {reply.status_code}")
                try:
                    video = self.add_video(url.split("?")[0].rsplit("/", 1)[-1] or "remote.mp4", reply.content,
                                           external_url=url)
                except ApiError as exc:
                    raise processing.ClipError(str(exc.body.get("detail") or exc.body)) from None
                self._set(job, video=video)
            assert job.video is not None and job.video.path is not None
            self._set(job, status=1)
            dest = self.store / "outputs" / str(job.id) / f"{Path(job.video.name).stem}_enhanced_{job.id}." \
                f"{job.options.get('container') or 'mp4'}"
            facts = processing.enhance(job.video.path, dest, job.options, job.models,
                                       lambda p: self._set(job, progress=min(99.0, p)), check)
            self._set(job, status=2)
        except InterruptedError:
            return
        except processing.ClipError as exc:
            self._set(job, status=4, finished=_now(), description=f"failed: {exc}")
            return
        except Exception as exc:  # a bug here must show on the job, not vanish in a thread
            self._set(job, status=4, finished=_now(), description=f"internal error: {type(exc).__name__}: {exc}")
            return
        output = {"id": self._new_id(), "job_id": job.id, "preview_videos": None, "name": dest.name,
                  "created_at": _now(), "deleted": None, "size": dest.stat().st_size, "thumbnail": None,
                  "quality_score": None, "owner": 1, "bit_depth": 8, "chroma_subsampling": "4:2:0",
                  "color_space": "bt709", **facts}
        with self._lock:
            self.balance_usd = max(0.0, self.balance_usd - job.cost)
            job.output, job.output_path = output, dest
            job.status, job.progress, job.finished = 3, 100.0, _now()
        self.journal.save()

    def job(self, job_id: int) -> TJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "Not found.")
        return job

    # --- the app --------------------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title="local TensorPix", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(ApiError)
        async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
            return JSONResponse(exc.body, status_code=exc.status)

        async def json_body(request: Request) -> Dict[str, Any]:
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "JSON parse error.") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Expected a JSON object.")
            return body

        @app.post("/api/videos/", status_code=201)
        async def upload(request: Request) -> Any:
            self._auth(request)
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, {"file": ["No file was submitted."]})
            data = await upload.read()
            if not data:
                raise ApiError(400, {"file": ["The submitted file is empty."]})
            return self.video_view(request, self.add_video(upload.filename or "video.mp4", data))

        @app.get("/api/videos/")
        def list_videos(request: Request) -> Any:
            self._auth(request)
            with self._lock:
                videos = sorted(self._videos.values(), key=lambda v: -v.id)
            return self.paged(request, [self.video_view(request, v) for v in videos])

        @app.get("/api/videos/{video_id}/")
        def get_video(video_id: int, request: Request) -> Any:
            self._auth(request)
            return self.video_view(request, self.video(video_id))

        @app.post("/api/jobs/", status_code=201)
        async def create_job(request: Request) -> Any:
            self._auth(request)
            body = await json_body(request)
            self.options(body, ("input_video",))  # every field checked before any is looked up, as DRF does
            video_id = body.get("input_video")
            if video_id is None:
                raise ApiError(400, {"input_video": ["This field is required."]})
            if not isinstance(video_id, int) or isinstance(video_id, bool):
                raise ApiError(400, {"input_video": [f"Incorrect type. Expected pk value, received "
                                                     f"{type(video_id).__name__}."]})
            try:
                video = self.video(video_id)
            except ApiError:
                raise ApiError(400, {"input_video": [f"Invalid pk \"{video_id}\" - object does not exist."]}) from None
            if time.time() < video.ready_at:
                raise ApiError(400, {"input_video": ["The video is still being processed; try again shortly."]})
            return self.job_view(request, self.create_job(body, video))

        @app.post("/api/jobs/from-url/", status_code=201)
        async def create_from_url(request: Request) -> Any:
            self._auth(request)
            body = await json_body(request)
            url = body.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ApiError(400, {"url": ["Enter a valid URL."]})
            return self.job_view(request, self.create_job(body, None, url))

        @app.get("/api/jobs/")
        def list_jobs(request: Request) -> Any:
            self._auth(request)
            with self._lock:
                jobs = sorted(self._jobs.values(), key=lambda j: -j.id)
            return self.paged(request, [self.job_view(request, j) for j in jobs])

        @app.get("/api/jobs/{job_id}/")
        def get_job(job_id: int, request: Request) -> Any:
            self._auth(request)
            return self.job_view(request, self.job(job_id))

        @app.get("/api/ml-models/")
        def models(request: Request) -> Any:
            self._auth(request)
            return self.paged(request, MODELS)

        @app.get("/api/accounts/profile/balance/")
        def balance(request: Request) -> Any:
            self._auth(request)
            return {"balance_usd": f"{self.balance_usd:.2f}"}

        @app.get("/_store/{key:path}", name="tensorpix_object")
        def get_object(key: str, request: Request) -> Any:
            return self.presigner.serve(request, key)

        return app


def create_service(state_dir: Path, options: Any) -> LocalTensorPix:
    extra = getattr(options, "extra", {}) or {}
    return LocalTensorPix(Path(state_dir), ready_delay=float(extra.get("tensorpix_ready_delay", 0.3)),
                          api_key=getattr(options, "access_key", None) or API_KEY)


__all__ = ["API_KEY", "MODELS", "STATUSES", "LocalTensorPix", "create_service"]
