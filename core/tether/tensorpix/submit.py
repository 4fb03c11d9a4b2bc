"""One headless path for TensorPix: prepare (check the movie, the options and the model ids) -> preview -> submit
(upload -> wait until TensorPix has the video -> create the job -> record it).

The CLI and the Nuke plug-in both call :func:`submit` (``enhance_clip`` is its older name). Options are validated
(:class:`~tether.tensorpix.models.JobOptions`) and model ids checked against ``/api/ml-models/`` before a byte is
uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from pydantic import ValidationError

from ..creation import create_recorded
from ..errors import InputError
from ..handoff import Steps, agent_progress, keep_file, release
from ..media import WEB_MOVIE_EXTS
from ..progress import Progress
from ..submission import UPLOAD_PLACEHOLDER, DocumentPreview, Recording, invalid_options
from .models import InputVideo, JobCreate, TensorPixJob

if TYPE_CHECKING:
    from ..handoff import Checkpoint
    from ..registry import JobRegistry
    from ..transfer import ProgressCallback, Throttle
    from .client import TensorPixClient

SERVICE = "tensorpix"


def build_options(options: Dict[str, Any], input_video: int = 1) -> JobCreate:
    """The job request, or :class:`InputError` naming each wrong field."""
    try:
        return JobCreate(input_video=input_video, **options)
    except ValidationError as exc:
        raise invalid_options("TensorPix", exc) from None
    except TypeError as exc:
        raise InputError(f"the TensorPix options are not valid: {exc}") from None


def check_models(client: TensorPixClient, ids: List[int]) -> None:
    known = {m.id: m for m in client.models()}
    unknown = [i for i in ids if i not in known]
    if unknown:
        listing = ", ".join(f"{m.id} ({m.name})" for m in known.values())
        raise InputError(f"TensorPix has no model {', '.join(map(str, unknown))}; known: {listing}")


@dataclass
class Prepared:
    path: Path
    options: Dict[str, Any]
    payload: JobCreate  # with a placeholder input_video: the upload gives the real id


def prepare(client: Optional[TensorPixClient], clip: str, options: Dict[str, Any]) -> Prepared:
    """Check the movie and the options; with a ``client``, the model ids too (``None`` asks the service nothing)."""
    path = Path(clip)
    if not path.is_file():
        raise InputError(f"{clip}: no such file")
    if path.suffix.lower() not in WEB_MOVIE_EXTS:
        raise InputError(f"{clip}: TensorPix takes a movie ({', '.join(sorted(WEB_MOVIE_EXTS))}); encode the frames "
                         "first")
    payload = build_options(options)
    if client is not None:
        check_models(client, list(options.get("ml_models") or []))
    return Prepared(path=path, options=dict(options), payload=payload)


def preview(client: Optional[TensorPixClient], clip: str, options: Dict[str, Any]) -> DocumentPreview:
    """The job body :func:`submit` would post (``input_video`` stands for the upload's id) and the movie it uploads."""
    prep = prepare(client, clip, options)
    return DocumentPreview({
        "payload": {**prep.payload.payload(), "input_video": UPLOAD_PLACEHOLDER},
        "upload": {"source": str(prep.path), "file_name": prep.path.name, "bytes": prep.path.stat().st_size},
    })


@dataclass
class Submission:
    job: TensorPixJob
    video: InputVideo
    source: str


def submit(client: TensorPixClient, clip: str, options: Dict[str, Any], *, registry: Optional[JobRegistry] = None,
           out_dir: Optional[Path] = None, source_label: Optional[str] = None,
           extra: Optional[Dict[str, Any]] = None, ready_timeout: float = 600.0,
           progress: Optional[Progress] = None) -> Submission:
    """Upload ``clip`` (a movie file), wait until TensorPix has it, create the job, record it in ``registry``.
    ``progress`` follows the upload's bytes (False stops it)."""
    prep = prepare(client, clip, options)
    to = Recording(registry, out_dir, source_label, dict(extra or {})).checked()
    return _send(client, prep, Steps(), to, ready_timeout=ready_timeout, progress=progress)


def _send(client: TensorPixClient, prep: Prepared, steps: Steps, to: Recording, *, ready_timeout: float = 600.0,
          progress: Optional[Progress] = None) -> Submission:
    """Upload (once: ``steps``), create and record (``to``): the one path of a submit and of the agent's hand-off."""
    path = prep.path
    video_id, earlier = client.video_once(steps, lambda: client.upload_video(path, progress).id)
    video = client.wait_ready(video_id, timeout=ready_timeout)
    facts = {"source": str(path), "video_id": video.id, "frame_count": video.n_frames, "first_frame": 1,
             "options": prep.payload.payload(), **to.extra}
    job = create_recorded(client, to.registry, lambda: client.create_job(build_options(prep.options,
                                                                                       input_video=video.id)),
                          lambda job: job.id, earlier=earlier, title=path.name, source=to.source_label or str(path),
                          output_dir=to.out_dir, extra=facts)
    return Submission(job=job, video=video, source=str(path))


# --- hand-off to the agent (tether.agent) ----------------------------------------------------------------------
def handoff_request(clip: str, options: Dict[str, Any], *, out_dir: Optional[Path] = None,
                    source_label: Optional[str] = None, extra: Optional[Dict[str, Any]] = None,
                    keep: bool = False) -> Dict[str, Any]:
    """A checked submission as the JSON the agent's queue keeps. The user's movie stays where it is; with ``keep``
    (a movie staged for this send) it moves into a hand-off folder the agent removes once the job is made."""
    prepare(None, clip, options)
    to = Recording(None, out_dir, source_label, dict(extra or {})).checked()
    path = keep_file(Path(clip)) if keep else Path(clip).absolute()
    return {"clip": str(path), "options": dict(options), **to.request(), "kept": str(path.parent) if keep else None}


def run_handoff(client: TensorPixClient, request: Dict[str, Any], *, registry: JobRegistry, resumed: bool,
                progress: Optional[ProgressCallback] = None, throttle: Optional[Throttle] = None,
                checkpoint: Optional[Checkpoint] = None) -> str:
    """The agent's side: :func:`submit`'s path with the upload remembered in the queue; returns the job id."""
    prep = prepare(client, request["clip"], request["options"])
    job_id = str(_send(client, prep, Steps.of(request, checkpoint), Recording.of(request, registry),
                       progress=agent_progress(progress, throttle, prep.path.name)).job.id)
    release(request)
    return job_id


enhance_clip = submit  # the older name
Enhancement = Submission

__all__ = ["Enhancement", "Prepared", "Submission", "build_options", "check_models", "enhance_clip", "handoff_request",
           "prepare", "preview", "run_handoff", "submit"]
