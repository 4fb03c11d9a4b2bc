"""The clip a user sends: a movie file or an image sequence, checked and described before anything is uploaded.

A sequence (``shot.####.png``, ``shot.%04d.png``, ``shot.@@@@.png``) is packed into one zip (stored, not
compressed: the frames are compressed already) whose entries keep their frame numbers; ``first_frame`` is recorded
so that what comes back (numbered 1..N by the service) lines up with the plate's own frame numbers.
A movie's frame count is read from its MP4/QuickTime sample table in pure Python, so the core needs no video
library to refuse a clip over the frame limit.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

from ..errors import InputError
from ..media import IMAGE_EXTS, QUICKTIME_EXTS, FramePattern, format_ranges, guess_pattern, one_run, split_range


@dataclass
class Clip:
    """What will be uploaded, and how its frames map onto the plate."""

    source: str  # what the user named (path or pattern)
    kind: str  # "movie" | "sequence" | "archive"
    frame_count: int
    first_frame: int = 1
    files: List[Path] = field(default_factory=list)  # the sequence's frames, in order
    fps: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None

    @property
    def last_frame(self) -> int:
        return self.first_frame + self.frame_count - 1

    @property
    def upload_name(self) -> str:
        base = Path(self.source).name
        if self.kind == "sequence":
            return f"{FramePattern.parse(base).stem or 'sequence'}.zip"
        return base

    def plate_frame(self, index: int) -> int:
        """The plate frame of the service's 1-based output frame ``index``."""
        return self.first_frame + index - 1


def is_pattern(spec: str) -> bool:
    return FramePattern.parse(spec).has_token


def find_sequence(spec: str) -> Tuple[List[int], Dict[int, Path]]:
    """Frames on disk matching ``shot.####.png`` / ``shot.%04d.png`` / ``shot.@@@.png``, by frame number."""
    path = Path(spec).expanduser()
    pattern = FramePattern.parse(str(path))
    if not pattern.has_token:
        raise InputError(f"{spec} is not a sequence pattern (use #### or %04d for the frame number)")
    if not path.parent.is_dir():
        raise InputError(f"the folder of {spec} does not exist: {path.parent}")
    found = {number: Path(name) for number, name in pattern.scan().items()}
    return sorted(found), found


def _refuse_bad_frames(spec: str, frames: List[int], files: Dict[int, Path]) -> None:
    """Empty or unreadable frames would pass the dry run and fail on the service: name them before uploading."""
    empty: List[int] = []
    unreadable: Dict[int, str] = {}
    for frame in frames:
        try:
            with open(files[frame], "rb") as fh:
                if not fh.read(1):
                    empty.append(frame)
        except OSError as exc:
            unreadable[frame] = exc.strerror or type(exc).__name__
    problems = []
    if empty:
        problems.append(f"frame{'s' if len(empty) > 1 else ''} {format_ranges(empty)} "
                        f"{'are' if len(empty) > 1 else 'is'} empty (0 bytes)")
    if unreadable:
        first = next(iter(unreadable))
        problems.append(f"frame{'s' if len(unreadable) > 1 else ''} {format_ranges(unreadable)} cannot be read "
                        f"({files[first].name}: {unreadable[first]})")
    if problems:
        raise InputError(f"{spec}: {'; '.join(problems)}: render or copy them again, or send a range without them")


def _wanted(spec: str, frames: Optional[str]) -> Tuple[str, Optional[List[int]]]:
    """The pattern and the frames asked for: fileseq's range in the name (``plate.1001-1100#.exr``) or ``frames``
    (``1001-1100``), one run of frames with no step (a movie has no gaps); None: every frame on disk."""
    from ..frames import parse

    pattern, ranged = split_range(spec)
    if frames:
        if ranged is not None:
            raise InputError(f"{spec} names its frames already: drop --frames or the range in the name")
        ranged = list(parse(frames).frames)
    if ranged is not None:
        one_run(ranged)
    return pattern, ranged


def inspect_clip(spec: str, frames: Optional[str] = None) -> Clip:
    """Describe the clip named by ``spec`` (a movie, or a sequence pattern, optionally in fileseq's ranged form
    ``plate.1001-1100#.exr``); ``frames`` (``1001-1100``) sends only those frames of a sequence. Raise
    :class:`InputError` saying what to change when it is not usable."""
    if not spec or not spec.strip():
        raise InputError("no clip given: name a movie file or an image sequence such as shot.####.png")
    spec, wanted = _wanted(spec, frames)
    if is_pattern(spec):
        found, files = find_sequence(spec)
        if not found:
            raise InputError(f"no frames match {spec}: check the folder, the name and the padding")
        if wanted is not None:
            missing = [f for f in wanted if f not in files]
            if missing:
                raise InputError(f"{spec} has no frame{'s' if len(missing) > 1 else ''} {format_ranges(missing)} of "
                                 f"the {wanted[0]}-{wanted[-1]} asked for (found {format_ranges(found)}): render or "
                                 "copy them, or ask for frames that exist")
            frames_sent = wanted
        else:
            missing = sorted(set(range(found[0], found[-1] + 1)) - set(found))
            if missing:
                raise InputError(f"{spec} has missing frames {format_ranges(missing)} (found {found[0]}-{found[-1]}); "
                                 "render or copy them, or send a range without gaps (--frames)")
            frames_sent = found
        if len(frames_sent) < 2:
            raise InputError(f"{spec} is a single frame ({frames_sent[0]}): a clip has at least 2 frames")
        _refuse_bad_frames(spec, frames_sent, files)
        return Clip(source=spec, kind="sequence", frame_count=len(frames_sent), first_frame=frames_sent[0],
                    files=[files[f] for f in frames_sent])
    if wanted is not None:
        raise InputError(f"{spec}: a frame range is for an image sequence (a movie is sent whole)")
    path = Path(spec).expanduser()
    if not path.is_file():
        raise InputError(f"clip not found: {path} (name a movie file or a sequence pattern such as shot.####.png)")
    ext = path.suffix.lower()
    if ext in QUICKTIME_EXTS:
        facts = movie_facts(path)
        if facts.frames <= 0:
            raise InputError(f"{path} holds no video frames that Tether could count")
        return Clip(source=str(path), kind="movie", frame_count=facts.frames, fps=facts.fps, width=facts.width,
                    height=facts.height)
    if ext == ".zip":
        with zipfile.ZipFile(path) as archive:
            count = sum(1 for n in archive.namelist() if Path(n).suffix.lower() in IMAGE_EXTS)
        if count < 2:
            raise InputError(f"{path} holds {count} image frames: a clip needs at least 2")
        return Clip(source=str(path), kind="archive", frame_count=count)
    if ext in IMAGE_EXTS:
        raise InputError(f"{path} is a still image; Autopilot needs a clip: give a movie or a sequence pattern "
                         f"such as {guess_pattern(path) or 'shot.####.png'}")
    raise InputError(f"{path}: unsupported clip type '{ext}'; use .mov/.mp4 or an image sequence")


def pack_sequence(clip: Clip, dest: Path) -> Path:
    """Write the sequence's frames into one stored zip at ``dest`` (entries keep their names and frame numbers)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for frame in clip.files:
            archive.write(frame, arcname=frame.name)
    os.replace(tmp, dest)
    return dest


# --- MP4 / QuickTime sample tables ----------------------------------------------------------------------------
@dataclass
class MovieFacts:
    frames: int
    fps: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(fh: BinaryIO, start: int, end: int) -> Iterator[Tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box between ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        body = pos + 8
        if size == 1:
            size = struct.unpack(">Q", fh.read(8))[0]
            body = pos + 16
        elif size == 0:
            size = end - pos
        if size < 8:
            return
        yield kind, body, min(pos + size, end)
        pos += size


def movie_facts(path: Path) -> MovieFacts:
    """Frame count, fps and size of the first video track of an MP4/MOV, read from its boxes."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        moov = next(((b, e) for k, b, e in _boxes(fh, 0, size) if k == b"moov"), None)
        if moov is None:
            raise InputError(f"{path} is not a QuickTime/MP4 movie Tether can read (no 'moov' box); "
                             "convert it to .mov/.mp4 or send an image sequence")
        for kind, tb, te in _boxes(fh, *moov):
            if kind != b"trak":
                continue
            facts = _track(fh, tb, te)
            if facts is not None:
                return facts
    raise InputError(f"{path} has no video track")


def _track(fh: BinaryIO, start: int, end: int) -> Optional[MovieFacts]:
    width = height = None
    timescale = duration = 0
    handler = b""
    samples = 0
    stack = [(b"trak", start, end)]
    while stack:
        parent, s, e = stack.pop()
        for kind, b, be in _boxes(fh, s, e):
            if kind in _CONTAINERS:
                stack.append((kind, b, be))
            elif kind == b"tkhd":
                fh.seek(b)
                version = fh.read(1)[0]
                fh.seek(b + (88 if version == 1 else 76))
                w, h = struct.unpack(">II", fh.read(8))
                width, height = w >> 16, h >> 16
            elif kind == b"mdhd":
                fh.seek(b)
                version = fh.read(1)[0]
                if version == 1:
                    fh.seek(b + 20)
                    timescale, duration = struct.unpack(">IQ", fh.read(12))
                else:
                    fh.seek(b + 12)
                    timescale, duration = struct.unpack(">II", fh.read(8))
            elif kind == b"hdlr" and parent == b"mdia":  # QuickTime has a data handler in minf too
                fh.seek(b + 8)
                handler = fh.read(4)
            elif kind == b"stsz":
                fh.seek(b + 8)
                samples = struct.unpack(">I", fh.read(4))[0]
    if handler != b"vide":
        return None
    fps = samples * timescale / duration if duration and timescale else None
    return MovieFacts(frames=samples, fps=round(fps, 3) if fps else None, width=width, height=height)


__all__ = ["Clip", "MovieFacts", "find_sequence", "inspect_clip", "is_pattern", "movie_facts", "pack_sequence"]
