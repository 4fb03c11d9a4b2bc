"""A job's registry record -> the plate its results land on and the nodes to make: the one path that the Nuke
panel's import (``tether_nuke.autopilot``) and ``tether autopilot import JOB --nk`` share.

Both doors record the same facts at submit (:func:`tether.autopilot.submit.submit`): ``plate`` (a
:meth:`PlateFacts.to_dict`: absolute path, format, pixel aspect, fps, the file frames sent and how they sit on the
timeline), ``plate_origin`` (``"nuke"`` when the plate is a Read in a script, ``"command line"`` when it was made
from the clip) and ``sensor`` (the film back given to tracking, mm). Older records from the command line hold only
``source``/``first_frame``/``frame_count``, and are read too.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Tuple

from ..autopilot.results import ResultFiles
from ..errors import InputError
from ..media import is_movie
from .describe import describe_import
from .model import ImportDescription
from .plate import PlateFacts

FROM_NUKE = "nuke"
FROM_COMMAND_LINE = "command line"
CLI_PLATE_NAME = "Plate1"


def plate_from_record(extra: Mapping[str, Any], name: str = CLI_PLATE_NAME) -> PlateFacts:
    """The plate of a job from its registry record's ``extra``: the facts recorded at submit (``plate``), or, for a
    clip sent from the command line by an older Tether, a plate built from ``source``, ``first_frame`` and
    ``frame_count`` (its frames on the timeline as numbered on disk; a movie's frames from 1)."""
    stored = extra.get("plate")
    if isinstance(stored, Mapping) and stored:
        return PlateFacts.from_dict(stored)
    source, first, count = extra.get("source"), extra.get("first_frame"), extra.get("frame_count")
    if not source or first is None or not count:
        raise InputError("the job record does not say which clip was sent (source, first_frame, frame_count): "
                         "import it from Nuke with the plate's Read selected")
    first, count = int(first), int(count)
    return PlateFacts(node=name, file=str(source), first=first, last=first + count - 1, origfirst=first,
                      origlast=first + count - 1, sent=(first, first + count - 1),
                      movie=is_movie(str(source)))


def nuke_plate(extra: Mapping[str, Any]) -> Optional[PlateFacts]:
    """The Read the job was sent from, when it was sent from Nuke; None for a clip sent from the command line
    (its recorded plate names no node of any script: the user's Read stands in for it)."""
    stored = extra.get("plate")
    if isinstance(stored, Mapping) and stored and extra.get("plate_origin", FROM_NUKE) == FROM_NUKE:
        return PlateFacts.from_dict(stored)
    return None


def job_plate(extra: Mapping[str, Any], read: Optional[PlateFacts] = None) -> PlateFacts:
    """The plate to import onto. Without ``read``: the recorded one (a standalone .nk re-creates it). With ``read``
    (a Read in the open script): that Read, on the file frames the command line sent when the job came from there,
    else as it is (the job's own Read, or another Read of the same frames)."""
    if read is None:
        return plate_from_record(extra)
    if nuke_plate(extra) is not None:
        return read
    try:
        sent = plate_from_record(extra).sent_range
    except InputError:
        return read
    return PlateFacts.from_dict({**read.to_dict(), "sent": list(sent)})


def job_sensor(extra: Mapping[str, Any]) -> Optional[Tuple[float, float]]:
    """The film back (mm) the tracking was given at submit, from either door."""
    sensor = extra.get("sensor")
    if isinstance(sensor, (list, tuple)) and len(sensor) == 2 and all(sensor):
        return (float(sensor[0]), float(sensor[1]))
    return None


def describe_job(
    extra: Mapping[str, Any],
    results: Any,
    *,
    job_id: str = "",
    read: Optional[PlateFacts] = None,
    include: Iterable[str] = ("roto", "camera", "depth"),
) -> ImportDescription:
    """The nodes that import a finished job, from its record's ``extra`` and its fetched ``results`` (a
    :class:`ResultFiles` or anything :meth:`ResultFiles.from_classified` takes)."""
    return describe_import(job_plate(extra, read), ResultFiles.from_classified(results), sensor=job_sensor(extra),
                           job_id=job_id, include=include)


__all__ = ["CLI_PLATE_NAME", "FROM_COMMAND_LINE", "FROM_NUKE", "describe_job", "job_plate", "job_sensor",
           "nuke_plate", "plate_from_record"]
