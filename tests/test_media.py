"""tether.media against fileseq itself: patterns, padding, grouping and frame lists, property-style (hypothesis)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List

import fileseq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tether.errors import InputError
from tether.media import (
    BLENDER,
    MOVIE_EXTS,
    NUKE,
    FramePattern,
    format_ranges,
    group_files,
    guess_pattern,
    is_movie,
    sequence_pattern,
    split_range,
    token_padding,
)

heads = st.sampled_from(["shot.", "plate_v002.", "matte_", "a b.", ""])
exts = st.sampled_from([".exr", ".png", ".dpx", ".jpg"])
frame_sets = st.sets(st.integers(min_value=0, max_value=20000), min_size=1, max_size=30)
paddings = st.integers(min_value=1, max_value=6)
tokens = st.one_of(
    st.integers(min_value=2, max_value=8).map(lambda n: "#" * n),
    st.integers(min_value=1, max_value=8).map(lambda n: "@" * n),
    st.integers(min_value=1, max_value=8).map(lambda n: f"%0{n}d"),
)


@given(head=heads, ext=exts, token=tokens, number=st.integers(min_value=0, max_value=10**6))
def test_a_pattern_names_frames_as_fileseq_does(head: str, ext: str, token: str, number: int) -> None:
    path = f"/plates/{head}{token}{ext}"
    ours = FramePattern.parse(path)
    theirs = fileseq.FileSequence(path, pad_style=fileseq.PAD_STYLE_HASH1)
    assert ours.has_token and ours.padding == theirs.zfill()
    assert ours.frame(number) == theirs.frame(number)


def test_nuke_and_blender_read_hashes_their_own_way() -> None:
    assert FramePattern.parse("/r/shot.####.exr").padding == 4
    assert FramePattern.parse("/r/shot.%04d.exr").padding == 4
    assert FramePattern.parse("/r/shot.#.exr", NUKE).padding == 4  # a lone # is 4 digits in Nuke (HASH4)
    assert FramePattern.parse("/r/shot.#.exr", BLENDER).padding == 1  # each # is one digit in Blender
    assert FramePattern.parse("//render/frame_###", BLENDER).frame(7) == "//render/frame_007"
    assert FramePattern.parse("/r/shot.%d.exr").padding == 0 and token_padding("%d") == 0
    # the token may sit anywhere in the file name (fileseq's grammar wants it before the extension)
    mid = FramePattern.parse("/r/shot.####_v2.exr")
    assert mid.frame(12) == "/r/shot.0012_v2.exr" and mid.hashes() == "/r/shot.####_v2.exr"
    # the name of a file made of a sequence: no frame token, no extension, no separator left dangling
    assert mid.stem == "shot_v2" and FramePattern.parse("/r.d/shot.####.exr").stem == "shot"
    assert FramePattern.parse("plate.%04dv2.exr").stem == "plate.v2" and FramePattern.parse("####.exr").stem == ""
    assert FramePattern.parse("C:\\r\\plate_####_v2.beauty.exr").stem == "plate_v2.beauty"
    assert FramePattern.parse("/r/shot.%04d.exr").printf() == "/r/shot.%04d.exr"
    assert not FramePattern.parse("/r#/shot.exr").has_token  # a # in the folder is not a frame token


@settings(max_examples=40, deadline=None)
@given(head=heads, ext=exts, frames=frame_sets, padding=paddings)
def test_scan_finds_exactly_the_frames_written(head: str, ext: str, frames: set, padding: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        theirs = fileseq.FileSequence(os.path.join(tmp, f"{head}{'#' * padding}{ext}"),
                                      pad_style=fileseq.PAD_STYLE_HASH1)
        for frame in frames:
            Path(theirs.frame(frame)).touch()
        Path(tmp, f"{head}notes{ext}").touch()  # not a frame
        found = FramePattern.parse(os.path.join(tmp, f"{head}%0{padding}d{ext}")).scan()
        assert sorted(found) == sorted(frames)
        assert all(found[f] == theirs.frame(f) for f in frames)


@given(head=heads, ext=exts, frames=frame_sets, padding=paddings)
def test_grouping_agrees_with_fileseq(head: str, ext: str, frames: set, padding: int) -> None:
    names = [f"/out/{head}{f:0{padding}d}{ext}" for f in sorted(frames)]
    singles = ["/out/readme.txt", "/out/camera2.chan"]
    (seq,), loose = group_files(names + singles)
    (theirs,) = [s for s in fileseq.findSequencesInList(names, pad_style=fileseq.PAD_STYLE_HASH1)]
    assert seq.frames == list(theirs.frameSet()) == sorted(frames)
    assert [str(p) for p in seq.files] == names
    assert seq.head == theirs.basename() and seq.tail == theirs.extension()
    assert seq.padding == min(len(str(f).zfill(padding)) for f in frames)
    assert [p.name for p in loose] == ["camera2.chan", "readme.txt"]
    pattern, numbers = sequence_pattern(names)
    assert numbers == sorted(frames)
    assert [pattern.frame(n) for n in numbers] == names


@given(frames=st.sets(st.integers(min_value=-50, max_value=5000), max_size=60))
def test_format_ranges_lists_the_same_frames_as_fileseq_reads_back(frames: set) -> None:
    text = format_ranges(frames)
    assert "x" not in text  # for people: no step syntax
    assert (list(fileseq.FrameSet(text)) if text else []) == sorted(frames)


def test_sequence_pattern_padding_and_errors() -> None:
    assert sequence_pattern([Path("/m/matte.1001.png"), Path("/m/matte.1002.png")])[0].path == "/m/matte.####.png"
    assert sequence_pattern([Path("/m/matte.998.png"), Path("/m/matte.1000.png")])[0].path == "/m/matte.%d.png"
    assert sequence_pattern([Path("/m/m.0998.png"), Path("/m/m.10000.png")])[0].path == "/m/m.####.png"
    assert sequence_pattern([Path("/m/1.png"), Path("/m/2.png")])[0].path == "/m/%d.png"
    with pytest.raises(InputError, match="several names"):
        sequence_pattern([Path("/m/a.1.png"), Path("/m/b.1.png")])
    with pytest.raises(InputError, match="no frame number"):
        sequence_pattern([Path("/m/still.png")])
    assert guess_pattern("/m/shot.0001.png") == "/m/shot.####.png"


def test_a_range_in_the_name_may_have_text_after_its_token() -> None:
    # fileseq alone reads plate.1-3####_v2.exr as a plain file: its grammar takes no digit after the padding
    assert fileseq.FileSequence("/p/plate.1-3####_v2.exr").frameSet() is None
    assert split_range("/p/plate.1-3####_v2.exr") == ("/p/plate.####_v2.exr", [1, 2, 3])
    assert split_range("/p/plate.1001-1002%04d.v2.exr") == ("/p/plate.%04d.v2.exr", [1001, 1002])
    assert split_range("/p/plate.1001-1003#.exr") == ("/p/plate.#.exr", [1001, 1002, 1003])
    assert split_range("/p/shot.####_v2.exr") == ("/p/shot.####_v2.exr", None)  # no range: as it is
    assert split_range("/p/cam2####_v2.exr") == ("/p/cam2####_v2.exr", None)  # a lone number is part of the name
    assert split_range("/p/plain_v2.exr") == ("/p/plain_v2.exr", None)


def test_movies_are_one_list() -> None:
    movies: List[str] = ["a.MOV", "b.mp4", "c.mxf", "d.r3d", "e.webm", "https://s/x.mov?sig=1"]
    assert all(is_movie(m) for m in movies)
    assert not any(is_movie(p) for p in ("a.exr", "b.png", "c.zip", "d.mov.txt"))
    assert {".mov", ".mp4", ".m4v", ".qt", ".mxf", ".avi", ".mkv", ".webm", ".r3d", ".braw"} == MOVIE_EXTS
