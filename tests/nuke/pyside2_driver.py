"""Drives the Tether panel and its clip-service sections under PySide2, without pytest-qt (which dropped PySide2).

Run by tests/nuke/test_nuke_panel_pyside2.py with the Python 3.9 + PySide2 5.15 venv of tests/py39_env.py (Nuke 14's
stack), ``QT_API=pyside2``, ``QT_QPA_PLATFORM=offscreen`` and the strict fake ``nuke`` and the plugin on PYTHONPATH:

    python pyside2_driver.py WORK_DIR [TENSORPIX_URL]

Each check mirrors one in test_nuke_panel.py / test_nuke_clipservices.py, with keys and clicks sent by QtTest where a
user would type or click. Prints one JSON object (the binding, versions, and ``checks``: name -> "ok" or the
traceback); exits 0 only when every check passed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import nuke
import nukescripts

assert getattr(nuke, "_reset", None) is not None, f"a real nuke module was imported: {nuke.__file__}"

import qtpy  # noqa: E402
from panel_support import NoNetwork, SpecOnly, monitor, sequence_read  # noqa: E402
from qtpy import QtCore, QtTest, QtWidgets  # noqa: E402
from tether.jobs import JobState  # noqa: E402
from tether.registry import JobRegistry  # noqa: E402
from waiting import eventually  # noqa: E402

APP = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["tether-pyside2-driver"])
LEFT = QtCore.Qt.MouseButton.LeftButton
NO_MODIFIER = QtCore.Qt.KeyboardModifier.NoModifier


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Runs Qt's event loop (queued signals from worker threads land here) until ``predicate`` holds."""
    eventually(predicate, timeout=timeout, message=what, pump=APP.processEvents,  # PySide2's QTest has no qWait
               interval=0.01)


def click(widget: Any, pos: Optional[Any] = None) -> None:
    if pos is None:
        QtTest.QTest.mouseClick(widget, LEFT)
    else:
        QtTest.QTest.mouseClick(widget, LEFT, NO_MODIFIER, pos)
    APP.processEvents()


def type_into(edit: Any, text: str) -> None:
    edit.setFocus()
    QtTest.QTest.keyClicks(edit, text)
    APP.processEvents()


@contextmanager
def panel_in(folder: Path) -> Iterator[Any]:
    from tether_nuke.panel import TetherPanel

    controller = monitor(JobRegistry(folder / "jobs.sqlite"), lambda profile: NoNetwork(), folder / "dl")
    widget = TetherPanel(controller)
    try:
        yield widget
    finally:
        widget.close()
        controller.close()
        widget.deleteLater()
        APP.processEvents()


# --- the panel ---------------------------------------------------------------------------------------------------
def check_no_read_selected_blocks_sending(folder: Path, url: Optional[str]) -> None:
    with panel_in(folder) as panel:
        panel.open_with(("roto",))
        assert panel.isVisible()
        assert not panel.send_button.isEnabled()
        assert "no Read node selected" in panel.problems.text(), panel.problems.text()


def check_clip_facts_and_defaults(folder: Path, url: Optional[str]) -> None:
    sequence_read(folder)
    with panel_in(folder) as panel:
        panel.open_with(("roto", "tracking", "depth"))
        assert panel.tabs.currentIndex() == 0
        assert panel.facts["node"].text() == "Plate7"
        assert panel.facts["frames"].text().startswith("1001-1024 (24 frames, sequence)"), panel.facts["frames"].text()
        assert panel.facts["plate"].text() == "1-24"
        assert panel.facts["colorspace"].text() == "ACES - ACEScg"
        assert panel.facts["format"].text() == "1920x1080 HD_1080"
        assert panel.facts["node"].textInteractionFlags() & QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        assert panel.depth_export.currentData() == "jpg"
        assert panel.fix_sensor_size.isChecked() and not panel.fix_focal_length.isChecked()
        assert panel.send_button.isEnabled(), panel.problems.text()
        choice = panel.choice()
        assert choice.roto and choice.tracking and choice.depth and choice.depth_export == "jpg"
        assert choice.tracking_metadata["fix_sensor_size"] is True


def check_typing_and_clicking_revalidate(folder: Path, url: Optional[str]) -> None:
    sequence_read(folder, missing=(1010, 1011))
    with panel_in(folder) as panel:
        panel.open_with(("tracking",))
        type_into(panel.sensor_width, "36")
        hint = panel.hints["sensor_height"]
        assert "give the sensor's width and height" in hint.text() and hint.isVisibleTo(panel), hint.text()
        assert not panel.send_button.isEnabled()
        type_into(panel.sensor_height, "24")
        type_into(panel.lens, "abc")
        assert "'abc' is not a number of mm" in panel.hints["lens"].text(), panel.hints["lens"].text()
        assert not panel.send_button.isEnabled()
        panel.lens.clear()
        tracking = panel.service_boxes["tracking"]
        click(tracking, QtCore.QPoint(6, tracking.height() // 2))  # on the indicator, as a user would
        assert not tracking.isChecked(), "a click on the Track camera box did not untick it"
        assert "tick at least one" in panel.problems.text(), panel.problems.text()
        roto = panel.service_boxes["roto"]
        click(roto, QtCore.QPoint(6, roto.height() // 2))
        assert roto.isChecked()
        check = panel.validate(check_disk=True)
        assert any("frames 1010-1011 are missing" in e for e in check.errors), check.errors
        # the disk is checked on a thread as the Read is read: the missing frames show beside the clip before Send
        wait_until(lambda: "1010-1011" in panel.clip_note.text(), "the missing frames beside the clip")
        assert not panel.send_button.isEnabled()


def check_still_image_is_refused(folder: Path, url: Optional[str]) -> None:
    read = nuke.nodes.Read()
    read["file"].setValue(str(folder / "board.jpg"))
    read.setSelected(True)
    with panel_in(folder) as panel:
        panel.open_with(("roto",))
        assert "still image" in panel.clip_note.text(), panel.clip_note.text()
        assert not panel.send_button.isEnabled()


def check_preview_dialog(folder: Path, url: Optional[str]) -> None:
    """Preview payload: the JSON a send would post, in a read-only dialog with Copy; problems instead when invalid."""
    import json

    from tether.autopilot.submit import UPLOAD_PLACEHOLDER

    sequence_read(folder)
    with panel_in(folder) as panel:
        panel.open_with(("roto", "depth"))
        panel.depth_export.setCurrentIndex(1)
        wait_until(lambda: panel.offline is not None, "the quota request of opening to fail")
        assert "not answering" in panel.problems.text(), panel.problems.text()
        asked = len(panel.controller.service("autopilot")._clients)
        click(panel.preview_button)
        wait_until(lambda: panel.preview_dialog is not None and panel.preview_dialog.isVisible(), "the dialog")
        dialog = panel.preview_dialog
        assert dialog.text.isReadOnly()
        doc = json.loads(dialog.text.toPlainText())
        [asset] = doc["payload"]["assets"]
        assert asset["source_path"] == UPLOAD_PLACEHOLDER
        assert [(s["type"], s.get("export_type")) for s in asset["services"]] == [("roto", None), ("depth_map", "mov")]
        assert doc["payload"]["metadata"]["nuke_read"] == "Plate7" and doc["clip"]["frames_sent"] == [1001, 1024]
        assert len(panel.controller.service("autopilot")._clients) == asked  # no client was even made for the preview
        click(dialog.copy_button)
        assert QtWidgets.QApplication.clipboard().text() == dialog.text.toPlainText()
        for box in panel.service_boxes.values():
            box.setChecked(False)
        click(panel.preview_button)
        assert "tick at least one" in dialog.text.toPlainText(), dialog.text.toPlainText()
        assert panel.preview_dialog is dialog


def check_job_table_follows_the_registry_and_live_events(folder: Path, url: Optional[str]) -> None:
    with panel_in(folder) as panel:
        registry = panel.controller.registry
        registry.record(service="autopilot", job_id="job-1", title="t", state=JobState.RUNNING, progress=25.0,
                        extra={"plate": {"node": "Plate7", "sent": [1001, 1024]}})
        registry.record(service="autopilot", job_id="job-2", title="u", state=JobState.FAILED, progress=40.0,
                        extra={"plate": {"node": "Plate8", "sent": [1, 10]}})
        from tether_nuke.panel import COLUMNS

        progress = COLUMNS.index("State")
        panel.open_with((), "jobs")
        assert panel.tabs.currentIndex() == 1
        assert panel.table.rowCount() == 2
        row1, row2 = panel._rows[("autopilot", "job-1")], panel._rows[("autopilot", "job-2")]
        assert panel.table.item(row1, COLUMNS.index("Job")).text() == "Plate7"
        assert panel.table.item(row1, COLUMNS.index("Service")).text() == "Autopilot"
        assert panel.table.cellWidget(row1, progress).value() == 25
        failed = panel.table.cellWidget(row2, progress)
        label = registry.get("autopilot", "job-2").state_label
        assert failed.value() == 0 and failed.format() == label == "failed", failed.format()  # red on no fill
        registry.record(service="autopilot", job_id="job-1", state=JobState.RUNNING, progress=80.0)
        seen: List[Any] = []
        panel._bridge.event.connect(lambda kind, payload: seen.append((kind, payload)))
        sent = panel.controller.jobs()
        worker = threading.Thread(target=panel.controller._emit, args=("jobs", sent))
        worker.start()
        worker.join()
        wait_until(lambda: panel.table.cellWidget(panel._rows[("autopilot", "job-1")], progress).value() == 80,
                   "the live progress")
        # this very event, sent from a worker thread, reached the GUI thread through the bridge (the panel's own
        # watcher, job-1 being running, may send events of its own too, whenever a poll ends)
        assert any(kind == "jobs" and payload is sent for kind, payload in seen), [k for k, _ in seen]
        row1 = panel._rows[("autopilot", "job-1")]
        cell = panel.table.visualItemRect(panel.table.item(row1, COLUMNS.index("Job"))).center()
        click(panel.table.viewport(), cell)
        assert panel.selected_key() == ("autopilot", "job-1"), panel.selected_key()
        assert panel.cancel_button.isEnabled()
        click(panel.import_button)
        assert "only completed jobs can be imported" in panel.status.text(), panel.status.text()


def check_clip_service_jobs_in_the_monitor(folder: Path, url: Optional[str]) -> None:
    """TensorPix and Clipzy jobs share the table with Autopilot's; Cancel is off, saying why, for Clipzy."""
    from tether_nuke.clipservices import ClipzyNukeAdapter, TensorPixAdapter
    from tether_nuke.panel import COLUMNS, TetherPanel
    from tether_nuke.service import ServiceController

    registry = JobRegistry(folder / "jobs.sqlite")
    for service, job_id, node in (("autopilot", "a1", "PlateA"), ("tensorpix", "101", "PlateT"),
                                  ("clipzy", "z1", "PlateZ")):
        registry.record(service=service, job_id=job_id, state=JobState.COMPLETED, progress=100.0,
                        extra={"plate": {"node": node, "sent": [1, 8]}})
    controller = monitor(registry, lambda profile: NoNetwork(), folder / "dl",
                         tensorpix=ServiceController(TensorPixAdapter(), registry, lambda profile: NoNetwork()),
                         clipzy=ServiceController(ClipzyNukeAdapter(), registry, lambda profile: NoNetwork()))
    panel = TetherPanel(controller)
    try:
        panel.open_with((), "jobs")
        assert controller.watching() == [], controller.watching()  # every job finished: nothing is polled
        service = COLUMNS.index("Service")
        shown = {panel.table.item(row, service).text(): panel.table.item(row, COLUMNS.index("Job")).text()
                 for row in range(panel.table.rowCount())}
        assert shown == {"Autopilot": "PlateA", "TensorPix": "PlateT", "Clipzy": "PlateZ"}, shown
        row = panel._rows[("clipzy", "z1")]
        click(panel.table.viewport(), panel.table.visualItemRect(panel.table.item(row, service)).center())
        assert panel.selected_key() == ("clipzy", "z1"), panel.selected_key()
        assert not panel.cancel_button.isEnabled()
        assert "no cancel route" in panel.cancel_button.toolTip(), panel.cancel_button.toolTip()
        row = panel._rows[("autopilot", "a1")]
        click(panel.table.viewport(), panel.table.visualItemRect(panel.table.item(row, service)).center())
        assert panel.selected_key() == ("autopilot", "a1")
        # Autopilot can cancel, but not a finished job: off, with nothing to excuse
        assert not panel.cancel_button.isEnabled() and panel.cancel_button.toolTip() == ""
    finally:
        panel.close()
        controller.close()
        panel.deleteLater()
        APP.processEvents()


def check_settings_page(folder: Path, url: Optional[str]) -> None:
    with panel_in(folder) as panel:
        panel.open_with((), "settings")
        assert panel.tabs.currentIndex() == 2
        assert panel.profile_label.text() not in ("", "-")
        assert set(panel.settings) == {"autopilot", "tensorpix", "clipzy"}, set(panel.settings)
        for box in panel.settings.values():
            assert box.url.text().startswith("http"), box.url.text()
            assert "not readable" not in box.key_label.text(), box.key_label.text()
            assert box.key_edit.echoMode() == QtWidgets.QLineEdit.EchoMode.Password


def check_the_panel_follows_the_selection_or_the_pin(folder: Path, url: Optional[str]) -> None:
    first = sequence_read(folder)
    with panel_in(folder) as panel:
        panel.open_with(("roto",))
        assert panel.facts["node"].text() == "Plate7" and panel.selection_timer.isActive()
        second = nuke.nodes.Read()
        second.setName("Plate8")
        second["file"].setValue(first["file"].value())
        second.selectOnly()
        wait_until(lambda: panel.facts["node"].text() == "Plate8", "the selection, followed by the timer")
        click(panel.pin_button)
        assert panel.pinned == "Plate8" and "Pinned: Plate8" in panel.pin_note.text(), panel.pin_note.text()
        first.selectOnly()
        assert not panel.follow_selection() and panel.plate.node == "Plate8"
        panel.open_with((), "submit", "clipzy")
        assert panel.send_button.text() == "&Send to Clipzy" and not panel.preview_button.isVisible()
        assert "Template clip is required" in panel.problems.text(), panel.problems.text()


def check_closing_stops_the_events(folder: Path, url: Optional[str]) -> None:
    with panel_in(folder) as panel:
        panel.open_with((), "jobs")
        assert panel._forward in panel.controller._listeners
        panel.close()
        APP.processEvents()
        assert panel._forward not in panel.controller._listeners


def check_commands_open_the_panel_through_nukescripts(folder: Path, url: Optional[str]) -> None:
    from tether_nuke import commands

    widget = commands.show_panel(("depth",), "submit")
    assert widget is not None, nuke._messages
    try:
        assert widget.service_boxes["depth"].isChecked() and not widget.service_boxes["roto"].isChecked()
        assert commands.show_panel((), "jobs") is widget  # reused, not a second panel
        assert widget.tabs.currentIndex() == 1
    finally:
        widget.close()
        widget.controller.close()
        widget.deleteLater()
        APP.processEvents()


# --- the clip services' sections ---------------------------------------------------------------------------------
def check_options_spec_section(folder: Path, url: Optional[str]) -> None:
    from tether_nuke.dialog import ClipServiceSection
    from tether_nuke.service import ServiceController

    ctl = ServiceController(SpecOnly(), JobRegistry(folder / "jobs.sqlite"), lambda p: None)  # type: ignore[arg-type]
    section = ClipServiceSection(ctl)
    try:
        section.show()
        assert set(section.fields) == {"template", "strength", "keep_audio"}
        assert section.problems_now() == ["Template clip is required"], section.problems_now()
        type_into(section.fields["template"], "/clips/look.mov")
        section.fields["strength"].setValue(0.5)
        click(section.fields["keep_audio"], QtCore.QPoint(6, section.fields["keep_audio"].height() // 2))
        assert section.options() == {"template": "/clips/look.mov", "strength": 0.5, "keep_audio": True}, \
            section.options()
    finally:
        section.close()
        ctl.close()


def check_tensorpix_section_lists_models(folder: Path, url: Optional[str]) -> None:
    """The model list comes over HTTP from the local TensorPix the test runs; ticking one names it in the options."""
    from tether.tensorpix.client import LOCAL_API_KEY, TensorPixClient
    from tether_nuke.clipservices import TensorPixAdapter
    from tether_nuke.dialog import ClipServiceSection
    from tether_nuke.service import ServiceController

    assert url, "no TensorPix URL given"
    expected = [m.id for m in TensorPixClient(url, token=LOCAL_API_KEY).models()]
    assert expected, "the local TensorPix lists no models"
    ctl = ServiceController(TensorPixAdapter(), JobRegistry(folder / "jobs.sqlite"),
                            lambda profile: TensorPixClient(url, token=LOCAL_API_KEY), download_root=folder / "dl")
    dialog = ClipServiceSection(ctl)
    try:
        dialog.show()
        wait_until(lambda: dialog.models_box.count() == len(expected), "the model list", timeout=30)
        box = dialog.models_box
        ids = [box.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(box.count())]
        assert ids == expected, ids
        assert box.item(0).flags() & QtCore.Qt.ItemFlag.ItemIsUserCheckable
        try:
            dialog.options()
        except Exception as exc:
            assert "tick at least one model" in str(exc), exc
        else:
            raise AssertionError("no model ticked, yet options were made")
        box.item(len(ids) - 1).setCheckState(QtCore.Qt.CheckState.Checked)
        dialog.resolution.setCurrentIndex(2)
        dialog.numbers["sharpen_strength"].setValue(5)
        assert dialog.options() == {"ml_models": [ids[-1]], "output_resolution": 1080, "preview": False,
                                    "sharpen_strength": 5}, dialog.options()
    finally:
        dialog.close()
        ctl.close()


def check_tensorpix_models_from_the_cache(folder: Path, url: Optional[str]) -> None:
    """Models listed before show at once; offline (a closed port) they stay, noted as from then; a fresh list
    replaces them and a ticked model it no longer offers is flagged and refused."""
    import socket

    from tether import listcache
    from tether.http import RetryPolicy
    from tether.tensorpix.client import LOCAL_API_KEY, TensorPixClient
    from tether_nuke.clipservices import TensorPixAdapter, clock
    from tether_nuke.dialog import ClipServiceSection
    from tether_nuke.service import ServiceController

    assert url, "no TensorPix URL given"
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/tensorpix"
    gate = threading.Event()

    class Gated(TensorPixClient):
        def models(self) -> Any:
            assert gate.wait(30)
            return super().models()

    stamp = time.time() - 600
    old = [("99", "Retired"), ("1", "Old name")]
    dialogs = []
    try:
        for where in (closed, url):
            listcache.save("tensorpix", "local", where, {"ml_models": old}, fetched_at=stamp)
            ctl = ServiceController(
                TensorPixAdapter(), JobRegistry(folder / "jobs.sqlite"),
                lambda profile, where=where: Gated(where, token=LOCAL_API_KEY, retry=RetryPolicy(attempts=1)),
                download_root=folder / "dl")
            dialogs.append(ClipServiceSection(ctl))
        offline, online = dialogs
        box = online.models_box

        def ids(dialog: Any) -> List[Any]:
            return [dialog.models_box.item(i).data(QtCore.Qt.ItemDataRole.UserRole)
                    for i in range(dialog.models_box.count())]

        wait_until(lambda: ids(online) == [99, 1], "the cached models")
        box.item(0).setCheckState(QtCore.Qt.CheckState.Checked)
        gate.set()
        wait_until(lambda: offline.models_note.text().startswith("offline"), "the offline note", timeout=30)
        assert ids(offline) == [99, 1] and offline.models_note.text() == f"offline: models from {clock(stamp)}"
        fresh = [m.id for m in TensorPixClient(url, token=LOCAL_API_KEY).models()]
        wait_until(lambda: ids(online) == [*fresh, 99], "the fresh models", timeout=30)
        flagged = box.item(len(fresh))
        assert "no longer offered" in flagged.text() and flagged.checkState() == QtCore.Qt.CheckState.Checked
        try:
            online.options()
        except Exception as exc:
            assert "no longer offers model 99" in str(exc), exc
        else:
            raise AssertionError("a model no longer offered was sent")
        assert online.models_note.text() == f"models as of {clock(online.models_shown_at)}"
    finally:
        gate.set()
        for dialog in dialogs:
            dialog.close()
            dialog.controller.close()


CHECKS = [check_no_read_selected_blocks_sending, check_clip_facts_and_defaults, check_typing_and_clicking_revalidate,
          check_still_image_is_refused, check_preview_dialog, check_job_table_follows_the_registry_and_live_events,
          check_clip_service_jobs_in_the_monitor, check_settings_page, check_the_panel_follows_the_selection_or_the_pin,
          check_closing_stops_the_events, check_commands_open_the_panel_through_nukescripts,
          check_options_spec_section, check_tensorpix_section_lists_models, check_tensorpix_models_from_the_cache]


def main(argv: List[str]) -> int:
    work = Path(argv[1])
    url = argv[2] if len(argv) > 2 else None
    results: Dict[str, str] = {}
    for number, check in enumerate(CHECKS):
        folder = work / f"{number:02d}"
        folder.mkdir(parents=True)
        nuke._reset()
        nukescripts.panels._reset()
        try:
            check(folder, url)
            results[check.__name__] = "ok"
        except BaseException:
            results[check.__name__] = traceback.format_exc()
    print(json.dumps({"api": qtpy.API_NAME, "pyside": qtpy.PYSIDE_VERSION, "qt": QtCore.qVersion(),
                      "python": list(sys.version_info[:3]), "checks": results}))
    return 0 if all(value == "ok" for value in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
