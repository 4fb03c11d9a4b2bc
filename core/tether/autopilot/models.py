"""The Slapshot Autopilot contract (seed 000 plus SERVICES.md), as pydantic models.

What we send is strict (``extra="forbid"``, the seed's rules checked before anything leaves); what we receive is
tolerant (``extra="allow"``: the vendor adds fields). Where the vendor has published nothing the local service
picks one plausible form, written here, and the client accepts the others:

- list replies: ``{"items": [...], "page": 1, "per_page": 20, "total": N, "pages": P}``; the client also accepts a
  bare list or ``jobs``/``inferences``/``results``/``data`` as the items key;
- a job reply carries the counters ``total, total_pending, total_running, total_completed, total_failed,
  total_cancelled`` and ``percent_complete``, and (local service) its ``inferences`` with ``status`` and ``error``;
- an error body is ``{"message": ...}`` (FastAPI's ``detail`` is accepted too);
- the result of ``GET /api/comfyui/{job_id}/result`` names its file under ``download_url``, ``url`` or
  ``presigned_url``: a zip or a loose file (:mod:`tether.autopilot.results` unpacks either).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Literal, Optional, Type, Union

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator

from ..contract import Strict, Tolerant
from ..jobs import JobState

# The Autopilot ComfyUI node refuses clips over this many frames; we do the same before uploading.
MAX_FRAMES = 3500
FREE_TIER_FRAMES = 1000
TIER_FRAME_LIMITS: Dict[str, int] = {"free": FREE_TIER_FRAMES}

SERVICE_TYPES = ("roto", "tracking", "depth_map", "smart_vectors")
INFERENCE_STATES = ("pending", "running", "completed", "failed", "cancelled")
# export types per service, first one is what a plain import asks for
EXPORT_TYPES: Dict[str, List[str]] = {
    "roto": ["hard_mattes", "mb_mattes"],
    "tracking": ["tracking"],
    "depth_map": ["jpg", "mov"],
    "smart_vectors": ["exr"],
}

STATES: Dict[str, JobState] = {
    "pending": JobState.QUEUED,
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "processing": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "complete": JobState.COMPLETED,
    "failed": JobState.FAILED,
    "error": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "canceled": JobState.CANCELLED,
}

Flag = Literal["True", "False"]


def _flag(value: Any) -> Any:
    """The API wants the strings "True"/"False"; a Python bool is turned into one, anything else is refused."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "True" if value.strip().lower() == "true" else "False"
    return value


# --- create ----------------------------------------------------------------------------------------------------
class TrackingMetadata(Strict):
    working_fps: Optional[float] = Field(None, gt=0, description="working frames per second (default: the clip's)")
    lens: Optional[float] = Field(None, gt=0, description="focal length, mm")
    sensor_width: Optional[float] = Field(None, gt=0, description="mm; give sensor_height too")
    sensor_height: Optional[float] = Field(None, gt=0, description="mm; give sensor_width too")
    estimated_closest_point: Optional[float] = Field(None, gt=0, description="metres")
    estimated_farthest_point: Optional[float] = Field(None, gt=0, description="metres")
    calculate_distortion: Optional[Flag] = None  # vendor default "False"
    fix_focal_length: Optional[Flag] = None  # vendor default "False"
    fix_sensor_size: Optional[Flag] = None  # vendor default "True"

    @field_validator("calculate_distortion", "fix_focal_length", "fix_sensor_size", mode="before")
    @classmethod
    def _flags(cls, value: Any) -> Any:
        return _flag(value)

    @model_validator(mode="after")
    def _rules(self) -> TrackingMetadata:
        if (self.sensor_width is None) != (self.sensor_height is None):
            given, missing = ("sensor_width", "sensor_height") if self.sensor_height is None else (
                "sensor_height", "sensor_width")
            raise ValueError(f"{given} was given without {missing}: give both sensor dimensions (mm) or neither")
        near, far = self.estimated_closest_point, self.estimated_farthest_point
        if near is not None and far is not None and near >= far:
            raise ValueError(f"estimated_closest_point ({near} m) must be nearer than "
                             f"estimated_farthest_point ({far} m)")
        return self


class SmartVectorsMetadata(Strict):
    roi_mask_path: Optional[str] = Field(None, description="s3 key of a mask limiting the region of interest")
    keyframe: Optional[int] = Field(None, ge=0)


class RotoService(Strict):
    type: Literal["roto"] = "roto"
    output_path: str = Field(min_length=1)
    # s3 keys of reference masks named NNNNN.png, red (255,0,0) where masked
    references_path: Optional[List[str]] = None


class TrackingService(Strict):
    type: Literal["tracking"] = "tracking"
    output_path: str = Field(min_length=1)
    metadata: Optional[TrackingMetadata] = None


class DepthMapService(Strict):
    type: Literal["depth_map"] = "depth_map"
    output_path: str = Field(min_length=1)
    export_type: Optional[Literal["jpg", "mov"]] = None  # vendor default "jpg"

    @field_validator("export_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class SmartVectorsService(Strict):
    type: Literal["smart_vectors"] = "smart_vectors"
    output_path: str = Field(min_length=1)
    metadata: Optional[SmartVectorsMetadata] = None


ServiceSpec = Union[RotoService, TrackingService, DepthMapService, SmartVectorsService]
_SERVICE_MODELS: Dict[str, Type[BaseModel]] = {
    "roto": RotoService, "tracking": TrackingService, "depth_map": DepthMapService,
    "smart_vectors": SmartVectorsService,
}


class Asset(Strict):
    source_path: str = Field(min_length=1, description="the s3_key the upload returned")
    services: List[ServiceSpec] = Field(min_length=1)
    metadata: Dict[str, Any] = Field(default_factory=dict)

    @field_validator("services", mode="before")
    @classmethod
    def _discriminate(cls, value: Any) -> Any:
        # a plain dict is turned into the right model by its "type", with a message naming an unknown one
        if not isinstance(value, list):
            return value
        out: List[Any] = []
        for item in value:
            if isinstance(item, dict):
                kind = item.get("type")
                model = _SERVICE_MODELS.get(str(kind))
                if model is None:
                    raise ValueError(f"unknown service type {kind!r}; use one of {', '.join(SERVICE_TYPES)}")
                item = model.model_validate(item)
            out.append(item)
        return out

    @model_validator(mode="after")
    def _unique(self) -> Asset:
        kinds = [s.type for s in self.services]
        dupes = sorted({k for k in kinds if kinds.count(k) > 1})
        if dupes:
            raise ValueError(f"service {', '.join(dupes)} is listed twice for asset {self.source_path}")
        return self


class JobCreate(Strict):
    assets: List[Asset] = Field(min_length=1)
    metadata: Dict[str, Any] = Field(default_factory=dict)
    job_source: Optional[str] = None

    def payload(self) -> Dict[str, Any]:
        """The JSON body: unset optional fields left out so the vendor's defaults apply."""
        return self.model_dump(mode="json", exclude_none=True)


# --- replies ---------------------------------------------------------------------------------------------------
class Inference(Tolerant):
    id: str = Field(validation_alias=AliasChoices("id", "inference_id"))
    job_id: Optional[str] = None
    type: str = Field("", validation_alias="service")
    status: str = ""
    source_path: Optional[str] = None
    output_path: Optional[str] = None
    export_types: List[str] = Field(default_factory=list)
    frames: Optional[int] = None
    progress: Optional[float] = None
    error: Optional[str] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None

    @field_validator("id", "job_id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="before")
    @classmethod
    def _type_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("export_type"), str) and not data.get("export_types"):
            data = {**data, "export_types": [data["export_type"]]}  # the request's own singular field, echoed
        if isinstance(data, dict) and "service" not in data:
            for key in ("type", "inference_type", "service_type"):
                if key in data:
                    return {**data, "service": data[key]}
        return data


class AutopilotJob(Tolerant):
    id: str = Field(validation_alias=AliasChoices("id", "job_id"))
    percent_complete: float = 0.0
    total: int = 0
    total_pending: int = 0
    total_running: int = 0
    total_completed: int = 0
    total_failed: int = 0
    total_cancelled: int = 0
    metadata: Dict[str, Any] = Field(default_factory=dict)
    job_source: Optional[str] = None
    status: Optional[str] = None
    inferences: List[Inference] = Field(default_factory=list)
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None

    @field_validator("id", mode="before")
    @classmethod
    def _str_id(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="before")
    @classmethod
    def _job_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data:
            for key in ("job_id", "uuid"):
                if key in data:
                    return {**data, "id": data[key]}
        return data

    @property
    def finished(self) -> bool:
        """The ComfyUI node's own test: something to do, and nothing pending or running."""
        return self.total > 0 and self.total_pending == 0 and self.total_running == 0


class Quota(Tolerant):
    is_above_limit: bool = False
    subscription_tier: Optional[str] = None
    frames_inferenced: int = 0
    frame_limit: Optional[int] = Field(None, description="local service; the vendor publishes the free tier only")

    @property
    def limit(self) -> Optional[int]:
        if self.frame_limit is not None:
            return self.frame_limit
        return TIER_FRAME_LIMITS.get((self.subscription_tier or "").strip().lower())

    @property
    def remaining(self) -> Optional[int]:
        return None if self.limit is None else max(0, self.limit - self.frames_inferenced)


class UploadTicket(Tolerant):
    upload_url: str
    s3_key: str


class ResultLink(Tolerant):
    download_url: Optional[str] = None
    url: Optional[str] = None
    presigned_url: Optional[str] = None

    @property
    def link(self) -> Optional[str]:
        return self.download_url or self.url or self.presigned_url


class Page(Tolerant):
    page: int = 1
    per_page: Optional[int] = None
    total: Optional[int] = None
    pages: Optional[int] = None
    next: Optional[str] = None

    @field_validator("next", mode="before")
    @classmethod
    def _next_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value  # a page number or a cursor

    def has_more(self, count: int) -> bool:
        if self.pages is not None:
            return self.page < self.pages
        if self.next:
            return True
        if self.total is not None and self.per_page:
            return self.page * self.per_page < self.total
        if self.per_page:
            return count >= self.per_page
        # nothing said about other pages: ask for the next one; a page that brings no new id ends the walk
        return count > 0


class JobPage(Page):
    items: List[AutopilotJob] = Field(default_factory=list)


class InferencePage(Page):
    items: List[Inference] = Field(default_factory=list)


__all__ = [
    "EXPORT_TYPES", "FREE_TIER_FRAMES", "INFERENCE_STATES", "MAX_FRAMES", "SERVICE_TYPES", "STATES", "Asset",
    "AutopilotJob", "DepthMapService", "Inference", "InferencePage", "JobCreate", "JobPage", "Quota", "ResultLink",
    "RotoService", "ServiceSpec", "SmartVectorsMetadata", "SmartVectorsService", "TrackingMetadata",
    "TrackingService", "UploadTicket",
]
