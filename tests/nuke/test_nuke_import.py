"""Import: a finished job's files -> nodes beside the plate, checked against independently computed expectations."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path
from typing import Dict, List, Tuple

import nuke
import pytest
from tether.errors import InputError
from tether.nukeimport import (
    ResultFiles,
    describe_import,
    import_to_nk,
    parse_curve,
    parse_nk,
    to_nk,
)
from tether.nukeimport.nk import Expression, channel_curves, knob_script
from tether_nuke.importer import apply_description
from tether_nuke.plate_reader import read_plate

N = 20
FILE_FIRST, FILE_LAST = 1005, 1024  # the Read's range (files 1001-1100 on disk)
START = 2001  # frame_mode "start at": the plate's first frame on the timeline


def png(path: Path, width: int, height: int) -> None:
    """A real (grey, 8-bit) PNG: signature, IHDR, IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + bytes(width) for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_plate(tmp_path: Path, mode: str = "start at", frame: str = str(START)) -> nuke.Node:
    folder = tmp_path / "plate"
    folder.mkdir()
    for n in range(1001, 1101):
        (folder / f"plate.{n:04d}.exr").write_bytes(b"v/1\x01")
    read = nuke.nodes.Read()
    read.setName("Plate1")
    read["file"].setValue(f"{folder.as_posix()}/plate.####.exr")
    read["first"].setValue(FILE_FIRST)
    read["last"].setValue(FILE_LAST)
    read["origfirst"].setValue(1001)
    read["origlast"].setValue(1100)
    read["frame_mode"].setValue(mode)
    read["frame"].setValue(frame)
    read["colorspace"].setValue("ACES - ACEScg")
    read.setXYpos(-300, 120)
    return read


# --- a known camera path, and what Nuke must show for it ------------------------------------------------------------
def known_camera(k: int) -> Dict[str, float]:
    return {"tx": 2 * math.sin(k / 5), "ty": 1.5 + 0.1 * k, "tz": 10 - 0.2 * k,
            "rx": -3 + 0.5 * k, "ry": 20 * math.cos(k / 7), "rz": 0.25 * k, "focal": 35.0 + k}


SENSOR = (36.0, 24.0)


def write_chan(path: Path) -> None:
    lines = []
    for k in range(N):
        c = known_camera(k)
        vfov = math.degrees(2 * math.atan((SENSOR[1] / 2) / c["focal"]))  # vertical FOV through the vertical gate
        lines.append(f"{k + 1} {c['tx']:.9f} {c['ty']:.9f} {c['tz']:.9f} {c['rx']:.9f} {c['ry']:.9f} "
                     f"{c['rz']:.9f} {vfov:.9f}")
    path.write_text("# frame tx ty tz rx ry rz vfov\n" + "\n".join(lines) + "\n")


def write_json(path: Path) -> None:
    """A variant: radians, lower-case XYZ order, frames numbered 0..N-1, horizontal FOV."""
    frames = []
    for k in range(N):
        c = known_camera(k)
        hfov = 2 * math.atan((SENSOR[0] / 2) / c["focal"])
        frames.append({"frame": k, "position": [c["tx"], c["ty"], c["tz"]],
                       "rotation": [math.radians(c["rx"]), math.radians(c["ry"]), math.radians(c["rz"])],
                       "hfov": hfov})
    path.write_text(json.dumps({"camera": {"rotation_order": "xyz", "units": {"angle": "radians"},
                                           "film_back_mm": list(SENSOR), "frames": frames}}))


def check_camera(cam: nuke.Node, order: str) -> None:
    assert cam["rot_order"].value() == order
    assert cam["haperture"].value() == pytest.approx(SENSOR[0])
    assert cam["vaperture"].value() == pytest.approx(SENSOR[1])
    for k in range(N):
        frame = START + k
        c = known_camera(k)
        for i, name in enumerate(("tx", "ty", "tz")):
            assert cam["translate"].getValueAt(frame, i) == pytest.approx(c[name], abs=1e-6), (frame, name)
        for i, name in enumerate(("rx", "ry", "rz")):
            assert cam["rotate"].getValueAt(frame, i) == pytest.approx(c[name], abs=1e-6), (frame, name)
        assert cam["focal"].getValueAt(frame) == pytest.approx(c["focal"], abs=1e-6), frame
    keyed = sorted(k.x for k in cam["translate"].animation(0).keys())  # noqa: SIM118 (Nuke's AnimationCurve)
    assert keyed == [float(START + k) for k in range(N)]  # plate frames, not 1..N, not file frames


@pytest.mark.parametrize("kind", ["chan", "json"])
def test_camera_curves_match_the_known_path_on_plate_frames(tmp_path: Path, kind: str) -> None:
    read = make_plate(tmp_path)
    camera_file = tmp_path / f"camera.{kind}"
    (write_chan if kind == "chan" else write_json)(camera_file)
    plate = read_plate(read)
    assert plate.plate_range == (START, START + N - 1)
    desc = describe_import(plate, ResultFiles(cameras=[camera_file]), sensor=SENSOR)
    applied = apply_description(desc)
    cam = nuke.toNode(applied.names["Plate1_camera"])
    assert cam is not None and cam.Class() == "Camera3"
    check_camera(cam, "ZXY" if kind == "chan" else "XYZ")


def test_camera_from_the_nk_text_matches_too(tmp_path: Path) -> None:
    """The .nk writer's curve text, read by the fake's own parser, gives the same values frame by frame."""
    read = make_plate(tmp_path)
    write_chan(tmp_path / "camera.chan")
    desc = describe_import(read_plate(read), ResultFiles(cameras=[tmp_path / "camera.chan"]), sensor=SENSOR)
    parsed = {n.name: n for n in parse_nk(to_nk(desc))}
    cam_text = parsed["Plate1_camera"]
    cam = nuke.nodes.Camera3()
    for knob in ("rot_order", "translate", "rotate", "focal", "haperture", "vaperture"):
        cam[knob].fromScript(cam_text.knobs[knob])
    check_camera(cam, "ZXY")
    # and Tether's own reader agrees with the fake's
    tx = parse_curve(channel_curves(cam_text.knobs["translate"])[0])
    assert [f for f, _ in tx] == [float(START + k) for k in range(N)]


def test_focal_without_sensor_uses_a_gate_with_the_plates_aspect(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    chan = tmp_path / "c.chan"
    chan.write_text("1 0 0 0 0 0 0 40\n2 0 0 0 0 1 0 40\n")
    desc = describe_import(read_plate(read), ResultFiles(cameras=[chan]))
    cam = nuke.toNode(apply_description(desc).names["Plate1_camera"])
    assert cam is not None
    hap, vap = cam["haperture"].value(), cam["vaperture"].value()
    assert hap == pytest.approx(24.576) and vap == pytest.approx(24.576 * 1080 / 1920)
    assert cam["focal"].value() == pytest.approx((vap / 2) / math.tan(math.radians(20)))


def test_camera4_knobs_are_probed(tmp_path: Path) -> None:
    nuke._CLASSES_AVAILABLE.discard("Camera3")
    nuke._CLASSES_AVAILABLE.discard("Camera2")
    read = make_plate(tmp_path)
    write_chan(tmp_path / "camera.chan")
    desc = describe_import(read_plate(read), ResultFiles(cameras=[tmp_path / "camera.chan"]), sensor=SENSOR)
    cam = nuke.toNode(apply_description(desc).names["Plate1_camera"])
    assert cam is not None and cam.Class() == "Camera4"
    assert cam["rotation_order"].value() == "ZXY"
    assert cam["focal_length"].getValueAt(START + 3) == pytest.approx(known_camera(3)["focal"])


def test_fbx_goes_through_nukes_reader_and_json_wins_when_both_came(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    fbx = tmp_path / "camera.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00")
    plate = read_plate(read)
    cam = nuke.toNode(apply_description(describe_import(plate, ResultFiles(cameras=[fbx]))).names["Plate1_camera"])
    assert cam is not None and cam["read_from_file"].value() is True and cam["file"].value() == fbx.as_posix()
    write_json(tmp_path / "camera.json")
    desc = describe_import(plate, ResultFiles(cameras=[fbx, tmp_path / "camera.json"]))
    assert "read_from_file" not in desc.by_role("camera")[0].knobs
    assert any("camera.fbx not imported" in note for note in desc.notes)


# --- cameras Nuke reads itself (FBX, Alembic), on plate frames ---------------------------------------------------
@pytest.mark.parametrize("ext", ["fbx", "abc"])
@pytest.mark.parametrize(("mode", "frame", "expression", "plate_start"), [
    ("expression", "", "frame-1004", 1005),  # the plate on its own file numbers (1005-1024), results 1..N
    ("start at", str(START), "frame-2000", START),  # the plate placed at 2001
    ("offset", "-1000", "frame-4", 5),  # the plate moved back 1000 frames: file 1005 is plate 5
])
def test_a_camera_file_is_read_on_the_plates_frames(tmp_path: Path, ext: str, mode: str, frame: str,
                                                     expression: str, plate_start: int) -> None:
    read = make_plate(tmp_path, mode, frame)
    nuke.root()["fps"].setValue(25.0)  # not Nuke's default 24, so the rate set is the plate's
    camera_file = tmp_path / f"solve.{ext}"
    camera_file.write_bytes(b"Kaydara FBX Binary  \x00" if ext == "fbx" else b"Ogawa\x00")
    plate = read_plate(read)
    assert plate.plate_range == (plate_start, plate_start + N - 1)
    desc = describe_import(plate, ResultFiles(cameras=[camera_file]))
    spec = desc.by_role("camera")[0]
    assert spec.node_class == "Camera3"
    assert dict(spec.knobs) == {"read_from_file": True, "file": camera_file.as_posix(), "frame_rate": 25.0,
                                "use_frame": True, "frame": expression}
    assert isinstance(spec.knobs["frame"], Expression)
    assert any(f"frames 1-{N} are shown on plate frames {plate_start}-{plate_start + N - 1}" in note
               for note in desc.notes)
    # the .nk: only knobs every classic Camera has; use_frame/frame are named in a comment, not written, because
    # a script cannot probe the Nuke that opens it and an unknown knob is an error when it loads
    text = to_nk(desc)
    cam_text = {n.name: n for n in parse_nk(text)}["Plate1_camera"]
    assert cam_text.node_class == "Camera3"
    assert "use_frame" not in cam_text.knobs and "frame" not in cam_text.knobs
    assert "# Plate1_camera: use_frame, frame not written" in text
    assert cam_text.knobs["read_from_file"] == "true" and cam_text.knobs["frame_rate"] == "25"
    # the expression as Nuke writes one on a one-value knob, read back by a knob
    assert knob_script(spec.knobs["frame"]) == "{{" + expression + "}}"
    from_nk = nuke.nodes.Camera3()
    for knob in ("read_from_file", "file", "frame_rate"):
        from_nk[knob].fromScript(cam_text.knobs[knob])
    from_nk["use_frame"].setValue(True)
    from_nk["frame"].fromScript(knob_script(spec.knobs["frame"]))
    # applied in Nuke: plate frame k-th of the clip reads result frame k (1-based) of the file
    cam = nuke.toNode(apply_description(desc).names["Plate1_camera"])
    assert cam is not None and cam.Class() == "Camera3"
    for node in (cam, from_nk):
        assert node["read_from_file"].value() is True and node["file"].value() == camera_file.as_posix()
        assert node["use_frame"].value() is True and node["frame_rate"].value() == 25.0
        assert node["frame"].hasExpression()
        assert node["frame"].getValueAt(plate_start) == 1.0
        assert node["frame"].getValueAt(plate_start + 7) == 8.0
        assert node["frame"].getValueAt(plate_start + N - 1) == float(N)


def test_a_camera_file_follows_the_declared_result_numbering(tmp_path: Path) -> None:
    read = make_plate(tmp_path)  # plate frames 2001-2020
    fbx = tmp_path / "camera.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00")
    plate = read_plate(read)
    zero_based = describe_import(plate, ResultFiles(cameras=[fbx]), result_base=0).by_role("camera")[0]
    assert zero_based.knobs["frame"] == "frame-2001"  # result frame 0 on plate frame 2001
    own_numbers = describe_import(plate, ResultFiles(cameras=[fbx]), result_base=START).by_role("camera")[0]
    assert own_numbers.knobs["frame"] == "frame"  # already on plate frames: read as they are
    cam = nuke.toNode(apply_description(describe_import(plate, ResultFiles(cameras=[fbx]), result_base=0))
                      .names["Plate1_camera"])
    assert cam is not None and cam["frame"].getValueAt(START) == 0.0
    assert knob_script(Expression("frame+12")) == "{{frame+12}}"
    with pytest.raises(ValueError, match="cannot write the expression"):
        knob_script(Expression("frame} {x"))


def test_camera_preference_is_solve_then_fbx_then_abc(tmp_path: Path) -> None:
    plate = read_plate(make_plate(tmp_path))
    fbx, abc = tmp_path / "camera.fbx", tmp_path / "camera.abc"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00")
    abc.write_bytes(b"Ogawa\x00")
    desc = describe_import(plate, ResultFiles(cameras=[abc, fbx]))
    assert [s.knobs["file"] for s in desc.by_role("camera")] == [fbx.as_posix()]
    assert any(note.startswith("camera.abc not imported: camera.fbx") for note in desc.notes)
    write_chan(tmp_path / "camera.chan")
    desc = describe_import(plate, ResultFiles(cameras=[abc, tmp_path / "camera.chan", fbx]), sensor=SENSOR)
    (spec,) = desc.by_role("camera")
    assert "read_from_file" not in spec.knobs and "translate" in spec.knobs
    assert any(note.startswith("camera.fbx, camera.abc not imported: camera.chan") for note in desc.notes)


def test_an_alembic_camera_from_the_classifier_is_imported(tmp_path: Path) -> None:
    from tether.autopilot.results import classify_folder

    read = make_plate(tmp_path)
    folder = tmp_path / "job"
    (folder / "tracking").mkdir(parents=True)
    (folder / "tracking" / "camera.abc").write_bytes(b"Ogawa\x00")
    classified = classify_folder(folder)
    assert [p.name for p in classified.cameras] == ["camera.abc"]
    assert ResultFiles.from_classified(classified) is classified  # one class: the classifier's is the import's
    for files in (classified, ResultFiles.from_folder(folder)):
        desc = describe_import(read_plate(read), files)
        (spec,) = desc.by_role("camera")
        assert spec.knobs["file"].endswith("tracking/camera.abc") and spec.knobs["frame"] == "frame-2000"
        assert not any("not understood" in note for note in desc.notes)


# --- mattes -----------------------------------------------------------------------------------------------------
def matte_files(folder: Path, numbers: List[int], size: Tuple[int, int] = (48, 27), pad: int = 5) -> List[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in numbers:
        path = folder / f"{n:0{pad}d}.png"
        png(path, *size)
        out.append(path)
    return out


@pytest.mark.parametrize(("numbers", "mode", "frame"), [
    (list(range(1, N + 1)), "start at", str(START)),  # Autopilot's 1..N
    (list(range(0, N)), "offset", str(START - FILE_FIRST)),  # 0..N-1, plate placed with an offset
    (list(range(FILE_FIRST, FILE_LAST + 1)), "expression", f"frame-{START - FILE_FIRST}"),  # the file's numbers
])
def test_mattes_land_on_the_plates_frames(tmp_path: Path, numbers: List[int], mode: str, frame: str) -> None:
    read = make_plate(tmp_path, mode, frame)
    assert (read.firstFrame(), read.lastFrame()) == (START, START + N - 1) or mode == "expression"
    files = matte_files(tmp_path / "mattes", numbers)
    plate = read_plate(read)
    assert plate.plate_range == (START, START + N - 1)
    applied = apply_description(describe_import(plate, ResultFiles(mattes=files)))
    matte = nuke.toNode(applied.names["Plate1_roto"])
    assert matte is not None
    # the matte Read's output range (computed by the fake from its own knobs) is the plate's
    assert (matte.firstFrame(), matte.lastFrame()) == (START, START + N - 1)
    assert matte["raw"].value() is True
    assert matte["file"].value().endswith("#####.png")
    copy = nuke.toNode(applied.names["Plate1_roto_alpha"])
    fit = nuke.toNode(applied.names["Plate1_roto_fit"])
    assert copy is not None and fit is not None
    assert copy.input(0) is read and copy.input(1) is fit and fit.input(0) is matte
    assert (copy["from0"].value(), copy["to0"].value()) == ("rgba.red", "rgba.alpha")
    assert fit["format"].value().width() == 1920 and fit["format"].value().name() == "HD_1080"


def test_mattes_of_the_plates_size_need_no_reformat_and_gaps_are_named(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    nuke.addFormat("64 36 1 tiny")
    read["format"].setValue("tiny")
    files = matte_files(tmp_path / "m", [n for n in range(1, N + 1) if n not in (4, 5)], size=(64, 36))
    desc = describe_import(read_plate(read), ResultFiles(mattes=files))
    assert [s.role for s in desc.nodes] == ["matte", "alpha"]
    assert any(f"{START + 3}-{START + 4}" in note for note in desc.notes)
    assert desc.nodes[0].knobs["on_error"] == "black"


def test_results_that_do_not_fit_the_clip_are_refused(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    files = matte_files(tmp_path / "m", list(range(1, N + 6)))
    with pytest.raises(InputError, match="do not line up with the 20 frames sent"):
        describe_import(read_plate(read), ResultFiles(mattes=files))


def test_depth_reads_are_raw_on_plate_frames(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    jpgs = tmp_path / "depth"
    jpgs.mkdir()
    for n in range(1, N + 1):
        (jpgs / f"depth.{n:04d}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    mov = tmp_path / "depth.mov"
    mov.write_bytes(b"not really a movie")
    desc = describe_import(read_plate(read), ResultFiles(depth=[*sorted(jpgs.iterdir()), mov]))
    applied = apply_description(desc)
    for spec_name in ("Plate1_depth", "Plate1_depth2"):
        node = nuke.toNode(applied.names[spec_name])
        assert node is not None and node["raw"].value() is True
        assert (node.firstFrame(), node.lastFrame()) == (START, START + N - 1)


# --- one undo step, names, positions, the plate found by name ---------------------------------------------------------
def test_one_import_is_one_undo_step_beside_the_plate(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    write_chan(tmp_path / "camera.chan")
    files = ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1))), cameras=[tmp_path / "camera.chan"])
    desc = describe_import(read_plate(read), files, sensor=SENSOR)
    read.setXYpos(500, 900)  # moved while the job ran
    applied = apply_description(desc)
    made = [nuke.toNode(n) for n in applied.names.values()]
    assert all(n is not None for n in made)
    assert all(n.xpos() > 500 for n in made if n is not None)  # to the right of the plate
    assert sorted(n.name() for n in nuke.selectedNodes()) == sorted(applied.names.values())
    nuke.undo()
    assert [n.name() for n in nuke.allNodes()] == ["Plate1"]


def test_names_do_not_collide_with_an_earlier_import(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    files = ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1))))
    desc = describe_import(read_plate(read), files)
    first = apply_description(desc)
    second = apply_description(desc)
    assert first.names["Plate1_roto"] == "Plate1_roto"
    assert second.names["Plate1_roto"] != "Plate1_roto"
    copy = nuke.toNode(second.names["Plate1_roto_alpha"])
    assert copy is not None and copy.input(1) is nuke.toNode(second.names["Plate1_roto_fit"])


def test_a_failing_import_leaves_nothing_behind(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    desc = describe_import(read_plate(read), ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1)))))
    desc.nodes[-1].knobs["to0"] = "not a channel"
    with pytest.raises(InputError, match=r"Plate1_roto_alpha\.to0"):
        apply_description(desc)
    assert [n.name() for n in nuke.allNodes()] == ["Plate1"]


def test_a_deleted_plate_is_named(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    desc = describe_import(read_plate(read), ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1)))))
    nuke.delete(read)
    with pytest.raises(InputError, match="Plate1 is no longer in this script"):
        apply_description(desc)


# --- the .nk ------------------------------------------------------------------------------------------------------
def test_nk_snippet_and_standalone_parse_back(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    write_chan(tmp_path / "camera.chan")
    files = ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1))), cameras=[tmp_path / "camera.chan"])
    plate = read_plate(read)
    out, desc = import_to_nk(plate.to_dict(), files, tmp_path / "out" / "import.nk", sensor=SENSOR)
    text = out.read_text()
    assert text.splitlines()[1] == "set cut_paste_input [stack 0]"
    nodes = {n.name: n for n in parse_nk(text)}
    assert [n.node_class for n in parse_nk(text)] == ["Read", "Reformat", "Copy", "Camera3"]
    assert nodes["Plate1_roto_alpha"].inputs == ["<paste>", "Plate1_roto_fit"]
    assert nodes["Plate1_roto_fit"].inputs == ["Plate1_roto"]
    assert nodes["Plate1_roto"].knobs["frame_mode"] == "start at"
    assert nodes["Plate1_roto"].knobs["frame"] == str(START)
    assert nodes["Plate1_camera"].knobs["translate"].startswith("{{curve x2001 ")
    standalone = parse_nk(to_nk(desc, standalone=True))
    assert standalone[0].name == "Plate1" and standalone[0].knobs["frame_mode"] == "start at"
    assert {n.name: n.inputs for n in standalone}["Plate1_roto_alpha"] == ["Plate1", "Plate1_roto_fit"]
    # the standalone plate Read reproduces the plate's range on the timeline
    plate_node = nuke.nodes.Read()
    for knob in ("first", "last", "frame_mode", "frame"):
        plate_node[knob].fromScript(standalone[0].knobs[knob])
    assert (plate_node.firstFrame(), plate_node.lastFrame()) == (START, START + N - 1)


def test_results_from_the_autopilot_classifier_are_accepted(tmp_path: Path) -> None:
    from tether.autopilot.results import classify_folder

    read = make_plate(tmp_path)
    folder = tmp_path / "job"
    matte_files(folder / "hard_mattes", list(range(1, N + 1)))
    (folder / "tracking").mkdir()
    write_chan(folder / "tracking" / "camera.chan")
    classified = classify_folder(folder)
    desc = describe_import(read_plate(read), ResultFiles.from_classified(classified), sensor=SENSOR)
    assert {s.role for s in desc.nodes} == {"matte", "fit", "alpha", "camera"}


def test_a_job_sent_from_the_command_line_imports_as_a_standalone_script(tmp_path: Path) -> None:
    """No Nuke plate: the record's clip facts make the plate; results numbered 1..N land on the clip's numbers."""
    extra = {"source": str(tmp_path / "shot.####.png"), "first_frame": 1001, "frame_count": N}
    files = ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1))))
    out, _ = import_to_nk(extra, files, tmp_path / "cli.nk", standalone=True)
    nodes = {n.name: n for n in parse_nk(out.read_text())}
    assert nodes["Plate1"].knobs["file"].endswith("shot.####.png")
    assert nodes["Plate1_roto"].knobs["frame"] == "1001"
    assert nodes["Plate1_roto_alpha"].inputs == ["Plate1", "Plate1_roto"]  # plate size unknown: no Reformat
    with pytest.raises(InputError, match="does not say which clip was sent"):
        import_to_nk({"source": "x"}, files, tmp_path / "bad.nk")
