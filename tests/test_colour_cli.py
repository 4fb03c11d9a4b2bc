"""`tether tensorpix submit` and `tether clipzy submit` take an image sequence as the Nuke panel sends a Read: encoded
to a display-referred movie through tether.encode, its transform recorded, the result read back through its inverse;
bad input is refused before anything is sent. Through the real command against the local services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_colour import GREY, SRGB, H, write_plate
from tether.colour import SendTransform
from tether_cli import main

pytest.importorskip("OpenImageIO")
pytest.importorskip("av")


@pytest.fixture(autouse=True)
def _services(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)
    for name in ("tensorpix", "clipzy"):
        monkeypatch.setenv(f"TETHER_{name.upper()}_URL", local_services.url(name))


def test_a_linear_grey_sequence_goes_through_tensorpix_and_comes_back_on_the_plate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tether.encode import read_movie
    from tether.nukeimport import parse_nk
    from tether.registry import JobRegistry

    write_plate(tmp_path / "plate", frames=(1000, 1001, 1002, 1003, 1004))
    ranged = str(tmp_path / "plate" / "plate.1001-1003#.exr")  # fileseq's form: only these three frames
    assert main(["tensorpix", "submit", ranged, "--model", "1", "--resolution", str(H), "--dry-run"]) == 0
    upload = json.loads(capsys.readouterr().out)["upload"]
    assert upload["source"] == str(tmp_path / "plate" / "plate.#.exr") and upload["sent_as"] == "mp4"
    assert (upload["frames"], upload["first_frame"], upload["colour"]["from"]) == (3, 1001, "ACEScg")
    out = tmp_path / "enhanced"
    assert main(["tensorpix", "submit", ranged, "--model", "1", "--resolution", str(H), "--out", str(out),
                 "--json"]) == 0, capsys.readouterr().err
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    record = JobRegistry().get("tensorpix", job_id)
    assert record is not None
    assert record.extra["frame_map"] == {"movie_first": 1, "file_first": 1001, "count": 3}
    assert record.extra["plate"]["file"] == str(tmp_path / "plate" / "plate.#.exr")
    assert record.extra["plate"]["sent"] == [1001, 1003]
    sent = SendTransform.from_dict(record.extra["colour"])
    assert (sent.source, sent.target) == ("ACEScg", SRGB)
    [back] = [p for p in out.iterdir() if p.suffix == ".mp4"]
    frames = list(read_movie(back, sent.inverse()))
    assert len(frames) == 3
    for rgb in frames:
        grey = rgb[4:32, 2:36]  # the flat part, left of the moving bar
        assert abs(float(grey.mean()) / GREY - 1) < 0.02, grey.mean()
    # and its import puts the clip on plate frame 1001, read in the space that undoes the send
    nk = tmp_path / "shot.nk"
    assert main(["tensorpix", "import", job_id, "--nk", str(nk)]) == 0
    clip = next(n for n in parse_nk(nk.read_text()) if n.node_class == "Read" and "tensorpix" in n.name)
    assert clip.knobs["colorspace"].strip('"') == SRGB and clip.knobs["frame"].strip('"') == "1001"
    # the same job as Nuke records it from a project under its own colour management (nuke-default): that config
    # has no "sRGB Encoded Rec.709 (sRGB)" (Nuke would refuse the script), so the Read takes its name for the space
    JobRegistry().record(service="tensorpix", job_id=job_id, extra={
        "plate": {**record.extra["plate"], "ocio_project": "nuke-default", "colorspace": "linear"}})
    nk = tmp_path / "nuke_default.nk"
    assert main(["tensorpix", "import", job_id, "--nk", str(nk)]) == 0
    assert " colorManagement Nuke\n OCIO_config nuke-default\n}" in nk.read_text()  # the script says which config
    nodes = {n.name: n for n in parse_nk(nk.read_text())}
    assert nodes["Plate1"].knobs["colorspace"] == "linear"
    assert nodes["Plate1_tensorpix_v001"].knobs["colorspace"] == "sRGB"
    rgb = next(read_movie(back, SendTransform(sent.config, "sRGB", "linear")))  # the same space: 0.18 comes back
    assert abs(float(rgb[4:32, 2:36].mean()) / GREY - 1) < 0.02


def test_clipzy_styles_a_sequence_sent_as_a_movie_in_nukes_colour(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tether.encode import encode_movie
    from tether.registry import JobRegistry

    files = write_plate(tmp_path / "plate", frames=(1, 2, 3), value=0.18)
    look = encode_movie(write_plate(tmp_path / "look", frames=(1, 2), ext="png", value=0.8), tmp_path / "look.mp4",
                        SendTransform("ocio://studio-config-latest", SRGB, SRGB)).path
    out = tmp_path / "styled"
    code = main(["clipzy", "submit", str(tmp_path / "plate" / "plate.####.exr"), "--frames", "2-3", "--colourspace",
                 "linear", "--template", str(look), "--out", str(out), "--json", "--interval", "0.05"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert Path(data["video"]).is_file()
    record = JobRegistry().get("clipzy", data["job_id"])
    assert record is not None and record.extra["frame_map"]["file_first"] == 2
    # Nuke's own "linear" is linear Rec.709 in OCIO's studio config, not ACEScg
    assert record.extra["colour"]["from"] == "Linear Rec.709 (sRGB)"
    assert record.extra["plate"]["colorspace"] == "linear" and record.extra["plate"]["file"] == str(files[0].parent /
                                                                                                     "plate.####.exr")


@pytest.mark.parametrize(("args", "said"), [
    (["plate.1001-1005#.exr"], "has no frames 1004-1005 of the 1001-1005 asked for"),
    (["plate.####.exr", "--frames", "1001-1003x2"], "a clip is one run of frames"),
    (["plate.####.exr", "--colorspace", "Kodak 5219"], "'Kodak 5219' is not in the OpenColorIO config"),
    (["plate.1001-1002#.exr", "--frames", "1001-1002"], "names its frames already"),
])
def test_bad_sequences_are_refused_before_anything_is_sent(
        local_services: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list, said: str) -> None:
    write_plate(tmp_path / "plate", frames=(1001, 1002, 1003))
    clip = str(tmp_path / "plate" / args[0])
    local_services.requests.clear()
    for command in (["tensorpix", "submit", clip, "--model", "1"], ["clipzy", "submit", clip, "--template", "x"]):
        assert main([*command, *args[1:]]) == 1
        assert said in capsys.readouterr().err
    assert local_services.requests.count(method="POST") == 0 and local_services.requests.count(method="PUT") == 0
    assert not list(tmp_path.glob("**/*.mp4"))


def test_a_range_with_text_after_its_padding_is_taken_by_every_submit(
        local_services: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.autopilot.client import LOCAL_API_KEY

    monkeypatch.setenv("TETHER_AUTOPILOT_URL", local_services.url("autopilot"))
    monkeypatch.setenv("TETHER_AUTOPILOT_API_KEY", LOCAL_API_KEY)
    for path in write_plate(tmp_path / "plate", frames=(1, 2, 3, 4), ext="png", size=(64, 36)):
        path.rename(path.with_name(path.name.replace(".png", "_v2.png")))  # plate.0001_v2.png ...
    clip = str(tmp_path / "plate" / "plate.1-3####_v2.png")
    local_services.requests.clear()
    for command in (["tensorpix", "submit", clip, "--model", "1"], ["clipzy", "submit", clip, "--template", "x"],
                    ["autopilot", "submit", clip, "--roto"]):
        assert main([*command, "--dry-run", "--json"]) == 0, capsys.readouterr().err
        doc = json.loads(capsys.readouterr().out)
        said = doc.get("upload") or doc["clip"]  # Clipzy's preview calls it the clip
        assert (said["frames"], said["first_frame"]) == (3, 1), command
        assert said["source"] == str(tmp_path / "plate" / "plate.####_v2.png"), command
        if command[0] == "autopilot":  # named for the plate, not "plate._v2"
            assert said["file_name"] in ("plate_v2.mp4", "plate_v2.zip")
            assert doc["payload"]["assets"][0]["services"][0]["output_path"].startswith("tether/plate_v2/")
    assert local_services.requests.count(method="POST") == 0 and local_services.requests.count(method="PUT") == 0


def test_an_unchanged_movie_is_still_sent_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tether.encode import encode_movie

    movie = encode_movie(write_plate(tmp_path / "p", frames=(1, 2), ext="png", value=0.5), tmp_path / "shot.mp4",
                         SendTransform("ocio://studio-config-latest", SRGB, SRGB)).path
    assert main(["tensorpix", "submit", str(movie), "--model", "1", "--dry-run"]) == 0
    upload = json.loads(capsys.readouterr().out)["upload"]
    assert upload["source"] == str(movie) and "sent_as" not in upload
    assert upload["bytes"] == movie.stat().st_size
