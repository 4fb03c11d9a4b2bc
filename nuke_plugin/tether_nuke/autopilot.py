"""Autopilot behind the Nuke plug-in's service seam (:class:`tether_nuke.service.ServiceAdapter`): roto, camera
tracking and depth for the selected Read's frames, imported back as mattes, a camera and depth beside the plate.

What is Autopilot's own: the frames are sent as a movie the core encodes in a display space from the Read's colour
(linked into a folder of their own first, exactly the Read's first..last; a zip of them where this Python cannot
encode) or the movie as it is, at most ``MAX_FRAMES``; the options are a
:class:`~tether.autopilot.submit.ServiceChoice`; the record keeps the film back the tracking was given; the import
classifies the downloaded results and describes the nodes (:func:`tether.nukeimport.describe_job`, the path
``tether autopilot import`` takes too).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from tether.errors import InputError
from tether.nukeimport import ImportDescription, PlateFacts, describe_job, format_ranges
from tether.nukeimport.model import HandOffRequest, Sent
from tether.progress import Progress
from tether.registry import JobRecord, JobRegistry

SERVICE = "autopilot"


def send_metadata(plate: PlateFacts) -> Dict[str, Any]:
    """The job metadata a send from Nuke adds (the panel's preview shows the same)."""
    return {"nuke_read": plate.node}


def stage_sequence(plate: PlateFacts, folder: Path) -> str:
    """Link exactly the frames to send (the Read's first..last, one view) into ``folder``; return their pattern.

    The core packs every frame matching a pattern; a Read often uses part of a longer sequence, so the frames are
    linked (symlink, else hard link, else copied) into a folder of their own, keeping names and numbers.
    """
    pattern = plate.pattern
    first, last = plate.sent_range
    missing = plate.missing_frames()
    if missing:
        raise InputError(f"Read {plate.node}: frames {format_ranges(missing)} are missing from {pattern.path}")
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(first, last + 1):
        source = Path(pattern.frame(number))
        target = folder / source.name
        try:
            os.symlink(source.resolve(), target)
        except OSError:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
    return str(folder / Path(pattern.hashes()).name)


class AutopilotAdapter:
    service = SERVICE
    label = "Autopilot"
    suffix = "autopilot"
    action = "Send to Autopilot"

    @property
    def frame_limit(self) -> int:
        from tether.autopilot.models import MAX_FRAMES

        return MAX_FRAMES

    def client(self, profile: Optional[str]) -> Any:
        from tether.autopilot.client import AutopilotClient

        return AutopilotClient.from_profile(profile)

    def stage(self, plate: PlateFacts, folder: Path, progress: Optional[Progress] = None) -> str:
        return plate.file if plate.is_movie else stage_sequence(plate, folder)

    def submit(self, client: Any, upload: Any, options: Any, registry: JobRegistry, label: str,
               extra: Dict[str, Any], progress: Optional[Progress] = None, force: bool = False,
               upload_progress: Optional[Progress] = None) -> Sent:
        """Send through the core's one submit, which records the plate, the film back, the content hash and the
        options as the command line does (and refuses a clip already sent with these options unless ``force``);
        ``progress`` follows the upload."""
        from tether.autopilot.submit import submit_clip

        plate = PlateFacts.from_dict(extra["plate"])
        # the core encodes the staged frames to a movie in the Read's colour (progress: per frame, False cancels)
        submission = submit_clip(client, str(upload), options, registry=registry, source_label=label,
                                 metadata=send_metadata(plate), source=plate.file, plate=plate, force=force,
                                 colour=plate.colour, encode_progress=progress, progress=upload_progress)
        if submission.clip.frame_count != plate.frame_count:
            raise InputError(f"{submission.clip.frame_count} frames were sent for the {plate.frame_count} of "
                             f"Read {plate.node}: import will not line up")
        return Sent(job_id=str(submission.job.id))

    def handoff_request(self, client: Any, upload: Any, options: Any, registry: JobRegistry, label: str,
                        extra: Dict[str, Any], progress: Optional[Progress] = None,
                        force: bool = False) -> HandOffRequest:
        """:meth:`submit` handed to the agent: the same checks here, the staged frames encoded into the hand-off's
        own folder (it outlives Nuke), the same record; the agent uploads, creates and records."""
        from tether.autopilot.submit import handoff_request

        plate = PlateFacts.from_dict(extra["plate"])
        return HandOffRequest(handoff_request(client, str(upload), options, registry=registry, source_label=label,
                                              metadata=send_metadata(plate), source=plate.file, plate=plate,
                                              force=force, colour=plate.colour, encode_progress=progress))

    def fetch(self, client: Any, job_id: str, dest: Path) -> Any:
        return client.fetch_results(job_id, dest)

    def came_home(self, dest: Path, record: JobRecord) -> Any:
        """:meth:`fetch`'s result read from the folder the agent downloaded the results into."""
        from tether.autopilot.results import fetched_into

        first = record.extra.get("first_frame")
        return fetched_into(dest, int(first) if isinstance(first, int) else None)

    def describe(self, plate: PlateFacts, fetched: Any, record: JobRecord,
                 include: Tuple[str, ...]) -> ImportDescription:
        """The command line's path (:func:`tether.nukeimport.describe_job`), with ``plate`` the Read to import onto."""
        return describe_job(record.extra, fetched, job_id=record.job_id, read=plate, include=include)

    def cancel(self, client: Any, job_id: str) -> bool:
        return bool(client.cancel(job_id))

    def quota(self, client: Any) -> Any:
        return client.quota()


__all__ = ["SERVICE", "AutopilotAdapter", "send_metadata", "stage_sequence"]
