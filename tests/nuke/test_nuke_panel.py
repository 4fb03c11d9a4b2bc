"""The dockable panel, offscreen (QT_QPA_PLATFORM=offscreen) with pytest-qt and the strict fake nuke."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
pytest.importorskip("qtpy")

import nuke
from panel_support import NoNetwork, monitor, sequence_read
from tether.jobs import JobState
from tether.registry import JobRegistry
from waiting import PATIENCE_MS


@pytest.fixture
def panel(qtbot: Any, tmp_path: Path) -> Iterator[Any]:
    from tether_nuke.panel import TetherPanel

    controller = monitor(JobRegistry(tmp_path / "jobs.sqlite"), lambda profile: NoNetwork(), tmp_path / "dl")
    widget = TetherPanel(controller)
    qtbot.addWidget(widget)
    yield widget
    controller.close()


def test_no_read_selected_blocks_sending(panel: Any) -> None:
    panel.open_with(("roto",))
    assert not panel.send_button.isEnabled()
    assert "no Read node selected" in panel.problems.text()


def test_shows_the_clip_facts_and_defaults(panel: Any, tmp_path: Path) -> None:
    sequence_read(tmp_path)
    panel.open_with(("roto", "tracking", "depth"))
    assert panel.facts["node"].text() == "Plate7"
    assert panel.facts["frames"].text().startswith("1001-1024 (24 frames, sequence)")
    assert panel.facts["plate"].text() == "1-24"
    assert panel.facts["colorspace"].text() == "ACES - ACEScg"
    assert panel.facts["format"].text() == "1920x1080 HD_1080"
    assert panel.depth_export.currentData() == "jpg" and "8-bit" in panel.depth_export.currentText()
    assert panel.fix_sensor_size.isChecked() and not panel.fix_focal_length.isChecked()
    assert panel.send_button.isEnabled(), panel.problems.text()
    choice = panel.choice()
    assert choice.roto and choice.tracking and choice.depth and choice.depth_export == "jpg"
    assert choice.tracking_metadata["fix_sensor_size"] is True


def test_validation_names_what_to_change(panel: Any, tmp_path: Path, qtbot: Any) -> None:
    sequence_read(tmp_path, missing=(1010, 1011))
    panel.open_with(("tracking",))
    panel.sensor_width.setText("36")
    # said beside the field it concerns, at once
    assert "give the sensor's width and height" in panel.hints["sensor_height"].text()
    assert panel.hints["sensor_height"].isVisibleTo(panel)
    assert not panel.send_button.isEnabled()
    panel.sensor_height.setText("24")
    assert panel.hints["sensor_height"].isHidden()
    panel.lens.setText("abc")
    assert "'abc' is not a number of mm" in panel.hints["lens"].text() and not panel.send_button.isEnabled()
    panel.lens.setText("35mm")  # the unit is welcome
    assert panel.hints["lens"].isHidden() and panel.choice().tracking_metadata["lens"] == 35.0
    panel.lens.setText("")
    for box in panel.service_boxes.values():
        box.setChecked(False)
    assert "tick at least one" in panel.problems.text()
    panel.service_boxes["roto"].setChecked(True)
    check = panel.validate(check_disk=True)
    assert any("frames 1010-1011 are missing" in e for e in check.errors)


def test_still_image_is_refused(panel: Any, tmp_path: Path) -> None:
    read = nuke.nodes.Read()
    read["file"].setValue(str(tmp_path / "board.jpg"))
    read.setSelected(True)
    panel.open_with(("roto",))
    assert "still image" in panel.clip_note.text() and "Autopilot needs a clip" in panel.clip_note.text()
    assert not panel.send_button.isEnabled()


def test_job_list_shows_the_registry_and_follows_live_events(panel: Any, tmp_path: Path, qtbot: Any) -> None:
    registry = panel.controller.registry
    registry.record(service="autopilot", job_id="job-1", title="t", state=JobState.RUNNING, progress=25.0,
                    extra={"plate": {"node": "Plate7", "sent": [1001, 1024]}})
    from tether_nuke.panel import COLUMNS

    panel.open_with((), "jobs")
    assert panel.table.rowCount() == 1
    assert panel.table.item(0, COLUMNS.index("Job")).text() == "Plate7"
    assert panel.table.item(0, COLUMNS.index("Service")).text() == "Autopilot"
    assert panel.table.cellWidget(0, COLUMNS.index("State")).value() == 25
    assert panel.table.cellWidget(0, COLUMNS.index("State")).format() == "running 25%"
    registry.record(service="autopilot", job_id="job-1", state=JobState.RUNNING, progress=80.0)
    # an event from a worker thread reaches the table on the GUI thread. Waited for by its effect, not with
    # qtbot.waitSignal: the bridge's signal also carries the watcher threads' events, and a second queued emission
    # delivered to the blocker after it was torn down crashed pytest-qt (segfault in _quit_loop_by_signal).
    thread = threading.Thread(target=panel.controller._emit, args=("jobs", panel.controller.jobs()))
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: panel.table.cellWidget(0, COLUMNS.index("State")).value() == 80, timeout=PATIENCE_MS)
    panel.table.selectRow(0)
    assert panel.selected_key() == ("autopilot", "job-1") and panel.cancel_button.isEnabled()
    panel.import_selected()
    assert "only completed jobs can be imported" in panel.status.text()


def test_commands_open_the_panel_through_nukescripts(qtbot: Any, tmp_path: Path) -> None:
    from tether_nuke import commands

    widget = commands.show_panel(("depth",), "submit")
    assert widget is not None
    qtbot.addWidget(widget)
    assert widget.service_boxes["depth"].isChecked() and not widget.service_boxes["roto"].isChecked()
    assert commands.show_panel((), "jobs") is widget  # reused, not a second panel
    assert widget.tabs.currentIndex() == 1
    widget.controller.close()


# --- Preview payload -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def autopilot() -> Iterator[Any]:
    from tether_services.server import LocalServices

    with LocalServices(port=0, services=["autopilot"]) as svc:
        yield svc


class Capturing:
    """The real client of the local Autopilot, keeping each create-job body it posts."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.sent: List[Dict[str, Any]] = []

    def create_job(self, payload: Any) -> Any:
        self.sent.append(payload.payload())
        return self.real.create_job(payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _per_send(body: Dict[str, Any]) -> Dict[str, Any]:
    """The body without what each send makes afresh: the upload's key, the output folder and submission id."""
    body = json.loads(json.dumps(body))
    for asset in body["assets"]:
        assert asset.pop("source_path")
        for spec in asset["services"]:
            assert spec.pop("output_path")
    assert body["metadata"].pop("tether_submission")
    return body


def test_preview_shows_what_send_posts_and_sends_nothing(qtbot: Any, tmp_path: Path, autopilot: Any) -> None:
    from qtpy import QtCore, QtWidgets
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
    from tether.autopilot.submit import UPLOAD_PLACEHOLDER
    from tether_nuke.panel import TetherPanel

    client = Capturing(AutopilotClient(autopilot.url("autopilot"), api_key=LOCAL_API_KEY))
    controller = monitor(JobRegistry(tmp_path / "jobs.sqlite"), lambda profile: client, tmp_path / "dl")
    panel = TetherPanel(controller)
    qtbot.addWidget(panel)
    try:
        sequence_read(tmp_path)
        panel.open_with(("roto", "tracking"))
        qtbot.waitUntil(lambda: panel.quota_remaining is not None, timeout=PATIENCE_MS)  # opening asks; a preview not
        panel.lens.setText("35")
        panel.sensor_width.setText("36")
        panel.sensor_height.setText("24")
        panel.calculate_distortion.setChecked(True)
        before = len(autopilot.requests)
        qtbot.mouseClick(panel.preview_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.preview_dialog is not None and panel.preview_dialog.isVisible(),
                        timeout=PATIENCE_MS)
        dialog = panel.preview_dialog
        assert dialog.text.isReadOnly()
        shown = dialog.text.toPlainText()
        doc = json.loads(shown)
        assert len(autopilot.requests) == before  # no request at all: nothing uploaded, nothing created
        body = doc["payload"]
        [asset] = body["assets"]
        assert asset["source_path"] == UPLOAD_PLACEHOLDER
        services = {spec["type"]: spec for spec in asset["services"]}
        assert set(services) == {"roto", "tracking"}
        assert services["tracking"]["metadata"] == {
            "lens": 35.0, "sensor_width": 36.0, "sensor_height": 24.0, "calculate_distortion": "True",
            "fix_focal_length": "False", "fix_sensor_size": "True"}
        assert asset["metadata"]["first_frame"] == 1001
        # the plate's own path, not the temporary folder its frames are staged in for the upload
        assert asset["metadata"]["source"] == body["metadata"]["source"] == doc["clip"]["file"]
        assert {k: body["metadata"][k] for k in ("nuke_read", "first_frame", "frame_count")} == {
            "nuke_read": "Plate7", "first_frame": 1001, "frame_count": 24}
        assert doc["clip"]["frames_sent"] == [1001, 1024] and doc["clip"]["plate_frames"] == [1, 24]
        assert doc["clip"]["node"] == "Plate7" and doc["clip"]["colorspace"] == "ACES - ACEScg"
        assert (doc["upload"]["frames"], doc["upload"]["first_frame"], doc["upload"]["last_frame"]) == (24, 1001, 1024)
        # sent as the vendor's node sends: a movie, in a display space from the Read's ACEScg
        assert (doc["upload"]["file_name"], doc["upload"]["sent_as"]) == ("plate.mp4", "mp4")
        assert body["metadata"]["colour"]["from"] == "ACEScg" and body["metadata"]["frame_map"] == {
            "movie_first": 1, "file_first": 1001, "count": 24}
        qtbot.mouseClick(dialog.copy_button, QtCore.Qt.MouseButton.LeftButton)
        assert QtWidgets.QApplication.clipboard().text() == shown

        # A real send of the same Read and options posts that body, but for what each send makes afresh.
        panel.submit()
        qtbot.waitUntil(lambda: "Sent: job" in panel.status.text(), timeout=PATIENCE_MS)
        [posted] = client.sent
        assert _per_send(posted) == _per_send(body)
    finally:
        controller.close()


def test_preview_shows_the_problems_when_the_input_is_invalid(panel: Any, tmp_path: Path, qtbot: Any) -> None:
    panel.open_with(("roto",))
    panel.preview()  # no Read selected: said at once, from the panel's own check
    dialog = panel.preview_dialog
    assert dialog is not None and dialog.isVisible()
    assert "no Read node selected" in dialog.text.toPlainText()
    sequence_read(tmp_path, missing=(1010, 1011))
    panel.open_with(("roto",))
    assert panel.send_button.isEnabled()  # the disk is only checked when sending, or previewing
    panel.preview()
    qtbot.waitUntil(lambda: "1010-1011" in dialog.text.toPlainText(), timeout=PATIENCE_MS)
    text = dialog.text.toPlainText()
    assert text.startswith("Nothing can be sent") and "missing" in text
    assert panel.preview_dialog is dialog  # one dialog, reused


def test_the_same_frames_and_options_offer_the_finished_jobs_results(qtbot: Any, tmp_path: Path,
                                                                     autopilot: Any) -> None:
    """No paying twice from the panel: a second Send of the same frames with the same options sends nothing and
    offers the first job's results, imported onto the Read; Send anyway sends."""
    from qtpy import QtCore
    from test_nuke_import import png
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
    from tether_nuke.panel import TetherPanel

    client = AutopilotClient(autopilot.url("autopilot"), api_key=LOCAL_API_KEY)
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    controller = monitor(registry, lambda profile: client, tmp_path / "dl", poll=(0.1, 0.3))
    panel = TetherPanel(controller)
    qtbot.addWidget(panel)
    try:
        read = sequence_read(tmp_path)
        for n in range(1001, 1005):  # a short clip of frames the local Autopilot can decode, under the same Read
            png(tmp_path / "seq" / f"shot.{n:04d}.png", 64, 36)
        read["file"].setValue(f"{(tmp_path / 'seq').as_posix()}/shot.####.png")
        read["last"].setValue(1004)
        panel.open_with(("roto",))
        qtbot.waitUntil(lambda: panel.quota_remaining is not None, timeout=PATIENCE_MS)
        panel.submit()
        qtbot.waitUntil(lambda: "Sent: job" in panel.status.text(), timeout=PATIENCE_MS)
        # the send is over (Send enabled again) only once its worker returns, which can be after the job completes
        qtbot.waitUntil(panel.send_button.isEnabled, timeout=PATIENCE_MS)
        [first] = [r.job_id for r in registry.list()]
        qtbot.waitUntil(lambda: registry.get("autopilot", first).state.finished,  # type: ignore[union-attr]
                        timeout=PATIENCE_MS)  # the monitor follows it to the end
        assert registry.get("autopilot", first).state is JobState.COMPLETED  # type: ignore[union-attr]
        puts = autopilot.requests.count(method="PUT")
        panel.submit()
        qtbot.waitUntil(lambda: not panel.offer_box.isHidden(), timeout=PATIENCE_MS)
        assert panel.tabs.currentIndex() == 0  # shown where Send was pressed
        assert first in panel.offer_note.text() and panel.offer_import.isEnabled()
        assert autopilot.requests.count(method="PUT") == puts and len(registry.list()) == 1  # nothing sent
        qtbot.mouseClick(panel.offer_import, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: nuke._run_main_queue() >= 0 and nuke.toNode("Plate7_roto_v001") is not None,
                        timeout=PATIENCE_MS)
        copy = nuke.toNode("Plate7_roto_alpha_v001")
        assert copy is not None and copy.input(0) is nuke.toNode("Plate7")
        plate_read = nuke.toNode("Plate7")
        assert plate_read is not None
        plate_read.selectOnly()  # the import selected its own nodes: the artist picks the plate again
        panel.refresh_plate()
        qtbot.waitUntil(lambda: panel.plate is not None and panel.plate.node == "Plate7", timeout=PATIENCE_MS)
        panel.submit()  # offered again; this time the artist sends anyway
        qtbot.waitUntil(lambda: not panel.offer_box.isHidden(), timeout=PATIENCE_MS)
        qtbot.mouseClick(panel.offer_send, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(registry.list()) == 2, timeout=PATIENCE_MS)
    finally:
        controller.close()
        client.close()


@pytest.mark.parametrize("closer", ["main", "worker"])
def test_a_closing_controller_stops_the_panel_first(panel: Any, qtbot: Any, tmp_path: Path, closer: str) -> None:
    """The selection timer would ask a closed controller for a plate check and the quota (its pool shut down);
    closed from another thread, the stop is queued to the panel's and no tick in between asks anything."""
    panel.show()
    assert panel.selection_timer.isActive() and not panel.closed
    if closer == "main":
        panel.controller.close()
        assert not panel.selection_timer.isActive()
    else:
        worker = threading.Thread(target=panel.controller.close)
        worker.start()
        worker.join(PATIENCE_MS / 1000)
        qtbot.waitUntil(lambda: not panel.selection_timer.isActive(), timeout=PATIENCE_MS)
    assert panel.closed
    sequence_read(tmp_path)  # a Read selected after the close
    assert panel.follow_selection() is False and panel.plate is None


def test_the_panel_follows_the_selected_read_or_the_pinned_one(panel: Any, qtbot: Any, tmp_path: Path) -> None:
    first = sequence_read(tmp_path)
    panel.open_with(("roto",))
    panel.show()
    assert panel.selection_timer.isActive() and panel.facts["node"].text() == "Plate7"
    second = nuke.nodes.Read()
    second.setName("Plate8")
    second["file"].setValue(first["file"].value())
    for knob in ("first", "last", "frame_mode", "frame"):
        second[knob].setValue(first[knob].value())
    second.selectOnly()
    # the timer notices the selection: the panel shows, and Send would send, the selected Read
    qtbot.waitUntil(lambda: panel.facts["node"].text() == "Plate8", timeout=PATIENCE_MS)
    assert panel.plate is not None and panel.plate.node == "Plate8"
    second["last"].setValue(1010)  # an edit of the Read's knobs is followed too
    assert panel.follow_selection() and panel.plate.frame_count == 10
    assert not panel.follow_selection()  # nothing changed: nothing read again

    panel.pin_button.click()
    assert panel.pinned == "Plate8" and "Pinned: Plate8" in panel.pin_note.text()
    assert panel.pin_button.text() == "Unpi&n"
    first.selectOnly()
    assert not panel.follow_selection() and panel.plate.node == "Plate8"  # pinned: the selection is not followed
    nuke.delete(second)
    assert panel.follow_selection() and panel.plate.node == "Plate7"  # a pinned Read deleted: followed again
    assert panel.pinned is None and not panel.pin_button.isChecked()
    assert "pinned Read Plate8 is gone" in panel.pin_note.text()

    panel.pin_button.click()
    panel.pin_button.click()  # unpinned: the selection again
    assert panel.pinned is None and panel.pin_note.isHidden()
    panel.close()
    assert not panel.selection_timer.isActive()  # a closed pane asks Nuke nothing


def test_pinning_needs_a_read(panel: Any) -> None:
    panel.open_with(("roto",))
    panel.pin_button.click()
    assert not panel.pin_button.isChecked() and panel.pinned is None
    assert "Select a Read to pin first" in panel.pin_note.text()


def test_settings_keep_a_key_that_could_not_be_stored_and_store_one_that_can(panel: Any, memkeyring: Any) -> None:
    panel.open_with((), "settings")
    box = panel.settings["clipzy"]
    box.url.setText("ftp://clipzy.example.com")
    box.key_edit.setText("czy-secret-1")
    assert not box.save()
    assert "is not an http:// or https:// URL" in box.result.text()
    assert box.key_edit.text() == "czy-secret-1"  # kept, to fix the URL and save again
    box.url.setText("https://clipzy.example.com/api/")
    assert box.save()
    from tether.settings import active_profile, get_secret

    assert active_profile().clipzy.url == "https://clipzy.example.com/api"
    secret = get_secret(active_profile().name, "clipzy", "token")
    assert secret is not None and secret.get_secret_value() == "czy-secret-1"
    assert box.key_edit.text() == "" and box.key_label.text() == "keyring"
    assert box.url.text() == "https://clipzy.example.com/api"
