"""Clip in, clip out (TensorPix) against the strict fake nuke: the Read description, and real round trips with the
local TensorPix over HTTP that import the enhanced movie beside the plate on the plate's frames."""

from __future__ import annotations

import os
import runpy
import time
from pathlib import Path
from typing import Any, Iterator, List

import nuke
import numpy as np
import pytest
from clips import bar_movie
from panel_support import SpecOnly
from PIL import Image
from tether.nukeimport import PlateFacts
from tether.registry import JobRegistry
from tether.tensorpix.client import LOCAL_API_KEY, TensorPixClient
from tether_nuke.clipservices import COLUMN, TensorPixAdapter, describe_clip_import, tensorpix_options
from tether_nuke.dialog import ClipServiceSection
from tether_nuke.plate_reader import read_plate
from tether_nuke.service import ServiceController
from waiting import PATIENCE_MS, eventually

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt makes the QApplication
av = pytest.importorskip("av")
ROOT = Path(__file__).resolve().parents[2]
W, H = 64, 48


@pytest.fixture(scope="module")
def services() -> Iterator[Any]:
    from tether_services.server import LocalServices

    with LocalServices(port=0, services=["tensorpix"]) as svc:
        yield svc


def frames_on_disk(folder: Path, first: int, last: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        rgb = np.full((H, W, 3), 20, np.uint8)
        rgb[:, (n - first) * 4:(n - first) * 4 + 4] = 235  # a bar one step right per file frame
        Image.fromarray(rgb).save(folder / f"shot.{n:04d}.png")
    return f"{folder.as_posix()}/shot.####.png"


def tiny_movie(path: Path, frames: int = 8) -> Path:
    return bar_movie(path, frames, size=(W, H))


def decoded(path: str) -> List[Any]:
    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def controller(services: Any, tmp_path: Path, events: List[Any]) -> ServiceController:
    url = services.url("tensorpix")
    ctl = ServiceController(TensorPixAdapter(), JobRegistry(tmp_path / "jobs.sqlite"),
                            lambda profile: TensorPixClient(url, token=LOCAL_API_KEY),
                            download_root=tmp_path / "dl", poll=0.1, poll_cap=0.3)
    ctl.add_listener(lambda kind, payload: events.append((kind, payload)))
    return ctl


# --- the description (headless) ----------------------------------------------------------------------------------
def test_the_returned_clip_starts_on_the_first_sent_plate_frame(tmp_path: Path) -> None:
    plate = PlateFacts(node="Plate3", file="/shots/a.####.exr", first=1003, last=1014, frame_mode="start at",
                       frame="2001", xpos=40, ypos=-80, colorspace="ACES - ACEScg")
    movie = tiny_movie(tmp_path / "out.mp4", frames=10)
    description = describe_clip_import(plate, movie, suffix="tensorpix", first_index=2)
    [spec] = description.nodes
    assert spec.node_class == "Read" and spec.name == "Plate3_tensorpix"
    assert spec.knobs["frame_mode"] == "start at" and spec.knobs["frame"] == str(2001 + 2)
    assert (spec.knobs["first"], spec.knobs["last"]) == (1, 10)
    assert (spec.xpos, spec.ypos) == (40 + COLUMN, -80)
    assert description.notes == []  # 12 sent, output from the 3rd: 10 frames, one per plate frame
    short = describe_clip_import(plate, tiny_movie(tmp_path / "p.mp4", frames=5), suffix="tensorpix")
    assert "5 frames for the 12 sent" in short.notes[0]


def test_options_from_the_dialog_leave_defaults_alone() -> None:
    options = tensorpix_options([1, 2], 1080, preview=True, grain=0.0, sharpen_strength=12.0, playback_speed=None)
    assert options == {"ml_models": [1, 2], "output_resolution": 1080, "preview": True, "sharpen_strength": 12.0}


def test_the_menu_has_the_enhance_entry() -> None:
    runpy.run_path(str(ROOT / "nuke_plugin" / "menu.py"))
    tether = nuke.menu("Nuke").findItem("Tether")
    assert tether is not None and "Enhance (TensorPix)" in [i.name() for i in tether.items()]


# --- round trips with the local TensorPix ---------------------------------------------------------------------------
def send_and_import(ctl: ServiceController, plate: PlateFacts, options: Any, events: List[Any]) -> str:
    """Send, wait until the job is imported (or failed), and close the controller; the job id."""
    try:
        job_id: str = ctl.submit(plate, options).result(timeout=60)
        eventually(lambda: any(kind in ("imported", "error") for kind, _ in events), message="the import",
                   pump=nuke._run_main_queue)
    finally:
        ctl.close()
    return job_id


def test_enhance_a_trimmed_sequence_and_import_it_on_plate_frames(services: Any, tmp_path: Path) -> None:
    read = nuke.nodes.Read()
    read.setName("Plate1")
    read["file"].setValue(frames_on_disk(tmp_path / "plate", 1001, 1016))
    nuke.addFormat(f"{W} {H} 1 small")
    read["format"].setValue("small")
    for knob, value in (("first", 1003), ("last", 1014), ("origfirst", 1001), ("origlast", 1016)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("2001")
    read.setXYpos(200, 300)
    plate = read_plate(read)  # main thread, before the worker
    events: List[Any] = []
    ctl = controller(services, tmp_path, events)
    job_id = send_and_import(ctl, plate, tensorpix_options([1], start_frame=3), events)
    errors = [payload for kind, payload in events if kind == "error"]
    assert not errors, errors
    node = nuke.toNode("Plate1_tensorpix_v001")
    assert node is not None and node.Class() == "Read"
    # plate frames 2001..2012 were sent; the output starts at the 4th sent frame and runs to the last
    assert (node.firstFrame(), node.lastFrame()) == (2004, 2012)
    assert (node.xpos(), node.ypos()) == (200 + COLUMN, 300)
    frames = decoded(node["file"].value())
    assert len(frames) == 9 and frames[0].shape[:2] == (2 * H, 2 * W)
    # output frame 1 shows file frame 1006 (the 4th sent): its bar sits where that file frame's bar does
    bar = np.where(frames[0][:, :, 0].mean(axis=0) > 128)[0].mean() / 2
    assert abs(bar - ((1006 - 1001) * 4 + 1.5)) < 2
    record = ctl.registry.get("tensorpix", job_id)
    assert record is not None and record.state.value == "completed" and record.fetched_at is not None
    assert any(kind == "job" for kind, _ in events)
    # the 12 sent frames were encoded one by one, off the main thread; movie frame 1 is file frame 1003
    assert [p[1:] for kind, p in events if kind == "encoding"] == [(k, 12) for k in range(1, 13)]
    assert record.extra["frame_map"] == {"movie_first": 1, "file_first": 1003, "count": 12}
    # PNG frames are display-referred: sent unchanged, and read back in that same display space, by the name the
    # project knows it by: this Root is under Nuke's own colour management (nuke-default), where it is sRGB
    assert record.extra["colour"]["from"] == record.extra["colour"]["to"] == "sRGB Encoded Rec.709 (sRGB)"
    assert record.extra["plate"]["ocio_project"] == "nuke-default" and node["colorspace"].value() == "sRGB"


def exr_read(folder: Path, name: str = "Lin1") -> Any:
    """A linear ACEScg EXR plate, 18% grey, 6 frames from 1001, in a project on Foundry's ACES studio config."""
    import OpenImageIO as oiio

    nuke.root()["colorManagement"].setValue("OCIO")
    nuke.root()["OCIO_config"].setValue("fn-nuke_studio-config-v1.0.0_aces-v1.3_ocio-v2.1")

    folder.mkdir(parents=True)
    for n in range(1001, 1007):
        path = str(folder / f"lin.{n:04d}.exr")
        out = oiio.ImageOutput.create(path)
        out.open(path, oiio.ImageSpec(W, H, 3, oiio.HALF))
        out.write_image(np.full((H, W, 3), 0.18, np.float32))
        out.close()
    read = nuke.nodes.Read()
    read.setName(name)
    read["file"].setValue(f"{folder.as_posix()}/lin.####.exr")
    for knob, value in (("first", 1001), ("last", 1006), ("origfirst", 1001), ("origlast", 1006)):
        read[knob].setValue(value)
    read["colorspace"].setValue("ACES - ACEScg")
    return read


def test_a_linear_plate_comes_back_read_in_the_space_it_was_sent_in(services: Any, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.colour import SendTransform
    from tether.encode import read_movie

    monkeypatch.delenv("OCIO", raising=False)
    plate = read_plate(exr_read(tmp_path / "lin"))
    events: List[Any] = []
    ctl = controller(services, tmp_path, events)
    job_id = send_and_import(ctl, plate, tensorpix_options([1], resolution=H), events)
    assert not [p for kind, p in events if kind == "error"]
    node = nuke.toNode("Lin1_tensorpix_v001")
    record = ctl.registry.get("tensorpix", job_id)
    assert record is not None and record.extra["colour"]["from"] == "ACEScg"
    # the Read's colorspace is the display space sent in: Nuke's inverse of the send puts the grey back at 0.18
    assert node["colorspace"].value() == record.extra["colour"]["to"] == "sRGB Encoded Rec.709 (sRGB)"
    back = SendTransform(record.extra["colour"]["ocio_config"], node["colorspace"].value(), "ACEScg")
    frames = list(read_movie(Path(node["file"].value()), back))
    assert len(frames) == 6 and all(abs(float(f.mean()) / 0.18 - 1) < 0.02 for f in frames)


def test_an_encode_can_be_cancelled_and_sends_nothing(services: Any, tmp_path: Path) -> None:
    plate = read_plate(exr_read(tmp_path / "lin", name="Lin2"))
    events: List[Any] = []
    ctl = controller(services, tmp_path, events)
    ctl.add_listener(lambda kind, payload: ctl.cancel_send() if kind == "encoding" and payload[1] == 2 else None)
    before = services.requests.count(method="POST")
    try:
        future = ctl.submit(plate, tensorpix_options([1]))
        with pytest.raises(Exception, match="cancelled"):
            future.result(timeout=60)
    finally:
        ctl.close()
    assert [p[1] for kind, p in events if kind == "encoding"] == [1, 2]  # stopped at the next frame
    assert services.requests.count(method="POST") == before  # nothing uploaded, no job
    assert not [p for kind, p in events if kind == "error"]  # asked for: the Future says so, it is no failure


def test_enhance_a_movie_preview(services: Any, tmp_path: Path) -> None:
    read = nuke.nodes.Read()
    read.setName("Mov1")
    read["file"].setValue(tiny_movie(tmp_path / "plate.mp4", frames=8).as_posix())
    for knob, value in (("first", 1), ("last", 8), ("origfirst", 1), ("origlast", 8)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("1001")
    plate = read_plate(read)
    events: List[Any] = []
    ctl = controller(services, tmp_path, events)
    sent = send_and_import(ctl, plate, tensorpix_options([2], preview=True), events)
    [(job_id, applied)] = [payload for kind, payload in events if kind == "imported"]
    assert job_id == sent
    node = nuke.toNode(applied.names["Mov1_tensorpix"])
    assert node is not None and (node.firstFrame(), node.lastFrame()) == (1001, 1005)
    assert any("5 frames for the 8 sent" in note for note in applied.notes)


# --- the panel's TensorPix section (offscreen Qt) -------------------------------------------------------------------
def test_the_panel_lists_models_sends_with_progress_and_imports(services: Any, tmp_path: Path, qtbot: Any) -> None:
    pytest.importorskip("qtpy")
    from panel_support import monitor
    from qtpy import QtCore
    from tether_nuke.panel import TetherPanel

    events: List[Any] = []
    ctl = controller(services, tmp_path, events)
    panel = TetherPanel(monitor(ctl.registry, tensorpix=ctl))
    qtbot.addWidget(panel)
    shown: List[Any] = []
    panel._bridge.event.connect(lambda kind, payload: shown.append((kind, payload)))
    try:
        panel.open_with((), "submit", "tensorpix")
        section = panel.sections["tensorpix"]
        assert not panel.send_button.isEnabled()  # no Read selected
        qtbot.waitUntil(lambda: section.models_box.count() == 5, timeout=PATIENCE_MS)
        read = nuke.nodes.Read()
        read.setName("Dlg1")
        movie = tiny_movie(tmp_path / "dlg.mp4", frames=6)
        read["file"].setValue(movie.as_posix())
        for knob, value in (("first", 1), ("last", 6), ("origfirst", 1), ("origlast", 6)):
            read[knob].setValue(value)
        read.setSelected(True)
        assert panel.follow_selection() and panel.facts["node"].text() == "Dlg1"  # the selection, followed
        assert not panel.send_button.isEnabled() and "tick at least one model" in panel.problems.text()
        section.models_box.item(0).setCheckState(QtCore.Qt.CheckState.Checked)  # said as it is ticked
        assert panel.send_button.isEnabled() and panel.problems.isHidden()
        section.resolution.setCurrentIndex(0)
        section.numbers["sharpen_strength"].setValue(5)
        assert section.options() == {"ml_models": [1], "output_resolution": -1, "preview": False,
                                     "sharpen_strength": 5}
        panel.submit()

        def imported() -> bool:
            nuke._run_main_queue()
            return "Imported job" in panel.status.text() or any(kind == "error" for kind, _ in events)

        qtbot.waitUntil(imported, timeout=60000)
        assert not [p for kind, p in events if kind == "error"]
        node = nuke.toNode("Dlg1_tensorpix_v001")
        assert node is not None and (node.firstFrame(), node.lastFrame()) == (1, 6)
        size = movie.stat().st_size
        assert ("uploading", ("tensorpix", "Dlg1", size, size)) in shown  # the bytes went through the panel's bar
        assert panel.send_progress.isHidden() and panel.cancel_send_button.isHidden()  # over
    finally:
        panel.close()
        panel.controller.close()


def test_an_options_spec_builds_the_form(tmp_path: Path, qtbot: Any) -> None:
    pytest.importorskip("qtpy")
    ctl = ServiceController(SpecOnly(), JobRegistry(tmp_path / "jobs.sqlite"), lambda p: None)  # type: ignore[arg-type]
    section = ClipServiceSection(ctl)
    qtbot.addWidget(section)
    try:
        assert set(section.fields) == {"template", "strength", "keep_audio"}
        assert section.problems_now() == ["Template clip is required"]  # said before anything is sent
        section.fields["template"].setText("/clips/look.mov")
        section.fields["strength"].setValue(0.5)
        section.fields["keep_audio"].setChecked(True)
        assert section.problems_now() == []
        assert section.options() == {"template": "/clips/look.mov", "strength": 0.5, "keep_audio": True}
        assert section.asked(section.options()) == "look.mov"
    finally:
        ctl.close()


class GatedTensorPix(TensorPixClient):
    """The TensorPix client, asking once (no retries: an unreachable service is known at once), and listing the
    models only once ``gate`` is open, so the test sees what the section shows before the fresh list arrives."""

    def __init__(self, url: str, gate: Any = None) -> None:
        from tether.http import RetryPolicy

        super().__init__(url, token=LOCAL_API_KEY, retry=RetryPolicy(attempts=1))
        self.gate = gate

    def models(self) -> Any:
        if self.gate is not None:
            assert self.gate.wait(30), "the test never let the model list through"
        return super().models()


def test_the_section_shows_the_last_models_offline_and_fresh_ones_replace_them(services: Any, tmp_path: Path,
                                                                              qtbot: Any) -> None:
    pytest.importorskip("qtpy")
    import threading

    from qtpy import QtCore
    from tether import listcache
    from tether_nuke.clipservices import clock
    from tether_services.server import LocalServices

    def section_for(url: str, gate: Any = None) -> Any:
        ctl = ServiceController(TensorPixAdapter(), JobRegistry(tmp_path / "jobs.sqlite"),
                                lambda profile: GatedTensorPix(url, gate), download_root=tmp_path / "dl")
        section = ClipServiceSection(ctl)
        qtbot.addWidget(section)
        return section

    def ids(section: Any) -> List[Any]:
        box = section.models_box
        return [box.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(box.count())]

    with LocalServices(port=0, services=["tensorpix"]) as soon_gone:
        url = soon_gone.url("tensorpix")
        expected = [m.id for m in TensorPixClient(url, token=LOCAL_API_KEY).models()]
        first = section_for(url)
        try:
            qtbot.waitUntil(lambda: ids(first) == expected, timeout=PATIENCE_MS)
            assert first.models_note.text() == f"models as of {clock(first.models_shown_at)}"
        finally:
            first.controller.close()
    # the same profile and address, now a closed port: the models from the first section, said to be from then
    second = section_for(url)
    try:
        qtbot.waitUntil(lambda: "offline" in second.models_note.text(), timeout=PATIENCE_MS)
        assert ids(second) == expected
        assert second.models_note.text() == f"offline: models from {clock(first.models_shown_at)}"
        assert "cannot reach" in second.models_note.toolTip()
    finally:
        second.controller.close()

    # an older list for the running service offered model 99; it is shown at once and ticked before the fresh list
    live = services.url("tensorpix")
    fresh = [m.id for m in TensorPixClient(live, token=LOCAL_API_KEY).models()]
    assert 99 not in fresh
    listcache.save("tensorpix", "local", live, {"ml_models": [("99", "Retired"), (str(fresh[0]), "Old name")]},
                   fetched_at=time.time() - 3600)
    gate = threading.Event()
    third = section_for(live, gate)
    try:
        qtbot.waitUntil(lambda: ids(third) == [99, fresh[0]], timeout=PATIENCE_MS)
        assert "(checking for changes...)" in third.models_note.text()
        third.models_box.item(0).setCheckState(QtCore.Qt.CheckState.Checked)
        gate.set()
        # replaced; the ticked one kept, flagged
        qtbot.waitUntil(lambda: ids(third) == [*fresh, 99], timeout=PATIENCE_MS)
        flagged = third.models_box.item(len(fresh))
        assert "no longer offered" in flagged.text() and "Retired" in flagged.text()
        assert flagged.checkState() == QtCore.Qt.CheckState.Checked
        with pytest.raises(Exception, match="no longer offers model 99"):
            third.options()
        flagged.setCheckState(QtCore.Qt.CheckState.Unchecked)
        third.models_box.item(0).setCheckState(QtCore.Qt.CheckState.Checked)
        assert third.options()["ml_models"] == [fresh[0]]
        assert third.models_note.text() == f"models as of {clock(third.models_shown_at)}"
        cached = listcache.load("tensorpix", "local", live)
        assert cached is not None and cached.ids("ml_models") == [str(i) for i in fresh]
    finally:
        third.controller.close()


def test_cancel_stops_the_send_in_its_upload_and_records_nothing(services: Any, tmp_path: Path, qtbot: Any) -> None:
    pytest.importorskip("qtpy")
    import threading

    from panel_support import monitor
    from qtpy import QtCore
    from tether_nuke.panel import TetherPanel

    url = services.url("tensorpix")
    reached, gate = threading.Event(), threading.Event()  # the upload starts only once Cancel was pressed

    class Gated(TensorPixClient):
        def upload_video(self, path: Path, progress: Any = None) -> Any:
            reached.set()
            assert gate.wait(30), "the test never let the upload start"
            return super().upload_video(path, progress)

    def gated(profile: Any) -> TensorPixClient:
        return Gated(url, token=LOCAL_API_KEY)

    registry = JobRegistry(tmp_path / "jobs.sqlite")
    ctl = ServiceController(TensorPixAdapter(), registry, gated, download_root=tmp_path / "dl")
    panel = TetherPanel(monitor(registry, tensorpix=ctl))
    qtbot.addWidget(panel)
    events: List[Any] = []
    ctl.add_listener(lambda kind, payload: events.append((kind, payload)))
    try:
        panel.open_with((), "submit", "tensorpix")
        section = panel.sections["tensorpix"]
        section._show_models([("1", "Upscale x2")], time.time(), "fresh")
        section.models_box.item(0).setCheckState(QtCore.Qt.CheckState.Checked)
        read = nuke.nodes.Read()
        read.setName("Cancel1")
        read["file"].setValue(tiny_movie(tmp_path / "c.mp4", frames=4).as_posix())
        for knob, value in (("first", 1), ("last", 4), ("origfirst", 1), ("origlast", 4)):
            read[knob].setValue(value)
        read.setSelected(True)
        panel.follow_selection()
        before = services.requests.count("POST", r"/tensorpix/api/videos/$", status=201)
        panel.submit()
        assert panel.cancel_send_button.isVisible() and panel.cancel_send_button.isEnabled()
        assert not panel.send_button.isEnabled()
        qtbot.waitUntil(reached.is_set, timeout=PATIENCE_MS)
        qtbot.keyClick(panel.cancel_send_button, QtCore.Qt.Key.Key_Space)
        assert not panel.cancel_send_button.isEnabled() and "Cancelling" in panel.status.text()
        gate.set()
        qtbot.waitUntil(lambda: "Cancelled" in panel.status.text(), timeout=PATIENCE_MS)
        assert "Cancel1 was not sent to TensorPix" in panel.status.text()
        assert panel.failure_box.isHidden() and not [p for kind, p in events if kind == "error"]
        assert panel.send_progress.isHidden() and panel.send_button.isEnabled()  # ready to send again
        assert registry.list() == [] and not [kind for kind, _ in events if kind == "submitted"]
        # the upload was cut short: the service made no video of it
        assert services.requests.count("POST", r"/tensorpix/api/videos/$", status=201) == before
    finally:
        gate.set()
        panel.close()
        panel.controller.close()


def test_settings_test_connection_asks_the_service_at_the_url_saved(services: Any, tmp_path: Path,
                                                                   qtbot: Any) -> None:
    pytest.importorskip("qtpy")
    from panel_support import monitor
    from tether_nuke.panel import TetherPanel

    panel = TetherPanel(monitor(JobRegistry(tmp_path / "jobs.sqlite")))
    qtbot.addWidget(panel)
    try:
        panel.open_with((), "settings")
        box = panel.settings["tensorpix"]
        box.url.setText(services.url("tensorpix"))
        assert box.save()
        panel.test_connection("tensorpix").result(timeout=30)
        qtbot.waitUntil(lambda: "Connected: 5 models offered" in box.result.text(), timeout=PATIENCE_MS)
    finally:
        panel.close()
        panel.controller.close()
