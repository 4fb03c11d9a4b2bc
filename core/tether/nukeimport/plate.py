"""The plate: what a Read node says about its clip, with no ``nuke`` import, and how its frames line up.

Three numberings meet here and must never be confused:

- **file frames**: the numbers in the file names (``plate.1001.exr``), or 1..N for a movie (Nuke's numbering);
- **plate frames** (the script's timeline): file frame + :attr:`PlateFacts.offset`, where the offset comes from
  the Read's ``frame_mode`` / ``frame`` knobs ("start at" puts the ``first`` file frame at ``frame``; "offset" adds
  ``frame``; an "expression" of ``frame+N`` / ``frame-N`` is read too);
- **result frames**: how the service numbered what it sent back: 1..N (Autopilot's way), 0..N-1, or the file
  frames it was given. :class:`FrameMap` places them by position: the k-th frame sent is the k-th result.

What is sent: for a sequence, the file frames ``first..last`` (the range the Read uses, not the whole folder);
for a movie, the whole file (``origfirst..origlast``, i.e. 1..N), because trimming would mean re-encoding. The
sent range is stored with the job, so an import days later maps frames exactly as they were sent.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..colour import ColourChoice
from ..errors import InputError
from ..media import FramePattern, format_ranges, is_movie, sequence_pattern

_EXPR = re.compile(r"^\s*frame\s*(?:([+-])\s*(\d+(?:\.0*)?))?\s*$")
_NUMBER = re.compile(r"^\s*[+-]?\d+(?:\.0*)?\s*$")


# --- the plate -------------------------------------------------------------------------------------------------
def _int(value: Any, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} is {value!r}, not a frame number") from None
    if number != int(number):
        raise InputError(f"{what} is {value!r}: Tether needs whole frame numbers")
    return int(number)


@dataclass(frozen=True)
class PlateFacts:
    """What Tether needs to know about a plate Read node; :meth:`to_dict` is stored with the job."""

    node: str
    file: str
    first: int
    last: int
    origfirst: Optional[int] = None
    origlast: Optional[int] = None
    frame_mode: str = "expression"
    frame: str = ""
    width: int = 0
    height: int = 0
    pixel_aspect: float = 1.0
    format_name: str = ""
    colorspace: str = ""
    ocio_config: str = ""  # the OCIO config the Read's colorspace names (empty: $OCIO, else OCIO's studio config)
    # the Nuke project's config as Project Settings > Color names it ("nuke-default" under Nuke's own colour
    # management, else OCIO_config); empty: not read in Nuke. The names a Read may take in that script hang on it.
    ocio_project: str = ""
    fps: Optional[float] = None
    movie: bool = False
    view: Optional[str] = None
    xpos: int = 0
    ypos: int = 0
    # the file frames that were (or will be) sent, when a submission recorded them
    sent: Optional[Tuple[int, int]] = None

    # --- derived ------------------------------------------------------------------------------------------------
    @property
    def pattern(self) -> FramePattern:
        return FramePattern.parse(self.file).with_view(self.view)

    @property
    def is_movie(self) -> bool:
        return self.movie or is_movie(self.file)

    @property
    def is_still(self) -> bool:
        """One image, not a clip: no frame token and not a movie, or a one-frame range."""
        if self.is_movie:
            return self.sent_range[0] == self.sent_range[1]
        return not FramePattern.parse(self.file).has_token or self.first == self.last

    @property
    def offset(self) -> int:
        """plate frame = file frame + offset."""
        mode = (self.frame_mode or "").strip().lower().replace("_", " ")
        text = str(self.frame if self.frame is not None else "").strip()
        if mode in ("start at", "startat", "start"):
            if not text:
                return 0
            if not _NUMBER.match(text):
                raise InputError(f"Read {self.node}: frame_mode 'start at' with frame {text!r}; "
                                 "set a whole frame number")
            return _int(text, f"Read {self.node} frame") - self.first
        if mode == "offset":
            if not text:
                return 0
            if not _NUMBER.match(text):
                raise InputError(f"Read {self.node}: frame_mode 'offset' with frame {text!r}; "
                                 "set a whole number of frames")
            return _int(text, f"Read {self.node} frame")
        if mode in ("expression", ""):
            if not text:
                return 0
            match = _EXPR.match(text)
            if match is None:
                raise InputError(
                    f"Read {self.node}: the frame expression {text!r} cannot be mapped onto plate frames; "
                    "use frame_mode 'offset' or 'start at' (or an expression like frame+10)")
            sign, amount = match.groups()
            if not amount:
                return 0
            # the expression gives the file frame for a plate frame: file = plate + n, so plate = file - n
            shift = _int(amount, "frame expression")
            return -shift if sign == "+" else shift
        raise InputError(f"Read {self.node}: unknown frame_mode {self.frame_mode!r}")

    @property
    def sent_range(self) -> Tuple[int, int]:
        """The file frames sent: the Read's first..last for a sequence, the whole file for a movie."""
        if self.sent is not None:
            return self.sent
        if self.is_movie:
            first = self.origfirst if self.origfirst is not None else self.first
            last = self.origlast if self.origlast is not None else self.last
            return (first, last)
        return (self.first, self.last)

    @property
    def script_config(self) -> str:
        """The config of the script the plate's Read lives in: the Nuke project's, else the one it was read with."""
        return self.ocio_project or self.ocio_config

    @property
    def colour(self) -> ColourChoice:
        """The plate's colour as its Read names it, for what a video service is sent (:mod:`tether.colour`)."""
        return ColourChoice(colorspace=self.colorspace, config=self.ocio_config or None)

    @property
    def frame_count(self) -> int:
        first, last = self.sent_range
        return last - first + 1

    @property
    def plate_range(self) -> Tuple[int, int]:
        """The sent frames, as plate (timeline) frames."""
        first, last = self.sent_range
        return (first + self.offset, last + self.offset)

    @property
    def frame_map(self) -> FrameMap:
        return FrameMap(plate_start=self.plate_range[0], count=self.frame_count, file_start=self.sent_range[0])

    @property
    def format_script(self) -> str:
        """The format as Nuke writes it in a script: ``"W H 0 0 W H PA name"``."""
        name = self.format_name or f"tether_{self.width}x{self.height}"
        return f"{self.width} {self.height} 0 0 {self.width} {self.height} {self.pixel_aspect:g} {name}"

    def files_to_send(self) -> List[str]:
        """The file of each sent frame, in order (one path for a movie)."""
        if self.is_movie:
            return [self.file]
        pattern = self.pattern
        first, last = self.sent_range
        return [pattern.frame(n) for n in range(first, last + 1)]

    def missing_frames(self) -> List[int]:
        """Sent frames not on disk (a movie: [] when the file exists)."""
        if self.is_movie or not self.pattern.has_token:
            return []
        on_disk = self.pattern.scan()
        first, last = self.sent_range
        return [n for n in range(first, last + 1) if n not in on_disk]

    # --- storage --------------------------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["sent"] = list(self.sent_range)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlateFacts:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("sent") is not None:
            values["sent"] = (int(values["sent"][0]), int(values["sent"][1]))
        return cls(**values)


# --- result frames onto plate frames -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameMap:
    """The k-th sent frame sits at plate frame ``plate_start + k``; results are placed by the same position."""

    plate_start: int
    count: int
    file_start: int = 1

    def base(self, numbers: Sequence[int], declared: Optional[int] = None) -> int:
        """The result number of the first sent frame, for results numbered ``numbers``.

        ``declared`` (what the service is known to use) wins when the numbers fit it. Otherwise the candidates are
        the lowest number itself, then 1 (Autopilot's numbering), 0, the file frames and the plate frames: the first
        whose window of ``count`` frames holds every number.
        """
        if not numbers:
            raise InputError("the result holds no frames")
        low, high = min(numbers), max(numbers)
        candidates: List[int] = []
        if declared is not None:
            candidates.append(declared)
        if low in (0, 1, self.file_start, self.plate_start):
            candidates.append(low)
        candidates += [1, 0, self.file_start, self.plate_start]
        for base in candidates:
            if base <= low and high <= base + self.count - 1:
                return base
        raise InputError(
            f"the result's frames {format_ranges(numbers)} do not line up with the {self.count} frames sent "
            f"(plate frames {self.plate_start}-{self.plate_start + self.count - 1}); "
            "the job may belong to another clip")

    def plate_frame(self, number: int, base: int) -> int:
        return self.plate_start + (number - base)

    def missing(self, numbers: Iterable[int], base: int) -> List[int]:
        """Plate frames with no result."""
        have = {self.plate_frame(n, base) for n in numbers}
        return [f for f in range(self.plate_start, self.plate_start + self.count) if f not in have]


# --- checks before anything is sent ----------------------------------------------------------------------------
@dataclass
class Problem:
    severity: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


@dataclass
class Check:
    problems: List[Problem] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.problems.append(Problem("error", message))

    def warning(self, message: str) -> None:
        self.problems.append(Problem("warning", message))

    @property
    def errors(self) -> List[str]:
        return [p.message for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> List[str]:
        return [p.message for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_first(self) -> None:
        if self.errors:
            raise InputError("; ".join(self.errors))


def check_plate(
    plate: Optional[PlateFacts],
    *,
    check_disk: bool = True,
    frame_limit: Optional[int] = None,
    quota_remaining: Optional[int] = None,
    sensor_width: Optional[float] = None,
    sensor_height: Optional[float] = None,
    service: str = "Autopilot",
) -> Check:
    """Everything that can be said about a plate before uploading, errors first, in words that say what to change.
    ``service`` names where it goes (a still is refused as "TensorPix needs a clip" when it is TensorPix).

    ``check_disk`` lists the sequence's folder once (run it on a worker thread for a network share).
    """
    check = Check()
    if (sensor_width is None) != (sensor_height is None):
        given, other = ("sensor width", "sensor height") if sensor_height is None else ("sensor height",
                                                                                         "sensor width")
        check.error(f"a {given} was given without a {other}: give both (mm) or neither")
    if plate is None:
        check.error("no Read node selected: select the plate's Read node")
        return check
    if not plate.file.strip():
        check.error(f"Read {plate.node} has no file: set its file knob to the plate")
        return check
    try:
        offset = plate.offset
    except InputError as exc:
        check.error(str(exc))
        offset = 0
    if plate.is_still:
        check.error(f"Read {plate.node} reads a still image ({plate.file}): {service} needs a clip, a sequence "
                    "(e.g. plate.####.exr) or a movie")
        return check
    try:
        pattern = plate.pattern
    except InputError as exc:
        check.error(str(exc))
        return check
    if check_disk:
        if plate.is_movie:
            if not os.path.isfile(plate.file):
                check.error(f"Read {plate.node}: the movie {plate.file} does not exist")
        else:
            on_disk = pattern.scan()
            first, last = plate.sent_range
            if not on_disk:
                check.error(f"Read {plate.node}: no files match {pattern.path}; check the path and the padding")
            else:
                missing = [n for n in range(first, last + 1) if n not in on_disk]
                if missing:
                    check.error(f"Read {plate.node}: frames {format_ranges(missing)} are missing from "
                                f"{pattern.path} (file frames {first}-{last}); render or copy them, or set the "
                                "Read's range to frames that exist")
    count = plate.frame_count
    if frame_limit is not None and count > frame_limit:
        check.error(f"the clip has {count} frames, over the limit of {frame_limit}; set the Read's range "
                    "(first/last) to a shorter part")
    if quota_remaining is not None and count > quota_remaining:
        check.error(f"the clip has {count} frames but the account has {quota_remaining} frames left this period")
    if plate.origfirst is not None and plate.origlast is not None and not plate.is_movie and (
        plate.first < plate.origfirst or plate.last > plate.origlast
    ):
        check.warning(f"Read {plate.node}: its range {plate.first}-{plate.last} goes beyond the files found "
                      f"({plate.origfirst}-{plate.origlast})")
    if plate.is_movie and (plate.first, plate.last) != plate.sent_range:
        first, last = plate.sent_range
        check.warning(f"the whole movie is sent (frames {first}-{last}), not only the Read's range "
                      f"{plate.first}-{plate.last}; results still land on the right plate frames")
    del offset
    return check


__all__ = [
    "Check", "FrameMap", "FramePattern", "PlateFacts", "Problem", "check_plate", "format_ranges",
    "sequence_pattern",
]
