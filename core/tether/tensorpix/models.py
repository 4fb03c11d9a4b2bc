"""The TensorPix contract (seed 002 plus SERVICES.md), as pydantic models.

What we send is strict (``extra="forbid"``, checked before anything leaves); what we receive is tolerant
(``extra="allow"``). Known: ``Authorization: Token <key>``; ``POST /api/videos/`` (multipart ``file``) -> 201; a video
is ready once ``file`` (a presigned, expiring URL) is non-null; ``POST /api/jobs/`` and ``/api/jobs/from-url/``;
``/api/ml-models/``; Django REST lists ``{count, next, previous, results}`` with ``limit``/``offset``;
``GET /api/accounts/profile/balance/ -> {balance_usd}``; storage quota exceeded -> HTTP 400.

**Unknowns, fixed here and nowhere else:**

- ``status`` is an integer whose meanings are not published. It is never interpreted: a job is COMPLETED when
  ``output_video`` is present, QUEUED only for the one documented value ``"IN_QUEUE"`` (if it ever comes as a
  string), and otherwise UNKNOWN with the integer shown as itself (``unknown (3)``).
- Option ranges are not published; the bounds below are what the seed's fields can sensibly hold (``output_resolution``
  ``-1`` = the vendor's default, else the output height in pixels), so a typo fails here, not after an upload.
- ``from-url`` takes the video address as ``url`` (the local service's choice; the vendor's field name is unknown).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Generic, List, Literal, Optional, TypeVar, Union

from pydantic import Field, field_validator, model_validator

from ..contract import Strict, Tolerant

IN_QUEUE = "IN_QUEUE"
CONTAINERS = ("mp4", "mov", "mkv")
CODECS = ("libx264", "libx265", "prores_ks", "libvpx-vp9", "mpeg4")
MAX_RESOLUTION = 8640


# --- replies ---------------------------------------------------------------------------------------------------
class MLModel(Tolerant):
    id: int
    name: str = ""
    task: Optional[int] = None
    cost_weight: Optional[float] = None
    upscale_factor: Optional[float] = None
    fps_boost_factor: Optional[float] = None
    priority: Optional[int] = None
    max_resolution: Optional[int] = None


class InputVideo(Tolerant):
    id: int
    name: str = ""
    width: Optional[int] = None
    height: Optional[int] = None
    created_at: Optional[datetime] = None
    n_frames: Optional[int] = None
    framerate: Optional[float] = None
    size: Optional[int] = None
    file: Optional[str] = None  # presigned, expires; null until the upload is processed
    owner: Optional[str] = None
    thumbnail: Optional[str] = None
    external_url: Optional[str] = None
    bitrate: Optional[int] = None
    codec_id: Optional[str] = None
    bit_depth: Optional[int] = None
    chroma_subsampling: Optional[str] = None
    color_space: Optional[str] = None

    @property
    def ready(self) -> bool:
        return bool(self.file)


class PreviewVideos(Tolerant):
    before_video: Optional[str] = None
    after_video: Optional[str] = None


class OutputVideo(Tolerant):
    id: int
    job_id: Optional[int] = None
    preview_videos: Optional[PreviewVideos] = None
    name: str = ""
    created_at: Optional[datetime] = None
    deleted: Optional[datetime] = None
    framerate: Optional[float] = None
    n_frames: Optional[int] = None
    bitrate: Optional[int] = None
    codec_id: Optional[str] = None
    bit_depth: Optional[int] = None
    chroma_subsampling: Optional[str] = None
    color_space: Optional[str] = None
    size: Optional[int] = None
    file: Optional[str] = None  # presigned, expires
    thumbnail: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    quality_score: Optional[float] = None
    owner: Optional[Union[int, str]] = None


class TensorPixJob(Tolerant):
    id: int
    started: Optional[datetime] = None
    preview: Optional[bool] = None
    description: Optional[str] = None
    cost_usd: Optional[str] = None
    status: Optional[Union[int, str]] = None  # meanings unknown: never interpreted (see the module docstring)
    eta_s: Optional[float] = None
    finished: Optional[datetime] = None
    processing_progress: Optional[float] = None
    input_video: Optional[InputVideo] = None
    output_video: Optional[OutputVideo] = None
    ml_models: List[MLModel] = Field(default_factory=list)
    grain: Optional[float] = None
    container: Optional[str] = None
    codec: Optional[str] = None
    output_resolution: Optional[int] = None
    comparison: Optional[bool] = None
    stabilization_smoothing: Optional[float] = None
    fps_interpolation_factor: Optional[float] = None
    playback_speed: Optional[float] = None
    sharpen_strength: Optional[float] = None
    start_frame: Optional[int] = None
    end_frame: Optional[int] = None

    @field_validator("ml_models", mode="before")
    @classmethod
    def _models(cls, value: Any) -> Any:
        # a job may name its models by id only
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, int) else v for v in value]
        return value or []


class Balance(Tolerant):
    balance_usd: Union[str, float, int, None] = None

    @property
    def amount(self) -> Optional[float]:
        try:
            return None if self.balance_usd is None else float(self.balance_usd)
        except (TypeError, ValueError):
            return None


T = TypeVar("T")


class Page(Tolerant, Generic[T]):
    """A Django REST page: ``next`` is the full URL of the following page, or null on the last."""

    count: Optional[int] = None
    next: Optional[str] = None
    previous: Optional[str] = None
    results: List[T] = Field(default_factory=list)
    bounded: bool = True  # the reply says whether more pages follow (False: a bare list, ask the next offset)


# --- requests --------------------------------------------------------------------------------------------------
class JobOptions(Strict):
    """The job fields of the seed, validated. ``None`` leaves the vendor's default."""

    ml_models: List[int] = Field(min_length=1, description="ids from /api/ml-models/")
    output_resolution: Optional[int] = Field(None, description="-1 = the vendor's default; else output height, px")
    container: Optional[Literal["mp4", "mov", "mkv"]] = None
    codec: Optional[Literal["libx264", "libx265", "prores_ks", "libvpx-vp9", "mpeg4"]] = None
    preview: bool = False
    comparison: Optional[bool] = None
    grain: Optional[int] = Field(None, ge=0, le=100)  # integers in the seed
    stabilization_smoothing: Optional[int] = Field(None, ge=0, le=100)
    fps_interpolation_factor: Optional[float] = Field(None, ge=1, le=8)
    playback_speed: Optional[float] = Field(None, gt=0, le=16)
    sharpen_strength: Optional[int] = Field(None, ge=0, le=100)
    start_frame: Optional[int] = Field(None, ge=0)
    end_frame: Optional[int] = Field(None, ge=0)
    description: Optional[str] = Field(None, max_length=500)

    @field_validator("ml_models")
    @classmethod
    def _ids(cls, value: List[int]) -> List[int]:
        if any(v <= 0 for v in value):
            raise ValueError("model ids are positive numbers (see `tether tensorpix models`)")
        if len(set(value)) != len(value):
            raise ValueError("a model is listed twice")
        return value

    @field_validator("output_resolution")
    @classmethod
    def _resolution(cls, value: Optional[int]) -> Optional[int]:
        if value is not None and value != -1 and not 16 <= value <= MAX_RESOLUTION:
            raise ValueError(f"output_resolution is -1 (default) or an output height of 16..{MAX_RESOLUTION} px, "
                             f"not {value}")
        return value

    @model_validator(mode="after")
    def _range(self) -> JobOptions:
        if self.start_frame is not None and self.end_frame is not None and self.end_frame < self.start_frame:
            raise ValueError(f"end_frame ({self.end_frame}) is before start_frame ({self.start_frame})")
        return self

    def payload(self) -> Dict[str, Any]:
        return self.model_dump(exclude_none=True)


class JobCreate(JobOptions):
    input_video: int = Field(gt=0)


class JobFromUrl(JobOptions):
    url: str = Field(min_length=8)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) address of a video, not {value!r}")
        return value


__all__ = ["CODECS", "CONTAINERS", "IN_QUEUE", "Balance", "InputVideo", "JobCreate", "JobFromUrl", "JobOptions",
           "MLModel", "OutputVideo", "Page", "TensorPixJob"]
