"""Reading the plate: padding, views, ranges, offsets, movies, and the problems that block sending."""

from __future__ import annotations

from pathlib import Path

import nuke
import pytest
from tether.errors import InputError
from tether.nukeimport import FrameMap, FramePattern, PlateFacts, check_plate, sequence_pattern
from tether_nuke.plate_reader import project_ocio_config, read_plate, selected_read


@pytest.mark.parametrize(("path", "frame", "expected"), [
    ("/s/plate.####.exr", 1001, "/s/plate.1001.exr"),
    ("/s/plate.%04d.exr", 7, "/s/plate.0007.exr"),
    ("/s/plate.%d.exr", 7, "/s/plate.7.exr"),
    ("/s/plate.#.exr", 7, "/s/plate.0007.exr"),  # a lone # is 4 digits to Nuke
    ("/s/v1.2/plate_%05d.dpx", 12, "/s/v1.2/plate_00012.dpx"),
])
def test_padding_forms(path: str, frame: int, expected: str) -> None:
    assert FramePattern.parse(path).frame(frame) == expected


def test_views_are_resolved_and_required() -> None:
    pattern = FramePattern.parse("/s/%V/plate.%v.####.exr")
    assert pattern.with_view("left").frame(1) == "/s/left/plate.l.0001.exr"
    with pytest.raises(InputError, match="choose which view"):
        pattern.with_view(None)


@pytest.mark.parametrize(("mode", "frame", "offset"), [
    ("start at", "1001", 1001 - 5), ("offset", "-4", -4), ("offset", "", 0), ("expression", "", 0),
    ("expression", "frame+10", -10), ("expression", "frame - 3", 3), ("start at", "1001.0", 996),
])
def test_offsets(mode: str, frame: str, offset: int) -> None:
    plate = PlateFacts(node="P", file="/s/p.####.exr", first=5, last=14, frame_mode=mode, frame=frame)
    assert plate.offset == offset
    assert plate.plate_range == (5 + offset, 14 + offset)


def test_an_expression_that_cannot_be_mapped_is_refused() -> None:
    plate = PlateFacts(node="P", file="/s/p.####.exr", first=5, last=14, frame_mode="expression", frame="frame*2")
    with pytest.raises(InputError, match="use frame_mode 'offset' or 'start at'"):
        _ = plate.offset


def test_frame_map_bases() -> None:
    fm = FrameMap(plate_start=2001, count=10, file_start=1005)
    assert fm.base(list(range(1, 11))) == 1
    assert fm.base(list(range(0, 10))) == 0
    assert fm.base(list(range(1005, 1015))) == 1005
    assert fm.base(list(range(2001, 2011))) == 2001
    assert fm.plate_frame(1, 1) == 2001 and fm.plate_frame(9, 0) == 2010
    with pytest.raises(InputError):
        fm.base(list(range(1, 30)))


def test_sequence_pattern_of_result_files(tmp_path: Path) -> None:
    assert sequence_pattern([tmp_path / f"m.{n:04d}.png" for n in (1, 2, 3)])[0].path.endswith("m.####.png")
    assert sequence_pattern([tmp_path / f"{n}.png" for n in (8, 9, 10)])[0].path.endswith("/%d.png")
    assert sequence_pattern([tmp_path / f"{n:04d}.png" for n in (999, 10000)])[0].padding == 4
    with pytest.raises(InputError, match="not one sequence"):
        sequence_pattern([tmp_path / "a.0001.png", tmp_path / "b.0002.png"])


def _read(tmp_path: Path, frames: range, missing: tuple = ()) -> nuke.Node:
    folder = tmp_path / "seq"
    folder.mkdir(exist_ok=True)
    for n in frames:
        if n not in missing:
            (folder / f"shot.{n:04d}.exr").write_bytes(b"v/1\x01")
    read = nuke.nodes.Read()
    read.setName("Plate1")
    read["file"].setValue(f"{folder.as_posix()}/shot.%04d.exr")
    read["first"].setValue(frames[0])
    read["last"].setValue(frames[-1])
    read["origfirst"].setValue(frames[0])
    read["origlast"].setValue(frames[-1])
    read.setSelected(True)
    return read


def test_read_node_facts(tmp_path: Path) -> None:
    read = _read(tmp_path, range(1001, 1011))
    nuke.root()["fps"].setValue(25.0)
    read["frame_mode"].setValue("offset")
    read["frame"].setValue("100")
    read["proxy"].setValue("/proxy/shot.####.jpg")
    assert selected_read() is read
    plate = read_plate(read)
    assert plate.file.endswith("shot.%04d.exr") and plate.fps == 25.0 and plate.sent_range == (1001, 1010)
    assert plate.plate_range == (1101, 1110) == (read.firstFrame(), read.lastFrame())
    assert (plate.width, plate.height, plate.format_name) == (1920, 1080, "HD_1080")
    assert check_plate(plate).ok
    assert PlateFacts.from_dict(plate.to_dict()) == PlateFacts.from_dict({**plate.to_dict()})


def test_movie_range_comes_from_the_node_and_the_whole_movie_is_sent(tmp_path: Path) -> None:
    movie = tmp_path / "plate.mov"
    movie.write_bytes(b"")
    read = nuke.nodes.Read()
    read["file"].setValue(movie.as_posix())
    read["first"].setValue(10)
    read["last"].setValue(40)
    read["origfirst"].setValue(1)
    read["origlast"].setValue(50)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("1001")
    plate = read_plate(read)
    assert plate.is_movie and plate.sent_range == (1, 50)
    assert plate.plate_range == (1001 - 9, 1001 - 9 + 49)  # movie frame 10 sits at 1001
    check = check_plate(plate)
    assert check.ok and any("whole movie is sent" in w for w in check.warnings)


def test_problems_are_named_before_sending(tmp_path: Path) -> None:
    assert check_plate(None).errors == ["no Read node selected: select the plate's Read node"]
    empty = PlateFacts(node="R", file="", first=1, last=1)
    assert "has no file" in check_plate(empty).errors[0]
    still = PlateFacts(node="R", file="/s/board.jpg", first=1, last=1)
    assert "still image" in check_plate(still).errors[0]
    plate = read_plate(_read(tmp_path, range(1001, 1021), missing=(1005, 1006, 1007, 1012)))
    errors = check_plate(plate, frame_limit=10, quota_remaining=5, sensor_width=36.0).errors
    assert any("frames 1005-1007,1012 are missing" in e for e in errors)
    assert any("over the limit of 10" in e for e in errors)
    assert any("5 frames left" in e for e in errors)
    assert any("sensor width was given without a sensor height" in e for e in errors)
    gone = PlateFacts(node="R", file=str(tmp_path / "nope.mov"), first=1, last=10)
    assert "does not exist" in check_plate(gone).errors[0]


def test_a_reads_colour_comes_with_the_projects_ocio_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)
    root = nuke.root()
    assert project_ocio_config() == ""  # Nuke's own colour management, no Nuke install here: the caller's default
    root["colorManagement"].setValue("OCIO")
    root["OCIO_config"].setValue("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    assert project_ocio_config() == "ocio://cg-config-latest"  # Foundry's CG config is OCIO's built-in one
    config = tmp_path / "show.ocio"
    root["OCIO_config"].setValue("custom")
    root["customOCIOConfigPath"].setValue(str(config))
    read = nuke.nodes.Read()
    read["file"].setValue(str(tmp_path / "plate.####.exr"))
    read["colorspace"].setValue("ACES - ACEScg")
    plate = read_plate(read)
    assert plate.ocio_config == str(config) and plate.colour.config == str(config)
    assert plate.colour.colorspace == "ACES - ACEScg"
    assert PlateFacts.from_dict(plate.to_dict()).ocio_config == str(config)  # recorded with the job
    monkeypatch.setenv("OCIO", str(config))
    assert project_ocio_config() == ""  # Nuke prefers $OCIO, and so does the send


def test_a_relative_file_is_recorded_as_nuke_resolves_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path is read against Nuke's working folder; the plate sent with a job names it absolutely, so a
    .nk written from it opens from anywhere."""
    monkeypatch.chdir(tmp_path)
    read = nuke.nodes.Read()
    read["file"].setValue("plates/shot.####.exr")
    plate = read_plate(read)
    assert plate.file == (tmp_path / "plates" / "shot.####.exr").as_posix()
    read["file"].setValue("/already/absolute.####.exr")
    assert read_plate(read).file == "/already/absolute.####.exr"


def test_a_file_in_fileseqs_ranged_form_names_the_frames_used(tmp_path: Path) -> None:
    """``plate.1-3####_v2.exr`` (a range and padding mid-name, text after it) is read as the pattern and its range,
    as `tether ... submit` reads it; a stepped range is refused, since a clip is one run of frames."""
    for n in range(1, 5):
        (tmp_path / f"plate.{n:04d}_v2.exr").write_bytes(b"v/1\x01")
    read = nuke.nodes.Read()
    read["file"].setValue(f"{tmp_path.as_posix()}/plate.1-3####_v2.exr")
    plate = read_plate(read)
    assert plate.file == f"{tmp_path.as_posix()}/plate.####_v2.exr"
    assert plate.sent_range == (1, 3) and (plate.origfirst, plate.origlast) == (1, 3)
    assert plate.files_to_send() == [str(tmp_path / f"plate.{n:04d}_v2.exr") for n in (1, 2, 3)]
    assert check_plate(plate).ok
    read["file"].setValue(f"{tmp_path.as_posix()}/plate.1-4x2####_v2.exr")
    with pytest.raises(InputError, match="one run of frames"):
        read_plate(read)
