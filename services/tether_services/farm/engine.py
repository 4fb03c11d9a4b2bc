"""The local farm's state and scheduler: accounts, projects, uploads, jobs, tasks and billing.

Job lifecycle (the words are the wire ``status`` values, see ``tether.farm.models``): ``syncing`` (the uploads are laid
out in a per-job workspace) -> ``queued`` -> ``rendering`` -> ``completed`` | ``failed``; ``held`` while on hold
(running tasks finish, no new ones start); ``waiting`` when the scout tasks are done and the rest wait for ``unhold``;
``cancelled`` kills running chunks. A failed task is retried ``preemptible_retries`` times; after that the job fails
with the render log's error, its running chunks are stopped and its other tasks are cancelled (nothing more is billed).

PATCH actions are idempotent (holding a held job is a no-op) so a client may retry them; an action on a finished job
is a 409 that says why. Everything here is guarded by one re-entrant lock; chunk results arrive on executor threads.

State survives a restart (see :mod:`.persist`): every change is written through to ``<state_dir>/farm.sqlite3``. On
start, a job that was syncing is laid out again; tasks that were rendering go back to ``queued`` (that attempt does
not use up a retry) and render only the frames not yet delivered to the outputs; held, waiting, finished and
cancelled stay as they were. ``persist=False`` keeps everything in memory only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from tether import frames as frame_specs
from tether.errors import InputError
from tether.farm.models import JobCreate

from .executor import ChunkExecutor, ChunkHandle, ChunkResult, ChunkSpec, LocalProcessExecutor
from .persist import FILENAME, FarmDB, unreadable
from .render_worker import workspace_relpath
from .store import BlobStore

EMAIL = "artist@tether.local"
PASSWORD = "tether-local"
FINISHED = ("completed", "failed", "cancelled")
JOB_STATUSES = ("syncing", "queued", "rendering", "waiting", "held", "completed", "failed", "cancelled")

INSTANCES: List[Dict[str, Any]] = [
    {"id": "cpu-standard-8", "name": "CPU standard, 8 vCPU", "cpus": 8, "memory_gb": 32, "gpu": None,
     "enabled": True, "price_per_hour": 0.40},
    {"id": "cpu-highmem-16", "name": "CPU high memory, 16 vCPU", "cpus": 16, "memory_gb": 128, "gpu": None,
     "enabled": True, "price_per_hour": 1.10},
    {"id": "gpu-t4", "name": "NVIDIA T4, 8 vCPU", "cpus": 8, "memory_gb": 32, "gpu": "T4",
     "enabled": True, "price_per_hour": 0.95},
    {"id": "gpu-a100", "name": "NVIDIA A100, 12 vCPU", "cpus": 12, "memory_gb": 85, "gpu": "A100",
     "enabled": False, "price_per_hour": 4.20},
]
_ENGINES = ["cycles", "eevee", "workbench"]
PACKAGES: List[Dict[str, Any]] = [
    {"id": "blender-4-2", "name": "Blender 4.2 LTS", "version": "4.2", "render_software": _ENGINES},
    {"id": "blender-4-5", "name": "Blender 4.5 LTS", "version": "4.5", "render_software": _ENGINES},
    {"id": "blender-5-0", "name": "Blender 5.0", "version": "5.0", "render_software": _ENGINES},
]


class FarmError(Exception):
    """An HTTP-level refusal: the API turns it into ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat().replace("+00:00", "Z") if value else None


def parse_iso(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()  # what is kept: a stolen state file holds no live token


@dataclass
class Task:
    id: str
    index: int
    frames: List[int]
    spec: str
    scout: bool
    status: str = "queued"
    attempts: int = 0  # times handed to the executor
    failures: int = 0  # of those, how many failed (what preemptible_retries counts)
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error: Optional[str] = None
    handle: Optional[ChunkHandle] = None


@dataclass
class Job:
    id: str
    seq: int
    request: JobCreate
    priority: int
    tasks: List[Task]
    root: Path
    phase: str = "syncing"  # syncing | active | completed | failed | cancelled
    held: bool = False
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    finished_at: Optional[datetime] = None
    error: Optional[str] = None
    scene: str = ""
    frames_done: Set[int] = field(default_factory=set)
    delivered: Dict[int, str] = field(default_factory=dict)  # frame -> its file in output_dir
    bound: Dict[str, str] = field(default_factory=dict)  # upload path -> md5, laid out by the sync
    render_seconds: float = 0.0
    cost: float = 0.0

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def output_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def frames_total(self) -> int:
        return sum(len(t.frames) for t in self.tasks)

    def status(self) -> str:
        if self.held and self.phase in ("syncing", "active"):
            return "held"  # also while syncing: the reply to a hold says it took
        if self.phase != "active":
            return self.phase
        states = {t.status for t in self.tasks}
        if "rendering" in states:
            return "rendering"
        if "queued" in states:
            return "queued"
        if "waiting" in states:
            return "waiting"
        return "queued"

    def task_status(self, task: Task) -> str:
        if self.held and self.phase == "active" and task.status == "queued":
            return "held"
        return task.status


class LocalFarm:
    """The whole farm behind the HTTP routes. Safe to call from many threads."""

    def __init__(self, state_dir: Path, *, workers: int = 2, token_ttl: float = 3600.0,
                 executor: Optional[ChunkExecutor] = None, persist: bool = True, password: str = PASSWORD) -> None:
        self.state_dir = Path(state_dir)
        self.password = password
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = BlobStore(self.state_dir / "store")
        self.jobs_dir = self.state_dir / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        self.token_ttl = token_ttl
        # The seed documents no paging for the job list: "paged" answers {items, page, per_page, total, pages};
        # "whole" answers a bare list of every job whatever the page asked for (the other form a vendor may use).
        self.list_form = "paged"
        # The seed documents neither the id type nor the status words (SERVICES.md: unknown). ``id_form`` "integer"
        # answers integer ids for jobs (their sequence number), projects (their position) and uploaded files (see
        # file_id), ids the routes take too; ``spell`` maps a status word to the one sent, as for Move (e.g.
        # {"completed": "COMPLETED"} or {"completed": "succeeded"}).
        self.id_form = "string"
        self.spell: Dict[str, str] = {}
        self.lock = threading.RLock()
        self._tokens: Dict[str, float] = {}
        self._bindings: Dict[str, str] = {}  # upload path -> md5
        self.jobs: Dict[str, Job] = {}
        self._seq = 0
        self._running = 0
        self._workers = workers
        self._executor = executor
        self.projects: Dict[str, Dict[str, Any]] = {}
        self.ledger: List[Tuple[datetime, float, float]] = []  # (when, seconds, cost)
        self.transactions: List[Dict[str, Any]] = []
        self._md5_cache: Dict[Tuple[str, str], Tuple[int, int, str]] = {}
        self._closed = False
        self.db = FarmDB(self.state_dir / FILENAME if persist else None)
        try:
            if self.db.fresh:
                with self.db.transaction():
                    self._add_transaction({
                        "id": "tx-" + uuid.uuid4().hex[:10], "amount": 50.0, "currency": "USD",
                        "created_at": iso(now()), "description": "Local farm starting credit", "status": "completed",
                    })
                    self.create_project("default")
                    self.db.set_meta("initialised", iso(now()) or "")
            else:
                self._restore()
        except BaseException:
            self.db.close()
            raise

    # --- executor -------------------------------------------------------------------------------------------
    @property
    def executor(self) -> ChunkExecutor:
        """Started on first use: a farm that only answers contract tests never spawns Blender."""
        with self.lock:
            if self._executor is None:
                self._executor = LocalProcessExecutor(self._workers, state_dir=self.state_dir / "workers")
            return self._executor

    def close(self) -> None:
        """Stop rendering. The state on disk keeps running tasks as ``rendering``: the next start requeues them."""
        with self.lock:
            self._closed = True
            for job in self.jobs.values():
                for task in job.tasks:
                    if task.handle is not None:
                        task.handle.cancel()
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown()
        with self.lock:
            self.db.close()  # frames a dying chunk still reports after this are re-rendered next start

    # --- auth -----------------------------------------------------------------------------------------------
    def login(self, email: str, password: str) -> Dict[str, Any]:
        ok_email = secrets.compare_digest(email.strip().lower(), EMAIL)
        ok_password = secrets.compare_digest(password, self.password)
        if not (ok_email and ok_password):
            raise FarmError(401, "wrong e-mail or password; the local farm's account is "
                                 f"{EMAIL} with the password shown by `tether serve`")
        token = secrets.token_urlsafe(32)
        # Wall-clock expiry (not monotonic): it is kept across restarts, so a client's token stays valid.
        expires = time.time() + self.token_ttl
        with self.lock:
            self._tokens[_token_key(token)] = expires
            with self.db.transaction():
                self.db.drop_tokens(expired_before=time.time())
                self.db.add_token(_token_key(token), expires)
        return {"access_token": token, "token_type": "bearer", "expires_in": int(self.token_ttl)}

    def check_token(self, token: Optional[str]) -> None:
        if not token:
            raise FarmError(401, "missing 'Authorization: Bearer <token>'; log in with POST /api/auth/login")
        key = _token_key(token)
        with self.lock:
            expiry = self._tokens.get(key)
            if expiry is not None and expiry < time.time():
                del self._tokens[key]
                self.db.drop_tokens(key)
                raise FarmError(401, "the access token has expired; log in again")
        if expiry is None:
            raise FarmError(401, "the access token is not valid; log in again")

    def expire_tokens(self) -> None:
        """Make every issued token stale (tests of refresh-on-401)."""
        with self.lock:
            self._tokens.clear()
            self.db.drop_tokens()

    # --- projects -------------------------------------------------------------------------------------------
    def create_project(self, name: str) -> Dict[str, Any]:
        with self.lock:
            if any(p["name"] == name for p in self.projects.values()):
                raise FarmError(409, f"a project named {name!r} already exists")
            project_id = "prj-" + uuid.uuid4().hex[:10]
            project: Dict[str, Any] = {"id": project_id, "name": name, "archived": False, "created_at": iso(now())}
            self.projects[project_id] = project
            self.db.save_project(project, len(self.projects))
            return self._project_view(project)

    def update_project(self, project_id: str, archived: bool) -> Dict[str, Any]:
        with self.lock:
            project = self.projects.get(project_id)
            if project is None and project_id.isdigit() and 0 < int(project_id) <= len(self.projects):
                project = list(self.projects.values())[int(project_id) - 1]  # the id an integer id_form answered
            if project is None:
                raise FarmError(404, f"no project with id {project_id!r}")
            project["archived"] = archived
            self.db.save_project(project, list(self.projects).index(project["id"]) + 1)
            return self._project_view(project)

    def list_projects(self, include_archived: bool = False) -> List[Dict[str, Any]]:
        with self.lock:
            return [self._project_view(p) for p in self.projects.values() if include_archived or not p["archived"]]

    def _project_view(self, project: Dict[str, Any]) -> Dict[str, Any]:
        """A project as the wire has it: in the integer id_form, its position (1, 2, ...: the order it was made)."""
        if self.id_form != "integer":
            return dict(project)
        return {**project, "id": list(self.projects).index(project["id"]) + 1}

    def file_id(self, md5: str) -> Any:
        """An uploaded file's id: its md5, or in the integer id_form a number (the md5's first 52 bits: stable across
        restarts, exact in any JSON reader). No route takes it back: the seed's jobs name files by upload path."""
        return int(md5[:13], 16) if self.id_form == "integer" else md5

    # --- uploads --------------------------------------------------------------------------------------------
    @staticmethod
    def _norm(path: str) -> str:
        return path.replace("\\", "/")

    def check_md5(self, md5: str, size: Optional[int], path: Optional[str]) -> Dict[str, Any]:
        stored = self.store.size_of(md5)
        if stored is None or (size is not None and size != stored):
            return {"exists": False, "file_id": None}
        if path:
            self.bind(path, md5)
        return {"exists": True, "file_id": self.file_id(md5), "size": stored}

    def bind(self, path: str, md5: str) -> None:
        try:
            workspace_relpath(path)
        except ValueError as exc:
            raise FarmError(400, str(exc)) from None
        with self.lock:
            if self._bindings.get(self._norm(path)) != md5:
                self._bindings[self._norm(path)] = md5
                self.db.bind(self._norm(path), md5)

    # --- jobs -----------------------------------------------------------------------------------------------
    def create_job(self, request: JobCreate) -> Dict[str, Any]:
        instance = next((i for i in INSTANCES if i["id"] == request.instance_type), None)
        if instance is None:
            known = ", ".join(i["id"] for i in INSTANCES if i["enabled"])
            raise FarmError(400, f"unknown instance_type {request.instance_type!r}; use one of: {known}")
        if not instance["enabled"]:
            raise FarmError(400, f"instance_type {request.instance_type!r} is not enabled for this account; "
                                 "pick one listed by GET /api/enterprise/instances")
        package = next((p for p in PACKAGES if p["id"] == request.blender_version), None)
        if package is None:
            known = ", ".join(p["id"] for p in PACKAGES)
            raise FarmError(400, f"unknown blender_version {request.blender_version!r}; use one of: {known}")
        if request.render_software not in package["render_software"]:
            raise FarmError(400, f"render_software {request.render_software!r} is not in {package['id']}; "
                                 f"use one of: {', '.join(package['render_software'])}")
        try:
            planned = frame_specs.plan(frame_specs.parse(request.frame_range), request.chunk_size,
                                       request.scout_frames or None)
        except InputError as exc:
            raise FarmError(400, str(exc)) from None
        with self.lock:
            project = next((p for p in self.projects.values() if p["name"] == request.project), None)
            if project is None:
                raise FarmError(400, f"unknown project {request.project!r}; create it with POST /api/projects "
                                     "or pick one from GET /api/projects")
            if project["archived"]:
                raise FarmError(400, f"project {request.project!r} is archived; restore it first")
            missing = [p for p in request.upload_paths if self._norm(p) not in self._bindings]
            if missing:
                raise FarmError(400, "these upload_paths were never uploaded: " + ", ".join(missing)
                                + "; upload them with POST /api/uploads/file (or bind them with /api/uploads/md5)")
            scenes = [p for p in request.upload_paths if p.lower().endswith(".blend")]
            if not scenes:
                raise FarmError(400, "upload_paths holds no .blend file; the first .blend is the scene to render")
            bound = {p: self._bindings[self._norm(p)] for p in request.upload_paths}
            self._seq += 1
            job_id = "job-" + uuid.uuid4().hex[:12]
            while job_id in self.jobs or (self.jobs_dir / job_id).exists():  # a deleted job's id is not reused
                job_id = "job-" + uuid.uuid4().hex[:12]
            scout = bool(planned.scout_frames)
            tasks = [
                Task(id=f"{job_id}-t{c.index:04d}", index=c.index, frames=list(c.frames), spec=c.spec,
                     scout=c.scout, status="queued" if (c.scout or not scout) else "waiting")
                for c in planned.chunks
            ]
            job = Job(id=job_id, seq=self._seq, request=request, priority=50, tasks=tasks,
                      root=self.jobs_dir / job_id, scene=workspace_relpath(scenes[0]), bound=bound)
            with self.db.transaction():
                self.db.set_meta("seq", str(self._seq))
                self._save(job)
            self.jobs[job_id] = job
        self._start_sync(job)
        return self.job_view(job)

    def _start_sync(self, job: Job) -> None:
        threading.Thread(target=self._sync, args=(job,), name=f"sync-{job.id}", daemon=True).start()

    def _sync(self, job: Job) -> None:
        try:
            for path, md5 in job.bound.items():
                self.store.materialise(md5, job.workspace / workspace_relpath(path))
            job.output_dir.mkdir(parents=True, exist_ok=True)
            (job.root / "logs").mkdir(exist_ok=True)
        except OSError as exc:
            with self.lock:
                if job.phase == "syncing" and not self._closed:
                    with self.db.transaction():
                        self._fail(job, f"could not lay out the uploaded files: {exc}")
                        self._save(job)
            return
        with self.lock:
            if job.phase != "syncing" or self._closed:
                return
            job.phase = "active"
            job.updated_at = now()
            self._save(job, [])
            self._dispatch()

    # --- persistence ----------------------------------------------------------------------------------------
    def _save(self, job: Job, tasks: Optional[List[Task]] = None) -> None:
        """Write the job row and ``tasks`` (all of them when None) through to the state file."""
        if not self.db.enabled:
            return
        row = {
            "id": job.id, "seq": job.seq, "request": job.request.model_dump_json(), "bound": json.dumps(job.bound),
            "priority": job.priority, "phase": job.phase, "held": int(job.held), "created_at": iso(job.created_at),
            "updated_at": iso(job.updated_at), "finished_at": iso(job.finished_at), "error": job.error,
            "scene": job.scene, "render_seconds": job.render_seconds, "cost": job.cost,
        }
        rows = [{
            "job_id": job.id, "idx": t.index, "id": t.id, "frames": json.dumps(t.frames), "spec": t.spec,
            "scout": int(t.scout), "status": t.status, "attempts": t.attempts, "failures": t.failures,
            "started_at": iso(t.started_at), "finished_at": iso(t.finished_at), "error": t.error,
        } for t in (job.tasks if tasks is None else tasks)]
        self.db.save_job(row, rows)

    def _restore(self) -> None:
        """Rebuild the farm from the state file and pick up the work that was under way when it stopped."""
        path = self.db.path
        assert path is not None
        state = self.db.load()
        wall = time.time()
        try:
            self._seq = int(self.db.get_meta("seq") or 0)
            for p in state["projects"]:
                self.projects[p["id"]] = {"id": p["id"], "name": p["name"], "archived": bool(p["archived"]),
                                          "created_at": p["created_at"]}
            self._bindings.update(state["bindings"])
            self._tokens.update({k: v for k, v in state["tokens"].items() if v >= wall})
            self.ledger = [(parse_iso(at) or now(), s, c) for at, s, c in state["ledger"]]
            self.transactions = list(state["transactions"])
            jobs = [self._job_from_row(row) for row in state["jobs"]]
        except (KeyError, ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise unreadable(path, f"{type(exc).__name__}: {exc}") from None
        requeued: List[Tuple[Job, Task]] = []
        for job in jobs:
            self.jobs[job.id] = job
            self._seq = max(self._seq, job.seq)
            if job.phase == "active":
                for task in job.tasks:
                    if task.status == "rendering":
                        task.status = "queued"  # cut short by the restart: not the task's fault, no retry used
                        task.started_at = None
                        requeued.append((job, task))
        with self.db.transaction():
            self.db.drop_tokens(expired_before=wall)
            for job, task in requeued:
                self._save(job, [task])
        for job in jobs:
            if job.phase == "syncing":
                self._start_sync(job)  # idempotent: the layout is redone from the store
        with self.lock:
            if self._pick() is not None:  # else no executor (no Blender workers) is started
                self._dispatch()

    def _job_from_row(self, row: Dict[str, Any]) -> Job:
        tasks = [Task(id=t["id"], index=int(t["idx"]), frames=[int(f) for f in t["frames"]], spec=t["spec"],
                      scout=bool(t["scout"]), status=t["status"], attempts=int(t["attempts"]),
                      failures=int(t["failures"]), started_at=parse_iso(t["started_at"]),
                      finished_at=parse_iso(t["finished_at"]), error=t["error"]) for t in row["tasks"]]
        job = Job(id=row["id"], seq=int(row["seq"]), request=JobCreate.model_validate(row["request"]),
                  priority=int(row["priority"]), tasks=tasks, root=self.jobs_dir / row["id"], phase=row["phase"],
                  held=bool(row["held"]), created_at=parse_iso(row["created_at"]) or now(),
                  updated_at=parse_iso(row["updated_at"]) or now(), finished_at=parse_iso(row["finished_at"]),
                  error=row["error"], scene=row["scene"], render_seconds=float(row["render_seconds"]),
                  cost=float(row["cost"]), bound=dict(row["bound"]))
        job.delivered = dict(row["frames"])
        job.frames_done = set(job.delivered)
        return job

    def _pick(self) -> Optional[Tuple[Job, Task]]:
        best: Optional[Tuple[Tuple[int, int, int], Job, Task]] = None
        for job in self.jobs.values():
            if job.phase != "active" or job.held:
                continue
            for task in job.tasks:
                if task.status == "queued":
                    key = (-job.priority, job.seq, task.index)
                    if best is None or key < best[0]:
                        best = (key, job, task)
                    break  # tasks are in index order: the first queued one is this job's best
        return None if best is None else (best[1], best[2])

    def _dispatch(self) -> None:
        if self._closed:
            return
        executor = self.executor
        while self._running < executor.slots:
            picked = self._pick()
            if picked is None:
                return
            job, task = picked
            # A chunk cut short (server restart, failed attempt) leaves its finished frames in the outputs: only
            # the others are rendered again, so each frame is rendered and delivered once.
            frames = [f for f in task.frames if not self._delivered(job, f)]
            if not frames:
                task.status = "completed"
                task.finished_at = job.updated_at = now()
                self._complete_if_done(job)
                self._save(job, [task])
                continue
            task.status = "rendering"
            task.attempts += 1
            task.started_at = now()
            task.finished_at = None
            job.updated_at = now()
            self._save(job, [task])
            self._running += 1
            spec = ChunkSpec(
                blend=job.workspace / job.scene, frames=frames, output_dir=job.output_dir,
                workspace=job.workspace, log_path=job.root / "logs" / f"task-{task.index:04d}.log",
                env=dict(job.request.environment_variables),
            )
            handle = executor.submit(spec, on_frame=self._frame_callback(job))
            task.handle = handle
            handle.add_done_callback(self._done_callback(job, task, handle))

    def _delivered(self, job: Job, frame: int) -> bool:
        name = job.delivered.get(frame)
        return name is not None and (job.output_dir / name).is_file()

    def _frame_callback(self, job: Job) -> Callable[[int, str], None]:
        def on_frame(frame: int, name: str) -> None:
            with self.lock:
                if self._closed:
                    return  # not recorded: the next start renders it again, so memory and disk agree
                job.frames_done.add(frame)
                job.delivered[frame] = name
                job.updated_at = now()
                if job.id in self.jobs:
                    self.db.add_frame(job.id, frame, name, iso(job.updated_at) or "")
        return on_frame

    def _done_callback(self, job: Job, task: Task, handle: ChunkHandle) -> Callable[[ChunkResult], None]:
        def done(result: ChunkResult) -> None:
            with self.lock:
                self._finish_task(job, task, handle, result)
        return done

    def _finish_task(self, job: Job, task: Task, handle: ChunkHandle, result: ChunkResult) -> None:
        if task.handle is handle:
            task.handle = None
        self._running -= 1
        if self._closed:
            return  # stopped by close(): the task stays 'rendering' on disk and is requeued on the next start
        with self.db.transaction():
            task.finished_at = now()
            job.updated_at = now()
            self._bill(job, result.seconds)
            if job.phase != "active" or result.cancelled:
                if task.status == "rendering":
                    task.status = "cancelled"
            elif result.ok:
                task.status = "completed"
                task.error = None
                self._complete_if_done(job)
            else:
                task.error = result.error
                task.failures += 1
                if task.failures <= job.request.preemptible_retries:
                    task.status = "queued"
                else:
                    task.status = "failed"
                    self._fail(job, f"task {task.index} (frames {task.spec}) failed after {task.attempts} "
                                    f"attempt(s): {result.error}")
            if job.id in self.jobs:
                self._save(job, None if job.phase in FINISHED else [task])
        self._dispatch()

    def _complete_if_done(self, job: Job) -> None:
        if all(t.status == "completed" for t in job.tasks):
            job.phase = "completed"
            job.finished_at = now()
            self._charge(job)

    def _fail(self, job: Job, error: str) -> None:
        job.phase = "failed"
        job.error = error
        job.finished_at = now()
        self._stop_tasks(job)
        self._charge(job)

    def _stop_tasks(self, job: Job) -> None:
        for other in job.tasks:
            if other.status in ("queued", "waiting", "rendering"):
                handle, other.handle = other.handle, None
                other.status = "cancelled"
                if handle is not None:
                    handle.cancel()

    def _bill(self, job: Job, seconds: float) -> None:
        price = next((i["price_per_hour"] for i in INSTANCES if i["id"] == job.request.instance_type), 0.0)
        cost = seconds / 3600.0 * float(price)
        job.render_seconds += seconds
        job.cost += cost
        when = now()
        self.ledger.append((when, seconds, cost))
        self.db.add_ledger(iso(when) or "", seconds, cost)

    def _charge(self, job: Job) -> None:
        self._add_transaction({
            "id": "tx-" + uuid.uuid4().hex[:10], "amount": -round(job.cost, 6), "currency": "USD",
            "created_at": iso(now()), "description": f"render job {job.id} ({job.request.job_title})",
            "status": "completed", "job_id": job.id,
        })

    def _add_transaction(self, transaction: Dict[str, Any]) -> None:
        self.transactions.append(transaction)
        self.db.add_transaction(transaction)

    def update_job(self, job_id: str, action: Optional[str], priority: Optional[int]) -> Dict[str, Any]:
        with self.lock, self.db.transaction():
            job = self.get(job_id)
            status = job.status()
            if priority is not None:
                if job.phase in FINISHED:
                    raise FarmError(409, f"job {job_id} is {status}; the priority of a finished job cannot change")
                job.priority = priority
            elif action == "cancel":
                if job.phase in ("completed", "failed"):
                    raise FarmError(409, f"job {job_id} is {status}; only an unfinished job can be cancelled")
                if job.phase != "cancelled":
                    job.phase = "cancelled"
                    job.finished_at = now()
                    self._stop_tasks(job)
                    self._charge(job)
            elif action in ("hold", "unhold"):
                if job.phase in FINISHED:
                    raise FarmError(409, f"job {job_id} is {status}; only an unfinished job can be {action}ed")
                job.held = action == "hold"
                if action == "unhold":
                    for task in job.tasks:
                        if task.status == "waiting":
                            task.status = "queued"
            job.updated_at = now()
            self._save(job)
            self._dispatch()
            return self.job_view(job)

    def delete_job(self, job_id: str) -> None:
        with self.lock:
            job = self.get(job_id)
            if job.phase not in FINISHED:
                raise FarmError(409, f"job {job_id} is {job.status()}; cancel it first, then delete it")
            del self.jobs[job.id]
            self.db.delete_job(job_id)
        shutil.rmtree(job.root, ignore_errors=True)

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None and job_id.isdigit():  # the id an integer id_form answered
                job = next((j for j in self.jobs.values() if j.seq == int(job_id)), None)
        if job is None:
            raise FarmError(404, f"no job with id {job_id!r}")
        return job

    def list_jobs(self, statuses: Optional[List[str]], project: Optional[str], page: int,
                  per_page: int) -> Any:
        if statuses:
            unknown = [s for s in statuses if s not in JOB_STATUSES]
            if unknown:
                raise FarmError(400, f"unknown status {', '.join(unknown)}; use any of: {', '.join(JOB_STATUSES)}")
        if page < 1 or not 1 <= per_page <= 500:
            raise FarmError(400, "page must be 1 or more and per_page between 1 and 500")
        with self.lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j.seq, reverse=True)  # newest first
            if statuses:
                jobs = [j for j in jobs if j.status() in statuses]
            if project:
                jobs = [j for j in jobs if j.request.project == project]
            total = len(jobs)
            if self.list_form == "whole":
                return [self.job_view(j) for j in jobs]
            start = (page - 1) * per_page
            items = [self.job_view(j) for j in jobs[start:start + per_page]]
        return {"items": items, "page": page, "per_page": per_page, "total": total,
                "pages": max(1, -(-total // per_page))}

    def job_view(self, job: Job, tasks: bool = False) -> Dict[str, Any]:
        with self.lock:
            req = job.request
            counts = {s: sum(1 for t in job.tasks if t.status == s) for s in ("completed", "rendering", "failed",
                                                                               "waiting")}
            total = job.frames_total
            view: Dict[str, Any] = {
                "id": job.seq if self.id_form == "integer" else job.id, "job_title": req.job_title,
                "project": req.project, "status": self.spell.get(job.status(), job.status()),
                "priority": job.priority, "frame_range": req.frame_range, "scout_frames": req.scout_frames,
                "chunk_size": req.chunk_size, "instance_type": req.instance_type,
                "blender_version": req.blender_version, "render_software": req.render_software,
                "output_path": req.output_path, "environment_variables": dict(req.environment_variables),
                "preemptible": req.preemptible,
                "preemptible_retries": req.preemptible_retries, "created_at": iso(job.created_at),
                "updated_at": iso(job.updated_at), "finished_at": iso(job.finished_at),
                "progress": round(100.0 * len(job.frames_done) / total, 2) if total else 0.0,
                "frames_total": total, "frames_done": len(job.frames_done), "tasks_total": len(job.tasks),
                "tasks_completed": counts["completed"], "tasks_running": counts["rendering"],
                "tasks_failed": counts["failed"], "tasks_waiting": counts["waiting"], "error": job.error,
                "scene": job.scene, "render_seconds": round(job.render_seconds, 3), "cost": round(job.cost, 6),
            }
            if tasks:
                view["tasks"] = [{
                    "id": t.id, "index": t.index, "frames": t.frames, "frame_spec": t.spec,
                    "status": job.task_status(t), "scout": t.scout, "attempts": t.attempts,
                    "started_at": iso(t.started_at), "finished_at": iso(t.finished_at), "error": t.error,
                } for t in job.tasks]
            return view

    # --- outputs --------------------------------------------------------------------------------------------
    def outputs(self, job_id: str) -> List[Dict[str, Any]]:
        job = self.get(job_id)
        items = []
        if job.output_dir.is_dir():
            for path in sorted(job.output_dir.iterdir()):
                if not path.is_file() or path.name.startswith("."):
                    continue
                st = path.stat()
                items.append({"name": path.name, "size": st.st_size, "md5": self._md5_of(job.id, path, st),
                              "url": f"/api/jobs/{job.id}/outputs/{path.name}"})
        return items

    def _md5_of(self, job_id: str, path: Path, st: Any) -> str:
        key = (job_id, path.name)
        cached = self._md5_cache.get(key)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        digest = hashlib.md5()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        self._md5_cache[key] = (st.st_size, st.st_mtime_ns, digest.hexdigest())
        return digest.hexdigest()

    def output_path(self, job_id: str, name: str) -> Path:
        job = self.get(job_id)
        if "/" in name or "\\" in name or name in ("", ".", "..") or name.startswith("."):
            raise FarmError(404, f"no output named {name!r} in job {job_id}")
        path = job.output_dir / name
        if not path.is_file():
            raise FarmError(404, f"no output named {name!r} in job {job_id}")
        return path

    # --- billing --------------------------------------------------------------------------------------------
    def billing_current(self) -> Dict[str, Any]:
        start = now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
        with self.lock:
            entries = [(s, c) for when, s, c in self.ledger if start <= when < end]
        seconds = sum(s for s, _ in entries)
        return {"period_start": iso(start), "period_end": iso(end), "total_cost": round(sum(c for _, c in entries), 6),
                "currency": "USD", "render_hours": round(seconds / 3600.0, 6)}

    def list_transactions(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in reversed(self.transactions)]
