"""Import: a finished job's files -> nodes beside the plate, checked against independently computed expectations."""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Tuple

import nuke
import pytest
from tether.errors import InputError
from tether.nukeimport import (
    PlateFacts,
    ResultFiles,
    describe_import,
    image_size,
    import_to_nk,
    parse_camera_json,
    parse_curve,
    parse_nk,
    to_nk,
)
from tether.nukeimport.nk import channel_curves
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
        # the plate's vertical FOV: Nuke shows it through the back's width over the plate's (16:9) aspect
        vfov = math.degrees(2 * math.atan((SENSOR[0] * 1080 / 1920 / 2) / c["focal"]))
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


def assert_same_nodes(text: str, made: Dict[str, str], plate: PlateFacts) -> None:
    """The .nk and the panel agree node for node: every node the script makes (but a standalone's plate Read) was
    made by the panel under the same name and class, wired to the same inputs, and each knob's script text, read
    by a fresh node of that class, gives the panel node's values on every plate frame."""
    nodes = [n for n in parse_nk(text) if not (n.node_class == "Read" and n.name == plate.node)]
    assert sorted(n.name for n in nodes) == sorted(made.values())
    frames = range(plate.plate_range[0] - 1, plate.plate_range[1] + 2)
    for parsed in nodes:
        node = nuke.toNode(parsed.name)
        assert node is not None and node.Class() == parsed.node_class, parsed.name
        wired = [node.input(i).name() if node.input(i) is not None else None  # type: ignore[union-attr]
                 for i in range(len(parsed.inputs))]
        assert wired == [plate.node if i == "<paste>" else i for i in parsed.inputs], parsed.name
        fresh = getattr(nuke.nodes, parsed.node_class)()
        for knob, script in parsed.knobs.items():
            if knob in ("name", "xpos", "ypos", "inputs"):
                continue
            fresh[knob].fromScript(script)
            if hasattr(node[knob], "getValueAt"):
                for i in range(node[knob].arraySize()):
                    assert [fresh[knob].getValueAt(f, i) for f in frames] == pytest.approx(
                        [node[knob].getValueAt(f, i) for f in frames]), (parsed.name, knob, i)
            else:
                assert plain(fresh[knob].value()) == plain(node[knob].value()), (parsed.name, knob)
        nuke.delete(fresh)


def plain(value: object) -> object:
    """A knob value comparable across nodes: a format by its numbers (the command line cannot know the name the
    comp gave the plate's format; a Reformat to a same-sized format of another name is the same image)."""
    if isinstance(value, nuke.Format):
        return (value.width(), value.height(), value.pixelAspect())
    return value


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


@pytest.mark.parametrize("unit", ["degrees", "radians"])
def test_json_fov_deg_fields_are_degrees_whatever_the_angle_unit(unit: str) -> None:
    """``vfov_deg``/``hfov_deg`` say their unit in their name; ``vfov``/``hfov`` and rotations follow the file's."""
    to_file = math.radians if unit == "radians" else float
    text = json.dumps({"angle_unit": unit, "frames": [
        {"frame": 1, "translate": [0, 0, 0], "rotate": [to_file(10), 0, 0], "vfov_deg": 38.0},
        {"frame": 2, "translate": [0, 0, 0], "rotate": [to_file(20), 0, 0], "vfov_deg": 40.0}]})
    track = parse_camera_json(text)
    assert track.vfov == pytest.approx([38.0, 40.0]) and [r[0] for r in track.rotate] == pytest.approx([10, 20])
    plain = parse_camera_json(text.replace("vfov_deg", "vfov"))
    assert plain.vfov == pytest.approx([to_file(38.0), to_file(40.0)] if unit == "degrees"
                                       else [math.degrees(38.0), math.degrees(40.0)])
    hfov = parse_camera_json(text.replace("vfov_deg", "hfov_deg"))
    assert hfov.hfov == pytest.approx([38.0, 40.0]) and hfov.vfov is None


def test_a_dpx_plate_says_its_size(tmp_path: Path) -> None:
    """DPX plates (big- or little-endian headers) give their size, so mattes of another size get a Reformat."""
    for magic, order in ((b"SDPX", ">"), (b"XPDS", "<")):
        dpx = tmp_path / f"plate_{order == '>'}.dpx"
        head = bytearray(2048)
        head[:4] = magic
        head[772:780] = struct.pack(order + "II", 2048, 858)
        dpx.write_bytes(bytes(head))
        assert image_size(dpx) == (2048, 858)


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


def test_a_nuke_without_a_classic_camera_is_told_so(tmp_path: Path) -> None:
    """Camera3, else Camera2 (the same knobs); the new system's Camera4 is not guessed at: a clear error, no nodes."""
    read = make_plate(tmp_path)
    write_chan(tmp_path / "camera.chan")
    desc = describe_import(read_plate(read), ResultFiles(cameras=[tmp_path / "camera.chan"]), sensor=SENSOR)
    nuke._CLASSES_AVAILABLE.discard("Camera3")
    cam = nuke.toNode(apply_description(desc).names["Plate1_camera"])
    assert cam is not None and cam.Class() == "Camera2"
    check_camera(cam, "ZXY")
    nuke._CLASSES_AVAILABLE.discard("Camera2")
    with pytest.raises(InputError, match="none of the node classes Camera3, Camera2"):
        apply_description(desc)
    assert sorted(n.Class() for n in nuke.allNodes()) == ["Camera2", "Read"]


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
@pytest.mark.parametrize(("mode", "frame", "plate_start"), [
    ("expression", "", 1005),  # the plate on its own file numbers (1005-1024), results 1..N
    ("start at", str(START), START),  # the plate placed at 2001
    ("offset", "-1000", 5),  # the plate moved back 1000 frames: file 1005 is plate 5
])
def test_a_camera_file_is_retimed_onto_the_plates_frames(tmp_path: Path, ext: str, mode: str, frame: str,
                                                         plate_start: int) -> None:
    read = make_plate(tmp_path, mode, frame)
    nuke.root()["fps"].setValue(25.0)  # not Nuke's default 24, so the rate set is the plate's
    camera_file = tmp_path / f"solve.{ext}"
    camera_file.write_bytes(b"Kaydara FBX Binary  \x00" if ext == "fbx" else b"Ogawa\x00")
    plate = read_plate(read)
    assert plate.plate_range == (plate_start, plate_start + N - 1)
    desc = describe_import(plate, ResultFiles(cameras=[camera_file]))
    camera, = desc.by_role("camera")
    retime, = desc.by_role("retime")
    assert camera.node_class == "Camera3"
    assert dict(camera.knobs) == {"read_from_file": True, "file": camera_file.as_posix(), "frame_rate": 25.0}
    assert retime.node_class == "TimeOffset" and retime.inputs == (camera.name,)
    # TimeOffset shows input frame f at f + time_offset: result frame k (1..N) must land on the k-th plate frame
    offset = retime.knobs["time_offset"]
    assert isinstance(offset, int)
    for k in (1, 8, N):
        assert k + offset == plate_start + k - 1
    assert any(f"frames 1-{N} are shown on plate frames {plate_start}-{plate_start + N - 1}" in note
               for note in desc.notes)
    applied = apply_description(desc)
    cam, shift = nuke.toNode(applied.names[camera.name]), nuke.toNode(applied.names[retime.name])
    assert cam is not None and shift is not None and shift.input(0) is cam
    assert cam["read_from_file"].value() is True and cam["frame_rate"].value() == 25.0
    assert shift["time_offset"].value() == offset
    out, _ = import_to_nk(plate, ResultFiles(cameras=[camera_file]), tmp_path / "cam.nk")
    assert_same_nodes(out.read_text(), applied.names, plate)


def test_a_camera_file_follows_the_declared_result_numbering(tmp_path: Path) -> None:
    read = make_plate(tmp_path)  # plate frames 2001-2020
    fbx = tmp_path / "camera.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \x00")
    plate = read_plate(read)
    zero_based = describe_import(plate, ResultFiles(cameras=[fbx]), result_base=0).by_role("retime")[0]
    assert zero_based.knobs["time_offset"] == START  # result frame 0 on plate frame 2001
    own_numbers = describe_import(plate, ResultFiles(cameras=[fbx]), result_base=START).by_role("retime")[0]
    assert own_numbers.knobs["time_offset"] == 0  # already on plate frames


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
        assert spec.knobs["file"].endswith("tracking/camera.abc")
        assert desc.by_role("retime")[0].knobs["time_offset"] == START - 1
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


@pytest.mark.parametrize("standalone", [False, True])
def test_importing_again_adds_a_version_beside_the_first(tmp_path: Path, standalone: bool) -> None:
    read = make_plate(tmp_path)
    write_chan(tmp_path / "camera.chan")
    files = ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1))), cameras=[tmp_path / "camera.chan"])
    plate = read_plate(read)
    desc = describe_import(plate, files, sensor=SENSOR)
    first = apply_description(desc)
    assert first.names == {n: f"{n}_v001" for n in desc.names}
    v1 = nuke.toNode("Plate1_camera_v001")
    assert v1 is not None
    v1["focal"].setValue(12.0)  # the artist's change to the first import
    second = apply_description(desc)
    assert second.names == {n: f"{n}_v002" for n in desc.names}
    assert v1["focal"].value() == 12.0  # never overwritten
    copy2 = nuke.toNode("Plate1_roto_alpha_v002")
    assert copy2 is not None and copy2.input(0) is read and copy2.input(1) is nuke.toNode("Plate1_roto_fit_v002")
    for name in desc.names:  # beside: the same column, below the first version
        a, b = nuke.toNode(f"{name}_v001"), nuke.toNode(f"{name}_v002")
        assert a is not None and b is not None and b.xpos() == a.xpos() and b.ypos() > a.ypos()
    # the .nk: written once, then the same job again into the same file
    out = tmp_path / "comp.nk"
    import_to_nk(plate, files, out, sensor=SENSOR, standalone=standalone)
    once = out.read_text()
    import_to_nk(plate, files, out, sensor=SENSOR, standalone=standalone)
    twice = out.read_text()
    assert twice.startswith(once)  # what was there is kept as it was
    parsed = {n.name: n for n in parse_nk(twice)}
    assert {f"{n}_v001" for n in desc.names} | {f"{n}_v002" for n in desc.names} <= set(parsed)
    plate_input = "Plate1" if standalone else "<paste>"
    assert parsed["Plate1_roto_alpha_v002"].inputs == [plate_input, "Plate1_roto_fit_v002"]
    assert len([n for n in parse_nk(twice) if n.node_class == "Read" and n.name == "Plate1"]) == int(standalone)


def test_a_script_tether_did_not_write_is_not_added_to(tmp_path: Path) -> None:
    plate = read_plate(make_plate(tmp_path))
    files = ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1))))
    out = tmp_path / "theirs.nk"
    out.write_text("Root {\n inputs 0\n}\nRead {\n inputs 0\n name Plate1\n}\n")
    with pytest.raises(InputError, match="give another --nk path; nothing was written"):
        import_to_nk(plate, files, out, standalone=True)
    assert out.read_text() == "Root {\n inputs 0\n}\nRead {\n inputs 0\n name Plate1\n}\n"


def test_a_failing_import_leaves_nothing_behind(tmp_path: Path) -> None:
    read = make_plate(tmp_path)
    desc = describe_import(read_plate(read), ResultFiles(mattes=matte_files(tmp_path / "m", list(range(1, N + 1)))))
    desc.nodes[-1].knobs["to0"] = "not a channel"
    with pytest.raises(InputError, match=r"Plate1_roto_alpha_v001\.to0"):
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
    assert nodes["Plate1_roto_alpha_v001"].inputs == ["<paste>", "Plate1_roto_fit_v001"]
    assert nodes["Plate1_roto_fit_v001"].inputs == ["Plate1_roto_v001"]
    assert nodes["Plate1_roto_v001"].knobs["frame_mode"] == "start at"
    assert nodes["Plate1_roto_v001"].knobs["frame"] == str(START)
    assert nodes["Plate1_camera_v001"].knobs["translate"].startswith("{{curve x2001 ")
    assert_same_nodes(text, apply_description(desc).names, plate)  # the panel makes the same nodes
    standalone = parse_nk(to_nk(desc, standalone=True))
    assert standalone[0].name == "Plate1" and standalone[0].knobs["frame_mode"] == "start at"
    assert {n.name: n.inputs for n in standalone}["Plate1_roto_alpha"] == ["Plate1", "Plate1_roto_fit"]
    # the standalone plate Read reproduces the plate's range on the timeline
    plate_node = nuke.nodes.Read()
    for knob in ("first", "last", "frame_mode", "frame"):
        plate_node[knob].fromScript(standalone[0].knobs[knob])
    assert (plate_node.firstFrame(), plate_node.lastFrame()) == (START, START + N - 1)


@pytest.mark.parametrize("project, config, root", [
    ("nuke-default", "", ["colorManagement Nuke", "OCIO_config nuke-default"]),
    ("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1", "ocio://cg-config-latest",
     ["colorManagement OCIO", "OCIO_config fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1"]),
    ("custom", "/show/colour/config.ocio",
     ["colorManagement OCIO", "OCIO_config custom", "customOCIOConfigPath /show/colour/config.ocio"]),
    ("", "/show/colour v2/config.ocio",  # the command line's --ocio-config
     ["colorManagement OCIO", "OCIO_config custom", 'customOCIOConfigPath "/show/colour v2/config.ocio"']),
    ("", "ocio://studio-config-latest", []),
    ("", "", []),
])
def test_a_standalone_script_names_the_config_its_reads_colour_comes_from(
        tmp_path: Path, project: str, config: str, root: List[str]) -> None:
    """A plate read under a studio config (``--colorspace ACEScg --ocio-config ...``, or a Nuke project's config)
    opens in a script whose Root uses that config, so its Reads' colour space names exist there."""
    plate = replace(read_plate(make_plate(tmp_path)), ocio_project=project, ocio_config=config)
    _, desc = import_to_nk(plate.to_dict(), ResultFiles(mattes=matte_files(tmp_path / "m", [1])), tmp_path / "a.nk")
    text = to_nk(desc, standalone=True)
    root_block = text[text.index("Root {"):text.index("}", text.index("Root {"))]
    assert [line.strip() for line in root_block.splitlines() if "olor" in line or "OCIO" in line] == root


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
    assert nodes["Plate1_roto_v001"].knobs["frame"] == "1001"
    assert nodes["Plate1_roto_alpha_v001"].inputs == ["Plate1", "Plate1_roto_v001"]  # size unknown: no Reformat
    with pytest.raises(InputError, match="does not say which clip was sent"):
        import_to_nk({"source": "x"}, files, tmp_path / "bad.nk")
