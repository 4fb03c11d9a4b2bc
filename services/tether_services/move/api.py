"""The local Move (Move.ai): the seed-003 GraphQL contract over real HTTP, mounted at ``/move``.

``POST /move/ugc/graphql`` with ``{query, operationName, variables}``. The documents are really executed: parsed,
validated against :data:`SCHEMA` (the contract as SDL) and run by graphql-core, so a client document with a typo
or a wrong variable type fails here as it would at Move. Resolvers are plain functions over this object's state.

- Auth: ``authorization: local-move-key`` (:data:`API_KEY`), the raw key with no ``Bearer`` (as the official SDK
  sends it). Missing or wrong -> HTTP 401 ``{"errors": [{"errorType": "UnauthorizedException", ...}]}``.
- Errors come as ``errors[]`` with ``errorType`` and ``message`` (AppSync style) and ``data`` for what did work:
  ``ValidationError`` (the document does not fit the schema), ``BadRequest`` (a value is wrong),
  ``NotFoundException`` (no such job/take/file; ``data.job`` is null), ``InternalFailure``.
- ``createFile(type, name, metadata)`` -> ``{id, presignedUrl}``: a presigned ``PUT`` on this app
  (``/move/_store/<key>?expires=&signature=``, 15 minutes, ``Content-Length`` required, no API key);
  ``createSingleCamTake(sources, name, metadata)`` wants a file whose bytes arrived;
  ``createSingleCamJob(takeId, name, options, outputs, metadata, clipWindow)`` starts processing.
  ``createJob(takeId, metadata)`` (the seed's older spelling) is the same with the default output.
- ``getJob(jobId)``, ``listJobs(first, after, sortDirection, takeId) -> {first, after, items}``: ``after`` in the
  reply is the opaque cursor of the next page, null on the last; ``first`` at most 100, default 20; newest first.
- State machine: ``NOT_STARTED`` -> ``STARTED`` -> ``RUNNING`` -> ``FINISHED`` | ``FAILED``, reported in both
  ``state`` and ``progress{state, percentageComplete}``, spelled as :attr:`LocalMove.spell` says (by default
  ``NOT STARTED`` with a space, as Move has been seen to send it; tests set other spellings).
- Processing is honest and named: the video's frame rate and length are read with PyAV (``clipWindow`` cuts it),
  and :mod:`.rig_worker` builds a full humanoid (22 bones, 1.75 m, T-pose rest) walking with one key per frame in
  Blender (the bpy wheel, or ``blender`` on PATH / ``TETHER_MOVE_BLENDER``), its stride following how much the
  picture moves, and exports the FBX. Not motion capture. Outputs made:
  ``MAIN_FBX``, ``ALL_FBX`` (a zip of the FBX), ``MAIN_BLEND``, ``MOTION_DATA`` (JSON rotations per frame); a job
  asking for ``MAIN_USDC`` or ``RENDER_VIDEO`` is refused with ``BadRequest`` naming what can be made.

Test handles: ``pause()``/``resume()`` keep new jobs ``NOT STARTED``; ``spell`` maps a canonical state to the
spelling sent; ``max_first`` caps the page size; ``output_field`` (``format``, or ``key`` for the older schema) names
an output's type field. Faults come from the frame's ``faults.py``.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError, build_schema, graphql_sync
from tether.move.submit import LIMITS

from ..journal import Journal, revive_all
from ..presign import Presigner
from ..workers import JobWorkers, WorkerHandles

API_KEY = "local-move-key"
URL_TTL = 900
DEFAULT_FIRST = 20
MAX_FIRST = 100
MAX_FRAMES = LIMITS.max_frames
MIN_FRAMES = LIMITS.min_frames
MADE_OUTPUTS = ("MAIN_FBX", "ALL_FBX", "MAIN_BLEND", "MOTION_DATA")
WORKER = Path(__file__).with_name("rig_worker.py")

SCHEMA_SDL = """
scalar AWSJSON

enum SourceFormat { MP4 MOV AVI MOVE }
enum OutputType { MAIN_FBX MAIN_BLEND MAIN_USDC MAIN_GLB ALL_FBX RENDER_VIDEO MOTION_DATA }
enum SortDirection { ASC DESC }

type Client { id: ID! }
type File { id: ID! type: String name: String metadata: AWSJSON created: String presignedUrl: String }
type Source { deviceLabel: String format: SourceFormat file: File }
type Take { id: ID! name: String metadata: AWSJSON created: String client: Client sources: [Source] }
type Progress { state: String percentageComplete: Float }
type Output { OUTPUT_FIELD: String! file: File }
type Options { trackFingers: Boolean floorPlane: Boolean mocapModel: String trackBall: Boolean
               trackJerseyNumbers: Boolean }
type Inputs { options: Options }
type Job {
  id: ID! name: String metadata: AWSJSON state: String created: String client: Client take: Take
  progress: Progress outputs: [Output] inputs: Inputs error: String
}
type JobList { first: Int after: String items: [Job] }

input SourceInput { deviceLabel: String! fileId: String! format: SourceFormat! }
input OptionsInput { trackFingers: Boolean floorPlane: Boolean mocapModel: String trackBall: Boolean
                     trackJerseyNumbers: Boolean }
input ClipWindowInput { startTime: Float! endTime: Float! }

type Query {
  getFile(fileId: ID!): File
  getTake(id: String!): Take
  getJob(jobId: ID!): Job
  listJobs(first: Int, after: AWSJSON, sortDirection: SortDirection, takeId: String): JobList
}

type Mutation {
  createFile(type: String!, name: String, metadata: AWSJSON): File
  createSingleCamTake(sources: [SourceInput!]!, name: String, metadata: AWSJSON): Take
  createSingleCamJob(takeId: String!, name: String, options: OptionsInput, outputs: [OutputType!],
                     metadata: AWSJSON, clipWindow: ClipWindowInput): Job
  createJob(takeId: String!, metadata: AWSJSON): Job
}
"""
# An output's type is ``format`` since the SDK's 4.x changelog (``key`` before it): one schema of each age, chosen
# by LocalMove.output_field, so the client is tested against both.
SCHEMAS = {name: build_schema(SCHEMA_SDL.replace("OUTPUT_FIELD", name)) for name in ("format", "key")}
SCHEMA = SCHEMAS["format"]
CANONICAL = ("NOT_STARTED", "STARTED", "RUNNING", "FINISHED", "FAILED", "CANCELLED")


class MoveError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _metadata(value: Any) -> Optional[str]:
    """AWSJSON: a string holding JSON (kept as sent)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return json.dumps(value)
    try:
        json.loads(value)
    except ValueError:
        raise MoveError("BadRequest", "metadata must be a JSON string (AWSJSON), e.g. \"{\\\"key\\\": 1}\"") from None
    return value


@dataclass
class StoredFile:
    id: str
    type: str
    name: str
    metadata: Optional[str]
    key: str
    created: str = field(default_factory=_now)
    uploaded: bool = False


@dataclass
class Take:
    id: str
    name: Optional[str]
    metadata: Optional[str]
    sources: List[Dict[str, Any]]
    created: str = field(default_factory=_now)


@dataclass
class MJob:
    id: str
    take_id: str
    name: Optional[str]
    metadata: Optional[str]
    options: Dict[str, Any]
    outputs: List[str]
    clip_window: Optional[Dict[str, float]]
    state: str = "NOT_STARTED"
    percentage: float = 0.0
    error: Optional[str] = None
    files: Dict[str, str] = field(default_factory=dict)  # output key -> store key
    created: str = field(default_factory=_now)
    seq: int = 0


class LocalMove(WorkerHandles):
    def __init__(self, state_dir: Path, workers: int = 2, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.state_dir = Path(state_dir)
        self.store = self.state_dir / "store"
        self.store.mkdir(parents=True, exist_ok=True)
        self.spell: Dict[str, str] = {"NOT_STARTED": "NOT STARTED"}
        self.max_first = MAX_FIRST
        self.output_field = "format"  # or "key": the schema's age (SCHEMAS)
        self.presigner = Presigner(self.store, put_route="move_put_object", get_route="move_get_object", ttl=URL_TTL,
                                   error=lambda status, message: _HttpError(status, message))
        self._lock = threading.RLock()
        self._files: Dict[str, StoredFile] = {}
        self._takes: Dict[str, Take] = {}
        self._jobs: Dict[str, MJob] = {}
        self._seq = 0
        self.workers = JobWorkers(workers, "move")
        self.journal = Journal(self.state_dir, self._snapshot)
        self._restore()
        self.app = self._build()

    # --- kept across restarts -------------------------------------------------------------------------------
    def _snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {"files": list(self._files.values()), "takes": list(self._takes.values()),
                    "jobs": list(self._jobs.values()), "seq": self._seq}

    def _restore(self) -> None:
        """The journal's files, takes and jobs back; a job a restart interrupted runs again from the start."""
        data = self.journal.load() or {}
        self._seq = int(data.get("seq", 0))
        self._files = revive_all(StoredFile, data.get("files"), "id")
        self._takes = revive_all(Take, data.get("takes"), "id")
        self._jobs = revive_all(MJob, data.get("jobs"), "id")
        for job in self._jobs.values():
            if job.state not in ("FINISHED", "FAILED", "CANCELLED"):
                job.state, job.percentage = "NOT_STARTED", 0.0
                self.workers.submit(self._run, job)

    # --- views ----------------------------------------------------------------------------------------------
    def _spelled(self, state: str) -> str:
        return self.spell.get(state, state)

    def file_view(self, f: StoredFile, request: Request, method: str = "PUT") -> Dict[str, Any]:
        url = self.presigner.url(request, method, f.key) if method == "PUT" or f.uploaded else None
        return {"id": f.id, "type": f.type, "name": f.name, "metadata": f.metadata, "created": f.created,
                "presignedUrl": url}

    def take_view(self, take: Take, request: Request) -> Dict[str, Any]:
        sources = []
        for s in take.sources:
            f = self._files.get(s["fileId"])
            sources.append({"deviceLabel": s["deviceLabel"], "format": s["format"],
                            "file": self.file_view(f, request, "GET") if f else None})
        return {"id": take.id, "name": take.name, "metadata": take.metadata, "created": take.created,
                "client": {"id": "client-local"}, "sources": sources}

    def job_view(self, job: MJob, request: Request) -> Dict[str, Any]:
        with self._lock:
            state, pct, files = job.state, job.percentage, dict(job.files)
        take = self._takes.get(job.take_id)
        outputs = []
        for key in job.outputs:
            store_key = files.get(key)
            file = None
            if store_key:
                file = {"id": f"file-{uuid.uuid5(uuid.NAMESPACE_URL, store_key)}",
                        "presignedUrl": self.presigner.url(request, "GET", store_key)}
            outputs.append({self.output_field: key, "file": file})
        spelled = self._spelled(state)
        return {"id": job.id, "name": job.name, "metadata": job.metadata, "state": spelled, "created": job.created,
                "client": {"id": "client-local"}, "take": self.take_view(take, request) if take else None,
                "progress": {"state": spelled, "percentageComplete": round(pct, 1)},
                "outputs": outputs if state == "FINISHED" else [],
                "inputs": {"options": job.options}, "error": job.error}

    # --- resolvers ------------------------------------------------------------------------------------------
    def create_file(self, request: Request, type: str, name: Optional[str] = None,
                    metadata: Any = None) -> Dict[str, Any]:
        kind = type.strip().lower()
        if kind not in ("mp4", "mov", "avi", "move"):
            raise MoveError("BadRequest", f"file type {type!r} is not one of mp4, mov, avi, move")
        file_id = f"file-{uuid.uuid4()}"
        f = StoredFile(id=file_id, type=kind, name=name or f"{file_id}.{kind}", metadata=_metadata(metadata),
                       key=f"uploads/{file_id}.{kind}")
        with self._lock:
            self._files[file_id] = f
        self.journal.save()
        return self.file_view(f, request)

    def get_file(self, request: Request, fileId: str) -> Optional[Dict[str, Any]]:
        f = self._files.get(fileId)
        if f is None:
            raise MoveError("NotFoundException", f"file {fileId} not found")
        return self.file_view(f, request, "GET")

    def create_take(self, request: Request, sources: List[Dict[str, Any]], name: Optional[str] = None,
                    metadata: Any = None) -> Dict[str, Any]:
        if len(sources) != 1:
            raise MoveError("BadRequest", f"a single-camera take has exactly one source, got {len(sources)}")
        for s in sources:
            f = self._files.get(s["fileId"])
            if f is None:
                raise MoveError("NotFoundException", f"file {s['fileId']} not found: create it with createFile")
            if not f.uploaded:
                raise MoveError("BadRequest", f"file {f.id} has no bytes yet: PUT the video to its presignedUrl")
        take = Take(id=f"take-{uuid.uuid4()}", name=name, metadata=_metadata(metadata), sources=list(sources))
        with self._lock:
            self._takes[take.id] = take
        self.journal.save()
        return self.take_view(take, request)

    def get_take(self, request: Request, id: str) -> Dict[str, Any]:
        take = self._takes.get(id)
        if take is None:
            raise MoveError("NotFoundException", f"take {id} not found")
        return self.take_view(take, request)

    def create_job(self, request: Request, takeId: str, name: Optional[str] = None,
                   options: Optional[Dict[str, Any]] = None, outputs: Optional[List[str]] = None,
                   metadata: Any = None, clipWindow: Optional[Dict[str, float]] = None) -> Dict[str, Any]:
        take = self._takes.get(takeId)
        if take is None:
            raise MoveError("NotFoundException", f"take {takeId} not found: create it with createSingleCamTake")
        wanted = list(dict.fromkeys(outputs or ["MAIN_FBX"]))
        unmade = [o for o in wanted if o not in MADE_OUTPUTS]
        if unmade:
            raise MoveError("BadRequest", f"this local Move cannot make {', '.join(unmade)}; it makes "
                                          f"{', '.join(MADE_OUTPUTS)}")
        if clipWindow is not None and (clipWindow["startTime"] < 0 or clipWindow["endTime"] <= clipWindow["startTime"]):
            raise MoveError("BadRequest", "clipWindow must have 0 <= startTime < endTime (seconds)")
        with self._lock:
            self._seq += 1
            job = MJob(id=f"job-{uuid.uuid4()}", take_id=take.id, name=name, metadata=_metadata(metadata),
                       options=dict(options or {}), outputs=wanted, clip_window=clipWindow, seq=self._seq)
            self._jobs[job.id] = job
        self.journal.save()
        self.workers.submit(self._run, job)
        return self.job_view(job, request)

    def get_job(self, request: Request, jobId: str) -> Dict[str, Any]:
        job = self._jobs.get(jobId)
        if job is None:
            raise MoveError("NotFoundException", f"job {jobId} not found")
        return self.job_view(job, request)

    def list_jobs(self, request: Request, first: Optional[int] = None, after: Optional[str] = None,
                  sortDirection: Optional[str] = None, takeId: Optional[str] = None) -> Dict[str, Any]:
        size = DEFAULT_FIRST if first is None else first
        if not 1 <= size <= self.max_first:
            raise MoveError("BadRequest", f"first must be between 1 and {self.max_first}, got {size}")
        start = 0
        if after:
            try:
                start = int(base64.urlsafe_b64decode(after.encode()).decode().split(":", 1)[1])
            except (ValueError, IndexError, UnicodeDecodeError):
                raise MoveError("BadRequest", f"after {after!r} is not a cursor this API gave") from None
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.seq, reverse=(sortDirection or "DESC") == "DESC")
        if takeId:
            jobs = [j for j in jobs if j.take_id == takeId]
        page = jobs[start:start + size]
        nxt = start + size
        cursor = base64.urlsafe_b64encode(f"jobs:{nxt}".encode()).decode() if nxt < len(jobs) else None
        return {"first": size, "after": cursor, "items": [self.job_view(j, request) for j in page]}

    # --- processing -----------------------------------------------------------------------------------------
    def _set(self, job: MJob, state: str, pct: Optional[float] = None, error: Optional[str] = None) -> None:
        with self._lock:
            if job.state in ("FINISHED", "FAILED", "CANCELLED"):
                return
            job.state = state
            if pct is not None:
                job.percentage = pct
            job.error = error
        self.journal.save()

    def _run(self, job: MJob) -> None:
        if not self.workers.wait_turn():
            return
        self._set(job, "STARTED", 0.0)
        try:
            take = self._takes[job.take_id]
            source = self.store / self._files[take.sources[0]["fileId"]].key
            facts = probe(source, job.clip_window)
            self._set(job, "RUNNING", 20.0)
            out_dir = self.store / "outputs" / job.id
            files = build_rig(out_dir, facts, name=_rig_name(job.name or take.name), outputs=job.outputs)
            self._set(job, "RUNNING", 90.0)
            if "ALL_FBX" in job.outputs:
                archive = out_dir / "all_fbx.zip"
                with zipfile.ZipFile(archive, "w") as z:
                    z.write(files["MAIN_FBX"], Path(files["MAIN_FBX"]).name)
                files["ALL_FBX"] = str(archive)
            root = self.store.resolve()
            keys = {k: Path(v).resolve().relative_to(root).as_posix() for k, v in files.items() if k in job.outputs}
        except ProcessingError as exc:
            self._set(job, "FAILED", error=str(exc))
            return
        except Exception as exc:  # a bug must show on the job, not vanish in a thread
            self._set(job, "FAILED", error=f"internal error: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            job.files = keys
        self._set(job, "FINISHED", 100.0)

    # --- the app --------------------------------------------------------------------------------------------
    def _auth(self, request: Request) -> Optional[JSONResponse]:
        key = request.headers.get("authorization")
        if not key:
            return _unauthorized("missing authorization header: send the API key as it is")
        if key.lower().startswith("bearer "):
            return _unauthorized("the authorization header is the API key itself, without 'Bearer'")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return _unauthorized("You are not authorized to make this call (invalid API key)")
        return None

    def _execute(self, request: Request, body: Any) -> Tuple[int, Dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return 400, {"errors": [{"errorType": "BadRequest", "message": "the body must be {query, variables}"}]}
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return 400, {"errors": [{"errorType": "BadRequest", "message": "variables must be an object"}]}

        def bind(method: Any) -> Any:
            return lambda _info, **kwargs: method(request, **kwargs)

        root = {"getFile": bind(self.get_file), "getTake": bind(self.get_take), "getJob": bind(self.get_job),
                "listJobs": bind(self.list_jobs), "createFile": bind(self.create_file),
                "createSingleCamTake": bind(self.create_take), "createSingleCamJob": bind(self.create_job),
                "createJob": bind(self.create_job)}
        result = graphql_sync(SCHEMAS[self.output_field], body["query"], root_value=root, variable_values=variables,
                              operation_name=body.get("operationName"))
        reply: Dict[str, Any] = {"data": result.data}
        if result.errors:
            reply["errors"] = [_format(e) for e in result.errors]
        # a document that could not run at all (syntax, validation, variables) answers 400, as AppSync does
        return (400 if result.data is None and result.errors else 200), reply

    def _build(self) -> FastAPI:
        app = FastAPI(title="local Move", docs_url=None, redoc_url=None, openapi_url=None)

        @app.exception_handler(_HttpError)
        async def _http_error(request: Request, exc: _HttpError) -> JSONResponse:
            return JSONResponse({"message": exc.message}, status_code=exc.status)

        @app.post("/ugc/graphql")
        async def graphql_endpoint(request: Request) -> Any:
            refused = self._auth(request)
            if refused is not None:
                return refused
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"errors": [{"errorType": "BadRequest", "message": "the body is not JSON"}]},
                                    status_code=400)
            status, reply = self._execute(request, body)
            return JSONResponse(reply, status_code=status)

        @app.put("/_store/{key:path}", name="move_put_object")
        async def put_object(key: str, request: Request) -> Any:
            if not key.startswith("uploads/"):
                raise _HttpError(403, "only upload keys may be written")
            path = self.presigner.check(request, "PUT", key)
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                raise _HttpError(411, "MissingContentLength: send Content-Length")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.part")
            received = 0
            try:
                with open(tmp, "wb") as out:
                    async for chunk in request.stream():
                        received += len(chunk)
                        out.write(chunk)
                if received != int(length):
                    raise _HttpError(400, f"IncompleteBody: received {received} of {length} bytes")
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()
            with self._lock:
                for f in self._files.values():
                    if f.key == key:
                        f.uploaded = True
            self.journal.save()
            return JSONResponse({}, status_code=200, headers={"ETag": f"\"{received}\""})

        @app.get("/_store/{key:path}", name="move_get_object")
        def get_object(key: str, request: Request) -> Any:
            return self.presigner.serve(request, key)

        return app


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ProcessingError(Exception):
    """The take cannot be processed; the message is the job's error."""


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"errorType": "UnauthorizedException", "message": message}]},
                        status_code=401)


def _format(error: GraphQLError) -> Dict[str, Any]:
    original = error.original_error
    if isinstance(original, MoveError):
        error_type = original.error_type
    elif original is None or not error.path:
        # parse, validation and variable coercion errors (an enum value the schema lacks: its original is the
        # coercion's own error) happen before any field runs, so they have no path
        error_type = "ValidationError"
    else:
        error_type = "InternalFailure"
    out: Dict[str, Any] = {"errorType": error_type, "message": error.message}
    if error.path:
        out["path"] = list(error.path)
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    return out


def _rig_name(name: Optional[str]) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in (name or "")).strip("_")
    return f"{cleaned or 'Take'}_rig"


@dataclass
class TakeFacts:
    """What processing reads from the uploaded video: its rate, the frames of the window and their motion."""

    fps: float
    frames: int
    energy: List[float] = field(default_factory=list)  # 0..1 per frame: how much the picture changed
    sway: List[float] = field(default_factory=list)  # -1..1 per frame: where (left..right) it changed


def probe(path: Path, window: Optional[Dict[str, float]] = None) -> TakeFacts:
    """The uploaded video's rate and the frames to animate, cut to ``window`` (seconds), with their motion: the mean
    absolute difference of each frame from the one before (a coarse grey thumbnail) and its horizontal centroid."""
    try:
        import av
        import numpy as np
    except ImportError:
        raise ProcessingError("this local Move needs PyAV and numpy to read videos (pip install av numpy)") from None
    energy: List[float] = []
    sway: List[float] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            fps = float(rate) if rate else 30.0
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = (stream.frames or 0) / fps
            start, end = 0.0, duration
            if window is not None:
                start, end = float(window["startTime"]), min(float(window["endTime"]), duration)
                if start >= duration:
                    raise ProcessingError(f"the clip window starts at {start:g} s but the video lasts "
                                          f"{duration:.3f} s")
            frames = max(1, round((end - start) * fps))
            if frames > MAX_FRAMES:
                raise ProcessingError(f"{frames} frames is over this local Move's {MAX_FRAMES}-frame limit")
            if frames < MIN_FRAMES:
                raise ProcessingError(f"{frames} frames is too short a take: this local Move needs {MIN_FRAMES}")
            previous = None
            first = round(start * fps)
            for index, frame in enumerate(container.decode(stream)):
                if index < first:
                    continue
                if len(energy) >= frames:
                    break
                grey = frame.to_ndarray(format="gray")[::8, ::8].astype(np.float32) / 255.0
                if previous is None or grey.shape != previous.shape:
                    energy.append(0.0)
                    sway.append(0.0)
                else:
                    diff = np.abs(grey - previous)
                    total = float(diff.sum())
                    energy.append(min(1.0, float(diff.mean()) * 8.0))
                    columns = np.linspace(-1.0, 1.0, diff.shape[1], dtype=np.float32)
                    sway.append(float((diff.sum(axis=0) * columns).sum() / total) if total > 1e-6 else 0.0)
                previous = grey
    except (IndexError, ValueError, OSError) as exc:
        raise ProcessingError(f"the uploaded file is not a readable video ({type(exc).__name__}: {exc})") from None
    if len(energy) > 1:
        energy[0] = energy[1]  # the first frame has nothing before it: it moves as the next one does
    return TakeFacts(fps=fps, frames=frames, energy=energy, sway=sway)


def rig_command() -> List[str]:
    blender = os.environ.get("TETHER_MOVE_BLENDER") or shutil.which("blender")
    if blender:
        return [blender, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "-P", str(WORKER), "--"]
    return [sys.executable, "-u", str(WORKER)]


def build_rig(out_dir: Path, facts: TakeFacts, *, name: str, outputs: List[str]) -> Dict[str, str]:
    args = json.dumps({"out_dir": str(out_dir), "frames": facts.frames, "fps": facts.fps, "name": name,
                       "outputs": outputs, "energy": [round(e, 4) for e in facts.energy],
                       "sway": [round(v, 4) for v in facts.sway]})
    try:
        proc = subprocess.run([*rig_command(), args], capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessingError(f"Blender could not build the rig ({type(exc).__name__}: {exc})") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{\"files\""):
            files: Dict[str, str] = json.loads(line)["files"]
            return files
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    hint = " (is the bpy wheel installed? pip install 'tether[render]')" if "No module named 'bpy'" in proc.stderr \
        else ""
    raise ProcessingError(f"Blender could not build the rig (exit {proc.returncode}){hint}: {' | '.join(tail)}")


def create_service(state_dir: Path, options: Any) -> LocalMove:
    return LocalMove(Path(state_dir), workers=int(getattr(options, "workers", 2) or 2),
                     api_key=getattr(options, "access_key", None) or API_KEY)
