"""An enhanced or styled clip (TensorPix, Clipzy) back beside its plate, described without Nuke: one Read of the
returned movie, on the plate's frames, read with the colour space that undoes the send.

The Nuke dialog's import (``tether_nuke.clipservices``) and ``tether tensorpix|clipzy import JOB --nk`` both describe
it here. A sequence went as a movie in a display space (:mod:`tether.encode`), recorded with the job as ``colour``;
the Read's ``colorspace`` is that display space, so Nuke's inverse of it puts an untouched pixel back where the plate
had it. A movie plate went as it was: its Read keeps Nuke's default for a movie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..colour import describe as sent_colour
from ..colour import name_in_script
from .model import ImportDescription, NodeSpec
from .plate import PlateFacts

COLUMN = 110  # DAG spacing: the returned clip sits one column right of the plate


def movie_frames(path: Path) -> Optional[int]:
    try:
        from ..autopilot.clip import movie_facts

        return int(movie_facts(path).frames)
    except Exception:  # not an MP4/QuickTime we can read (e.g. .mkv): the sent count stands in
        return None


def describe_clip_import(plate: PlateFacts, movie: Path, *, suffix: str, first_index: int = 0,
                         frames: Optional[int] = None, job_id: str = "", title: str = "",
                         colorspace: str = "") -> ImportDescription:
    """A Read of ``movie`` one column right of the plate; its frame 1 on the plate frame of sent frame
    ``first_index`` (the sent clip's first frame is the plate's first sent frame). ``colorspace``: the display
    space the plate was sent in, which undoes the send (empty: a movie plate sent as it was)."""
    count = frames or movie_frames(movie) or plate.frame_count
    start = plate.plate_range[0] + first_index
    description = ImportDescription(plate=plate, job_id=job_id, title=title or f"Tether {suffix} import")
    knobs: Dict[str, Any] = {
        "file": Path(movie).as_posix(), "first": 1, "last": count, "origfirst": 1, "origlast": count,
        "origset": True, "frame_mode": "start at", "frame": str(start),
    }
    if colorspace:
        knobs["colorspace"] = colorspace
    # else Nuke's default for a movie: the plate's own colour space (e.g. ACEScg) would not be right for video
    name = f"{plate.node}_{suffix}"
    description.nodes.append(NodeSpec("Read", name, knobs, (), plate.xpos + COLUMN, plate.ypos, role="clip"))
    remaining = plate.frame_count - first_index
    if count != remaining:
        description.notes.append(f"{Path(movie).name} has {count} frames for the {remaining} sent from frame "
                                 f"{start}: not one output frame per plate frame (preview, trim or retiming)")
    return description



def describe_clip_job(plate: PlateFacts, movie: Path, extra: Mapping[str, Any], *, suffix: str, job_id: str = "",
                      title: str = "") -> ImportDescription:
    """:func:`describe_clip_import` from a job's record: where the output starts in the sent clip (``first_index``)
    and the colour space it was sent in (``colour``)."""
    transform = sent_colour(extra.get("colour"))
    colorspace = transform.target if transform is not None else ""
    if transform is not None:  # spelt as the plate's script knows it: a nuke-default script lacks OCIO's names
        colorspace = name_in_script(transform.target, transform.config, plate.script_config) or ""
    description = describe_clip_import(plate, movie, suffix=suffix, job_id=job_id, title=title,
                                       first_index=int(extra.get("first_index") or 0), colorspace=colorspace)
    if transform is not None and not colorspace:
        description.notes.append(f"{Path(movie).name} was sent in {transform.target}, which the script's colour "
                                 f"config ({plate.script_config}) has no name for: set its Read's colorspace by hand")
    return description


__all__ = ["COLUMN", "describe_clip_import", "describe_clip_job", "movie_frames"]
