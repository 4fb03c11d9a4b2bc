"""Frame specs and chunking: ``1-100``, ``1-100x2``, ``1,5,10-20``, ``-10--1``, ``fml:N``, ``auto:N``.

Decisions, so every caller sees the same thing:

- A job's frames are a **sorted set of unique whole numbers**. ``5,3,1`` and ``1,3,5,3`` both mean frames 1, 3 and 5;
  overlapping parts (``1-10,5-20``) merge. A render farm renders frames, not an ordered playlist.
- The grammar is comma-separated parts, each ``A``, ``A-B`` or ``A-BxS`` (``S`` >= 1, ``A`` <= ``B``), negative frames
  allowed (``-10--1``, ``-5-5``), whitespace allowed around commas. A range written backwards (``10-1``) is refused
  with the forward spelling to use: fileseq would render it in reverse, which a farm job has no use for.
  fileseq's other step forms (``y`` fill, ``:`` stagger) and sub-frames are refused too.
- ``fml:N`` (first/middle/last) picks N frames spread evenly over a base range, always including its first and last
  frame (``fml:1`` is the first frame). ``auto:N`` picks N evenly spaced frames the way Conductor's cioseq
  ``subsample`` does: the base is cut into N equal slices and the middle frame of each is taken (in exact integer
  maths; cioseq's float sum can land one frame early where a middle falls exactly on a frame). Both clamp N to the
  size of the base and only make sense relative to one: ``parse("fml:3", base=scene_range)``. They may be mixed with
  explicit frames (``fml:3,50``).
- :meth:`FrameSpec.format` is canonical: fileseq's compact form of the sorted set, every range ending on a frame that
  is really rendered (``1-100x2`` formats as ``1-99x2``). ``parse(s.format()) == s`` for every spec, and formatting a
  canonical string gives it back unchanged.
- A job holds at most :data:`MAX_FRAMES` frames; frame numbers have at most 9 digits.
- Chunks are runs of consecutive frames **of the job's frame list**: with ``1-100x2`` and chunk size 4 the first chunk
  is 1, 3, 5, 7 (``1-7x2``), never 1-4. Chunks partition the job's frames exactly.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from fileseq import FrameSet

from .errors import InputError

__all__ = [
    "MAX_FRAMES",
    "Chunk",
    "FrameSpec",
    "Plan",
    "chunks",
    "format_frames",
    "is_relative",
    "parse",
    "plan",
    "resolve_scout",
]

MAX_FRAMES = 1_000_000
_MAX_DIGITS = 9
_EXAMPLES = "frames like 1-100, 1-100x2 or 1,5,10-20"

_NUM = r"-?\d+"
_PART = re.compile(rf"^(?P<start>{_NUM})(?:-(?P<end>{_NUM})(?:x(?P<step>{_NUM})?)?)?$", re.ASCII)
# Looser shapes, matched only to explain what is wrong with a part the strict grammar refused.
_OTHER_STEP = re.compile(rf"^(?P<start>{_NUM})-(?P<end>{_NUM})(?P<sep>[:y])(?P<step>{_NUM})$", re.ASCII)
_KEYWORD = re.compile(r"^(?P<name>[A-Za-z_]+)\s*:\s*(?P<count>.*)$")
_KEYWORDS = ("fml", "auto")

FramesLike = Union["FrameSpec", str, Iterable[int]]


def _quote(text: str) -> str:
    return f'"{text}"'


def _where(part: str, spec: str) -> str:
    """``"abc"`` alone, or ``"abc" in "1-10,abc"`` when the part is one of several."""
    return _quote(part) if part == spec.strip() else f"{_quote(part)} in {_quote(spec.strip())}"


def format_frames(frames: Iterable[int]) -> str:
    """Canonical compact form of sorted unique whole frames, e.g. ``1-99x2`` or ``1,5,10-20`` (fileseq's)."""
    ordered = list(frames)
    if not ordered:
        return ""
    # fileseq normalises types on its way in and out; the frames here are already sorted and unique.
    return str(FrameSet.framesToFrameRange(ordered, sort=False, compress=False))


@dataclass(frozen=True)
class FrameSpec:
    """An immutable, non-empty, sorted set of unique whole frames.

    Build one with :func:`parse` (or :meth:`FrameSpec.parse`), :meth:`from_range` (a DCC's start/end/step) or
    :meth:`from_frames`. ``str(spec)`` and :meth:`format` give the canonical compact string.
    """

    frames: Tuple[int, ...]
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = tuple(self.frames)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"frames must be whole numbers, got {value!r}")
        if any(b <= a for a, b in zip(values, values[1:])):
            values = tuple(sorted(set(values)))
        if not values:
            raise InputError(f"a frame spec needs at least one frame; write {_EXAMPLES}")
        if len(values) > MAX_FRAMES:
            raise InputError(
                f"{len(values):,} frames is more than the {MAX_FRAMES:,} one job can hold; split it into several jobs"
            )
        object.__setattr__(self, "frames", values)

    # --- construction -------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str, base: Optional[FrameSpec] = None) -> FrameSpec:
        """Same as the module's :func:`parse`."""
        return parse(spec, base)

    @classmethod
    def from_frames(cls, frames: Iterable[int]) -> FrameSpec:
        return cls(tuple(frames))

    @classmethod
    def from_range(cls, start: int, end: int, step: int = 1) -> FrameSpec:
        """Frames ``start..end`` (inclusive) every ``step``: Blender's frame_start/frame_end/frame_step."""
        text = f"{start}-{end}x{step}"
        if step < 1:
            raise InputError(f"frame range {_quote(text)}: the step must be 1 or more (got {step})")
        if end < start:
            raise InputError(f"frame range {_quote(text)} runs backwards: the end frame must not be before the start")
        _check_count((end - start) // step + 1, text)
        return cls(tuple(range(start, end + 1, step)))

    # --- reading --------------------------------------------------------------------------------------------------
    def format(self) -> str:
        """The canonical compact string, e.g. ``1-99x2`` or ``1,5,10-20``."""
        if not self._text:
            object.__setattr__(self, "_text", format_frames(self.frames))
        return self._text

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def step(self) -> Optional[int]:
        """The common step if the frames are one arithmetic progression (1 for a single frame), else None."""
        if len(self.frames) == 1:
            return 1
        step = self.frames[1] - self.frames[0]
        return step if all(b - a == step for a, b in zip(self.frames, self.frames[1:])) else None

    def to_frameset(self) -> FrameSet:
        return FrameSet(self.format())

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[int]:
        return iter(self.frames)

    def __contains__(self, frame: object) -> bool:
        if isinstance(frame, bool) or not isinstance(frame, int):
            return False
        i = bisect_left(self.frames, frame)
        return i < len(self.frames) and self.frames[i] == frame

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"FrameSpec({self.format()!r})"


# --- parsing ----------------------------------------------------------------------------------------------------
def is_relative(spec: str) -> bool:
    """True if ``spec`` holds ``fml:N`` or ``auto:N`` and so needs a base range to mean anything."""
    return any(_KEYWORD.match(part.strip()) for part in str(spec).split(","))


def parse(spec: str, base: Optional[FrameSpec] = None) -> FrameSpec:
    """Parse a frame spec into a :class:`FrameSpec`; ``fml:N``/``auto:N`` parts pick frames from ``base``.

    Raises :class:`~tether.errors.InputError` quoting the part that is wrong and saying what to write instead.
    """
    if not isinstance(spec, str):
        raise TypeError(f"a frame spec is a string, got {type(spec).__name__}")
    if not spec.strip():
        raise InputError(f"the frame spec is empty; write {_EXAMPLES}")
    parts = [part.strip() for part in spec.split(",")]
    if any(not part for part in parts):
        raise InputError(
            f"frame spec {_quote(spec.strip())} has an empty entry between commas; remove the extra comma"
        )

    ranges: List[str] = []
    picked: List[int] = []
    total = 0
    for part in parts:
        keyword = _KEYWORD.match(part)
        if keyword:
            picked.extend(_pick(keyword.group("name"), keyword.group("count"), part, spec, base))
            continue
        start, end, step = _parse_part(part, spec)
        count = (end - start) // step + 1
        _check_count(count, part, spec)
        total += count
        # Overlapping parts may still make a legal job; this only bounds the work of expanding them.
        if total > 10 * MAX_FRAMES:
            raise InputError(
                f"frame spec {_quote(spec.strip())} adds up to more than {10 * MAX_FRAMES:,} frames; "
                "remove the overlapping parts"
            )
        ranges.append(part)

    frames = set(picked)
    if ranges:
        try:
            frames.update(int(frame) for frame in FrameSet(",".join(ranges)))
        except Exception as exc:  # fileseq refusing what our grammar allowed would be a bug: say so plainly
            raise InputError(f"could not read frame spec {_quote(spec.strip())}: {exc}") from exc
    _check_count(len(frames), spec.strip())
    return FrameSpec(tuple(sorted(frames)))


def _parse_part(part: str, spec: str) -> Tuple[int, int, int]:
    where = _where(part, spec)
    match = _PART.match(part)
    if not match:
        raise InputError(_explain(part, where))
    numbers = [match.group("start"), match.group("end"), match.group("step")]
    for number in numbers:
        if number is not None and len(number.lstrip("-")) > _MAX_DIGITS:
            raise InputError(
                f"{where}: frame numbers have at most {_MAX_DIGITS} digits ({_quote(number)} has "
                f"{len(number.lstrip('-'))})"
            )
    start = int(numbers[0])
    end = int(numbers[1]) if numbers[1] is not None else start
    if numbers[1] is not None and part.endswith("x"):
        raise InputError(
            f'{where} has no step after "x"; write {_quote(f"{start}-{end}")} for every frame '
            f'or e.g. {_quote(f"{start}-{end}x2")} for every other frame'
        )
    step = int(numbers[2]) if numbers[2] is not None else 1
    low, high = min(start, end), max(start, end)
    if step < 1:
        raise InputError(
            f"{where}: the step must be 1 or more; write {_quote(f'{low}-{high}')} for every frame "
            f"or e.g. {_quote(f'{low}-{high}x2')} for every other frame"
        )
    if end < start:
        forward = f"{low}-{high}" + (f"x{step}" if numbers[2] is not None else "")
        raise InputError(
            f"{where} runs backwards; write {_quote(forward)} (a job's frames are rendered as a sorted set)"
        )
    return start, end, step


def _explain(part: str, where: str) -> str:
    other = _OTHER_STEP.match(part)
    if other:
        fixed = f"{other.group('start')}-{other.group('end')}x{other.group('step')}"
        return f'{where}: only "x" steps are supported; write {_quote(fixed)}'
    if re.search(r"\d\.\d", part):
        return f"{where}: frames are whole numbers; write {_EXAMPLES}"
    if re.search(r"\s", part):
        return f'{where}: separate frames with commas and write ranges without spaces, e.g. "1,5" or "1-5"'
    return f"{where} is not a frame or a range; write {_EXAMPLES} (or fml:N / auto:N with a base range)"


def _check_count(count: int, part: str, spec: Optional[str] = None) -> None:
    if count > MAX_FRAMES:
        where = _where(part, spec) if spec is not None else _quote(part)
        raise InputError(
            f"{where} has {count:,} frames, more than the {MAX_FRAMES:,} one job can hold; "
            "split it into several jobs or add a step (e.g. x10)"
        )


def _pick(name: str, count_text: str, part: str, spec: str, base: Optional[FrameSpec]) -> List[int]:
    where = _where(part, spec)
    key = name.lower()
    if key not in _KEYWORDS:
        raise InputError(f"{where}: unknown keyword {_quote(name)}; use fml:N or auto:N, or {_EXAMPLES}")
    example = f"{key}:3"
    if not re.fullmatch(r"-?\d+", count_text.strip(), re.ASCII):
        raise InputError(f"{where}: N must be a whole number, e.g. {_quote(example)}")
    if len(count_text.strip().lstrip("-")) > _MAX_DIGITS:
        raise InputError(f"{where}: N is far too large; use e.g. {_quote(example)}")
    count = int(count_text)
    if count < 1:
        raise InputError(f"{where}: N must be 1 or more, e.g. {_quote(example)}")
    if base is None:
        raise InputError(
            f"{where} picks frames from a base range and none was given; pass the range it picks from "
            "(e.g. the scene's 1-250), or write the frames out"
        )
    return _fml(base.frames, count) if key == "fml" else _auto(base.frames, count)


def _fml(frames: Tuple[int, ...], count: int) -> List[int]:
    """N frames spread evenly, always including the first and the last (round half up, so it is deterministic)."""
    n = len(frames)
    if count >= n:
        return list(frames)
    if count == 1:
        return [frames[0]]
    span = n - 1
    return [frames[(2 * i * span + (count - 1)) // (2 * (count - 1))] for i in range(count)]


def _auto(frames: Tuple[int, ...], count: int) -> List[int]:
    """cioseq's ``subsample``: N equal slices, the middle frame of each (integer maths, no float drift)."""
    n = len(frames)
    if count >= n:
        return list(frames)
    return [frames[((2 * i + 1) * n) // (2 * count)] for i in range(count)]


def _as_spec(frames: FramesLike) -> FrameSpec:
    if isinstance(frames, FrameSpec):
        return frames
    if isinstance(frames, str):
        return parse(frames)
    return FrameSpec.from_frames(frames)


def _scout_split(spec: str, frames: FrameSpec) -> Tuple[List[int], List[int]]:
    """(scout frames kept, frames of an explicit scout list that are not in the job)."""
    if not spec.strip():
        return [], []
    try:
        wanted = parse(spec, base=frames)
    except InputError as exc:
        raise InputError(f"scout frames: {exc}") from exc
    kept = [f for f in wanted.frames if f in frames]
    ignored = [f for f in wanted.frames if f not in frames]
    if not kept:
        raise InputError(
            f"scout frames {_quote(spec.strip())} ({wanted.format()}) are all outside the job's frames "
            f"{_quote(frames.format())}; pick scout frames from the job, e.g. {_quote(str(frames.first))} or "
            '"fml:3"'
        )
    return kept, ignored


def resolve_scout(spec: str, frames: FrameSpec) -> List[int]:
    """The scout frames ``spec`` selects from a job's ``frames``: a sorted subset of them.

    ``fml:N``/``auto:N`` pick from the job's frames. An explicit list keeps only the frames that are in the job, and it
    is an :class:`~tether.errors.InputError` if none are. A blank spec means no scout frames (``[]``), which is what
    the farm's ``scout_frames: ""`` means.
    """
    return _scout_split(spec, frames)[0]


# --- chunking ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """One task's frames: a run of consecutive frames of the job's frame list, and their compact spec."""

    index: int
    frames: List[int]
    spec: str
    scout: bool = False

    @property
    def count(self) -> int:
        return len(self.frames)

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    def to_dict(self) -> Dict[str, Any]:
        return {"index": self.index, "spec": self.spec, "count": self.count, "scout": self.scout,
                "frames": list(self.frames)}


def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise InputError(f"chunk size must be a whole number of frames, got {chunk_size!r}")
    if chunk_size < 1:
        raise InputError(f"chunk size must be 1 or more (got {chunk_size}); use 1 to render each frame as its own task")
    return chunk_size


def chunks(frames: FramesLike, chunk_size: int) -> List[Chunk]:
    """Split the job's frames into chunks of ``chunk_size`` consecutive job frames (the last may be shorter)."""
    size = _check_chunk_size(chunk_size)
    values = _as_spec(frames).frames
    out = []
    for index, start in enumerate(range(0, len(values), size)):
        part = list(values[start:start + size])
        out.append(Chunk(index=index, frames=part, spec=format_frames(part)))
    return out


@dataclass(frozen=True)
class Plan:
    """How a job's frames become tasks: chunks, and which of them render first because they hold a scout frame.

    With scout frames, the scout chunks render first and the farm holds the rest until released; without, every
    chunk renders and none is held.
    """

    frames: FrameSpec
    chunk_size: int
    chunks: List[Chunk]
    scout_frames: List[int] = field(default_factory=list)
    scout_ignored: List[int] = field(default_factory=list)  # frames of an explicit scout list not in the job
    scout_spec: str = ""

    @property
    def scout_chunks(self) -> List[Chunk]:
        return [c for c in self.chunks if c.scout]

    @property
    def held_chunks(self) -> List[Chunk]:
        return [c for c in self.chunks if not c.scout] if self.scout_frames else []

    def to_dict(self) -> Dict[str, Any]:
        return {
            "spec": self.frames.format(),
            "count": len(self.frames),
            "frames": list(self.frames.frames),
            "chunk_size": self.chunk_size,
            "chunk_count": len(self.chunks),
            "chunks": [c.to_dict() for c in self.chunks],
            "scout": {
                "spec": self.scout_spec,
                "frames": list(self.scout_frames),
                "canonical": format_frames(self.scout_frames),
                "ignored": list(self.scout_ignored),
                "chunks": [c.index for c in self.scout_chunks],
                "held_chunks": len(self.held_chunks),
            },
        }


def plan(frames: FramesLike, chunk_size: int, scout: Optional[str] = None) -> Plan:
    """Chunk ``frames`` and mark the chunks that hold a scout frame (see :func:`resolve_scout` for ``scout``)."""
    spec = _as_spec(frames)
    size = _check_chunk_size(chunk_size)
    scout_text = (scout or "").strip()
    kept, ignored = _scout_split(scout_text, spec)
    scout_set = set(kept)
    planned = [
        Chunk(index=c.index, frames=c.frames, spec=c.spec, scout=any(f in scout_set for f in c.frames))
        if scout_set else c
        for c in chunks(spec, size)
    ]
    return Plan(frames=spec, chunk_size=size, chunks=planned, scout_frames=kept, scout_ignored=ignored,
                scout_spec=scout_text)
