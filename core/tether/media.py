"""Sequences, movies and frame ranges: the one place file names are read as frames, on fileseq.

- :data:`MOVIE_EXTS` is every container a DCC reads as a movie; :data:`WEB_MOVIE_EXTS` the ones web video services
  take (no camera raw, no MXF); :data:`QUICKTIME_EXTS` the ISO/QuickTime family whose sample table
  :func:`tether.autopilot.clip.movie_facts` reads.
- :class:`FramePattern` is a path with one frame token. Padding follows the DCC that wrote the pattern (fileseq's
  ``getPaddingNum``): ``####``, ``@@@@`` and ``%04d`` are 4 digits in both; ``%d`` is unpadded; a lone ``#`` is 4 digits
  in Nuke (fileseq's HASH4) and 1 in Blender, where every ``#`` is one digit (HASH1). The token is found in the file
  name wherever it sits (``shot.####_v2.exr`` too, which fileseq's own grammar does not take).
- :func:`group_files` splits a list of files into numbered sequences and single files with fileseq's
  ``findSequencesInList``; :func:`sequence_pattern` is the Nuke pattern of one such sequence.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import fileseq

from .errors import InputError

QUICKTIME_EXTS = frozenset({".mov", ".mp4", ".m4v", ".qt"})
WEB_MOVIE_EXTS = frozenset({".mov", ".mp4", ".m4v", ".mkv", ".avi", ".webm"})
MOVIE_EXTS = QUICKTIME_EXTS | WEB_MOVIE_EXTS | frozenset({".mxf", ".r3d", ".braw"})
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".dpx"})

NUKE = "nuke"  # a lone # is 4 digits
BLENDER = "blender"  # every # is one digit

_TOKEN = re.compile(r"#+|@+|%0?\d*d")
_VIEW = re.compile(r"%[Vv]")

PathLike = Union[str, "os.PathLike[str]"]


def is_movie(path: PathLike) -> bool:
    """A movie container by its extension (a query string, as on a presigned URL, is ignored)."""
    return Path(os.fspath(path).split("?")[0]).suffix.lower() in MOVIE_EXTS


def token_padding(token: str, hashes: str = NUKE) -> int:
    """Digits a frame token stands for; 0 for ``%d`` (unpadded)."""
    if token in ("%d", "%0d"):
        return 0
    style = fileseq.PAD_STYLE_HASH4 if token == "#" and hashes == NUKE else fileseq.PAD_STYLE_HASH1
    return int(fileseq.getPaddingNum(token, pad_style=style))


def format_ranges(frames: Iterable[int]) -> str:
    """``1001-1004,1010``: a compact list for messages (no ``x`` steps: a person reads it)."""
    ordered = sorted(set(frames))
    if not ordered:
        return ""
    parts: List[str] = []
    start = prev = ordered[0]
    for value in ordered[1:]:
        if value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


@dataclass(frozen=True)
class FramePattern:
    """A file path with one frame token (``####``, ``%04d``, ``%d``) and optionally a view token (``%V``/``%v``)."""

    path: str
    head: str = ""
    tail: str = ""
    padding: int = 0  # 0: unpadded (%d)
    has_token: bool = False

    @classmethod
    def parse(cls, path: str, hashes: str = NUKE) -> FramePattern:
        """The last frame token in the file name; ``hashes`` is the DCC whose ``#`` rule applies."""
        name_start = max(path.rfind("/"), path.rfind("\\")) + 1
        matches = list(_TOKEN.finditer(path, name_start))
        if not matches:
            return cls(path=path)
        match = matches[-1]
        return cls(path=path, head=path[: match.start()], tail=path[match.end():],
                   padding=token_padding(match.group(0), hashes), has_token=True)

    def with_view(self, view: Optional[str]) -> FramePattern:
        """The pattern for one view: ``%V`` becomes the view's name, ``%v`` its first letter."""
        if not _VIEW.search(self.path):
            return self
        if not view:
            raise InputError(f"{self.path} holds a view token (%V/%v): choose which view to send (e.g. 'left')")
        text = self.path.replace("%V", view).replace("%v", view[:1].lower())
        return FramePattern.parse(text)

    @property
    def has_view(self) -> bool:
        return bool(_VIEW.search(self.path))

    @property
    def stem(self) -> str:
        """The sequence's name without its folder, frame token and extension, for a file made of it: ``shot.####.png``
        -> ``shot``; text after the token is kept, joined by the separator before it (``plate.####_v2.exr`` ->
        ``plate_v2``, ``plate.####v2.exr`` -> ``plate.v2``); '' when nothing is left (``####.exr``)."""
        name = self.head[max(self.head.rfind("/"), self.head.rfind("\\")) + 1:]
        before = name.rstrip("._- ")
        after = self.tail.rsplit(".", 1)[0] if "." in self.tail else self.tail
        if after and before and after[0] not in "._- ":
            after = name[len(before):][:1] + after
        return (before + after).strip("._- ")

    def frame(self, number: int) -> str:
        if not self.has_token:
            return self.path
        digits = f"{abs(number):0{self.padding}d}" if self.padding else str(abs(number))
        return f"{self.head}{'-' if number < 0 else ''}{digits}{self.tail}"

    def hashes(self) -> str:
        """The path in Nuke's ``####`` spelling (``%d`` for unpadded numbers)."""
        if not self.has_token:
            return self.path
        # a lone # means 4 digits to Nuke, so one digit is spelt %01d
        token = "#" * self.padding if self.padding > 1 else ("%d" if self.padding == 0 else "%01d")
        return f"{self.head}{token}{self.tail}"

    def printf(self) -> str:
        """The path with a printf token (``%04d``, ``%d``)."""
        if not self.has_token:
            return self.path
        return f"{self.head}%{f'0{self.padding}' if self.padding else ''}d{self.tail}"

    def scan(self) -> Dict[int, str]:
        """Frames on disk, by number: one directory listing, not one stat per frame (network shares are slow)."""
        if not self.has_token:
            return {}
        folder, _, head_name = self.head.replace("\\", "/").rpartition("/")
        folder = folder or "."
        digits = rf"(-?\d{{{self.padding},}})" if self.padding else r"(-?\d+)"
        regex = re.compile(f"^{re.escape(head_name)}{digits}{re.escape(self.tail)}$")
        found: Dict[int, str] = {}
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return found
        for entry in entries:
            match = regex.match(entry.name)
            if match and entry.is_file():
                found[int(match.group(1))] = entry.path
        return found


@dataclass
class FileSequence:
    """Numbered files of one kind in one folder, e.g. ``mattes/00001.png .. 00012.png``."""

    folder: Path
    head: str
    tail: str  # the extension with its dot
    padding: int  # the fewest digits any of its numbers has
    frames: List[int]
    files: List[Path]

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def ext(self) -> str:
        return self.tail.lower()

    @property
    def hashes(self) -> str:
        """``folder/head####tail``: the form a Nuke Read takes."""
        return str(self.folder / f"{self.head}{'#' * max(self.padding, 1)}{self.tail}")

    @property
    def printf(self) -> str:
        return str(self.folder / f"{self.head}%0{max(self.padding, 1)}d{self.tail}")

    @property
    def missing(self) -> List[int]:
        return sorted(set(range(self.first, self.last + 1)) - set(self.frames))


def group_files(files: Iterable[PathLike], *, lone_numbers: bool = False
                ) -> Tuple[List[FileSequence], List[Path]]:
    """Numbered files grouped by folder, name and extension (fileseq's split of each name); the rest as singles.

    A number alone does not make a sequence: one numbered file whose name runs into its number (``camera2.chan``)
    is a single unless ``lone_numbers``, while ``matte.0001.png`` or ``0001.png`` is a one-frame sequence. Numbers
    padded differently (``-0001``, ``0000``, ``998``, ``1000``) stay one sequence, whose padding is the fewest digits
    any has.
    """
    paths = {os.fspath(f): Path(f) for f in files}
    groups: Dict[Tuple[Path, str, str], Dict[int, Tuple[Path, int]]] = {}
    singles: List[Path] = []
    for seq in fileseq.findSequencesInList(list(paths), pad_style=fileseq.PAD_STYLE_HASH1):
        members = [paths.get(os.fspath(p)) for p in seq]
        if seq.frameSet() is None or None in members:
            singles.extend(m for m in members if m is not None)
            continue
        head, tail = seq.basename(), seq.extension()
        for path in members:
            assert path is not None
            digits = path.name[len(head): len(path.name) - len(tail)]
            groups.setdefault((path.parent, head, tail), {})[int(digits)] = (path, len(digits.lstrip("-")))
    sequences: List[FileSequence] = []
    for (folder, head, tail), by_frame in sorted(groups.items(), key=lambda kv: str(kv[0])):
        if len(by_frame) == 1 and head and not head.endswith((".", "_", "-")) and not lone_numbers:
            singles.extend(p for p, _ in by_frame.values())
            continue
        frames = sorted(by_frame)
        sequences.append(FileSequence(folder=folder, head=head, tail=tail,
                                      padding=min(pad for _, pad in by_frame.values()), frames=frames,
                                      files=[by_frame[f][0] for f in frames]))
    return sequences, sorted(singles)


def sequence_pattern(files: Sequence[PathLike]) -> Tuple[FramePattern, List[int]]:
    """The Nuke pattern of a list of numbered files (``matte.0001.png`` ... -> ``matte.####.png``) and their frames.

    Numbers all of one length are padded to it (``1001`` -> ``####``; one digit -> ``%d``); numbers of several
    lengths are padded only when one has a leading zero (``0998..1000`` -> ``####``, ``998..1000`` -> ``%d``).
    Raises :class:`InputError` when the files are not one sequence (different folders, names or extensions).
    """
    if not files:
        raise InputError("no files given for an image sequence")
    sequences, singles = group_files(files, lone_numbers=True)
    if singles:
        raise InputError(f"{singles[0]} has no frame number before its extension, so it cannot be read as a "
                         "sequence")
    if len(sequences) > 1:
        names = sorted({(s.folder.as_posix(), s.head, s.tail) for s in sequences})
        raise InputError(f"these files are not one sequence (several names): {names[:3]}")
    seq = sequences[0]
    numbers = [f.name[len(seq.head): len(f.name) - len(seq.tail)] for f in seq.files]
    lengths = {len(text) for text in numbers}
    if len(lengths) == 1:
        padding = 0 if seq.padding == 1 else seq.padding
    else:
        padding = seq.padding if any(t.startswith("0") and len(t) > 1 for t in numbers) else 0
    folder = seq.folder.as_posix()
    base = f"{folder}/{seq.head}" if folder not in ("", ".") else seq.head
    hashes = FramePattern(path="", head=base, tail=seq.tail, padding=padding, has_token=True).hashes()
    return FramePattern(path=hashes, head=base, tail=seq.tail, padding=padding, has_token=True), seq.frames


def split_range(spec: str) -> Tuple[str, Optional[List[int]]]:
    """A pattern in fileseq's ranged form, ``plate.1001-1100#.exr`` (a frame range just before the token), as the bare
    pattern (``plate.#.exr``) and the range's frames; any other spec as it is, with None. A lone number before the
    token is part of the name (``cam2####.exr``), not a one-frame range.

    Text may follow the token (``plate.1-3####_v2.exr``): fileseq's grammar takes after the padding only an
    "extension" of dotted or digit-free words (``.exr``, ``_exr``; its docs/grammar.rst and fileseq.g4), so a name
    whose tail holds a digit (``_v2``) is to fileseq a plain file. The tail is cut at our token (the last in the file
    name, as :meth:`FramePattern.parse` finds it) and only the part up to the token is read by fileseq.
    """
    token = FramePattern.parse(spec)
    if not token.has_token:
        return spec, None
    upto = spec[: len(spec) - len(token.tail)]
    try:
        seq = fileseq.FileSequence(upto, pad_style=fileseq.PAD_STYLE_HASH4)
    except (fileseq.ParseException, ValueError):
        return spec, None
    frames = seq.frameSet()
    if frames is None or re.fullmatch(r"-?\d+", str(frames)):
        return spec, None
    return f"{seq.dirname()}{seq.basename()}{seq.padding()}{token.tail}", [int(f) for f in frames]


def one_run(frames: Sequence[int]) -> None:
    """Refuse frames that are not one run with no step: a movie made of them has no gaps."""
    if frames and list(frames) != list(range(frames[0], frames[-1] + 1)):
        raise InputError(f"frames {format_ranges(frames)}: a clip is one run of frames (a movie has no gaps or "
                         f"steps); ask for e.g. {frames[0]}-{frames[-1]}")


def guess_pattern(path: PathLike) -> Optional[str]:
    """``shot.0001.png`` -> ``shot.####.png``: the pattern a single numbered frame probably belongs to."""
    sequences, _ = group_files([path], lone_numbers=True)
    if not sequences:
        return None
    seq = sequences[0]
    return str(seq.folder / f"{seq.head}{'#' * max(seq.padding, 1)}{seq.tail}")


__all__ = [
    "BLENDER", "IMAGE_EXTS", "MOVIE_EXTS", "NUKE", "QUICKTIME_EXTS", "WEB_MOVIE_EXTS", "FileSequence", "FramePattern",
    "format_ranges", "group_files", "guess_pattern", "is_movie", "one_run", "sequence_pattern", "split_range",
    "token_padding",
]
