"""One headless submission path for Move: prepare (check the video, outputs, clip window) -> preview -> submit
(upload -> take -> job -> record).

The CLI and the Blender add-on both call :func:`submit` (``submit_video`` is its older name). A wrong file type, a
missing file, a malformed output type, a clip window outside the video, or a take too short, too long or at a frame
rate out of :data:`LIMITS` is refused by :func:`prepare` before anything is uploaded (the whole file would be sent
otherwise).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from pydantic import ValidationError

from ..creation import create_recorded
from ..errors import InputError
from ..handoff import Steps, agent_progress, made_before
from ..jobs import Job, JobState
from ..poll import SYSTEM_CLOCK, Backoff, Clock, poll_until, polls
from ..progress import Progress
from ..submission import UPLOAD_PLACEHOLDER, DocumentPreview, Recording, field_errors
from .client import source_format
from .models import DEFAULT_OUTPUTS, OUTPUT_TYPE_PATTERN, OUTPUT_TYPES, ClipWindow, MoveJob

if TYPE_CHECKING:
    from ..handoff import Checkpoint
    from ..registry import JobRegistry
    from ..transfer import ProgressCallback, Throttle
    from .client import MoveClient

SERVICE = "move"


@dataclass(frozen=True)
class Limits:
    """What a take must be. Move publishes no numbers for these (its docs speak of 10 s FHD at 60 fps as a usual
    take): these are our bounds, which the local Move applies too."""

    min_frames: int = 8  # a third of a second at 24 fps: no motion to capture in fewer
    max_frames: int = 3600  # a minute at 60 fps
    min_fps: float = 12.0
    max_fps: float = 240.0


LIMITS = Limits()


@dataclass
class VideoFacts:
    path: Path
    format: str
    size: int
    fps: Optional[float] = None
    duration: Optional[float] = None  # seconds
    frames: Optional[int] = None


def probe(path: Path) -> VideoFacts:
    """Format and size always; fps, duration and frame count when PyAV is there to read them."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    facts = VideoFacts(path=path, format=source_format(path), size=path.stat().st_size)
    if facts.size == 0:
        raise InputError(f"{path} is empty")
    try:
        import av
    except ImportError:
        return facts
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            facts.fps = float(rate) if rate else None
            if stream.duration is not None and stream.time_base is not None:
                facts.duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                facts.duration = container.duration / 1_000_000
            facts.frames = int(stream.frames) or (round(facts.duration * facts.fps)
                                                  if facts.duration and facts.fps else None)
    except (IndexError, ValueError, OSError) as exc:
        raise InputError(f"{path.name} is not a readable video ({exc}): export it again as MP4 or MOV") from None
    return facts


@dataclass
class MoveRequest:
    video: Path
    name: str = ""
    outputs: Sequence[str] = DEFAULT_OUTPUTS
    start: Optional[float] = None  # seconds
    end: Optional[float] = None
    options: Dict[str, Any] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    facts: VideoFacts
    outputs: List[str]
    window: Optional[ClipWindow]
    submission: str
    frames: Optional[int] = None  # of the window sent, else of the whole video
    name: str = ""  # the take's and job's name


def prepare(client: Optional[MoveClient], req: MoveRequest) -> Prepared:
    """Check the video, the outputs and the clip window (Move has nothing to ask first: ``client`` may be None)."""
    facts = probe(req.video)
    outputs = [o.strip().upper() for o in req.outputs if o.strip()]
    if not outputs:
        raise InputError("ask for at least one output (e.g. MAIN_FBX)")
    # A type this Tether does not know (MAIN_GLB was one) is sent as it is: Move says whether it has it.
    malformed = [o for o in outputs if not re.match(OUTPUT_TYPE_PATTERN, o)]
    if malformed:
        raise InputError(f"Move output types are words like {', '.join(OUTPUT_TYPES)}, not "
                         f"{', '.join(repr(o) for o in malformed)}")
    window = None
    if req.start is not None or req.end is not None:
        start = req.start or 0.0
        end = req.end if req.end is not None else facts.duration
        if end is None:
            raise InputError("give the clip window's end (--end SECONDS): the video's length could not be read")
        try:
            window = ClipWindow(start_time=start, end_time=end)
        except ValidationError as exc:
            raise InputError(f"the clip window is not valid: {field_errors(exc)}") from None
        if facts.duration is not None and window.end_time > facts.duration + 1e-3:
            raise InputError(f"the clip window ends at {window.end_time:g} s but {facts.path.name} lasts "
                             f"{facts.duration:.3f} s")
    frames = take_frames(facts, window)
    check_limits(facts, frames, window)
    return Prepared(facts=facts, outputs=outputs, window=window, submission=str(uuid.uuid4()), frames=frames,
                    name=req.name or facts.path.stem)


def take_frames(facts: VideoFacts, window: Optional[ClipWindow]) -> Optional[int]:
    """Frames Move will process: the window's, else the whole video's."""
    if window is None:
        return facts.frames
    if facts.fps is None:
        return None
    return max(1, round((window.end_time - window.start_time) * facts.fps))


def check_limits(facts: VideoFacts, frames: Optional[int], window: Optional[ClipWindow],
                 limits: Limits = LIMITS) -> None:
    name = facts.path.name
    if facts.fps is not None and not limits.min_fps <= facts.fps <= limits.max_fps:
        raise InputError(f"{name} runs at {facts.fps:g} fps; Move takes {limits.min_fps:g}-{limits.max_fps:g} fps: "
                         "export it again at a usual camera rate")
    if frames is None:
        return
    what = "the clip window" if window is not None else name
    if frames < limits.min_frames:
        raise InputError(f"{what} holds {frames} frame{'s' if frames != 1 else ''}; Move needs at least "
                         f"{limits.min_frames} to capture motion: choose a longer part of the video")
    if frames > limits.max_frames:
        seconds = limits.max_frames / facts.fps if facts.fps else 0
        raise InputError(f"{what} holds {frames} frames, over the {limits.max_frames}-frame limit"
                         + (f" ({seconds:.0f} s at {facts.fps:g} fps)" if seconds else "")
                         + ": trim it (--start/--end, or the Sequencer strip) and send the part you need")


def _facts(prep: Prepared) -> Dict[str, Any]:
    """What the take and the job carry as metadata, and the registry keeps, about the video (and its window)."""
    facts, window = prep.facts, prep.window
    info = {"source": str(facts.path), "fps": facts.fps, "frames": prep.frames, "duration": facts.duration,
            "start": window.start_time if window else None, "end": window.end_time if window else None,
            "tether_submission": prep.submission}
    return {k: v for k, v in info.items() if v is not None}


def preview(client: Optional[MoveClient], req: MoveRequest) -> DocumentPreview:
    """The take and the job :func:`submit` would create (the file id stands for the upload's), and the upload."""
    prep = prepare(client, req)
    facts, info = prep.facts, _facts(prep)
    return DocumentPreview({
        "upload": {"source": str(facts.path), "file_name": facts.path.name, "format": facts.format,
                   "bytes": facts.size},
        "take": {"fileId": UPLOAD_PLACEHOLDER, "format": facts.format, "name": prep.name, "metadata": info},
        "job": {"name": prep.name, "outputs": prep.outputs, "options": req.options or None,
                "metadata": {**req.metadata, **info},
                "clipWindow": prep.window.variables() if prep.window else None},
    })


@dataclass
class Submission:
    job: MoveJob
    take_id: str
    file_id: str
    facts: VideoFacts
    frames: Optional[int] = None  # what Move processes: the clip window's frames, else the video's
    window: Optional[ClipWindow] = None


def submit(client: MoveClient, req: MoveRequest, *, registry: Optional[JobRegistry] = None,
           out_dir: Optional[Path] = None, progress: Optional[Progress] = None,
           source_label: Optional[str] = None) -> Submission:
    """Upload the video, make the take and the job; record it in ``registry``."""
    prep = prepare(client, req)
    return _send(client, req, prep, Steps(), Recording(registry, out_dir, source_label).checked(), progress=progress)


def _send(client: MoveClient, req: MoveRequest, prep: Prepared, steps: Steps, to: Recording, *,
          progress: Optional[Progress] = None) -> Submission:
    """Upload, make the take (each once: ``steps``), create the job and record it (``to``): the one path of a submit
    and of the agent's hand-off."""
    facts, name, window, info = prep.facts, prep.name, prep.window, _facts(prep)
    file_id = steps.once("file_id", lambda: client.upload(facts.path, name=facts.path.name, progress=progress).id)
    take_id = steps.once("take_id", lambda: client.create_take(file_id, source_format=facts.format, name=name,
                                                               metadata=info).id)
    recorded = {**to.extra, **info, "take_id": take_id, "file_id": file_id, "outputs": prep.outputs}
    earlier = made_before(client, take_id) if steps.resumed("take_id") else None  # a cut-off attempt's job
    job = create_recorded(
        client, to.registry, lambda: client.create_job(take_id, name=name, options=req.options or None,
                                                    outputs=prep.outputs, metadata={**req.metadata, **info},
                                                    clip_window=prep.window),
        lambda job: job.id, earlier=earlier, title=name, source=to.source_label or str(facts.path),
        output_dir=to.out_dir, extra=recorded, reply=lambda job: {
            "raw_state": job.raw_state, "state": job.job_state if job.job_state is not JobState.UNKNOWN else None})
    return Submission(job=job, take_id=take_id, file_id=file_id, facts=facts, frames=prep.frames, window=window)


# --- hand-off to the agent (tether.agent) ----------------------------------------------------------------------
def handoff_request(req: MoveRequest, *, out_dir: Optional[Path] = None,
                    source_label: Optional[str] = None) -> Dict[str, Any]:
    """A checked submission as the JSON the agent's queue keeps (the video stays where it is: it is the user's)."""
    from pydantic import TypeAdapter

    prepare(None, req)
    to = Recording(None, out_dir, source_label).checked()
    req = replace(req, video=Path(req.video).absolute(), outputs=list(req.outputs))
    adapter: TypeAdapter[MoveRequest] = TypeAdapter(MoveRequest)
    return {"request": adapter.dump_python(req, mode="json"), **to.request()}


def run_handoff(client: MoveClient, request: Dict[str, Any], *, registry: JobRegistry, resumed: bool,
                progress: Optional[ProgressCallback] = None, throttle: Optional[Throttle] = None,
                checkpoint: Optional[Checkpoint] = None) -> str:
    """The agent's side: :func:`submit`'s path with the upload and the take remembered in the queue; returns the job
    id."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[MoveRequest] = TypeAdapter(MoveRequest)
    req = adapter.validate_python(request["request"])
    prep = prepare(client, req)
    return _send(client, req, prep, Steps.of(request, checkpoint), Recording.of(request, registry),
                 progress=agent_progress(progress, throttle, Path(req.video).name)).job.id


submit_video = submit  # the older name


def wait_for(client: MoveClient, job_id: str, *, on_update: Optional[Callable[[Job], Optional[bool]]] = None,
             interval: float = 0.5, max_interval: float = 15.0, clock: Clock = SYSTEM_CLOCK,
             timeout: Optional[float] = None) -> Job:
    """Poll until the job finishes; ``on_update`` sees each view and may return False to stop waiting."""
    ticks = polls(lambda: client.get_job(job_id), key=lambda job: (job.state, job.raw_state, job.progress),
                  backoff=Backoff(interval, max(interval, max_interval)), clock=clock, timeout=timeout,
                  timeout_message=lambda s: f"move job {job_id} had not finished after {s:g} s; it keeps running: "
                                            f"`tether jobs watch {job_id}` follows it")
    job = poll_until(ticks, lambda job: bool(job.state.finished),
                     None if on_update is None else lambda tick: on_update(tick.value))
    assert job is not None  # nothing cancels this loop
    return job


__all__ = ["LIMITS", "Limits", "MoveRequest", "Prepared", "Submission", "VideoFacts", "check_limits",
           "handoff_request", "prepare", "preview", "probe", "run_handoff", "submit", "submit_video", "take_frames",
           "wait_for"]
