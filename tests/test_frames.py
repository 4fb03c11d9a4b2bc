"""Frame specs, chunking and scout frames (tether.frames) and the `tether frames` command."""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
from typing import List

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tether import frames as F
from tether.errors import InputError
from tether_cli import frames_cmd, main

# --- strategies ---------------------------------------------------------------------------------------------------
frame_sets = st.sets(st.integers(-300, 300), min_size=1, max_size=120)


@st.composite
def range_parts(draw) -> tuple:
    """(text, frames) of one spec part written the way a person would: N, A-B or A-BxS."""
    start = draw(st.integers(-500, 500))
    kind = draw(st.sampled_from(["single", "range", "step"]))
    if kind == "single":
        return str(start), {start}
    end = start + draw(st.integers(0, 150))
    if kind == "range":
        return f"{start}-{end}", set(range(start, end + 1))
    step = draw(st.integers(1, 12))
    return f"{start}-{end}x{step}", set(range(start, end + 1, step))


@st.composite
def written_specs(draw) -> tuple:
    parts = draw(st.lists(range_parts(), min_size=1, max_size=6))
    seps = draw(st.lists(st.sampled_from([",", ", ", " ,", " , ", ",\t"]), min_size=len(parts), max_size=len(parts)))
    text = "".join(p[0] + s for p, s in zip(parts, seps))[: -len(seps[-1])]
    frames = set().union(*(p[1] for p in parts))
    return text, sorted(frames)


# --- parsing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1-10", list(range(1, 11))),
        ("1-10x2", [1, 3, 5, 7, 9]),
        ("1-100x2", list(range(1, 101, 2))),
        ("1,5,10-20", [1, 5, *range(10, 21)]),
        ("1-10,50-60", [*range(1, 11), *range(50, 61)]),
        ("-10--1", list(range(-10, 0))),
        ("-5-5", list(range(-5, 6))),
        ("-3", [-3]),
        ("  1 ,  5,\t10-12 ", [1, 5, 10, 11, 12]),
        ("5,3,1,3", [1, 3, 5]),
        ("1-10,5-15", list(range(1, 16))),
        ("7-7", [7]),
    ],
)
def test_parse_examples(spec: str, expected: List[int]) -> None:
    parsed = F.parse(spec)
    assert list(parsed) == expected
    assert len(parsed) == len(expected)
    assert parsed.first == expected[0] and parsed.last == expected[-1]


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("1-100", "1-100"),
        ("1-100x2", "1-99x2"),  # a range ends on a frame that is rendered
        ("1,5,10-20", "1,5,10-20"),
        ("-10--1", "-10--1"),
        ("1-10,50-60", "1-10,50-60"),
        ("9,1,5", "1-9x4"),
    ],
)
def test_format_canonical(spec: str, canonical: str) -> None:
    assert F.parse(spec).format() == canonical
    assert str(F.parse(spec)) == canonical
    assert F.parse(canonical).format() == canonical


@given(written_specs())
def test_parse_matches_an_independent_expansion(case: tuple) -> None:
    text, expected = case
    parsed = F.parse(text)
    assert list(parsed.frames) == expected
    # formatting is canonical: it parses back to the same frames and formats to itself
    assert F.parse(parsed.format()) == parsed
    assert F.parse(parsed.format()).format() == parsed.format()


@given(frame_sets)
def test_format_round_trips_any_frame_set(frames: set) -> None:
    spec = F.FrameSpec.from_frames(frames)
    assert list(spec) == sorted(frames)
    text = spec.format()
    assert F.parse(text) == spec
    assert F.parse(text).format() == text


def test_framespec_is_immutable_hashable_and_sorted() -> None:
    spec = F.FrameSpec((5, 1, 3, 3))
    assert spec.frames == (1, 3, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.frames = (2,)  # type: ignore[misc]
    assert spec == F.parse("1-5x2")
    assert hash(spec) == hash(F.parse("1,3,5"))
    assert 3 in spec and 2 not in spec and "3" not in spec
    assert spec.step == 2 and F.parse("1,2,4").step is None
    assert F.FrameSpec.parse("fml:2", base=spec) == F.parse("1,5")


def test_from_range_is_blenders_start_end_step() -> None:
    assert list(F.FrameSpec.from_range(1, 24, 2)) == list(range(1, 25, 2))
    assert F.FrameSpec.from_range(-4, 4).format() == "-4-4"
    with pytest.raises(InputError, match="step must be 1 or more"):
        F.FrameSpec.from_range(1, 10, 0)
    with pytest.raises(InputError, match="backwards"):
        F.FrameSpec.from_range(10, 1)


# --- errors -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "quoted", "advice"),
    [
        ("10-1x0", '"10-1x0"', 'step must be 1 or more; write "1-10"'),
        ("1-10x0", '"1-10x0"', "step must be 1 or more"),
        ("1-10x-2", '"1-10x-2"', "step must be 1 or more"),
        ("abc", '"abc"', "write frames like 1-100"),
        ("1-10,abc", '"abc" in "1-10,abc"', "is not a frame or a range"),
        ("10-1", '"10-1"', 'runs backwards; write "1-10"'),
        ("10-1x2", '"10-1x2"', 'write "1-10x2"'),
        ("1-5x", '"1-5x"', 'no step after "x"; write "1-5"'),
        ("", "the frame spec is empty", "write frames like"),
        ("   ", "the frame spec is empty", "write frames like"),
        ("1,,5", '"1,,5"', "remove the extra comma"),
        ("1-10y2", '"1-10y2"', 'only "x" steps are supported; write "1-10x2"'),
        ("1-10:2", '"1-10:2"', 'write "1-10x2"'),
        ("1.5-3", '"1.5-3"', "whole numbers"),
        ("1 5", '"1 5"', "separate frames with commas"),
        ("fml:0", '"fml:0"', "N must be 1 or more"),
        ("auto:x", '"auto:x"', "N must be a whole number"),
        ("auto:0", '"auto:0"', "N must be 1 or more"),
        ("foo:3", '"foo:3"', "use fml:N or auto:N"),
        ("1-2000000", '"1-2000000"', "2,000,000 frames, more than the 1,000,000"),
        ("1,5-1000005", '"5-1000005" in "1,5-1000005"', "split it into several jobs"),
        ("1234567890", '"1234567890"', "at most 9 digits"),
    ],
)
def test_errors_quote_the_bad_part_and_say_what_to_write(spec: str, quoted: str, advice: str) -> None:
    with pytest.raises(InputError) as info:
        F.parse(spec, base=F.parse("1-100"))
    message = str(info.value)
    assert quoted in message
    assert advice in message


def test_fml_and_auto_need_a_base() -> None:
    for spec in ("fml:3", "auto:5", "1,fml:2"):
        assert F.is_relative(spec)
        with pytest.raises(InputError, match="base range"):
            F.parse(spec)
    assert not F.is_relative("1-10,20")


def test_overlapping_parts_can_fill_a_job_but_not_overflow_it() -> None:
    assert len(F.parse("1-600000,1-600000")) == 600_000
    with pytest.raises(InputError, match="1,200,000 frames"):
        F.parse("1-600000,600001-1200000")


# --- fml / auto ---------------------------------------------------------------------------------------------------
def _cioseq_subsample(frames: List[int], count: int) -> List[int]:
    """Conductor cioseq's Sequence.subsample, as published (float accumulation), as an oracle for auto:N."""
    n = len(frames)
    count = sorted([1, count, n])[1]
    gap = n / float(count)
    pos = gap / 2.0
    out = []
    for _ in range(count):
        out.append(frames[int(pos)])
        pos += gap
    return out


def test_fml_examples() -> None:
    base = F.parse("1-101")
    assert list(F.parse("fml:3", base=base)) == [1, 51, 101]
    assert list(F.parse("fml:5", base=base)) == [1, 26, 51, 76, 101]
    assert list(F.parse("fml:2", base=base)) == [1, 101]
    assert list(F.parse("fml:1", base=base)) == [1]
    assert list(F.parse("FML:3", base=F.parse("1-99x2"))) == [1, 51, 99]  # the 26th of 50 frames is the middle
    assert list(F.parse("fml:3", base=F.parse("1-9x2"))) == [1, 5, 9]
    assert list(F.parse("fml:50", base=F.parse("1-5"))) == [1, 2, 3, 4, 5]  # clamped to the base
    assert list(F.parse("fml:2,50", base=base)) == [1, 50, 101]


@given(st.lists(st.integers(-2000, 2000), min_size=1, max_size=400, unique=True), st.integers(1, 60))
def test_fml_spreads_evenly_including_first_and_last(base_frames: List[int], count: int) -> None:
    base = F.FrameSpec.from_frames(base_frames)
    picked = list(F.parse(f"fml:{count}", base=base))
    ordered = list(base)
    assert picked == sorted(set(picked)) and set(picked) <= set(ordered)
    assert len(picked) == min(count, len(ordered))
    assert picked[0] == ordered[0]
    if min(count, len(ordered)) >= 2:
        assert picked[-1] == ordered[-1]
        n = len(ordered)
        for i, frame in enumerate(picked):
            ideal = i * (n - 1) / (min(count, n) - 1)
            assert abs(ordered.index(frame) - ideal) <= 0.5 + 1e-9


@given(st.lists(st.integers(-2000, 2000), min_size=1, max_size=400, unique=True), st.integers(1, 60))
def test_auto_matches_cioseq_subsample(base_frames: List[int], count: int) -> None:
    base = F.FrameSpec.from_frames(base_frames)
    ordered = sorted(base_frames)
    picked = list(F.parse(f"auto:{count}", base=base))
    reference = _cioseq_subsample(ordered, count)
    assert len(picked) == len(reference) == min(count, len(ordered))
    n, k = len(ordered), len(picked)
    for i, (ours, theirs) in enumerate(zip(picked, reference)):
        middle = Fraction(2 * i + 1, 2) * Fraction(n, k)  # the middle of slice i, exactly
        assert ordered.index(ours) == math.floor(middle)
        # cioseq accumulates floats, so where the middle is a whole index it may land one frame early
        if middle.denominator != 1:
            assert ours == theirs
        else:
            assert ordered.index(theirs) in (middle - 1, middle)


# --- chunks -------------------------------------------------------------------------------------------------------
@given(frame_sets, st.integers(1, 40))
def test_chunks_partition_the_frames_exactly(frames: set, size: int) -> None:
    spec = F.FrameSpec.from_frames(frames)
    result = F.chunks(spec, size)
    flat = [f for c in result for f in c.frames]
    assert flat == sorted(frames)  # nothing lost, duplicated or reordered
    assert [c.index for c in result] == list(range(len(result)))
    assert all(c.count == size for c in result[:-1]) and 1 <= result[-1].count <= size
    for chunk in result:
        assert list(F.parse(chunk.spec)) == chunk.frames


@given(st.integers(-200, 200), st.integers(1, 80), st.integers(1, 9), st.integers(1, 12))
def test_chunks_keep_the_step(start: int, count: int, step: int, size: int) -> None:
    end = start + (count - 1) * step
    spec = F.parse(f"{start}-{end}x{step}")
    for chunk in F.chunks(spec, size):
        assert all(b - a == step for a, b in zip(chunk.frames, chunk.frames[1:]))
        if chunk.count >= 3 and step > 1:
            assert chunk.spec == f"{chunk.first}-{chunk.last}x{step}"


def test_chunk_of_a_stepped_range_is_never_contiguous() -> None:
    first = F.chunks("1-100x2", 4)[0]
    assert first.frames == [1, 3, 5, 7] and first.spec == "1-7x2"
    assert len(F.chunks("1-100x2", 4)) == 13


@pytest.mark.parametrize("size", [0, -3, 1.5, "4", True])
def test_chunk_size_must_be_a_positive_whole_number(size: object) -> None:
    with pytest.raises(InputError, match="chunk size"):
        F.chunks("1-10", size)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="chunk size"):
        F.plan("1-10", size)  # type: ignore[arg-type]


# --- scout frames ---------------------------------------------------------------------------------------------------
def test_resolve_scout() -> None:
    job = F.parse("1-100x2")
    assert F.resolve_scout("fml:3", job) == [1, 51, 99]
    assert F.resolve_scout("auto:2", job) == _cioseq_subsample(list(job), 2)
    assert F.resolve_scout("1,2,3,500", job) == [1, 3]  # only frames the job renders
    assert F.resolve_scout("  ", job) == []
    with pytest.raises(InputError) as info:
        F.resolve_scout("2,4,500-600", job)
    assert '"2,4,500-600"' in str(info.value) and '"1-99x2"' in str(info.value)
    with pytest.raises(InputError, match='scout frames: "abc"'):
        F.resolve_scout("abc", job)


@given(frame_sets, frame_sets, st.integers(1, 20))
def test_plan_marks_exactly_the_chunks_holding_scout_frames(job_frames: set, scout: set, size: int) -> None:
    job = F.FrameSpec.from_frames(job_frames)
    scout_text = F.FrameSpec.from_frames(scout).format()
    if not job_frames & scout:
        with pytest.raises(InputError):
            F.plan(job, size, scout_text)
        return
    planned = F.plan(job, size, scout_text)
    assert planned.scout_frames == sorted(job_frames & scout)
    assert planned.scout_ignored == sorted(scout - job_frames)
    for chunk in planned.chunks:
        assert chunk.scout == bool(set(chunk.frames) & scout)
    assert {c.index for c in planned.scout_chunks} | {c.index for c in planned.held_chunks} == set(
        range(len(planned.chunks))
    )
    assert [f for c in planned.chunks for f in c.frames] == sorted(job_frames)


def test_plan_without_scout_holds_nothing() -> None:
    planned = F.plan("1-10", 3)
    assert planned.scout_frames == [] and planned.held_chunks == [] and planned.scout_chunks == []
    assert [c.spec for c in planned.chunks] == ["1-3", "4-6", "7-9", "10"]


# --- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frames", "1-100x2", "--chunk-size", "4", "--scout", "fml:3"]) == 0
    out = capsys.readouterr().out
    assert "frames: 50 (1-99x2)" in out
    assert "chunks: 13 of up to 4 frames" in out
    lines = out.splitlines()
    row = next(line for line in lines if " 1-7x2 " in line)
    assert row.split() == ["0", "1-7x2", "4", "yes"]
    assert next(line for line in lines if " 9-15x2 " in line).split() == ["1", "9-15x2", "4"]
    assert "scout frames: 3 (1,51,99) from fml:3" in out
    assert "3 chunk(s) render first; 10 held until released" in out


def test_cli_abbreviates_long_output_but_keeps_scout_chunks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frames", "1-1000", "--chunk-size", "10", "--scout", "505"]) == 0
    out = capsys.readouterr().out
    assert "1, 2, 3" in out and "..., 996, 997, 998, 999, 1000" in out and " 500," not in out
    rows = [line.split() for line in out.splitlines()]
    specs = [row[1] for row in rows if len(row) >= 3 and row[0].isdigit() and row[2].isdigit()]
    assert specs[:2] == ["1-10", "11-20"] and "501-510" in specs and specs[-1] == "991-1000"
    assert len(specs) < 20


def test_cli_base_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frames", "fml:3", "--base", "1001-1100", "--chunk-size", "2", "--scout", "1100,5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] == [1001, 1051, 1100] and data["spec"] == "1001,1051,1100" and data["count"] == 3
    assert data["base"] == "1001-1100" and data["input"] == "fml:3"
    assert [c["frames"] for c in data["chunks"]] == [[1001, 1051], [1100]]
    assert [c["scout"] for c in data["chunks"]] == [False, True]
    assert data["scout"]["frames"] == [1100] and data["scout"]["ignored"] == [5]
    assert data["scout"]["chunks"] == [1] and data["scout"]["held_chunks"] == 1


def test_cli_negative_frames_after_double_dash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frames", "--chunk-size", "4", "--scout=-1", "--", "-10--1"]) == 0
    out = capsys.readouterr().out
    assert "frames: 10 (-10--1)" in out and "-10, -9, -8" in out
    assert [row.split()[:3] for row in out.splitlines() if " -2-" in row or "-10--7" in row] == [
        ["0", "-10--7", "4"],
        ["2", "-2--1", "2"],
    ]
    assert "scout frames: 1 (-1) from -1" in out


def test_cli_rich_table_on_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames_cmd, "_is_tty", lambda: True)
    assert main(["frames", "1-20x3", "--chunk-size", "3", "--scout", "auto:1"]) == 0
    out = capsys.readouterr().out
    assert "│" in out  # a rich table, not the plain layout
    assert "1-7x3" in out and "10-16x3" in out and "19" in out
    assert "scout frames: 1 (10) from auto:1" in out


@pytest.mark.parametrize(
    ("argv", "quoted"),
    [
        (["frames", "10-1x0"], '"10-1x0"'),
        (["frames", "abc"], '"abc"'),
        (["frames", "fml:3"], "--base"),
        (["frames", "1-10", "--chunk-size", "0"], "chunk size must be 1 or more"),
        (["frames", "1-10", "--scout", "50"], '"50"'),
    ],
)
def test_cli_bad_input_exits_1_with_the_message(
    argv: List[str], quoted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tether: error: ") and quoted in captured.err
