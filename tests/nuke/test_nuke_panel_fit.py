"""The panel and the clip dialogs as a compositor sees them in a 420 px dock: every state of panel_states.py is built
offscreen and checked for its minimum width and for text it cuts; the Send page's tab order and default button, and
the dialog's, are checked by key presses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
pytest.importorskip("qtpy")

import panel_states
from panel_states import DOCK, STATES, build, clashing_mnemonics, clipped, close, focus_order


@pytest.mark.parametrize("name", list(STATES))
def test_every_state_fits_a_dock_and_cuts_no_text(name: str, qtbot: Any, tmp_path: Path) -> None:
    widget = build(name, tmp_path / name)
    try:
        assert widget.minimumSizeHint().width() <= DOCK, widget.minimumSizeHint()
        assert widget.width() == DOCK
        assert clipped(widget) == []
        assert clashing_mnemonics(widget) == []
    finally:
        close(widget)


def test_states_say_what_is_wrong_in_words(qtbot: Any, tmp_path: Path) -> None:
    panel = build("send-long-path", tmp_path / "long")
    try:
        file_label = panel.facts["file"]
        assert file_label.full_text().endswith("sh0100_main_plate_v003.####.exr") and len(file_label.full_text()) > 94
        assert "…" in file_label.text() and file_label.toolTip() == file_label.full_text()  # cut in its middle
        assert "needs 72 frames (24 for each of 3 services)" in panel.problems.text()
        assert "50 left" in panel.problems.text() and not panel.send_button.isEnabled()
    finally:
        close(panel)
    panel = build("tensorpix-still", tmp_path / "still")
    try:
        assert "TensorPix needs a clip" in panel.problems.text() + panel.clip_note.text()
        assert "Autopilot" not in panel.problems.text() + panel.clip_note.text()
        assert not panel.send_button.isEnabled() and panel.send_button.text() == "&Send to TensorPix"
        section = panel.sections["tensorpix"]
        assert [section.models_box.item(i).text() for i in range(3)] == ["Upscale x2", "Denoise (strong)",
                                                                        "Frame interpolation"]
        spins = [section.numbers[k] for k in ("grain", "fps_interpolation_factor")]
        assert [(s.text(), s.maximum()) for s in spins] == [("0 %", 100), ("0.0 x", 8)]  # no "default", no "20.00"
    finally:
        close(panel)
    panel = build("send-failure", tmp_path / "failure")
    try:
        box = panel.failure_box
        assert box.summary.text().startswith("Sending the clip to Autopilot failed: Autopilot is not answering")
        assert "req-7f3a9c1d2e" not in box.summary.text() and "req-7f3a9c1d2e" in box.details.toPlainText()
        box.copy()
        from qtpy import QtWidgets

        assert "req-7f3a9c1d2e" in QtWidgets.QApplication.clipboard().text()
    finally:
        close(panel)


def test_the_job_monitor_answers_what_when_where_why(qtbot: Any, tmp_path: Path) -> None:
    from tether_nuke.panel import COLUMNS

    panel = build("jobs", tmp_path / "jobs")
    try:
        def row(service: str, job_id: str) -> Any:
            return [panel.table.item(panel._rows[(service, job_id)], c).text() for c in range(len(COLUMNS))]

        job, service, _, sent = row("autopilot", "3f2a9c1d-77aa-4e0b-9f1e-0c5d7e2b1a90")
        assert (job, service) == ("Plate_sh0100_main", "Autopilot: roto, camera, depth (jpg)") and len(sent) == 5
        state = COLUMNS.index("State")
        bars = {key: panel.table.cellWidget(r, state).format() for key, r in panel._rows.items()}
        assert bars[("tensorpix", "101")] == "imported"
        assert bars[("autopilot", "3f2a9c1d-77aa-4e0b-9f1e-0c5d7e2b1a90")] == "running 40%"
        assert bars[("clipzy", "z-88")] == "failed"
        assert "template clip is shorter than 1 second" in panel.job_info.text()  # the selected job's reason
        assert "Autopilot has not answered since" in panel.stale_note.text()  # its watcher's asks failed
        menu = panel.job_menu()
        assert menu is not None and [a.text() for a in menu.actions()] == [
            "Import", "Re-import as a new version", "Cancel job", "Reveal results", "Copy job id"]
        assert not any(panel.menu_actions[k].isEnabled() for k in ("import", "reimport", "cancel"))  # failed
        panel.menu_actions["copy"].trigger()
        from qtpy import QtWidgets

        assert QtWidgets.QApplication.clipboard().text() == "z-88"
        panel.table.selectRow(panel._rows[("tensorpix", "101")])
        menu = panel.job_menu()
        assert panel.menu_actions["reimport"].isEnabled() and not panel.menu_actions["import"].isEnabled()
        panel._on_event("stale", ("autopilot", ""))  # it answers again
        assert panel.stale_note.isHidden()
        panel._on_event("awaiting home", ("tensorpix", "101", True))  # an import waits for the agent's download
        assert "Waiting for the Tether agent to bring TensorPix job 101 home" in panel.status.text()
        panel._on_event("awaiting home", ("tensorpix", "101", False))  # and goes on
        assert panel.status.text() == "Importing TensorPix job 101..."
    finally:
        close(panel)


def test_tab_order_and_enter_sends(qtbot: Any, tmp_path: Path) -> None:
    from qtpy import QtCore

    panel = build("send-no-read", tmp_path / "panel")
    try:
        assert focus_order(panel.tab_order[0], panel.tab_order) == panel.tab_order
        assert panel.send_button.isDefault()
        panel_states.sequence_read(tmp_path)
        panel.open_with(("tracking",))
        sent = []
        panel.send_button.clicked.connect(lambda *_: sent.append(True))
        qtbot.keyClick(panel.lens, QtCore.Qt.Key.Key_Return)
        assert sent == [True]
    finally:
        close(panel)
    panel = build("clipzy-imported", tmp_path / "clipzy")
    try:
        section = panel.sections["clipzy"]
        assert panel.send_button.isDefault() and panel.send_button.isEnabled()
        assert focus_order(panel.tab_order[0], panel.tab_order) == panel.tab_order
        assert panel.tab_order[2:4] == [section.fields["template"], *section.tab_order[1:2]]  # then Browse
        assert "Plate7_clipzy_styled_v003" in panel.status.text()
        sent = []
        panel.send_button.clicked.connect(lambda *_: sent.append(True))
        qtbot.keyClick(section.fields["template"], QtCore.Qt.Key.Key_Return)
        assert sent == [True]
    finally:
        close(panel)
