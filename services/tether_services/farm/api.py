"""The local Renderfarm Platform (seed 004) over HTTP, mounted at ``/farm`` by the services frame.

Wire choices where the vendor is silent (the same ones ``tether.farm.models`` documents):

- errors: ``{"message": "..."}`` with the status; request validation is **400** with ``message`` naming each bad field
  and ``errors`` (the pydantic list); a 401 also carries ``WWW-Authenticate: Bearer``;
- login: ``POST /api/auth/login {email, password}`` -> ``{access_token, token_type: "bearer", expires_in}``; the local
  account is ``artist@tether.local`` / ``tether-local``; tokens are random and expire after ``token_ttl`` seconds;
- lists: ``{"items", "page", "per_page", "total", "pages"}``; jobs newest first, filters ``status`` (comma list),
  ``project`` (name), ``page``, ``per_page`` (1..500);
- ``GET /api/jobs/{id}`` adds ``tasks``; ``PATCH`` takes ``{"action": "hold"|"unhold"|"cancel"}`` or
  ``{"priority": 0..100}``; ``DELETE`` only a finished job (409 otherwise, 204 when done);
- ``GET /api/projects`` lists active projects (``?include_archived=true`` for all); ``PATCH {"archived": bool}``;
- uploads: ``POST /api/uploads/md5 {md5, size?, path?}`` -> ``{exists, file_id}`` (binds ``path`` when it exists);
  ``POST /api/uploads/file`` multipart ``file``, ``md5``, ``path`` -> ``{file_id, md5, size, path}``; the body is parsed
  as it streams in, hashed and written to the store, never held in memory; a wrong md5 is a 400;
- local extension: ``GET /api/jobs/{id}/outputs`` -> ``{"items": [{name, size, md5, url}]}`` and
  ``GET /api/jobs/{id}/outputs/{name}`` (honours ``Range`` with 206).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Dict, List, Optional

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException as StarletteHTTPException
from tether.farm.models import JobCreate, JobUpdate, LoginRequest, Md5Check, ProjectCreate, ProjectUpdate

from .engine import INSTANCES, PACKAGES, PASSWORD, FarmError, LocalFarm
from .store import BlobWriter, Md5Mismatch

BATCH = 1 << 20  # hand the parser ~1 MiB at a time: few thread hops, flat memory


class FarmService:
    """What the services frame mounts: the ASGI ``app`` and the :class:`LocalFarm` behind it."""

    def __init__(self, farm: LocalFarm) -> None:
        self.farm = farm
        self.app = build_app(farm)

    def close(self) -> None:
        self.farm.close()


def create_service(state_dir: Path, options: Any) -> FarmService:
    return FarmService(LocalFarm(state_dir, workers=options.workers, token_ttl=options.token_ttl,
                                 password=getattr(options, "access_key", None) or PASSWORD))


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"message": message, **extra}, status_code=status, headers=headers)


def _describe(errors: List[Any]) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def build_app(farm: LocalFarm) -> FastAPI:
    app = FastAPI(title="Tether local render farm", docs_url="/_docs", openapi_url="/_openapi.json")

    @app.exception_handler(FarmError)
    async def farm_error(_request: Request, exc: FarmError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return _error(400, _describe(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    def auth(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if header and scheme.lower() != "bearer":  # seed 004: a login's token as Bearer, never a key of its own
            raise FarmError(401, f"the Authorization scheme must be Bearer (a token from POST /api/auth/login), "
                                 f"not {scheme!r}")
        farm.check_token(token.strip() if scheme.lower() == "bearer" else None)

    authed = [Depends(auth)]

    @app.post("/api/auth/login")
    def login(body: LoginRequest) -> Dict[str, Any]:
        return farm.login(body.email, body.password)

    # --- jobs ---
    @app.get("/api/jobs", dependencies=authed)
    def list_jobs(status: Optional[str] = None, project: Optional[str] = None, page: int = 1,
                  per_page: int = 50) -> Any:
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
        return farm.list_jobs(statuses, project, page, per_page)

    @app.post("/api/jobs", dependencies=authed, status_code=201)
    def create_job(body: JobCreate) -> Dict[str, Any]:
        return farm.create_job(body)

    @app.get("/api/jobs/{job_id}", dependencies=authed)
    def get_job(job_id: str) -> Dict[str, Any]:
        return farm.job_view(farm.get(job_id), tasks=True)

    @app.patch("/api/jobs/{job_id}", dependencies=authed)
    def update_job(job_id: str, body: JobUpdate) -> Dict[str, Any]:
        return farm.update_job(job_id, body.action, body.priority)

    @app.delete("/api/jobs/{job_id}", dependencies=authed, status_code=204)
    def delete_job(job_id: str) -> Response:
        farm.delete_job(job_id)
        return Response(status_code=204)

    @app.get("/api/jobs/{job_id}/outputs", dependencies=authed)
    def list_outputs(job_id: str) -> Dict[str, Any]:
        items = farm.outputs(job_id)
        return {"items": items, "page": 1, "per_page": len(items), "total": len(items), "pages": 1}

    @app.get("/api/jobs/{job_id}/outputs/{name}", dependencies=authed)
    def get_output(job_id: str, name: str) -> FileResponse:
        return FileResponse(farm.output_path(job_id, name), filename=name)

    # --- projects, instances, packages ---
    @app.get("/api/projects", dependencies=authed)
    def list_projects(include_archived: bool = False) -> Dict[str, Any]:
        items = farm.list_projects(include_archived)
        return {"items": items, "page": 1, "per_page": len(items), "total": len(items), "pages": 1}

    @app.post("/api/projects", dependencies=authed, status_code=201)
    def create_project(body: ProjectCreate) -> Dict[str, Any]:
        return farm.create_project(body.name)

    @app.patch("/api/projects/{project_id}", dependencies=authed)
    def update_project(project_id: str, body: ProjectUpdate) -> Dict[str, Any]:
        return farm.update_project(project_id, body.archived)

    @app.get("/api/enterprise/instances", dependencies=authed)
    def instances() -> Dict[str, Any]:
        items = [dict(i) for i in INSTANCES if i["enabled"]]  # the local account is not an admin
        return {"items": items, "page": 1, "per_page": len(items), "total": len(items), "pages": 1}

    @app.get("/api/packages", dependencies=authed)
    def packages() -> Dict[str, Any]:
        items = [dict(p, render_software=list(p["render_software"])) for p in PACKAGES]
        return {"items": items, "page": 1, "per_page": len(items), "total": len(items), "pages": 1}

    # --- uploads ---
    @app.post("/api/uploads/md5", dependencies=authed)
    def check_md5(body: Md5Check) -> Dict[str, Any]:
        return farm.check_md5(body.md5, body.size, body.path)

    @app.post("/api/uploads/file", dependencies=authed, status_code=201)
    async def upload_file(request: Request) -> Any:
        return await _receive_upload(farm, request)

    # --- billing ---
    @app.get("/api/billing/current-period", dependencies=authed)
    def billing() -> Dict[str, Any]:
        return farm.billing_current()

    @app.get("/api/billing/transactions", dependencies=authed)
    def transactions() -> Dict[str, Any]:
        items = farm.list_transactions()
        return {"items": items, "page": 1, "per_page": len(items), "total": len(items), "pages": 1}

    return app


class _UploadParts:
    """Multipart callbacks: the ``file`` part streams into a :class:`BlobWriter`, small fields are kept."""

    def __init__(self, farm: LocalFarm) -> None:
        self.farm = farm
        self.fields: Dict[str, bytes] = {}
        self.writer: Optional[BlobWriter] = None
        self.files = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False

    def callbacks(self) -> Dict[str, Any]:
        return {
            "on_part_begin": self.part_begin, "on_header_field": self.header_field,
            "on_header_value": self.header_value, "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
        }

    def part_begin(self) -> None:
        self._disposition = b""
        self._header_name = self._header_value = b""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in options or self._name == "file"
        if self._is_file:
            self.files += 1
            if self.writer is None:
                self.writer = self.farm.store.writer()
        else:
            self.fields[self._name] = b""

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            if self.files == 1 and self.writer is not None:
                self.writer.write(data[start:end])
        elif len(self.fields[self._name]) < 4096:
            self.fields[self._name] += data[start:end]


async def _receive_upload(farm: LocalFarm, request: Request) -> Any:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        return _error(400, "send the file as multipart/form-data with the fields file, md5 and path")
    parts = _UploadParts(farm)
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    pending: List[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    # One batch is parsed, hashed and written on a worker thread while the next is read from the socket.
    in_flight: Optional[asyncio.Future[Any]] = None
    try:
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= BATCH:
                data, pending, size = b"".join(pending), [], 0
                if in_flight is not None:
                    await in_flight
                in_flight = loop.run_in_executor(None, parser.write, data)
        if in_flight is not None:
            await in_flight
            in_flight = None
        if pending:
            await anyio.to_thread.run_sync(parser.write, b"".join(pending))
        parser.finalize()
    except BaseException:
        if in_flight is not None:
            with contextlib.suppress(BaseException):
                await in_flight
        if parts.writer is not None:
            parts.writer.abort()
        raise
    writer = parts.writer
    md5 = parts.fields.get("md5", b"").decode().strip().lower()
    path = parts.fields.get("path", b"").decode().strip()
    if writer is None or parts.files != 1 or not md5 or not path:
        if writer is not None:
            writer.abort()
        missing = [n for n, ok in (("file", writer is not None), ("md5", bool(md5)), ("path", bool(path))) if not ok]
        what = f"missing field(s): {', '.join(missing)}" if missing else "send exactly one file per request"
        return _error(400, f"{what}; the upload is multipart with the fields file, md5 and path")
    try:
        actual = await anyio.to_thread.run_sync(writer.finish, md5)
    except Md5Mismatch as exc:
        return _error(400, f"md5 mismatch for {path!r}: you sent md5 {exc.claimed} but the farm received "
                           f"{exc.size} bytes with md5 {exc.actual}; the file changed or was corrupted on the way: "
                           "hash it again and re-upload")
    farm.bind(path, actual)
    return JSONResponse({"file_id": farm.file_id(actual), "md5": actual, "size": writer.size, "path": path},
                        status_code=201)
