"""Clipzy behind the Nuke plug-in's service seam (``tether_nuke.service.ServiceAdapter``), DCC-free.

The seam sends the selected Read's clip as one movie, follows the job and imports the returned movie as a Read beside
the plate. This is Clipzy's half: ``submit`` goes through :func:`tether.clipzy.submit.submit` (the template uploaded
once per file version: the engine keeps uploads); ``fetch`` downloads the styled MP4 with its ``style_json`` beside it;
``stage_text`` is what the dialog shows while it runs ("processing: applying the style (50%)"). The styled movie
has one frame per sent frame, so ``first_index`` is 0. Clipzy has no cancel route: ``can_cancel`` is False and
``cancel`` raises :class:`~tether.clipzy.client.CancelNotSupported` with the reason.

Options (``options_spec``): ``template`` (a movie file, or the engine's video id of an upload), optional ``config``
(an object passed to the engine) and ``webhook_url``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Union

from ..jobs import Job
from ..nukeimport.model import HandOffRequest, Sent
from ..progress import Progress
from .client import ClipzyClient, stage_text
from .submit import TemplateUploads, handoff_request, problems, request_from, submit

if TYPE_CHECKING:
    from ..registry import JobRegistry


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
        self._templates = TemplateUploads()

    # --- the seam ---------------------------------------------------------------------------------------------
    def client(self, profile: Optional[str]) -> ClipzyClient:
        return ClipzyClient.from_profile(profile)

    def submit(self, client: ClipzyClient, movie: Path, options: Dict[str, Any], registry: Optional[JobRegistry],
               label: str, extra: Dict[str, Any], progress: Optional[Progress] = None) -> Sent:
        # recorded at once (by the one submit path): the controller adds the plate right after
        sub = submit(client, request_from(movie, options), registry=registry, source_label=label, extra=extra,
                     templates=self._templates, progress=progress)
        return Sent(job_id=sub.job.job_id, first_index=0, extra=dict(sub.extra))

    def handoff_movie(self, movie: Path, options: Dict[str, Any], label: str, extra: Dict[str, Any],
                      keep: bool = False) -> HandOffRequest:
        """:meth:`submit` handed to the agent: its request (``keep``: the movie was staged for this send and moves
        into the hand-off's own folder)."""
        return HandOffRequest(handoff_request(request_from(movie, options), source_label=label, extra=extra,
                                              keep=keep))

    def fetch(self, client: ClipzyClient, job_id: str, dest: Path) -> Path:
        """The styled movie in ``dest`` (``<stem>.style.json`` written beside it)."""
        return client.fetch_result(job_id, dest).video

    # --- what the dialog adds -------------------------------------------------------------------------------
    def stage_text(self, job: Job) -> str:
        return stage_text(job)

    def check(self, movie: Union[str, Path], options: Mapping[str, Any]) -> List[str]:
        """Problems that block sending, each saying what to change (empty when fine)."""
        return problems(request_from(movie, dict(options)))

    def cancel(self, client: ClipzyClient, job_id: str) -> None:
        client.cancel_job(job_id)


__all__ = ["ClipzyAdapter", "HandOffRequest", "Sent"]
