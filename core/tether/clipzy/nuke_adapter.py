"""Clipzy behind the Nuke plug-in's service seam (``tether_nuke.service.ServiceAdapter``), DCC-free.

The seam sends the selected Read's clip as one movie, follows the job and imports the returned movie as a Read beside
the plate. This is Clipzy's half: ``submit`` uploads the template (once per file version: the engine keeps uploads)
and the movie and starts the styling job; ``fetch`` downloads the styled MP4 with its ``style_json`` beside it;
``stage_text`` is what the dialog shows while it runs ("processing: applying the style (50%)"). The styled movie
has one frame per sent frame, so ``first_index`` is 0. Clipzy has no cancel route: ``can_cancel`` is False and
``cancel`` raises :class:`~tether.clipzy.client.CancelNotSupported` with the reason.

Options (``options_spec``): ``template`` (a movie file, or the engine's video id of an upload), optional ``config``
(an object passed to the engine) and ``webhook_url``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..errors import InputError
from ..jobs import Job
from ..nukeimport.model import Sent
from .client import ClipzyClient, stage_text


class ClipzyAdapter:
    service = "clipzy"
    label = "Clipzy"
    suffix = "clipzy"
    action = "Style like a template clip (Clipzy)"
    can_cancel = False
    options_spec: List[Dict[str, Any]] = [
        {"name": "template", "label": "Template clip", "kind": "file", "required": True,
         "help": "a movie whose look is copied onto the selected clip (or the engine's video id of an upload)"},
    ]

    def __init__(self) -> None:
        self._templates: Dict[Tuple[str, str, int, int], str] = {}
        self._lock = threading.Lock()

    # --- the seam ---------------------------------------------------------------------------------------------
    def client(self, profile: Optional[str]) -> ClipzyClient:
        return ClipzyClient.from_profile(profile)

    def submit(self, client: ClipzyClient, movie: Path, options: Dict[str, Any], registry: Any, label: str,
               extra: Dict[str, Any]) -> Sent:
        problems = self.check(movie, options)
        if problems:
            raise InputError("; ".join(problems))
        template_id = self.template_id(client, str(options["template"]).strip())
        video = client.upload(Path(movie))
        config = options.get("config")
        job = client.create_job(video.video_id, template_id,
                                config=dict(config) if isinstance(config, Mapping) else None,
                                webhook_url=options.get("webhook_url") or None)
        if registry is not None:  # recorded at once: the controller adds the plate right after
            registry.record(service=self.service, job_id=job.job_id, profile=client.profile, title=label,
                            source=str(movie), extra={**extra, "video_id": video.video_id,
                                                      "template_video_id": template_id})
        return Sent(job_id=job.job_id, first_index=0,
                        extra={"video_id": video.video_id, "template_video_id": template_id})

    def fetch(self, client: ClipzyClient, job_id: str, dest: Path) -> Path:
        """The styled movie in ``dest`` (``<stem>.style.json`` written beside it)."""
        return client.fetch_result(job_id, dest).video

    # --- what the dialog adds -------------------------------------------------------------------------------
    def stage_text(self, job: Job) -> str:
        return stage_text(job)

    def check(self, movie: Union[str, Path], options: Mapping[str, Any]) -> List[str]:
        """Problems that block sending, each saying what to change (empty when fine)."""
        problems: List[str] = []
        if not Path(movie).is_file():
            problems.append(f"the clip {movie} does not exist: Clipzy takes a movie file (.mov, .mp4)")
        template = str(options.get("template") or "").strip()
        if not template:
            problems.append("choose a template clip: its look is what Clipzy copies onto this clip")
        elif Path(template).suffix and not Path(template).is_file():
            problems.append(f"the template {template} does not exist")
        return problems

    def template_id(self, client: ClipzyClient, template: str) -> str:
        path = Path(template)
        if not path.is_file():
            return client.template_id(template)  # an engine video id, or a clear InputError
        stat = path.stat()
        key = (client.base_url, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._templates.get(key)
        if known is None:
            known = client.upload(path).video_id
            with self._lock:
                self._templates[key] = known
        return known

    def cancel(self, client: ClipzyClient, job_id: str) -> None:
        client.cancel_job(job_id)


__all__ = ["ClipzyAdapter", "Sent"]
