"""The Move (Move.ai) contract (seed 003 plus SERVICES.md), as pydantic models and GraphQL documents.

Replies are tolerant (``extra="allow"``, camelCase aliases); what we send is checked before it leaves. Choices
where the vendor published nothing, and that the local service (``tether_services.move``) makes the same way:

- ``metadata`` travels as a JSON *string* (the seed writes ``metadata: "{\\"key\\": \\"value\\"}"``, AWSJSON
  style); the models turn it back into a dict, and keep a non-JSON string under ``{"value": ...}``;
- a job's state is read from ``progress.state`` and, when that is absent, from the seed's top-level ``state``;
  it is parsed loosely (``NOT STARTED``, ``NOT_STARTED`` and ``not-started`` are one state) and a value we do
  not know is kept and shown as itself;
- ``listJobs`` answers ``{first, after, items}``: ``after`` is the cursor of the next page, null on the last;
- an output's ``format`` (``key`` before the SDK's 4.x changelog; both are read) is its output type
  (``MAIN_FBX``...); a type we do not know (``MAIN_GLB`` and whatever Move adds) is kept, asked for and fetched;
- the seed has no share codes, so there is no model for them (nothing is guessed).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from .. import contract
from ..jobs import JobState, map_state

SOURCE_FORMATS: Dict[str, str] = {".mp4": "MP4", ".mov": "MOV", ".avi": "AVI", ".move": "MOVE"}

# The vendor's states (spelled as the seed and SDK do, after map_state's normalisation) -> the one job view.
STATES: Dict[str, JobState] = {
    "not_started": JobState.QUEUED,
    "notstarted": JobState.QUEUED,
    "started": JobState.RUNNING,  # "sent to a server for processing"
    "running": JobState.RUNNING,
    "finished": JobState.COMPLETED,  # "has produced some outputs": says nothing about their quality
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "canceled": JobState.CANCELLED,
}

# output type -> (kind, file suffix when the URL names none). ALL_FBX is a zip of FBX files.
OUTPUT_TYPES: Dict[str, Tuple[str, str]] = {
    "MAIN_FBX": ("fbx", ".fbx"),
    "MAIN_BLEND": ("blend", ".blend"),
    "MAIN_USDC": ("usd", ".usdc"),
    "ALL_FBX": ("fbx-zip", ".zip"),
    "RENDER_VIDEO": ("video", ".mp4"),
    "MOTION_DATA": ("motion", ".json"),
    "MAIN_GLB": ("glb", ".glb"),  # in the SDK's docs (move-ugc-python), beyond the seed
}
OUTPUT_TYPE_PATTERN = r"^[A-Z][A-Z0-9_]*$"  # any type Move may add is sent as it is: Move is the judge
DEFAULT_OUTPUTS = ("MAIN_FBX",)


def parse_state(raw: Any) -> JobState:
    """``NOT STARTED`` / ``NOT_STARTED`` / ``not-started`` -> QUEUED ...; anything else -> UNKNOWN (raw kept)."""
    if raw is None or str(raw).strip() == "":
        return JobState.UNKNOWN
    return map_state(raw, STATES)


def _metadata(value: Any) -> Any:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"value": value}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return value


def metadata_json(metadata: Optional[Dict[str, Any]]) -> Optional[str]:
    """How metadata is sent: a JSON string (AWSJSON)."""
    return json.dumps(metadata, separators=(",", ":"), sort_keys=True, default=str) if metadata else None


class Tolerant(contract.Tolerant):

    @field_validator("metadata", mode="before", check_fields=False)
    @classmethod
    def _meta(cls, value: Any) -> Any:
        return _metadata(value)


class MoveFile(Tolerant):
    id: str
    presigned_url: Optional[str] = Field(None, alias="presignedUrl")
    type: Optional[str] = None
    name: Optional[str] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)


class Ref(Tolerant):
    id: str


class TakeSource(Tolerant):
    device_label: Optional[str] = Field(None, alias="deviceLabel")
    format: Optional[str] = None
    file: Optional[MoveFile] = None


class MoveTake(Tolerant):
    id: str
    name: Optional[str] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)
    created: Optional[datetime] = None
    sources: List[TakeSource] = Field(default_factory=list)


class MoveProgress(Tolerant):
    state: Optional[str] = None
    percentage_complete: Optional[float] = Field(None, alias="percentageComplete")


class MoveOutput(Tolerant):
    # The SDK's changelog moves an output's type from ``key`` to ``format``; a reply of either age is read.
    format: str = Field(validation_alias=AliasChoices("format", "key"))
    file: Optional[MoveFile] = None

    @property
    def kind(self) -> Optional[str]:
        known = OUTPUT_TYPES.get(self.format.upper())
        return known[0] if known else None


class MoveJob(Tolerant):
    id: str
    name: Optional[str] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)
    state: Optional[str] = None
    created: Optional[datetime] = None
    client: Optional[Ref] = None
    take: Optional[Ref] = None
    progress: Optional[MoveProgress] = None
    outputs: List[MoveOutput] = Field(default_factory=list)
    error: Optional[str] = None  # asked for apart (GET_JOB_ERROR): the vendor's failure reason field is unknown

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def raw_state(self) -> str:
        if self.progress is not None and self.progress.state:
            return self.progress.state
        return self.state or ""

    @property
    def job_state(self) -> JobState:
        return parse_state(self.raw_state)

    @property
    def percentage(self) -> float:
        if self.progress is not None and self.progress.percentage_complete is not None:
            return float(self.progress.percentage_complete)
        return 100.0 if self.job_state is JobState.COMPLETED else 0.0

    def output(self, key: str) -> Optional[MoveOutput]:
        return next((o for o in self.outputs if o.format.upper() == key.upper()), None)


class JobList(Tolerant):
    first: Optional[int] = None
    after: Optional[str] = None
    items: List[MoveJob] = Field(default_factory=list)

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, value: Any) -> Any:
        return [] if value is None else value


class Source(BaseModel):
    """One take source as sent (strict)."""

    model_config = ConfigDict(extra="forbid")

    device_label: str = Field(min_length=1)
    file_id: str = Field(min_length=1)
    format: str

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in SOURCE_FORMATS.values():
            raise ValueError(f"format must be one of {', '.join(SOURCE_FORMATS.values())}, not {value!r}")
        return value

    def variables(self) -> Dict[str, Any]:
        return {"deviceLabel": self.device_label, "fileId": self.file_id, "format": self.format}


class ClipWindow(BaseModel):
    """The part of the take to process, in seconds."""

    model_config = ConfigDict(extra="forbid")

    start_time: float = Field(ge=0)
    end_time: float = Field(gt=0)

    @field_validator("end_time")
    @classmethod
    def _order(cls, value: float, info: Any) -> float:
        start = info.data.get("start_time")
        if start is not None and value <= start:
            raise ValueError(f"the clip window ends ({value:g} s) before it starts ({start:g} s)")
        return value

    def variables(self) -> Dict[str, float]:
        return {"startTime": self.start_time, "endTime": self.end_time}


# --- GraphQL documents ---------------------------------------------------------------------------------------------
# Fixed, named operations: the operation name is what the local service dispatches on, and what a log line shows.
_FILE = "id presignedUrl"
# An output's type field: ``format`` since the SDK's 4.x changelog. A schema of the older age refuses the field, and
# the client asks again with OLD_OUTPUT_FIELD (MoveClient.graphql).
OUTPUT_FIELD, OLD_OUTPUT_FIELD = "format", "key"
_JOB = ("id name metadata state created client { id } take { id } progress { state percentageComplete } "
        f"outputs {{ {OUTPUT_FIELD} file {{ id presignedUrl }} }}")

# Variable types as the official SDK's documents declare them (move-ugc-python 4.x, move_ugc/gql_requests/job.py and
# take.py): OptionsInput, SourceInput, ClipWindowInput, getJob(jobId: ID!), listJobs(after: AWSJSON).
CREATE_FILE = ("mutation CreateFile($type: String!, $name: String, $metadata: AWSJSON) "
               f"{{ file: createFile(type: $type, name: $name, metadata: $metadata) {{ {_FILE} }} }}")
# getFile(fileId: ID!) as the SDK's move_ugc/gql_requests/file.py asks it ("query retrieve($id: ID!) { getFile(fileId:
# $id) ..."), not getFile(id:).
GET_FILE = f"query GetFile($fileId: ID!) {{ file: getFile(fileId: $fileId) {{ {_FILE} }} }}"
CREATE_TAKE = ("mutation CreateSingleCamTake($sources: [SourceInput!]!, $name: String, $metadata: AWSJSON) "
               "{ take: createSingleCamTake(sources: $sources, name: $name, metadata: $metadata) "
               "{ id name metadata created sources { deviceLabel format file { id } } } }")
CREATE_JOB = ("mutation CreateSingleCamJob($takeId: String!, $name: String, $options: OptionsInput, "
              "$outputs: [OutputType!], $metadata: AWSJSON, $clipWindow: ClipWindowInput) "
              "{ job: createSingleCamJob(takeId: $takeId, name: $name, options: $options, outputs: $outputs, "
              f"metadata: $metadata, clipWindow: $clipWindow) {{ {_JOB} }} }}")
GET_JOB = f"query GetJob($jobId: ID!) {{ job: getJob(jobId: $jobId) {{ {_JOB} }} }}"
# Asked only of a failed job, apart from GET_JOB: Move documents no field for the reason, and a schema without
# ``error`` refuses the whole document (ValidationError), which must not cost us the job's state.
GET_JOB_ERROR = "query GetJobError($jobId: ID!) { job: getJob(jobId: $jobId) { id error } }"
LIST_JOBS = ("query ListJobs($first: Int, $after: AWSJSON, $sortDirection: SortDirection, $takeId: String) "
             "{ jobs: listJobs(first: $first, after: $after, sortDirection: $sortDirection, takeId: $takeId) "
             f"{{ first after items {{ {_JOB} }} }} }}")

__all__ = [
    "CREATE_FILE", "CREATE_JOB", "CREATE_TAKE", "DEFAULT_OUTPUTS", "GET_FILE", "GET_JOB", "GET_JOB_ERROR", "LIST_JOBS",
    "OLD_OUTPUT_FIELD", "OUTPUT_FIELD", "OUTPUT_TYPES", "OUTPUT_TYPE_PATTERN",
    "SOURCE_FORMATS", "STATES", "ClipWindow", "JobList", "MoveFile", "MoveJob", "MoveOutput",
    "MoveProgress", "MoveTake", "Source", "metadata_json", "parse_state",
]
