"""Bring an Autopilot job back into Nuke, described without Nuke.

The flow: the plate's facts (:class:`PlateFacts`, read from the Read node by the plugin, or from a clip path on
the command line) and the job's classified files (:class:`ResultFiles`) become an :class:`ImportDescription`
(:func:`describe_import`): plain dataclasses of node classes, names, knob values (curves included), inputs and
positions. That one description is either written as a .nk script (:func:`write_nk`, for pipelines:
``tether autopilot import JOB --nk OUT.nk``) or applied inside Nuke by the plugin (``tether_nuke.importer``),
which creates the nodes in one undo step. Nothing here imports ``nuke``, Qt or the network.

For the CLI: :func:`import_to_nk` does the whole step in one call. Both the panel and the CLI describe a job through
:func:`describe_job` (the plate and sensor recorded at submit), and both name each import a version
(:func:`versioned`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from .camera import CameraTrack, focal_from_fov, image_vaperture, parse_camera_json, parse_chan, read_camera
from .describe import AUTOPILOT_BASE, ResultFiles, describe_import, image_size
from .job import describe_job, job_plate, job_sensor, nuke_plate, plate_from_record
from .model import Curve, FormatValue, ImportDescription, NodeSpec, versioned
from .nk import parse_curve, parse_nk, to_nk, write_nk
from .plate import Check, FrameMap, FramePattern, PlateFacts, check_plate, format_ranges, sequence_pattern


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
    """Describe the import of a finished job and write it to ``out`` as a .nk script (the next version beside an
    earlier import when ``out`` exists: see :func:`write_nk`).

    ``plate``: :class:`PlateFacts`, a :meth:`PlateFacts.to_dict` dict, or a registry record's ``extra`` (the plate
    and sensor recorded at submit, from Nuke or the command line: :func:`describe_job`, the panel's own path).
    ``results``: the job's :class:`ResultFiles` (what ``AutopilotClient.fetch_results`` returns), a mapping with
    its lists, or the folder the results were downloaded to (classified here). ``standalone`` writes a script that
    re-creates the plate's Read (open it on its own); the default is a snippet to import with the plate's Read
    selected. ``sensor`` overrides a recorded one.
    Returns the path written and the description (its ``notes`` say what was guessed or left out).
    """
    if isinstance(results, (str, Path)):
        files = ResultFiles.from_folder(Path(results))
    else:
        files = ResultFiles.from_classified(results)
    if isinstance(plate, PlateFacts) or ("node" in plate and "file" in plate):
        facts = plate if isinstance(plate, PlateFacts) else PlateFacts.from_dict(plate)
        description = describe_import(facts, files, sensor=sensor, job_id=job_id, include=include)
    else:
        extra = {**plate, "sensor": list(sensor)} if sensor else plate
        description = describe_job(extra, files, job_id=job_id, include=include)
    return write_nk(description, out, standalone=standalone), description


__all__ = [
    "AUTOPILOT_BASE", "CameraTrack", "Check", "Curve", "FormatValue", "FrameMap", "FramePattern", "ImportDescription",
    "NodeSpec", "PlateFacts", "ResultFiles", "check_plate", "describe_import", "describe_job", "focal_from_fov",
    "format_ranges", "image_size", "image_vaperture", "import_to_nk", "job_plate", "job_sensor", "nuke_plate",
    "parse_camera_json", "parse_chan", "parse_curve", "parse_nk", "plate_from_record", "read_camera",
    "sequence_pattern", "to_nk", "versioned", "write_nk",
]
