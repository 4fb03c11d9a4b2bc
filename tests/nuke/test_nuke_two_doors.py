"""One import, two doors: a job sent from the command line or from Nuke records the same plate facts, and
`tether autopilot import --nk` writes the nodes the panel makes, checked against values computed here; the same
clip sent twice with the same options is answered by the first job (the local Autopilot over HTTP)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

import nuke
import pytest
from test_nuke_import import assert_same_nodes, matte_files, png
from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
from tether.autopilot.submit import AlreadySent, ServiceChoice, submit
from tether.jobs import JobState
from tether.nukeimport import ResultFiles, import_to_nk, parse_nk
from tether.registry import JobRegistry
from tether_nuke.autopilot import AutopilotAdapter
from tether_nuke.importer import apply_description
from tether_nuke.plate_reader import read_plate
from tether_nuke.service import INCLUDE_ALL, ServiceController
from waiting import eventually

W, H, N, FIRST = 64, 36, 6, 1001  # a 16:9 plate
BACK = (24.576, 18.672)  # Nuke's default film back
VFOV = 38.0


@pytest.fixture
def client(autopilot_services: Any) -> Iterator[AutopilotClient]:
    with AutopilotClient(autopilot_services.url("autopilot"), api_key=LOCAL_API_KEY) as c:
        yield c


def plate_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    for n in range(FIRST, FIRST + N):
        png(folder / f"shot.{n:04d}.png", W, H)


def results(folder: Path) -> Path:
    """A finished job as Autopilot might send it: half-size mattes 1..N, a .chan of a 38 degree vertical FOV (no
    film back in it: the recorded one must be used)."""
    matte_files(folder / "hard_mattes", list(range(1, N + 1)), size=(W // 2, H // 2))
    (folder / "tracking").mkdir()
    (folder / "tracking" / "camera.chan").write_text(
        "".join(f"{k} 0 1 {k} 0 {k} 0 {VFOV}\n" for k in range(1, N + 1)))
    return folder


def the_read(folder: Path) -> Any:
    """The comp's Read of the same frames, named as the command line's plate, in the plate's 64x36 format."""
    read = nuke.nodes.Read()
    read.setName("Plate1")
    read["file"].setValue(f"{folder.as_posix()}/shot.####.png")
    for knob, value in (("first", FIRST), ("last", FIRST + N - 1), ("origfirst", FIRST), ("origlast", FIRST + N - 1)):
        read[knob].setValue(value)
    nuke.addFormat(f"{W} {H} 1 plate16x9")
    read["format"].setValue("plate16x9")
    return read


def test_the_command_line_records_what_the_panel_knows_and_imports_the_same_nodes(
        client: AutopilotClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plate_files(tmp_path / "plate")
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    choice = ServiceChoice(roto=True, tracking=True,
                           tracking_metadata={"sensor_width": BACK[0], "sensor_height": BACK[1]})
    job = submit(client, "plate/shot.####.png", choice, registry=registry).job  # a relative path, as typed
    extra = registry.get("autopilot", job.id).extra  # type: ignore[union-attr]
    plate = extra["plate"]
    assert plate["file"] == os.path.join(str(tmp_path), "plate", "shot.####.png")
    assert (plate["width"], plate["height"], plate["pixel_aspect"]) == (W, H, 1.0)
    assert plate["sent"] == [FIRST, FIRST + N - 1] and extra["plate_origin"] == "command line"
    assert extra["sensor"] == list(BACK)
    folder = results(tmp_path / "job")
    monkeypatch.chdir(tmp_path / "job")  # opened from anywhere else, the script still finds the plate
    out, _ = import_to_nk(extra, folder, tmp_path / "cli.nk", job_id=job.id, standalone=True)
    text = out.read_text()
    nodes = {n.name: n for n in parse_nk(text)}
    assert nodes["Plate1"].knobs["file"] == plate["file"] and os.path.isabs(nodes["Plate1"].knobs["file"])
    # FOV -> focal through the gate Nuke projects the plate through: the back's width over the plate's aspect
    focal = (BACK[0] / (W / H) / 2) / math.tan(math.radians(VFOV / 2))
    assert focal == pytest.approx(20.074, abs=1e-3)
    cam = nodes["Plate1_camera_v001"]
    assert float(cam.knobs["focal"]) == pytest.approx(focal, abs=1e-9)
    assert float(cam.knobs["haperture"]) == BACK[0]
    assert math.degrees(2 * math.atan((BACK[0] * H / W / 2) / float(cam.knobs["focal"]))) == pytest.approx(VFOV)
    fit = nodes["Plate1_roto_fit_v001"]  # half-size mattes reformatted to the plate
    assert fit.knobs["format"].split()[:2] == [str(W), str(H)]
    assert nodes["Plate1_roto_alpha_v001"].inputs == ["Plate1", "Plate1_roto_fit_v001"]
    # the panel, importing the same job onto the comp's Read of those frames, makes the same nodes
    read = the_read(tmp_path / "plate")
    record = registry.get("autopilot", job.id)
    assert record is not None
    desc = AutopilotAdapter().describe(read_plate(read), ResultFiles.from_folder(folder), record, INCLUDE_ALL)
    assert_same_nodes(text, apply_description(desc).names, desc.plate)
    registry.close()


def test_a_job_sent_from_nuke_keeps_its_sensor_on_the_command_line(
        client: AutopilotClient, autopilot_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether_cli import main

    plate_files(tmp_path / "plate")
    read = the_read(tmp_path / "plate")
    registry = JobRegistry()
    controller = ServiceController(AutopilotAdapter(), registry, lambda profile: client)
    try:
        choice = ServiceChoice(roto=True, tracking=True,
                               tracking_metadata={"sensor_width": 36.0, "sensor_height": 24.0})
        job_id = controller.submit(read_plate(read), choice, follow=False).result(timeout=60)
        extra = registry.get("autopilot", job_id).extra  # type: ignore[union-attr]
        assert extra["sensor"] == [36.0, 24.0] and extra["plate_origin"] == "nuke"
        out, _ = import_to_nk(extra, results(tmp_path / "job"), tmp_path / "snippet.nk")
        cam = {n.name: n for n in parse_nk(out.read_text())}["Plate1_camera_v001"]
        assert float(cam.knobs["haperture"]) == 36.0 and float(cam.knobs["vaperture"]) == 24.0
        assert float(cam.knobs["focal"]) == pytest.approx((36.0 * H / W / 2) / math.tan(math.radians(VFOV / 2)))
        # the command itself writes a whole script (a Root and the plate's Read), not a paste snippet
        eventually(lambda: client.get_job(job_id), lambda j: j.state.finished, timeout=60, message="the job")
        monkeypatch.setenv("TETHER_AUTOPILOT_URL", autopilot_services.url("autopilot"))
        monkeypatch.setenv("TETHER_AUTOPILOT_API_KEY", LOCAL_API_KEY)
        assert main(["autopilot", "import", job_id, "--nk", str(tmp_path / "whole.nk")]) == 0
        whole = (tmp_path / "whole.nk").read_text()
        assert "\nRoot {" in whole and "cut_paste_input" not in whole
        assert parse_nk(whole)[0].node_class == "Read"
    finally:
        controller.close()
        registry.close()


def test_the_same_clip_with_the_same_options_is_not_paid_twice(
        client: AutopilotClient, autopilot_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import main

    plate_files(tmp_path / "plate")
    pattern = str(tmp_path / "plate" / "shot.####.png")
    registry = JobRegistry()
    first = submit(client, pattern, ServiceChoice(roto=True), registry=registry).job.id
    record = registry.get("autopilot", first)
    assert record is not None and len(record.extra["clip_hash"]) == 64
    options = record.extra["options"]
    assert options["services"] == [{"type": "roto"}] and options["exports"] == {}
    assert options.get("colour") == record.extra.get("colour")  # the conversion a movie is sent through counts
    puts = autopilot_services.requests.count(method="PUT")
    # the same frames under another name and folder are the same clip
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for n in range(FIRST, FIRST + N):
        (copy / f"take2.{n:04d}.png").write_bytes((tmp_path / "plate" / f"shot.{n:04d}.png").read_bytes())
    with pytest.raises(AlreadySent) as refused:
        submit(client, str(copy / "take2.####.png"), ServiceChoice(roto=True), registry=registry)
    assert refused.value.job_id == first and "--force" in str(refused.value)
    assert autopilot_services.requests.count(method="PUT") == puts  # refused before anything was uploaded
    other = submit(client, pattern, ServiceChoice(roto=True, depth=True), registry=registry).job.id  # other options
    forced = submit(client, pattern, ServiceChoice(roto=True), registry=registry, force=True).job.id
    assert len({first, other, forced}) == 3
    # the command line offers the finished job's results instead of a new job
    eventually(lambda: registry.update_from(client.get_job(first)), lambda r: r.state is JobState.COMPLETED,
               timeout=60, message="the first job to complete")
    for job_id in (other, forced):  # the newest match would be chosen otherwise: leave only the first one
        registry.forget("autopilot", job_id)
    monkeypatch.setenv("TETHER_AUTOPILOT_URL", autopilot_services.url("autopilot"))
    monkeypatch.setenv("TETHER_AUTOPILOT_API_KEY", LOCAL_API_KEY)
    out = tmp_path / "out"
    assert main(["autopilot", "submit", pattern, "--roto", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["job_id"] == first and data["reused"] is True and data["results"]["mattes"]
    assert autopilot_services.requests.count(method="PUT") == puts + 2
    registry.close()
