"""Autopilot behind the Nuke plug-in's service seam (:class:`tether_nuke.service.ServiceAdapter`): roto, camera
tracking and depth for the selected Read's frames, imported back as mattes, a camera and depth beside the plate.

What is Autopilot's own: the frames are sent as an image sequence (linked into a folder of their own, exactly the
Read's first..last) or the movie as it is, at most ``MAX_FRAMES``; the options are a
:class:`~tether.autopilot.submit.ServiceChoice`; the record keeps the film back the tracking was given; the import
classifies the downloaded results and describes the nodes (:func:`tether.nukeimport.describe_import`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from tether.errors import InputError
from tether.nukeimport import ImportDescription, PlateFacts, ResultFiles, describe_import, format_ranges
from tether.nukeimport.model import Sent
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
    head = Path(pattern.head).name
    token = "#" * pattern.padding if pattern.padding > 1 else "%d"
    return str(folder / f"{head}{token}{pattern.tail}")


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

    def stage(self, plate: PlateFacts, folder: Path) -> str:
        return plate.file if plate.is_movie else stage_sequence(plate, folder)

    def submit(self, client: Any, upload: Any, options: Any, registry: JobRegistry, label: str,
               extra: Dict[str, Any]) -> Sent:
        from tether.autopilot.submit import submit_clip

        plate = PlateFacts.from_dict(extra["plate"])
        submission = submit_clip(client, str(upload), options, registry=registry, source_label=label,
                                 metadata=send_metadata(plate), source=plate.file)
        if submission.clip.frame_count != plate.frame_count:
            raise InputError(f"{submission.clip.frame_count} frames were sent for the {plate.frame_count} of "
                             f"Read {plate.node}: import will not line up")
        sensor = options.tracking_metadata
        film_back = ([sensor["sensor_width"], sensor["sensor_height"]]
                     if sensor.get("sensor_width") and sensor.get("sensor_height") else None)
        return Sent(job_id=str(submission.job.id), extra={"sensor": film_back})

    def fetch(self, client: Any, job_id: str, dest: Path) -> Any:
        return client.fetch_results(job_id, dest)

    def describe(self, plate: PlateFacts, fetched: Any, record: JobRecord,
                 include: Tuple[str, ...]) -> ImportDescription:
        facts = plate
        if not record.extra.get("plate") and record.extra.get("frame_count") and \
                record.extra.get("first_frame") is not None:
            # a job sent from the command line: the Read stands in, on the frames that job sent
            first = int(record.extra["first_frame"])
            last = first + int(record.extra["frame_count"]) - 1
            facts = PlateFacts.from_dict({**plate.to_dict(), "sent": [first, last]})
        sensor = record.extra.get("sensor")
        return describe_import(facts, ResultFiles.from_classified(fetched), job_id=record.job_id,
                               sensor=(float(sensor[0]), float(sensor[1])) if sensor else None, include=include)

    def cancel(self, client: Any, job_id: str) -> bool:
        return bool(client.cancel(job_id))

    def quota(self, client: Any) -> Any:
        return client.quota()


__all__ = ["SERVICE", "AutopilotAdapter", "send_metadata", "stage_sequence"]
