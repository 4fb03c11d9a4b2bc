"""Bring an Autopilot job back into Nuke, described without Nuke.

The flow: the plate's facts (:class:`PlateFacts`, read from the Read node by the plugin, or from a clip path on
the command line) and the job's classified files (:class:`ResultFiles`) become an :class:`ImportDescription`
(:func:`describe_import`): plain dataclasses of node classes, names, knob values (curves included), inputs and
positions. That one description is either written as a .nk script (:func:`write_nk`, for pipelines:
``tether autopilot import JOB --nk OUT.nk``) or applied inside Nuke by the plugin (``tether_nuke.importer``),
which creates the nodes in one undo step. Nothing here imports ``nuke``, Qt or the network.

For the CLI: :func:`import_to_nk` does the whole step in one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from ..errors import InputError
from ..media import is_movie
from .camera import CameraTrack, focal_from_fov, parse_camera_json, parse_chan, read_camera
from .describe import AUTOPILOT_BASE, ResultFiles, describe_import, image_size
from .model import Curve, FormatValue, ImportDescription, NodeSpec
from .nk import parse_curve, parse_nk, to_nk, write_nk
from .plate import Check, FrameMap, FramePattern, PlateFacts, check_plate, format_ranges, sequence_pattern


def plate_from_record(extra: Mapping[str, Any], name: str = "Plate1") -> PlateFacts:
    """The plate of a job from its registry record's ``extra``: the facts Nuke stored (``plate``), or, for a clip
    sent from the command line, a plate built from ``source``, ``first_frame`` and ``frame_count`` (its frames on
    the timeline as numbered on disk; a movie's frames from 1)."""
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


def import_to_nk(
    plate: Union[PlateFacts, Mapping[str, Any]],
    results: Union[ResultFiles, Path, str, Any],
    out: Union[str, Path],
    *,
    job_id: str = "",
    sensor: Optional[Tuple[float, float]] = None,
    include: Iterable[str] = ("roto", "camera", "depth"),
    standalone: bool = False,
) -> Tuple[Path, ImportDescription]:
    """Describe the import of a finished job and write it to ``out`` as a .nk script.

    ``plate``: :class:`PlateFacts`, a :meth:`PlateFacts.to_dict` dict, or a registry record's ``extra`` (see
    :func:`plate_from_record`; pass ``standalone=True`` for a job sent from the command line, which has no plate
    Read in any script).
    ``results``: the job's :class:`ResultFiles` (what ``AutopilotClient.fetch_results`` returns), a mapping with
    its lists, or the folder the results were downloaded to (classified here). ``standalone`` writes a script that
    re-creates the plate's Read (open it on its own); the default is a snippet to import with the plate's Read
    selected.
    Returns the path written and the description (its ``notes`` say what was guessed or left out).
    """
    if isinstance(plate, PlateFacts):
        facts = plate
    elif "node" in plate and "file" in plate:
        facts = PlateFacts.from_dict(plate)
    else:
        facts = plate_from_record(plate)
    if isinstance(results, (str, Path)):
        files = ResultFiles.from_folder(Path(results))
    else:
        files = ResultFiles.from_classified(results)
    description = describe_import(facts, files, sensor=sensor, job_id=job_id, include=include)
    return write_nk(description, out, standalone=standalone), description


__all__ = [
    "AUTOPILOT_BASE", "CameraTrack", "Check", "Curve", "FormatValue", "FrameMap", "FramePattern", "ImportDescription",
    "NodeSpec", "PlateFacts", "ResultFiles", "check_plate", "describe_import", "focal_from_fov", "format_ranges",
    "image_size", "import_to_nk", "parse_camera_json", "parse_chan", "parse_curve", "parse_nk", "plate_from_record",
    "read_camera", "sequence_pattern", "to_nk", "write_nk",
]
