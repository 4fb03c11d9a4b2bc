"""Client for the Renderfarm Platform (seed 004): every documented route, typed.

Auth is ``POST /api/auth/login`` -> Bearer token; the token is renewed once on a 401 when the client knows the
password, else the 401 says which profile to log in again. ``create_job`` is never blindly retried: when the
connection drops after the request may have reached the farm, the client looks for the job it just made before
giving up, so a flaky network cannot produce a duplicate render.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

import httpx
from pydantic import BaseModel

from ..creation import create_once
from ..errors import AuthError, ConfigError, NotFound, ServiceError, register_secret
from ..http import LIST_KEYS, BaseClient, BearerLogin, RetryPolicy, items_of
from ..jobs import Job, JobOutput, JobState, jobs_by_id_from_pages, map_state, walk_pages
from ..progress import Progress
from ..spec import SPECS
from .models import (
    STATES,
    BillingPeriod,
    FarmJob,
    FarmOutput,
    Instance,
    JobCreate,
    JobUpdate,
    LoginReply,
    LoginRequest,
    Md5Check,
    Md5Reply,
    Package,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Transaction,
    UploadReply,
)

SERVICE = "farm"
MARKER_VARIABLE = "TETHER_SUBMISSION"  # tether.spec's create_marker for the farm


class JobPage(BaseModel):
    items: List[FarmJob]
    page: int = 1
    per_page: int = 50
    total: Optional[int] = None
    pages: Optional[int] = None

    @property
    def has_more(self) -> bool:
        if self.pages is not None:
            return self.page < self.pages
        if self.total is not None:
            return self.page * self.per_page < self.total
        return len(self.items) >= self.per_page


def to_job(farm_job: FarmJob) -> Job:
    """The farm's reply as the one job view."""
    state = map_state(farm_job.status, STATES)
    progress = farm_job.progress
    if not progress and farm_job.frames_total:
        progress = 100.0 * farm_job.frames_done / farm_job.frames_total
    return Job(
        service=SERVICE,
        id=farm_job.id,
        title=farm_job.job_title,
        state=state,
        raw_state=farm_job.status,
        progress=100.0 if state is JobState.COMPLETED else progress,
        created_at=farm_job.created_at,
        updated_at=farm_job.updated_at,
        finished_at=farm_job.finished_at,
        error=farm_job.error,
        counts={
            "tasks": farm_job.tasks_total,
            "completed": farm_job.tasks_completed,
            "running": farm_job.tasks_running,
            "failed": farm_job.tasks_failed,
            "waiting": farm_job.tasks_waiting,
            "frames": farm_job.frames_total,
            "frames_done": farm_job.frames_done,
        },
        vendor=farm_job,
    )


class FarmClient(BaseClient, service=SERVICE):
    """Typed access to the farm. Implements :class:`tether.jobs.JobService` and the transfer upload target."""

    def __init__(
        self,
        base_url: str,
        *,
        email: Optional[str] = None,
        password: Optional[str] = None,
        token: Optional[str] = None,
        profile: str = "local",
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
    ) -> None:
        register_secret(password)
        self.email = email
        self._password = password
        self.profile = profile
        super().__init__(service=SERVICE, base_url=base_url, timeout=timeout,
                         retry=retry or RetryPolicy.for_service(SERVICE),
                         auth_hint=SPECS[SERVICE].login_hint(profile))
        self.auth = BearerLogin(self._relogin, token=token)

    # --- auth -----------------------------------------------------------------------------------------------
    @staticmethod
    def login_token(base_url: str, email: str, password: str, timeout: float = 30.0) -> str:
        """Log in with e-mail and password; return the access token (for `tether login farm`)."""
        register_secret(password)
        bare = BaseClient(service=SERVICE, base_url=base_url, timeout=timeout,
                          auth_hint="check the e-mail and password")
        try:
            body = bare.json("POST", "/api/auth/login", idempotent=True,
                             json=LoginRequest(email=email, password=password).model_dump())
        finally:
            bare.close()
        reply = bare.parse(LoginReply, body, "POST /api/auth/login")
        register_secret(reply.access_token)
        return reply.access_token

    def _relogin(self) -> str:
        if not (self.email and self._password):
            # a password without its e-mail (or the reverse) cannot log in: say which half is missing
            half = ("" if bool(self.email) == bool(self._password) else
                    " (a password is set but no e-mail: set TETHER_FARM_EMAIL or the profile's farm e-mail)"
                    if self._password else " (an e-mail is set but no password: set TETHER_FARM_PASSWORD)")
            raise AuthError(
                f"farm: no valid token for profile '{self.profile}'{half}; {self.auth_hint}",
                service=SERVICE, status=401,
            )
        return self.login_token(self.base_url, self.email, self._password, self.timeout)

    @classmethod
    def from_profile(cls, profile: Optional[str] = None, url: Optional[str] = None,
                     login_hint: str = "") -> FarmClient:
        """The profile's farm with its credentials; ``url`` overrides the profile's endpoint (the add-on's field).
        ``login_hint`` says where to log in, for a front end with its own login (the Blender add-on)."""
        from ..network import is_loopback
        from ..settings import active_profile, get_secret, secret_source

        prof = active_profile(profile)
        svc = prof.service(SERVICE)
        url = (url or svc.url).rstrip("/")
        login = login_hint or f"run `tether login farm --profile {prof.name}`"
        token = get_secret(prof.name, SERVICE, "token")
        password = get_secret(prof.name, SERVICE, "password")
        if password is not None and secret_source(prof.name, SERVICE, "password") == "built-in" and \
                not is_loopback(url):
            # the local stand-in's password is for 127.0.0.1 only: never offered to a farm elsewhere
            if token is None:
                raise ConfigError(f"profile '{prof.name}' points the farm at {url}, which is not this machine, and "
                                  f"has no credentials for it: {login}, or set TETHER_FARM_PASSWORD or "
                                  "TETHER_FARM_TOKEN")
            password = None
        if token is None and password is None:
            raise ConfigError(f"no farm credentials for profile '{prof.name}': {login}, or set TETHER_FARM_TOKEN")
        return cls(
            url,
            email=svc.email,
            password=password.get_secret_value() if password else None,
            token=token.get_secret_value() if token else None,
            profile=prof.name,
            timeout=svc.timeout,
        )

    # --- jobs -----------------------------------------------------------------------------------------------
    def list_jobs(
        self, *, status: Optional[Iterable[str]] = None, project: Optional[str] = None, page: int = 1,
        per_page: int = 50,
    ) -> JobPage:
        params: Dict[str, Any] = {"page": page, "per_page": per_page}
        if status:
            params["status"] = ",".join(status)
        if project:
            params["project"] = project
        body = self.json("GET", "/api/jobs", params=params)
        return self.parse_page(JobPage, body, "GET /api/jobs", page=page, per_page=per_page)

    def iter_jobs(self, *, status: Optional[Iterable[str]] = None, project: Optional[str] = None,
                  per_page: int = 100) -> Iterator[FarmJob]:
        def fetch(page: int) -> Tuple[List[FarmJob], bool]:
            result = self.list_jobs(status=status, project=project, page=page, per_page=per_page)
            return result.items, result.has_more

        return walk_pages(fetch, lambda job: job.id)

    def get_farm_job(self, job_id: str) -> FarmJob:
        return self.parse(FarmJob, self.json("GET", f"/api/jobs/{job_id}"), "GET /api/jobs/{id}")

    def get_job(self, job_id: str) -> Job:
        return to_job(self.get_farm_job(job_id))

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        """Walk the job list a page at a time until every wanted job is seen: pages, not one GET per job."""
        return jobs_by_id_from_pages(job_ids, self.remote_jobs, self.get_job)

    def create_job(self, payload: JobCreate) -> FarmJob:
        """Create the job once: a lost or unreadable reply is followed by a look for it (:mod:`tether.creation`)
        by the marker in its environment, and it is sent again only when the farm made none."""
        marker = payload.environment_variables.get(MARKER_VARIABLE) or uuid.uuid4().hex
        payload = payload.model_copy(
            update={"environment_variables": {**payload.environment_variables, MARKER_VARIABLE: marker}})
        started = datetime.now(timezone.utc) - timedelta(seconds=5)
        body = payload.model_dump(mode="json")
        return create_once(self, marker,
                           lambda: self.parse(FarmJob, self.json("POST", "/api/jobs", json=body), "POST /api/jobs"),
                           lambda: self._find_created(payload, marker, started), resend=self.retry.attempts - 1)

    def _find_created(self, payload: JobCreate, marker: str, since: datetime) -> Optional[FarmJob]:
        """The job this create made, among the newest: by its marker where the farm lists jobs' environments, else
        by title, frames and output path (the farm's documents show no job field of the client's own)."""
        for job in self.list_jobs(page=1, per_page=50).items:
            env = getattr(job, "environment_variables", None)
            if isinstance(env, dict):
                if env.get(MARKER_VARIABLE) == marker:
                    return job
                continue
            created = job.created_at
            if created is not None and created.tzinfo is None:
                created = created.replace(tzinfo=timezone.utc)
            if (job.job_title == payload.job_title and job.frame_range == payload.frame_range
                    and job.output_path == payload.output_path and (created is None or created >= since)):
                return job
        return None

    def remote_jobs(self) -> Iterator[Job]:
        """The farm's own list of this account's jobs, newest first."""
        return (to_job(j) for j in self.iter_jobs(per_page=100))

    def marker_of(self, job: Job) -> Optional[str]:
        env = getattr(job.vendor, "environment_variables", None)
        return str(env.get(MARKER_VARIABLE)) if isinstance(env, dict) and env.get(MARKER_VARIABLE) else None

    def update_job(self, job_id: str, *, action: Optional[str] = None, priority: Optional[int] = None) -> FarmJob:
        update = JobUpdate.model_validate({"action": action, "priority": priority})
        # Setting a state or a priority twice has the same effect as once: safe to retry.
        body = self.json("PATCH", f"/api/jobs/{job_id}", idempotent=True, json=update.model_dump(exclude_none=True))
        return self.parse(FarmJob, body, "PATCH /api/jobs/{id}")

    def hold(self, job_id: str) -> FarmJob:
        return self.update_job(job_id, action="hold")

    def unhold(self, job_id: str) -> FarmJob:
        """Release a held job, and the tasks waiting behind its scout frames."""
        return self.update_job(job_id, action="unhold")

    def set_priority(self, job_id: str, priority: int) -> FarmJob:
        return self.update_job(job_id, priority=priority)

    def cancel_job(self, job_id: str) -> None:
        self.update_job(job_id, action="cancel")

    def delete_job(self, job_id: str) -> None:
        self.request("DELETE", f"/api/jobs/{job_id}")

    # --- outputs (local farm extension; the vendor documents none) ------------------------------------------
    def outputs(self, job_id: str) -> List[FarmOutput]:
        try:
            body = self.json("GET", f"/api/jobs/{job_id}/outputs")
        except NotFound as exc:
            if "outputs" in (exc.server_message or "").lower() or "not found" in (exc.server_message or "").lower():
                job = self.get_farm_job(job_id)  # distinguishes "no such job" from "no download route"
                raise ServiceError(
                    f"farm: this service has no output download route; job {job_id}'s frames are at "
                    f"{job.output_path or 'its output_path'}: fetch them from there", service=SERVICE, status=404,
                ) from None
            raise
        return self.parse_list(FarmOutput, body, "GET /api/jobs/{id}/outputs", keys=("outputs", *LIST_KEYS))

    def fetch_outputs(self, job_id: str, dest: Path,
                      progress: Optional[Progress] = None) -> List[Path]:
        from ..fileio import check_output_dir
        from ..transfer import download

        files = self.outputs(job_id)
        total = sum(f.size or 0 for f in files)
        missing = sum(f.size or 0 for f in files if not (dest / f.name).is_file())
        check_output_dir(dest, needed=missing)
        done = 0
        written: List[Path] = []
        dest.mkdir(parents=True, exist_ok=True)
        for item in files:
            base = done

            def on_bytes(n: int, _total: int = 0, base: int = base) -> Optional[bool]:
                return None if progress is None else progress(base + n, total)

            written.append(download(self, f"/api/jobs/{job_id}/outputs/{item.name}", dest, item.name,
                                    size=item.size, md5=item.md5, progress=on_bytes))
            done += item.size or 0
        return written

    # --- projects, instances, packages -------------------------------------------------------------------------
    def projects(self) -> List[Project]:
        return self.parse_list(Project, self.json("GET", "/api/projects"), "GET /api/projects")

    def create_project(self, name: str) -> Project:
        return self.parse(Project, self.json("POST", "/api/projects", json=ProjectCreate(name=name).model_dump()),
                          "POST /api/projects")

    def archive_project(self, project_id: str, archived: bool = True) -> Project:
        body = self.json("PATCH", f"/api/projects/{project_id}", idempotent=True,
                         json=ProjectUpdate(archived=archived).model_dump())
        return self.parse(Project, body, "PATCH /api/projects/{id}")

    def instances(self) -> List[Instance]:
        return self.parse_list(Instance, self.json("GET", "/api/enterprise/instances"), "GET /api/enterprise/instances")

    def packages(self) -> List[Package]:
        return self.parse_list(Package, self.json("GET", "/api/packages"), "GET /api/packages")

    # --- uploads ----------------------------------------------------------------------------------------------
    def check_md5(self, md5: str, size: Optional[int] = None, path: Optional[str] = None) -> Md5Reply:
        # Asking twice changes nothing on the server: safe to retry.
        body = self.json("POST", "/api/uploads/md5", idempotent=True,
                         json=Md5Check(md5=md5, size=size, path=path).model_dump(exclude_none=True))
        return self.parse(Md5Reply, body, "POST /api/uploads/md5")

    def upload_file(self, fileobj: BinaryIO, *, md5: str, path: str, filename: Optional[str] = None,
                    size: Optional[int] = None) -> UploadReply:
        """Stream one file as multipart; the farm verifies the md5. Content-addressed (the same md5 and path store
        the same bytes), so it is retried like any idempotent request: on 429, 5xx and a dropped connection.

        With ``size`` known the body is streamed in 1 MiB chunks (:class:`tether.transfer.MultipartFile`)."""
        from ..transfer import MultipartFile

        name = filename or path.replace("\\", "/").rsplit("/", 1)[-1]
        timeout = httpx.Timeout(self.timeout, read=max(self.timeout, 600.0))
        fields = {"md5": md5, "path": path}
        if size is None:
            body = self.json("POST", "/api/uploads/file", idempotent=True, timeout=timeout, data=fields,
                             files={"file": (name, fileobj, "application/octet-stream")})
        else:
            form = MultipartFile(fields, "file", name, fileobj, size)
            body = self.json("POST", "/api/uploads/file", idempotent=True, timeout=timeout, content=form,
                             headers=form.headers)
        return self.parse(UploadReply, body, "POST /api/uploads/file")

    # UploadTarget protocol of tether.transfer
    @property
    def store_key(self) -> str:
        """One farm account's storage: uploads it confirmed are remembered under this name."""
        return f"farm|{self.base_url.rstrip('/')}|{self.email or self.profile}"

    def exists(self, item: Any) -> bool:
        return self.check_md5(item.md5, item.size, item.remote_path).exists

    def send(self, item: Any, reader: BinaryIO) -> None:
        self.upload_file(reader, md5=item.md5, path=item.remote_path, size=item.size)

    # --- billing ----------------------------------------------------------------------------------------------
    def billing_current(self) -> BillingPeriod:
        return self.parse(BillingPeriod, self.json("GET", "/api/billing/current-period"),
                          "GET /api/billing/current-period")

    def transactions(self) -> List[Transaction]:
        body = self.json("GET", "/api/billing/transactions")
        return self.parse_list(Transaction, body, "GET /api/billing/transactions")


__all__ = ["FarmClient", "JobOutput", "JobPage", "items_of", "to_job"]
