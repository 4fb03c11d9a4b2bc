"""One headless path for Clipzy: prepare (check the clip, the template and the config) -> preview -> submit (upload
the template unless the engine has it -> upload the clip -> create the styling job -> record it).

The CLI and the Nuke plug-in's adapter (:mod:`.nuke_adapter`) both call :func:`submit`, so a job is recorded once.
A template file is uploaded once per file version when a :class:`TemplateUploads` is passed (the engine keeps
uploads); a template that is not a file here is taken as the engine's video id of an earlier upload.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from pydantic import ValidationError

from ..creation import create_recorded
from ..errors import InputError
from ..handoff import Steps, agent_progress, keep_file, release
from ..progress import Progress
from ..submission import UPLOAD_PLACEHOLDER, DocumentPreview, Recording, invalid_options
from .models import ClipzyJob, JobCreate

if TYPE_CHECKING:
    from ..handoff import Checkpoint
    from ..registry import JobRegistry
    from ..transfer import ProgressCallback, Throttle
    from .client import ClipzyClient

SERVICE = "clipzy"


@dataclass
class ClipzyRequest:
    """A clip to style like a template: ``template`` is a movie file, or the engine's video id of an upload."""

    clip: Path
    template: str
    config: Optional[Dict[str, Any]] = None  # passed to the engine as it is
    webhook_url: Optional[str] = None


def problems(req: ClipzyRequest) -> List[str]:
    """What blocks sending, each saying what to change (empty when fine)."""
    found: List[str] = []
    if not Path(req.clip).is_file():
        found.append(f"the clip {req.clip} does not exist: Clipzy takes a movie file (.mov, .mp4)")
    template = str(req.template or "").strip()
    if not template:
        found.append("choose a template clip: its look is what Clipzy copies onto this clip")
    elif Path(template).suffix and not Path(template).is_file():
        found.append(f"the template {template} does not exist")
    if req.config is not None and not isinstance(req.config, dict):
        found.append("the config must be a JSON object, e.g. {\"strength\": 0.8}")
    return found


@dataclass
class Prepared:
    request: ClipzyRequest
    template_file: Optional[Path]  # None: the template is an upload the engine has (its video id)
    payload: JobCreate  # video_id (and a template file's id) stand for the uploads'


def prepare(client: Optional[ClipzyClient], req: ClipzyRequest) -> Prepared:
    """Check the request; Clipzy has nothing to ask first (``client`` may be None)."""
    found = problems(req)
    if found:
        raise InputError("; ".join(found))
    template = str(req.template).strip()
    template_file = Path(template) if Path(template).is_file() else None
    try:
        payload = JobCreate(video_id=UPLOAD_PLACEHOLDER,
                            template_video_id=UPLOAD_PLACEHOLDER if template_file else template,
                            config=req.config, webhook_url=req.webhook_url or None)
    except ValidationError as exc:
        raise invalid_options("Clipzy", exc) from None
    return Prepared(request=req, template_file=template_file, payload=payload)


def preview(client: Optional[ClipzyClient], req: ClipzyRequest) -> DocumentPreview:
    """The job body :func:`submit` would post, and the files it would upload first."""
    prep = prepare(client, req)
    uploads = [str(p) for p in (prep.template_file, Path(req.clip)) if p is not None]
    return DocumentPreview({"payload": prep.payload.payload(), "uploads": uploads})


class TemplateUploads:
    """Template video ids by file version, so one template styles many clips with one upload (thread-safe)."""

    def __init__(self) -> None:
        self._ids: Dict[Tuple[str, str, int, int], str] = {}
        self._lock = threading.Lock()

    def video_id(self, client: ClipzyClient, path: Path) -> str:
        stat = path.stat()
        key = (client.base_url, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._ids.get(key)
        if known is None:
            known = client.upload(path).video_id
            with self._lock:
                self._ids[key] = known
        return known


@dataclass
class Submission:
    job: ClipzyJob
    video_id: str
    template_video_id: str
    extra: Dict[str, Any] = field(default_factory=dict)


def submit(client: ClipzyClient, req: ClipzyRequest, *, registry: Optional[JobRegistry] = None,
           out_dir: Optional[Path] = None, source_label: Optional[str] = None,
           extra: Optional[Dict[str, Any]] = None, templates: Optional[TemplateUploads] = None,
           progress: Optional[Progress] = None) -> Submission:
    """Upload what the engine lacks, start the styling job and record it in ``registry``. ``progress`` follows the
    clip's upload (False stops it)."""
    prep = prepare(client, req)
    to = Recording(registry, out_dir, source_label, dict(extra or {})).checked()
    return _send(client, prep, Steps(), to, templates=templates, progress=progress)


def _send(client: ClipzyClient, prep: Prepared, steps: Steps, to: Recording, *,
          templates: Optional[TemplateUploads] = None, progress: Optional[Progress] = None) -> Submission:
    """Upload (each file once: ``steps``), create and record (``to``): the one path of a submit and of the agent's
    hand-off."""
    req = prep.request
    clip = Path(req.clip)
    template_file = prep.template_file
    if template_file is None:
        template_id = client.template_id(str(req.template).strip())  # an engine video id, or a clear InputError
    elif templates is not None:
        template_id = steps.once("template_video_id", lambda: templates.video_id(client, template_file))
    else:
        template_id = steps.once("template_video_id", lambda: client.upload(template_file).video_id)
    video_id, earlier = client.video_once(steps, lambda: client.upload(clip, progress=progress).video_id)
    ids = {"video_id": video_id, "template_video_id": template_id}
    job = create_recorded(client, to.registry, lambda: client.create_job(video_id, template_id,
                                                                         config=prep.payload.config,
                                                                         webhook_url=prep.payload.webhook_url),
                          lambda job: job.job_id, earlier=earlier, title=to.source_label or clip.name,
                          source=str(clip.resolve()), output_dir=to.out_dir, extra={**to.extra, **ids})
    return Submission(job=job, video_id=video_id, template_video_id=template_id, extra=ids)


# --- hand-off to the agent (tether.agent) ----------------------------------------------------------------------
def handoff_request(req: ClipzyRequest, *, out_dir: Optional[Path] = None, source_label: Optional[str] = None,
                    extra: Optional[Dict[str, Any]] = None, keep: bool = False) -> Dict[str, Any]:
    """A checked submission as the JSON the agent's queue keeps. The user's clip and template stay where they are;
    with ``keep`` (a clip staged for this send) the clip moves into a hand-off folder the agent removes once the job
    is made."""
    prep = prepare(None, req)
    to = Recording(None, out_dir, source_label, dict(extra or {})).checked()
    template = str(prep.template_file.absolute()) if prep.template_file is not None else str(req.template).strip()
    clip = keep_file(Path(req.clip)) if keep else Path(req.clip).absolute()
    return {"clip": str(clip), "template": template, "config": req.config, "webhook_url": req.webhook_url,
            **to.request(), "kept": str(clip.parent) if keep else None}


def run_handoff(client: ClipzyClient, request: Dict[str, Any], *, registry: JobRegistry, resumed: bool,
                progress: Optional[ProgressCallback] = None, throttle: Optional[Throttle] = None,
                checkpoint: Optional[Checkpoint] = None) -> str:
    """The agent's side: :func:`submit`'s path with each upload remembered in the queue; returns the job id."""
    req = ClipzyRequest(clip=Path(request["clip"]), template=request["template"], config=request.get("config"),
                        webhook_url=request.get("webhook_url"))
    prep = prepare(client, req)
    job_id = _send(client, prep, Steps.of(request, checkpoint), Recording.of(request, registry),
                   progress=agent_progress(progress, throttle, req.clip.name)).job.job_id
    release(request)
    return job_id


def request_from(clip: Union[str, Path], options: Dict[str, Any]) -> ClipzyRequest:
    """A request from the Nuke dialog's options (``template``, ``config``, ``webhook_url``)."""
    config = options.get("config")
    return ClipzyRequest(clip=Path(clip), template=str(options.get("template") or ""),
                         config=dict(config) if isinstance(config, dict) else None,
                         webhook_url=options.get("webhook_url") or None)


__all__ = ["ClipzyRequest", "Prepared", "Submission", "TemplateUploads", "handoff_request", "prepare", "preview",
           "problems", "request_from", "run_handoff", "submit"]
