"""The local Slapshot Autopilot: the seed-000 contract over real HTTP, mounted at ``/autopilot``.

Auth: every ``/api/...`` route wants the header ``x-api-key: local-autopilot-key`` (:data:`API_KEY`; the built-in
``local`` profile sends it). Missing or wrong -> 401 ``{"message": ...}``.

Routes (below the mount prefix):

- ``POST /api/jobs`` (201) -> the job; ``GET /api/jobs`` with ``service``, ``status``, ``metadata`` (JSON object
  matched against the job's metadata) and ``page``; ``GET /api/jobs/{id}``; ``DELETE /api/jobs/{id}`` cancels every
  inference not yet finished (200; 404 for an unknown job).
- ``GET /api/inferences`` (same filters, metadata matched against the asset's or the job's metadata),
  ``GET /api/inferences/{id}``, ``DELETE /api/inferences/{id}``.
- ``GET /api/user/limit`` -> ``{is_above_limit, subscription_tier, frames_inferenced, frame_limit}``. Each completed
  inference adds its clip's frame count. A job created while above the limit is refused with 402.
- ``GET /api/comfyui/assets/upload?upload_id=<uuid>&asset_type=video|mask&file_name=...`` ->
  ``{upload_url, s3_key}``. The URL is presigned: ``/_store/<s3_key>?expires=<unix>&signature=<hmac>`` on this same
  app, valid for 15 minutes, no API key; ``PUT`` it with ``Content-Length`` (411 without it, 400 if the body is
  short, 403 ``SignatureDoesNotMatch``/``Request has expired``). The file is kept on disk under the state folder.
- ``GET /api/comfyui/{job_id}/result?export_type=...`` -> ``{download_url, export_type, expires_in}``, a presigned
  ``GET`` of a zip (``hard_mattes``, ``mb_mattes``, ``tracking``, ``jpg``, ``exr``) or a loose ``.mov`` (``mov``).
  404 when the job has no inference producing that export, 409 while it is not finished or when it failed.
  Several assets with the same export: one zip with a folder per asset (``asset_1/...``).

Lists answer ``{"items": [...], "page", "per_page", "total", "pages"}`` (20 per page), or with ``list_form`` another
shape the vendor's silence allows (``drf``: ``{count, next, previous, results}``; ``bare``: the page as a list;
``whole``: every job whatever the page); with ``id_form = "integer"`` a job's id is its number in the order of creation
(the seed shows no id). Errors answer
``{"message": ...}``. Inferences run on a thread pool: ``pending`` -> ``running`` -> ``completed`` | ``failed``
(``cancelled`` from ``pending`` or ``running``). What they compute is in :mod:`.processing`.

Tests reach the service object (``local_services.service("autopilot")``): ``pause()``/``resume()`` keep new
inferences pending, ``frame_limit``/``frames_inferenced`` set the quota, ``rate_limit`` (requests per second per
key, 0 = off) makes the service itself answer 429 with ``Retry-After``; faults come from the frame's ``faults.py``.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..journal import Journal, revive_all
from ..presign import Presigner
from ..workers import JobWorkers, WorkerHandles
from . import processing

API_KEY = "local-autopilot-key"
SERVICES = ("roto", "tracking", "depth_map", "smart_vectors")
STATES = ("pending", "running", "completed", "failed", "cancelled")
EXPORTS: Dict[str, str] = {"hard_mattes": "roto", "mb_mattes": "roto", "tracking": "tracking", "jpg": "depth_map",
                           "mov": "depth_map", "exr": "smart_vectors"}
PER_PAGE = 20
URL_TTL = 900
FLAGS = ("calculate_distortion", "fix_focal_length", "fix_sensor_size")
FLOATS = ("working_fps", "lens", "sensor_width", "sensor_height", "estimated_closest_point",
          "estimated_farthest_point")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class Inference:
    id: str
    job_id: str
    type: str
    spec: Dict[str, Any]
    source_path: str
    asset_index: int
    asset_metadata: Dict[str, Any]
    status: str = "pending"
    error: Optional[str] = None
    frames: Optional[int] = None
    outputs: Dict[str, Path] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def export_types(self) -> List[str]:
        if self.type == "depth_map":
            return [self.spec.get("export_type") or "jpg"]
        return [e for e, s in EXPORTS.items() if s == self.type and e not in ("jpg", "mov")]

    def view(self, echo_exports: bool = True) -> Dict[str, Any]:
        out = {"id": self.id, "job_id": self.job_id, "type": self.type, "status": self.status,
               "source_path": self.source_path, "output_path": self.spec.get("output_path"),
               "export_types": self.export_types, "frames": self.frames, "error": self.error,
               "metadata": self.asset_metadata, "created_at": self.created_at, "updated_at": self.updated_at}
        if not echo_exports:
            del out["export_types"]
        return out


@dataclass
class AJob:
    id: str
    metadata: Dict[str, Any]
    job_source: Optional[str]
    assets: List[Dict[str, Any]]
    inferences: List[Inference]
    created_at: str = field(default_factory=_now)

    def view(self, echo_exports: bool = True) -> Dict[str, Any]:
        counts = {s: 0 for s in STATES}
        for inf in self.inferences:
            counts[inf.status] += 1
        total = len(self.inferences)
        done = counts["completed"] + counts["failed"] + counts["cancelled"]
        updated = max([self.created_at] + [i.updated_at for i in self.inferences])
        return {
            "id": self.id, "job_source": self.job_source, "metadata": self.metadata,
            "percent_complete": round(100.0 * done / total, 2) if total else 0.0, "total": total,
            "total_pending": counts["pending"], "total_running": counts["running"],
            "total_completed": counts["completed"], "total_failed": counts["failed"],
            "total_cancelled": counts["cancelled"], "created_at": self.created_at, "updated_at": updated,
            "assets": [{"source_path": a["source_path"], "metadata": a.get("metadata") or {}} for a in self.assets],
            "inferences": [i.view(echo_exports) for i in self.inferences],
        }


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ApiError(400, f"{where} must be a positive number, got {value!r}")
    return float(value)


def validate_service(spec: Any, where: str, with_mov: bool) -> Dict[str, Any]:
    if not isinstance(spec, dict):
        raise ApiError(400, f"{where} must be an object")
    kind = spec.get("type")
    if kind not in SERVICES:
        raise ApiError(400, f"{where}.type must be one of {', '.join(SERVICES)}, got {kind!r}")
    if not isinstance(spec.get("output_path"), str) or not spec["output_path"]:
        raise ApiError(400, f"{where}.output_path is required")
    allowed = {"type", "output_path"} | {"roto": {"references_path"}, "tracking": {"metadata"},
                                         "depth_map": {"export_type"}, "smart_vectors": {"metadata"}}[kind]
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ApiError(400, f"{where}: unknown field(s) {', '.join(extra)} for {kind}")
    if kind == "tracking" and spec.get("metadata") is not None:
        meta = spec["metadata"]
        if not isinstance(meta, dict):
            raise ApiError(400, f"{where}.metadata must be an object")
        unknown = sorted(set(meta) - set(FLAGS) - set(FLOATS))
        if unknown:
            raise ApiError(400, f"{where}.metadata: unknown field(s) {', '.join(unknown)}")
        for name in FLAGS:
            if name in meta and meta[name] not in ("True", "False"):
                raise ApiError(400, f"{where}.metadata.{name} must be the string \"True\" or \"False\", "
                                    f"got {json.dumps(meta[name])}")
        for name in FLOATS:
            if name in meta:
                _float(meta[name], f"{where}.metadata.{name}")
        if ("sensor_width" in meta) != ("sensor_height" in meta):
            raise ApiError(400, f"{where}.metadata: sensor_width and sensor_height must be given together")
    if kind == "depth_map" and "export_type" in spec:
        if spec["export_type"] not in ("jpg", "mov"):
            raise ApiError(400, f"{where}.export_type must be \"jpg\" or \"mov\", got {spec['export_type']!r}")
        if spec["export_type"] == "mov" and not with_mov:
            raise ApiError(400, "this local Autopilot cannot encode mov (PyAV is not installed): ask for jpg")
    if kind == "roto" and spec.get("references_path") is not None:
        refs = spec["references_path"]
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise ApiError(400, f"{where}.references_path must be a list of s3 keys")
    if kind == "smart_vectors" and spec.get("metadata") is not None:
        meta = spec["metadata"]
        if not isinstance(meta, dict) or set(meta) - {"roi_mask_path", "keyframe"}:
            raise ApiError(400, f"{where}.metadata takes roi_mask_path and keyframe only")
    return spec


class LocalAutopilot(WorkerHandles):
    """State, store and workers of the local Autopilot; ``app`` is its ASGI app."""

    def __init__(self, state_dir: Path, workers: int = 2, frame_limit: int = 1000, tier: str = "free",
                 api_key: str = API_KEY) -> None:
        self.state_dir = Path(state_dir)
        self.api_key = api_key
        self.store = self.state_dir / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.frame_limit = frame_limit
        self.subscription_tier = tier
        self.frames_inferenced = 0
        self.rate_limit = 0.0
        self.clock: Callable[[], float] = time.monotonic  # the rate limit's bucket refills by it (a test's own clock)
        self.list_form = "paged"  # or "drf", "bare", "whole": the list shapes the client must read (_page)
        # The seed's routes say {JOB_ID} and show none: "integer" answers a job's place in the order of creation as
        # its id (an id the routes take too), "string" the uuid.
        self.id_form = "string"
        self._rate: Dict[str, Tuple[float, float]] = {}
        self.presigner = Presigner(self.store, put_route="put_object", get_route="get_object", ttl=URL_TTL,
                                   error=lambda status, message: ApiError(status, message))
        self._lock = threading.RLock()
        self._jobs: Dict[str, AJob] = {}
        self._inferences: Dict[str, Inference] = {}
        self._order: List[str] = []
        self.workers = JobWorkers(workers, "autopilot")
        self.with_mov = processing.have_pyav()
        # The seed shows no inference reply: the vendor may or may not echo each inference's export types.
        self.echo_exports = True
        self.journal = Journal(self.state_dir, self._snapshot)
        self._restore()
        self.app = self._build()

    # --- kept across restarts -------------------------------------------------------------------------------
    def _snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {"jobs": [self._jobs[j] for j in self._order], "frames_inferenced": self.frames_inferenced}

    def _restore(self) -> None:
        """The journal's jobs back; inferences a restart interrupted run again from the start."""
        data = self.journal.load() or {}
        self.frames_inferenced = int(data.get("frames_inferenced", 0))
        self._jobs = revive_all(AJob, data.get("jobs"), "id")
        self._order = list(self._jobs)
        for job in self._jobs.values():
            for inf in job.inferences:
                self._inferences[inf.id] = inf
                if inf.status in ("pending", "running"):
                    inf.status = "pending"
                    self.workers.submit(self._run, inf)

    # --- test handles ---------------------------------------------------------------------------------------
    def close(self) -> None:
        for inf in list(self._inferences.values()):
            inf.cancel.set()
        super().close()

    # --- auth, rate limit -----------------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        key = request.headers.get("x-api-key")
        if not key:
            # seed 000: the key goes in x-api-key; an Authorization header (another vendor's scheme) is not read
            elsewhere = " (the key goes in x-api-key, not Authorization)" if "authorization" in request.headers else ""
            raise ApiError(401, f"missing x-api-key header{elsewhere}")
        if not hmac.compare_digest(key, self.api_key):
            raise ApiError(401, "invalid API key")
        if self.rate_limit > 0:
            with self._lock:
                now = self.clock()
                tokens, at = self._rate.get(key, (self.rate_limit, now))
                tokens = min(self.rate_limit, tokens + (now - at) * self.rate_limit)
                if tokens < 1:
                    self._rate[key] = (tokens, now)
                    wait = max(1, math.ceil((1 - tokens) / self.rate_limit))
                    raise ApiError(429, "rate limit exceeded", {"Retry-After": str(wait)})
                self._rate[key] = (tokens - 1, now)

    # --- jobs -----------------------------------------------------------------------------------------------
    def quota(self) -> Dict[str, Any]:
        return {"is_above_limit": self.frames_inferenced >= self.frame_limit,
                "subscription_tier": self.subscription_tier, "frames_inferenced": self.frames_inferenced,
                "frame_limit": self.frame_limit}

    def create(self, body: Any) -> AJob:
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        unknown = sorted(set(body) - {"assets", "metadata", "job_source"})
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(unknown)}")
        assets = body.get("assets")
        if not isinstance(assets, list) or not assets:
            raise ApiError(400, "assets must be a non-empty list")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ApiError(400, "metadata must be an object")
        if self.quota()["is_above_limit"]:
            raise ApiError(402, f"frame limit reached ({self.frames_inferenced} of {self.frame_limit} frames on the "
                                f"{self.subscription_tier} tier)")
        job_id = str(uuid.uuid4())
        inferences: List[Inference] = []
        for n, asset in enumerate(assets):
            where = f"assets[{n}]"
            if not isinstance(asset, dict):
                raise ApiError(400, f"{where} must be an object")
            source = asset.get("source_path")
            if not isinstance(source, str) or not source:
                raise ApiError(400, f"{where}.source_path is required")
            if not (self.store / source).resolve().is_file() or ".." in source.split("/"):
                raise ApiError(400, f"{where}.source_path {source!r} was never uploaded (use the s3_key of an upload)")
            services = asset.get("services")
            if not isinstance(services, list) or not services:
                raise ApiError(400, f"{where}: at least one of the roto, tracking or depth_map services is required")
            seen = set()
            for k, spec in enumerate(services):
                spec = validate_service(spec, f"{where}.services[{k}]", self.with_mov)
                if spec["type"] in seen:
                    raise ApiError(400, f"{where}: service {spec['type']} is listed twice")
                seen.add(spec["type"])
                inferences.append(Inference(id=str(uuid.uuid4()), job_id=job_id, type=spec["type"], spec=spec,
                                            source_path=source, asset_index=n,
                                            asset_metadata=asset.get("metadata") or {}))
        job = AJob(id=job_id, metadata=metadata, job_source=body.get("job_source"), assets=assets,
                   inferences=inferences)
        with self._lock:
            self._jobs[job_id] = job
            self._order.append(job_id)
            for inf in inferences:
                self._inferences[inf.id] = inf
        self.journal.save()
        for inf in inferences:
            self.workers.submit(self._run, inf)
        return job

    def _set(self, inf: Inference, status: str, error: Optional[str] = None) -> None:
        with self._lock:
            if inf.status in ("completed", "failed", "cancelled"):
                return
            inf.status = status
            inf.error = error
            inf.updated_at = _now()
        self.journal.save()

    def _run(self, inf: Inference) -> None:
        if not self.workers.wait_turn(inf.cancel):
            return
        self._set(inf, "running")

        def check() -> None:
            if inf.cancel.is_set():
                raise InterruptedError

        try:
            frames = processing.read_clip(self.store / inf.source_path)
            inf.frames = len(frames)
            out_dir = self.store / inf.spec["output_path"] / inf.job_id / inf.id
            outputs = processing.run(inf.type, frames, inf.spec, out_dir, check)
        except InterruptedError:
            return
        except processing.ClipError as exc:
            self._set(inf, "failed", str(exc))
            return
        except Exception as exc:  # a bug here must show on the job, not vanish in a thread
            self._set(inf, "failed", f"internal error: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            if inf.status == "running":
                inf.outputs = outputs
                self.frames_inferenced += inf.frames or 0
        self._set(inf, "completed")

    def cancel_inference(self, inf: Inference) -> None:
        inf.cancel.set()
        self._set(inf, "cancelled")

    def job(self, job_id: str) -> AJob:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None and job_id.isdigit() and 0 < int(job_id) <= len(self._order):
                job = self._jobs.get(self._order[int(job_id) - 1])
        if job is None:
            raise ApiError(404, f"job {job_id} not found")
        return job

    def inference(self, inference_id: str) -> Inference:
        with self._lock:
            inf = self._inferences.get(inference_id)
        if inf is None:
            raise ApiError(404, f"inference {inference_id} not found")
        return inf

    def view(self, job: AJob) -> Dict[str, Any]:
        """A job as the reply shows it, its id (and its inferences' job_id) in the ``id_form``."""
        out = job.view(self.echo_exports)
        if self.id_form == "integer":
            with self._lock:
                number = self._order.index(job.id) + 1
            out["id"] = number
            for inf in out["inferences"]:
                inf["job_id"] = number
        return out

    # --- results --------------------------------------------------------------------------------------------
    def result_file(self, job: AJob, export_type: str) -> Path:
        if export_type not in EXPORTS:
            raise ApiError(400, f"unknown export_type {export_type!r}; known: {', '.join(EXPORTS)}")
        relevant = [i for i in job.inferences if export_type in i.export_types]
        if not relevant:
            raise ApiError(404, f"job {job.id} has no inference producing {export_type}")
        waiting = [i for i in relevant if i.status in ("pending", "running")]
        if waiting:
            raise ApiError(409, f"the {export_type} result of job {job.id} is not ready ({waiting[0].status})")
        done = [i for i in relevant if i.status == "completed"]
        if not done:
            reason = relevant[0].error or relevant[0].status
            raise ApiError(409, f"job {job.id} has no {export_type} result: the inference {relevant[0].status} "
                                f"({reason})")
        if len(done) == 1:
            return done[0].outputs[export_type]
        combined = self.store / "results" / job.id / f"{export_type}.zip"
        if not combined.exists():
            combined.parent.mkdir(parents=True, exist_ok=True)
            tmp = combined.with_name(combined.name + ".part")
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as out:
                for inf in done:
                    src = inf.outputs[export_type]
                    prefix = f"asset_{inf.asset_index + 1}/"
                    if zipfile.is_zipfile(src):
                        with zipfile.ZipFile(src) as part:
                            for name in part.namelist():
                                out.writestr(prefix + name, part.read(name))
                    else:
                        out.write(src, prefix + src.name)
            os.replace(tmp, combined)
        return combined

    # --- listing --------------------------------------------------------------------------------------------
    @staticmethod
    def _filters(request: Request) -> Tuple[Optional[str], Optional[str], Dict[str, Any], int]:
        q = request.query_params
        service, status = q.get("service") or None, q.get("status") or None
        if service and service not in SERVICES:
            raise ApiError(400, f"service must be one of {', '.join(SERVICES)}, got {service!r}")
        if status and status not in STATES:
            raise ApiError(400, f"status must be one of {', '.join(STATES)}, got {status!r}")
        meta: Dict[str, Any] = {}
        if q.get("metadata"):
            try:
                meta = json.loads(q["metadata"])
            except ValueError:
                raise ApiError(400, "metadata must be a JSON object, e.g. {\"project_id\": 123}") from None
            if not isinstance(meta, dict):
                raise ApiError(400, "metadata must be a JSON object")
        try:
            page = int(q.get("page", "1"))
        except ValueError:
            raise ApiError(400, "page must be a whole number") from None
        if page < 1:
            raise ApiError(400, "page starts at 1")
        return service, status, meta, page

    def _page(self, items: List[Dict[str, Any]], page: int) -> Any:
        """One page in the form ``list_form`` names: the vendor publishes no paging shape (SERVICES.md)."""
        total = len(items)
        chunk = items[(page - 1) * PER_PAGE: page * PER_PAGE]
        if self.list_form == "whole":  # paging parameters ignored: the whole list every time
            return items
        if self.list_form == "bare":  # a page with nothing said about the others
            return chunk
        if self.list_form == "drf":
            return {"count": total, "results": chunk,
                    "next": f"/api/jobs?page={page + 1}" if page * PER_PAGE < total else None,
                    "previous": f"/api/jobs?page={page - 1}" if page > 1 else None}
        return {"items": chunk, "page": page, "per_page": PER_PAGE, "total": total,
                "pages": max(1, math.ceil(total / PER_PAGE))}

    def list_jobs(self, request: Request) -> Dict[str, Any]:
        service, status, meta, page = self._filters(request)
        with self._lock:
            jobs = [self._jobs[j] for j in reversed(self._order)]
        out = []
        for job in jobs:
            if any(job.metadata.get(k) != v for k, v in meta.items()):
                continue
            if (service or status) and not any((service is None or i.type == service)
                                               and (status is None or i.status == status) for i in job.inferences):
                continue
            out.append(self.view(job))
        return self._page(out, page)

    def list_inferences(self, request: Request) -> Dict[str, Any]:
        service, status, meta, page = self._filters(request)
        with self._lock:
            jobs = [self._jobs[j] for j in reversed(self._order)]
        out = []
        for job in jobs:
            for inf in job.inferences:
                merged = {**job.metadata, **inf.asset_metadata}
                if any(merged.get(k) != v for k, v in meta.items()):
                    continue
                if (service and inf.type != service) or (status and inf.status != status):
                    continue
                out.append(inf.view(self.echo_exports))
        return self._page(out, page)

    # --- the app --------------------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title="local Slapshot Autopilot", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(ApiError)
        async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
            return JSONResponse({"message": exc.message}, status_code=exc.status, headers=exc.headers)

        @app.post("/api/jobs", status_code=201)
        async def create_job(request: Request) -> Any:
            self._auth(request)
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "the body is not valid JSON") from None
            return self.view(self.create(body))

        @app.get("/api/jobs")
        def list_jobs(request: Request) -> Any:
            self._auth(request)
            return self.list_jobs(request)

        @app.get("/api/jobs/{job_id}")
        def get_job(job_id: str, request: Request) -> Any:
            self._auth(request)
            return self.view(self.job(job_id))

        @app.delete("/api/jobs/{job_id}")
        def cancel_job(job_id: str, request: Request) -> Any:
            self._auth(request)
            job = self.job(job_id)
            cancelled = 0
            for inf in job.inferences:
                if inf.status in ("pending", "running"):
                    self.cancel_inference(inf)
                    cancelled += 1
            return {"id": self.view(job)["id"], "cancelled": cancelled,
                    "message": f"cancelled {cancelled} inference(s)"}

        @app.get("/api/inferences")
        def list_inferences(request: Request) -> Any:
            self._auth(request)
            return self.list_inferences(request)

        @app.get("/api/inferences/{inference_id}")
        def get_inference(inference_id: str, request: Request) -> Any:
            self._auth(request)
            return self.inference(inference_id).view(self.echo_exports)

        @app.delete("/api/inferences/{inference_id}")
        def cancel_inference(inference_id: str, request: Request) -> Any:
            self._auth(request)
            inf = self.inference(inference_id)
            if inf.status in ("pending", "running"):
                self.cancel_inference(inf)
            return inf.view(self.echo_exports)

        @app.get("/api/user/limit")
        def user_limit(request: Request) -> Any:
            self._auth(request)
            return self.quota()

        @app.get("/api/comfyui/assets/upload")
        def upload_ticket(request: Request) -> Any:
            self._auth(request)
            q = request.query_params
            try:
                upload_id = str(uuid.UUID(q.get("upload_id", "")))
            except ValueError:
                raise ApiError(400, "upload_id must be a UUID") from None
            if q.get("asset_type") not in ("video", "mask"):
                raise ApiError(400, f"asset_type must be video or mask, got {q.get('asset_type')!r}")
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", (q.get("file_name") or "").replace("\\", "/").rsplit("/")[-1])
            name = name.strip("._")
            if not name:
                raise ApiError(400, "file_name is required")
            key = f"uploads/{q['asset_type']}/{upload_id}/{name}"
            return {"upload_url": self.presigner.url(request, "PUT", key), "s3_key": key}

        @app.get("/api/comfyui/{job_id}/result")
        def result(job_id: str, request: Request) -> Any:
            self._auth(request)
            export_type = request.query_params.get("export_type") or ""
            path = self.result_file(self.job(job_id), export_type)
            key = path.resolve().relative_to(self.store.resolve()).as_posix()
            return {"download_url": self.presigner.url(request, "GET", key), "export_type": export_type,
                    "expires_in": URL_TTL}

        @app.put("/_store/{key:path}")
        async def put_object(key: str, request: Request) -> Any:
            if not key.startswith("uploads/"):
                raise ApiError(403, "only upload keys may be written")
            path = self.presigner.check(request, "PUT", key)
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                raise ApiError(411, "MissingContentLength: send Content-Length")
            expected = int(length)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.part")
            received = 0
            try:
                with open(tmp, "wb") as out:
                    async for chunk in request.stream():
                        received += len(chunk)
                        out.write(chunk)
                if received != expected:
                    raise ApiError(400, f"IncompleteBody: received {received} of {expected} bytes")
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
            return JSONResponse({}, status_code=200, headers={"ETag": f"\"{received}\""})

        @app.get("/_store/{key:path}")
        def get_object(key: str, request: Request) -> Any:
            return self.presigner.serve(request, key)

        return app


def create_service(state_dir: Path, options: Any) -> LocalAutopilot:
    extra = getattr(options, "extra", {}) or {}
    return LocalAutopilot(Path(state_dir), workers=int(getattr(options, "workers", 2) or 2),
                          frame_limit=int(extra.get("autopilot_frame_limit", 1000)),
                          tier=str(extra.get("autopilot_tier", "free")),
                          api_key=getattr(options, "access_key", None) or API_KEY)


__all__ = ["API_KEY", "LocalAutopilot", "create_service"]
