"""Client for Move (Move.ai, seed 003): GraphQL over the shared httpx layer, with typed documents.

Why not ``gql``: Move is one endpoint and a handful of fixed operations (create a file, a take and a job, read and
list jobs). ``gql`` would bring its own transports (aiohttp/requests/websockets extras), graphql-core and a schema
fetch or a local copy of the schema, all to send six constant strings; inside a DCC's Python every extra dependency
is one more thing to collide with another studio tool. Sending ``{query, operationName, variables}`` through
:class:`tether.http.BaseClient` keeps the retries, timeouts, ``Retry-After`` handling, redaction and typed errors
every other service already has, and the replies are checked by pydantic models (:mod:`.models`) as everywhere else.
What ``gql`` would add, client-side validation against the schema, the local service does for real (it executes
the same documents with graphql-core against the contract's schema), so a typo in a document fails a test.

Auth is the raw key in ``authorization`` with no ``Bearer`` prefix (the official SDK's HeaderAuth), never sent to
presigned URLs. GraphQL ``errors[]`` (``errorType``, ``message``) become typed errors: an authorisation error is an
:class:`AuthError` that says to run ``tether login move``.

``createSingleCamJob`` is never blindly repeated: when the connection drops after it may have reached Move, the
client lists the take's jobs (a take is made for one submission) before giving up, so no job is made twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Type
from urllib.parse import unquote, urlsplit

from ..creation import create_once
from ..errors import (
    AuthError,
    BadRequest,
    ConfigError,
    InputError,
    NotFound,
    ProtocolError,
    RateLimited,
    ServiceError,
)
from ..http import BaseClient, HeaderAuth, RetryPolicy
from ..jobs import Job, JobOutput, JobState, jobs_by_id_from_pages
from ..progress import Progress
from ..spec import SPECS
from ..transfer import put_file, upload_source
from .models import (
    CREATE_FILE,
    CREATE_JOB,
    CREATE_TAKE,
    DEFAULT_OUTPUTS,
    GET_FILE,
    GET_JOB,
    GET_JOB_ERROR,
    LIST_JOBS,
    OLD_OUTPUT_FIELD,
    OUTPUT_FIELD,
    OUTPUT_TYPES,
    SOURCE_FORMATS,
    ClipWindow,
    JobList,
    MoveFile,
    MoveJob,
    MoveTake,
    Source,
    metadata_json,
)

SERVICE = "move"
LOCAL_API_KEY = SPECS[SERVICE].local_key or ""  # the local stand-in's fixed key
GRAPHQL_PATH = "/ugc/graphql"
CHUNK = 1024 * 1024

_OPERATION = re.compile(r"^\s*(?:query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")
# errorType (AppSync/Apollo spellings) -> our typed error; matched as a lower-case substring
_ERROR_TYPES: Sequence[tuple[str, Type[ServiceError]]] = (
    ("unauthor", AuthError), ("unauthent", AuthError), ("forbidden", AuthError), ("accessdenied", AuthError),
    ("notfound", NotFound), ("not_found", NotFound),
    ("throttl", RateLimited), ("ratelimit", RateLimited), ("toomanyrequests", RateLimited),
    ("validation", BadRequest), ("badrequest", BadRequest), ("bad_user_input", BadRequest),
    ("badinput", BadRequest), ("invalid", BadRequest),
)


def operation_name(document: str) -> str:
    match = _OPERATION.match(document)
    if not match:
        raise ValueError("a Move document must be a named query or mutation")
    return match.group(1)


def split_endpoint(url: str) -> tuple[str, str]:
    """``https://api.move.ai/ugc/graphql`` -> (``https://api.move.ai``, ``/ugc/graphql``); a bare base (the local
    profile's ``http://127.0.0.1:8765/move``) gets ``/ugc/graphql`` added."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"the Move URL {url!r} is not an http(s) URL: set it with "
                          "`tether config set-profile NAME --move-url URL` or TETHER_MOVE_URL")
    path = parts.path.rstrip("/")
    if not path.endswith("/graphql"):
        path += GRAPHQL_PATH
    return f"{parts.scheme}://{parts.netloc}", path


def graphql_error(errors: List[Any], operation: str, auth_hint: str = "") -> ServiceError:
    """The first error of ``errors[]`` decides the type; every message is kept in the text."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    error_type = str(first.get("errorType") or (first.get("extensions") or {}).get("code") or "")
    messages = "; ".join(
        (f"{e.get('errorType')}: " if isinstance(e, dict) and e.get("errorType") else "")
        + (str(e.get("message", e)) if isinstance(e, dict) else str(e)) for e in errors
    ) or "no message"
    kind: Type[ServiceError] = ServiceError
    key = error_type.lower().replace(" ", "")
    for needle, cls in _ERROR_TYPES:
        if needle in key:
            kind = cls
            break
    what = f"move: {operation} failed"
    if kind is AuthError:
        what = "move: the API key was refused"
        if auth_hint:
            what += f"; {auth_hint}"
    elif kind is NotFound:
        what = f"move: {operation}: not found"
    elif kind is BadRequest:
        what = f"move: {operation} was refused as invalid"
    elif kind is RateLimited:
        what = f"move: {operation} was throttled; try again later"
    exc = kind(what, service=SERVICE, server_message=messages, method="POST", url=GRAPHQL_PATH)
    exc.graphql_errors = errors  # type: ignore[attr-defined]
    exc.error_type = error_type  # type: ignore[attr-defined]
    return exc


def to_job(mj: MoveJob) -> Job:
    state = mj.job_state
    outputs = [JobOutput(name=o.format, kind=o.kind, url=o.file.presigned_url if o.file else None) for o in mj.outputs]
    title = str(mj.name or mj.metadata.get("source") or "")
    error = mj.error if state is JobState.FAILED else None
    if state is JobState.FAILED and not error:
        error = "Move could not process the take (it gives no reason)"
    return Job(service=SERVICE, id=mj.id, title=title, state=state, raw_state=mj.raw_state,
               progress=100.0 if state is JobState.COMPLETED else mj.percentage, created_at=mj.created,
               outputs=outputs, error=error, vendor=mj)


def output_file_name(key: str, url: str) -> str:
    """``MAIN_FBX`` + ``.../take.fbx?X-Amz...`` -> ``MAIN_FBX.fbx``: one file per output type, never a URL's path."""
    suffix = Path(unquote(urlsplit(url).path)).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
        suffix = OUTPUT_TYPES.get(key.upper(), ("", ".bin"))[1]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_") + suffix




class MoveClient(BaseClient, service=SERVICE):
    """Typed access to Move. Implements :class:`tether.jobs.JobService`."""

    def __init__(self, base_url: str, *, api_key: Optional[str] = None, profile: str = "local", timeout: float = 30.0,
                 retry: Optional[RetryPolicy] = None) -> None:
        base, path = split_endpoint(base_url)
        super().__init__(service=SERVICE, base_url=base, timeout=timeout,
                         retry=retry or RetryPolicy.for_service(SERVICE),
                         auth_hint=SPECS[SERVICE].login_hint(profile))
        self.path = path
        self.profile = profile
        # The official SDK sends the key as it is: no "Bearer" in front.
        self.auth = HeaderAuth("authorization", api_key) if api_key else None
        self.storage = self.storage_client(auth_hint="the presigned URL was refused: it may have expired; ask again")
        self._output_field = OUTPUT_FIELD  # OLD_OUTPUT_FIELD once the service refuses it (graphql)



    # --- GraphQL --------------------------------------------------------------------------------------------
    def graphql(self, document: str, variables: Optional[Dict[str, Any]] = None, *,
                idempotent: Optional[bool] = None) -> Dict[str, Any]:
        """Run one operation; return ``data``. Queries are retried like GETs; mutations only when ``idempotent``.

        A schema of the age before the SDK moved outputs from ``key`` to ``format`` refuses ``format`` in validation
        (nothing ran): the document is sent once more with ``key``, and every later one asks for ``key``."""
        try:
            return self._run(self._of_age(document), variables, idempotent)
        except BadRequest as exc:
            older = f"outputs {{ {OUTPUT_FIELD} " in self._of_age(document) and \
                f"'{OUTPUT_FIELD}'" in exc.server_message and "Output" in exc.server_message
            if not older:
                raise
            self._output_field = OLD_OUTPUT_FIELD
            return self._run(self._of_age(document), variables, idempotent)

    def _of_age(self, document: str) -> str:
        if self._output_field == OUTPUT_FIELD:
            return document
        return document.replace(f"outputs {{ {OUTPUT_FIELD} ", f"outputs {{ {self._output_field} ")

    def _run(self, document: str, variables: Optional[Dict[str, Any]], idempotent: Optional[bool]) -> Dict[str, Any]:
        operation = operation_name(document)
        safe = document.lstrip().startswith("query") if idempotent is None else idempotent
        body = {"query": document, "operationName": operation,
                "variables": {k: v for k, v in (variables or {}).items() if v is not None}}
        # A GraphQL server answers errors[] with 200 or 400; 401/403 stay BaseClient's (AuthError with the hint).
        response = self.request("POST", self.path, json=body, idempotent=safe, expect=(400, 422))
        try:
            reply = response.json()
        except ValueError:
            raise ProtocolError(f"move: {operation} answered HTTP {response.status_code} with a body that is not "
                                "JSON", service=SERVICE, status=response.status_code,
                                server_message=response.text[:200], method="POST", url=self.path) from None
        if not isinstance(reply, dict):
            raise ProtocolError(f"move: {operation} answered a JSON {type(reply).__name__}, not an object",
                                service=SERVICE, status=response.status_code)
        errors = reply.get("errors")
        if errors:
            raise graphql_error(errors if isinstance(errors, list) else [errors], operation, self.auth_hint)
        data = reply.get("data")
        if response.status_code >= 400 or not isinstance(data, dict):
            raise ProtocolError(f"move: {operation} answered HTTP {response.status_code} with no data and no errors",
                                service=SERVICE, status=response.status_code, server_message=response.text[:200])
        return data

    @staticmethod
    def _field(data: Dict[str, Any], alias: str, operation: str) -> Any:
        value = data.get(alias)
        if value is None:
            raise ProtocolError(f"move: {operation} answered without '{alias}'", service=SERVICE)
        return value

    # --- files ----------------------------------------------------------------------------------------------
    def create_file(self, name: str, file_type: str = "mp4", metadata: Optional[Dict[str, Any]] = None) -> MoveFile:
        # A repeated createFile makes at most an unused file id: safe to retry.
        data = self.graphql(CREATE_FILE, {"type": file_type, "name": name, "metadata": metadata_json(metadata)},
                            idempotent=True)
        return self.parse(MoveFile, self._field(data, "file", "createFile"), "createFile")

    def get_file(self, file_id: str) -> MoveFile:
        data = self.graphql(GET_FILE, {"fileId": file_id})
        return self.parse(MoveFile, self._field(data, "file", "getFile"), "getFile")

    def put_file(self, file: MoveFile, path: Path, progress: Optional[Progress] = None) -> None:
        """PUT the bytes to the file's presigned URL, streamed from disk with Content-Length (no API key)."""
        if not file.presigned_url:
            raise ProtocolError(f"move: file {file.id} came back without a presignedUrl to upload to",
                                service=SERVICE)
        put_file(self.storage, file.presigned_url, path, progress, CHUNK)

    def upload(self, path: Path, *, name: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None,
               progress: Optional[Progress] = None) -> MoveFile:
        path = upload_source(path)
        fmt = source_format(path)
        file = self.create_file(name or path.name, fmt.lower(), metadata)
        self.put_file(file, path, progress)
        return file

    # --- takes and jobs -------------------------------------------------------------------------------------
    def create_take(self, file_id: str, *, source_format: str = "MP4", name: Optional[str] = None,
                    device_label: str = "tether", metadata: Optional[Dict[str, Any]] = None) -> MoveTake:
        source = Source(device_label=device_label, file_id=file_id, format=source_format)
        data = self.graphql(CREATE_TAKE, {"sources": [source.variables()], "name": name,
                                          "metadata": metadata_json(metadata)})
        return self.parse(MoveTake, self._field(data, "take", "createSingleCamTake"), "createSingleCamTake")

    def create_job(self, take_id: str, *, name: Optional[str] = None, options: Optional[Dict[str, Any]] = None,
                   outputs: Optional[Sequence[str]] = None, metadata: Optional[Dict[str, Any]] = None,
                   clip_window: Optional[ClipWindow] = None) -> MoveJob:
        wanted = [o.strip().upper() for o in (outputs or DEFAULT_OUTPUTS)]
        variables = {"takeId": take_id, "name": name, "options": options or None, "outputs": wanted,
                     "metadata": metadata_json(metadata),
                     "clipWindow": clip_window.variables() if clip_window else None}
        return create_once(
            self, take_id,
            lambda: self.parse(MoveJob, self._field(self.graphql(CREATE_JOB, variables, idempotent=False), "job",
                                                    "createSingleCamJob"), "createSingleCamJob"),
            lambda: next((mj for mj in self.list_jobs(take_id=take_id, first=5).items
                          if mj.take is None or mj.take.id == take_id), None))

    def marker_of(self, job: Job) -> Optional[str]:
        take = getattr(job.vendor, "take", None)
        return str(take.id) if take is not None and getattr(take, "id", None) else None

    def remote_jobs(self) -> Iterator[Job]:
        """Move's own list of this key's jobs."""
        return (to_job(mj) for mj in self.iter_jobs())

    def get_move_job(self, job_id: str) -> MoveJob:
        data = self.graphql(GET_JOB, {"jobId": job_id})
        job = data.get("job")
        if job is None:
            raise NotFound(f"move: no job {job_id}", service=SERVICE)
        return self.parse(MoveJob, job, "getJob")

    def failure_reason(self, job_id: str) -> Optional[str]:
        """Why a job failed, when Move says: asked apart, so a schema without the field costs only the reason."""
        try:
            data = self.graphql(GET_JOB_ERROR, {"jobId": job_id})
        except (BadRequest, ProtocolError):
            return None
        job = data.get("job")
        reason = job.get("error") if isinstance(job, dict) else None
        return str(reason) if reason else None

    def get_job(self, job_id: str) -> Job:
        mj = self.get_move_job(job_id)
        if mj.job_state is JobState.FAILED and not mj.error:
            mj.error = self.failure_reason(job_id)
        return to_job(mj)

    def list_jobs(self, *, first: Optional[int] = None, after: Optional[str] = None,
                  sort_direction: Optional[str] = None, take_id: Optional[str] = None) -> JobList:
        if sort_direction is not None and sort_direction.upper() not in ("ASC", "DESC"):
            raise InputError(f"sort direction must be ASC or DESC, not {sort_direction!r}")
        data = self.graphql(LIST_JOBS, {"first": first, "after": after, "takeId": take_id,
                                        "sortDirection": sort_direction.upper() if sort_direction else None})
        return self.parse(JobList, self._field(data, "jobs", "listJobs"), "listJobs")

    def iter_jobs(self, *, first: int = 50, sort_direction: Optional[str] = None,
                  take_id: Optional[str] = None) -> Iterator[MoveJob]:
        """Every job, following the ``after`` cursor page by page (a cursor seen twice ends the walk)."""
        after: Optional[str] = None
        seen = set()
        while True:
            page = self.list_jobs(first=first, after=after, sort_direction=sort_direction, take_id=take_id)
            yield from page.items
            if not page.after or not page.items or page.after in seen:
                return
            seen.add(page.after)
            after = page.after

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        """List pages until every wanted job is seen; ask directly for those the list did not show."""
        return jobs_by_id_from_pages(job_ids, self.remote_jobs, self.get_job, list_from=3)

    def cancel_job(self, job_id: str) -> None:
        raise InputError(f"Move's API has no way to cancel a job (job {job_id} goes on); nothing was sent")

    # --- outputs --------------------------------------------------------------------------------------------
    def download_output(self, job: MoveJob, key: str, dest: Path, progress: Optional[Progress] = None) -> Path:
        from ..transfer import download

        output = job.output(key)
        if output is None:
            have = ", ".join(o.format for o in job.outputs) or "none"
            raise InputError(f"move job {job.id} has no {key} output (it has: {have}); ask for it with --output")
        url = output.file.presigned_url if output.file else None
        if not url:
            raise ProtocolError(f"move: the {key} output of job {job.id} names no presignedUrl", service=SERVICE)
        return download(self.storage, url, dest, output_file_name(output.format, url), progress=progress)

    def fetch_outputs(self, job_id: str, dest: Path, progress: Optional[Progress] = None,
                      keys: Optional[Sequence[str]] = None) -> List[Path]:
        job = self.get_move_job(job_id)
        if job.job_state is not JobState.COMPLETED:
            raise InputError(f"move job {job_id} is {to_job(job).state_label}: wait for it to finish")
        wanted = list(keys) if keys else [o.format for o in job.outputs if o.file and o.file.presigned_url]
        return [self.download_output(job, key, Path(dest), progress) for key in wanted]


def source_format(path: Path) -> str:
    """MP4 | MOV | AVI | MOVE from the file's suffix; an InputError naming the accepted ones otherwise."""
    fmt = SOURCE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{Path(path).name}: Move takes {', '.join(sorted(SOURCE_FORMATS))} videos; convert it "
                         "(e.g. to .mp4) first")
    return fmt


__all__ = ["LOCAL_API_KEY", "MoveClient", "graphql_error", "operation_name", "output_file_name", "source_format",
           "split_endpoint", "to_job"]
