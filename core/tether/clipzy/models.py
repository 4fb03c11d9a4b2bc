"""The Clipzy ML Engine contract (seed 001 plus SERVICES.md), as pydantic models.

Replies are tolerant (``extra="allow"``). Where the vendor has published nothing:

- the list of ``GET /jobs`` holds its jobs under an unknown key: ``items``, ``jobs``, ``results`` or ``data`` are
  accepted, or the ``data`` of the envelope may itself be the list (the local engine answers ``items``);
- the webhook body is either the envelope with a JobDetailResponse as ``data``, or the flat
  ``{job_id, status, progress_percent, output_video_url, processing_time_seconds}``: :func:`parse_job` takes both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..contract import Tolerant
from ..jobs import JobState

STATES: Dict[str, JobState] = {
    "pending": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "waiting": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "running": JobState.RUNNING,
    "in_progress": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "complete": JobState.COMPLETED,
    "succeeded": JobState.COMPLETED,
    "failed": JobState.FAILED,
    "error": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "canceled": JobState.CANCELLED,
}

# The seed's pipeline stages, as a person reads them.
STAGES: Dict[str, str] = {
    "video_analysis": "analysing the video",
    "audio_analysis": "analysing the audio",
    "motion_analysis": "detecting motion",
    "style_extraction": "extracting the template's style",
    "style_application": "applying the style",
    "rendering": "encoding the output",
}


class VideoMetadata(Tolerant):
    duration_seconds: Optional[float] = None
    fps: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    resolution: Optional[str] = None
    frame_count: Optional[int] = None
    codec: Optional[str] = None


class Video(Tolerant):
    video_id: str
    filename: str = ""
    file_size_bytes: Optional[int] = None
    uploaded_at: Optional[datetime] = None
    metadata: VideoMetadata = Field(default_factory=VideoMetadata)

    @field_validator("video_id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("metadata", mode="before")
    @classmethod
    def _meta(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


class JobError(Tolerant):
    detail: Optional[str] = None
    code: Optional[str] = None


class ClipzyJob(Tolerant):
    """JobResponse, and JobDetailResponse when the result fields are present."""

    job_id: str
    video_id: Optional[str] = None
    status: str = ""
    progress_percent: float = 0.0
    current_stage: Optional[str] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    template_video_id: Optional[str] = None
    style_json: Optional[Dict[str, Any]] = None
    output_video_url: Optional[str] = None
    error: Optional[JobError] = None
    processing_time_seconds: Optional[float] = None

    @field_validator("job_id", "video_id", "template_video_id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("progress_percent", mode="before")
    @classmethod
    def _progress(cls, value: Any) -> Any:
        return 0.0 if value is None else value

    @field_validator("error", mode="before")
    @classmethod
    def _error(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"detail": value}
        return value

    @property
    def stage_text(self) -> str:
        """'applying the style' for a known stage, the raw value for another, '' when there is none."""
        if not self.current_stage:
            return ""
        return STAGES.get(self.current_stage, self.current_stage.replace("_", " "))

    @property
    def error_text(self) -> Optional[str]:
        if self.error is None or not (self.error.detail or self.error.code):
            return None
        if self.error.code and self.error.detail:
            return f"{self.error.detail} ({self.error.code})"
        return self.error.detail or self.error.code


class JobPage(Tolerant):
    items: List[ClipzyJob] = Field(default_factory=list)
    total: Optional[int] = None
    page: int = 1
    page_size: Optional[int] = None
    pages: Optional[int] = None

    def has_more(self) -> bool:
        extra = self.model_extra or {}
        if "next" in extra:  # a Django REST page ({count, next, previous, results}): next says it
            return bool(extra["next"]) and bool(self.items)
        if self.pages is not None:
            return self.page < self.pages
        if self.total is not None and self.page_size:
            return self.page * self.page_size < self.total
        # A page that says nothing of the others (a bare list, maybe cut to the engine's own page size): ask for the
        # next one; the walk ends on an empty page or one with no new job (tether.jobs.walk_pages).
        return bool(self.items)


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(min_length=1)
    template_video_id: Optional[str] = None
    config: Optional[Dict[str, Any]] = None
    webhook_url: Optional[str] = None

    def payload(self) -> Dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
