r"""The Renderfarm Platform contract (seed 004), as pydantic models.

Replies are tolerant (``extra="allow"``: the vendor adds fields); what we send is strict (``extra="forbid"``).
What the vendor has not published (status values, pagination, error body, token lifetime) is **unknown**: the
local farm picks one plausible form, documented here, and the client accepts the others.

Wire choices of the local farm where the vendor is silent:
- list replies: ``{"items": [...], "page": 1, "per_page": 50, "total": N, "pages": P}``; the client also accepts a bare
  list or ``jobs``/``results``/``data`` as the items key;
- job ``status``: ``syncing``, ``queued``, ``rendering``, ``waiting`` (scout frames done, the rest waiting for release),
  ``held``, ``completed``, ``failed``, ``cancelled``; tasks use the same words;
- ``PATCH /api/jobs/{id}``: ``{"action": "hold" | "unhold" | "cancel"}`` or ``{"priority": N}`` (0..100);
  ``unhold`` also releases tasks held behind scout frames;
- uploads: ``POST /api/uploads/md5 {"md5", "size", "path"}`` -> ``{"exists": bool, "file_id"}``; an existing blob is
  then bound to ``path`` so the job's ``upload_paths`` resolve; ``POST /api/uploads/file`` is multipart with fields
  ``file``, ``md5`` and ``path``; the server verifies the md5 of what it received;
- the job's scene is the first ``.blend`` in ``upload_paths``;
- the bundle (:mod:`tether.farm.bundle`): ``upload_paths`` are the files of one folder, the project root (the
  scene's folder unless the artist names another), written as this machine's absolute path of that folder plus each
  file's bundle name:
    ``<root>/shot.blend``                      the scene: a copy whose every path is ``//``-relative
    ``<root>/tex/wood.png``                    a file inside the project keeps its place
    ``<root>/_outside_project/C/tex/t.png``    a file outside it, ``C:\tex\t.png`` (the drive letter a folder)
    ``<root>/_outside_project/UNC/nas/show/t.png``   ``\\nas\show\t.png`` (UNC host and share kept)
    ``<root>/_outside_project/home/ann/t.png``  ``/home/ann/t.png``
  Linked libraries are rewritten copies too, their paths relative to their own place in the bundle. Nothing in any
  .blend points outside the bundle, and no name climbs with ``..``. It works whether the farm mirrors
  ``upload_paths`` as given (below some root of its own, drive letter stripped, as the local farm does) or lays them
  out relative to the job (the common folder cut off): both keep the files' positions relative to one another,
  and relative positions are all the rewritten .blend files use. USD layers are uploaded as they are (nothing
  rewrites them): a relative name inside one works because both files keep their relative places, and a name that
  would not (absolute, or across the project folder) is refused before the upload. The farm runs none of our code
  and remaps nothing;
  :func:`tether.farm.bundle.verify` opens the rewritten copies in a headless Blender before anything is uploaded;
- the documented API has no download route. The local farm adds ``GET /api/jobs/{id}/outputs`` (list) and
  ``GET /api/jobs/{id}/outputs/{name}`` (file, honours ``Range``); against a service without them the client says
  where the outputs are (``output_path``) instead of failing obscurely.
"""

from __future__ import annotations

from datetime import datetime
from typing import Dict, List, Literal, Optional

from pydantic import Field, model_validator

from ..contract import Strict, Tolerant
from ..jobs import JobState


# --- auth ----------------------------------------------------------------------------------------------------
class LoginRequest(Strict):
    email: str
    password: str


class LoginReply(Tolerant):
    access_token: str
    token_type: str = "bearer"
    expires_in: Optional[int] = None


# --- jobs ----------------------------------------------------------------------------------------------------
class JobCreate(Strict):
    job_title: str = Field(min_length=1)
    project: str = Field(min_length=1)
    instance_type: str = Field(min_length=1)
    preemptible: bool = False
    preemptible_retries: int = Field(0, ge=0)
    chunk_size: int = Field(1, ge=1)
    frame_range: str = Field(min_length=1)
    scout_frames: str = ""
    blender_version: str = Field(min_length=1)
    render_software: str = "cycles"
    output_path: str = Field(min_length=1)
    upload_paths: List[str] = Field(min_length=1)
    environment_variables: Dict[str, str] = Field(default_factory=dict)


JobAction = Literal["hold", "unhold", "cancel"]


class JobUpdate(Strict):
    action: Optional[JobAction] = None
    priority: Optional[int] = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _one(self) -> JobUpdate:
        if (self.action is None) == (self.priority is None):
            raise ValueError("give exactly one of action or priority")
        return self


class FarmTask(Tolerant):
    id: str
    index: int = 0
    frames: List[int] = Field(default_factory=list)
    status: str = "queued"
    scout: bool = False
    attempts: int = 0
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error: Optional[str] = None


class FarmJob(Tolerant):
    id: str
    job_title: str = ""
    project: str = ""
    status: str = ""  # unknown until the farm says (a create reply may not): shown as unknown, never guessed
    priority: int = 50
    frame_range: str = ""
    scout_frames: str = ""
    chunk_size: int = 1
    instance_type: str = ""
    blender_version: str = ""
    render_software: str = ""
    output_path: str = ""
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    progress: float = 0.0
    frames_total: int = 0
    frames_done: int = 0
    tasks_total: int = 0
    tasks_completed: int = 0
    tasks_running: int = 0
    tasks_failed: int = 0
    tasks_waiting: int = 0
    error: Optional[str] = None
    tasks: Optional[List[FarmTask]] = None  # only on GET /api/jobs/{id}


class Page(Tolerant):
    page: int = 1
    per_page: int = 50
    total: Optional[int] = None
    pages: Optional[int] = None


class FarmOutput(Tolerant):
    name: str
    size: Optional[int] = None
    md5: Optional[str] = None
    url: Optional[str] = None


# --- projects, instances, packages -----------------------------------------------------------------------------
class Project(Tolerant):
    id: str
    name: str
    archived: bool = False
    created_at: Optional[datetime] = None


class ProjectCreate(Strict):
    name: str = Field(min_length=1)


class ProjectUpdate(Strict):
    archived: bool


class Instance(Tolerant):
    id: str
    name: str = ""
    cpus: Optional[int] = None
    memory_gb: Optional[float] = None
    gpu: Optional[str] = None
    enabled: bool = True
    price_per_hour: Optional[float] = None


class Package(Tolerant):
    id: str
    name: str = ""
    version: str = ""
    render_software: List[str] = Field(default_factory=list)


# --- uploads ---------------------------------------------------------------------------------------------------
class Md5Check(Strict):
    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    size: Optional[int] = Field(None, ge=0)
    path: Optional[str] = None


class Md5Reply(Tolerant):
    exists: bool
    file_id: Optional[str] = None


class UploadReply(Tolerant):
    # The seed shows no upload reply: a 2xx is the acknowledgement, the fields are extras when present.
    file_id: Optional[str] = None
    md5: Optional[str] = None
    size: Optional[int] = None
    path: Optional[str] = None


# --- billing ---------------------------------------------------------------------------------------------------
class BillingPeriod(Tolerant):
    # The seed names the route, not its reply: every field may be missing, and what is missing is not zero.
    period_start: Optional[datetime] = None
    period_end: Optional[datetime] = None
    total_cost: Optional[float] = None
    currency: Optional[str] = None
    render_hours: Optional[float] = None

    def describe(self) -> str:
        """One line of what the farm said, never a value it did not send."""
        parts = []
        if self.period_start or self.period_end:
            start = self.period_start.date().isoformat() if self.period_start else "?"
            end = self.period_end.date().isoformat() if self.period_end else "?"
            parts.append(f"{start} .. {end}")
        if self.total_cost is not None:
            parts.append(f"{self.total_cost:.2f} {self.currency or ''}".rstrip())
        if self.render_hours is not None:
            parts.append(f"{self.render_hours:.2f} render hours")
        if parts:
            return ", ".join(parts)
        extra = ", ".join(f"{k}={v}" for k, v in (self.model_extra or {}).items())
        return (f"the farm's billing reply has none of the fields Tether knows; it said: {extra}" if extra else
                "the farm's billing reply was empty")


class Transaction(Tolerant):
    id: str
    amount: float
    currency: str = "USD"
    created_at: Optional[datetime] = None
    description: str = ""
    status: str = ""


# Vendor states -> the one job view. Unknown values map to UNKNOWN and are shown verbatim.
STATES: Dict[str, JobState] = {
    "syncing": JobState.QUEUED, "uploading": JobState.QUEUED, "queued": JobState.QUEUED,
    "pending": JobState.QUEUED, "submitted": JobState.QUEUED,
    "rendering": JobState.RUNNING, "running": JobState.RUNNING, "active": JobState.RUNNING,
    "in_progress": JobState.RUNNING,
    "waiting": JobState.HELD, "held": JobState.HELD, "on_hold": JobState.HELD, "paused": JobState.HELD,
    "completed": JobState.COMPLETED, "complete": JobState.COMPLETED, "finished": JobState.COMPLETED,
    "done": JobState.COMPLETED, "success": JobState.COMPLETED,
    # the farm's words are unpublished; "succeeded" is how many job APIs say it (e.g. Adobe's Photoshop API status)
    "succeeded": JobState.COMPLETED,
    "failed": JobState.FAILED, "error": JobState.FAILED,
    "cancelled": JobState.CANCELLED, "canceled": JobState.CANCELLED, "aborted": JobState.CANCELLED,
}
