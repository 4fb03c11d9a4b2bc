"""The panel (each service's section, the Job monitor, Settings) in the states a compositor meets, built offscreen
against the fake nuke with no network, and the checks a 420 px dock asks of each (used by test_nuke_panel_fit.py and
render_states.py).

Each state is made by a function ``(folder) -> panel`` that leaves the panel shown at :data:`DOCK` px wide.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import nuke
from memkeyring import MemoryKeyring
from panel_support import NoNetwork, monitor, sequence_read
from qtpy import QtCore, QtWidgets
from tether.errors import ServiceUnavailable
from tether.jobs import JobState
from tether.registry import JobRegistry
from waiting import eventually

DOCK = 420
LONG = "shows/FALLOUT_S02/sq010_desert_approach/sh0100/plates/main_plate_v003_ungraded"  # a 94-char plate path


def _pump() -> None:
    app = QtWidgets.QApplication.instance()
    for _ in range(3):
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)  # replaced cell widgets
        app.processEvents()


def _panel(folder: Path) -> Any:
    from tether_nuke.clipservices import ClipzyNukeAdapter, TensorPixAdapter
    from tether_nuke.panel import TetherPanel
    from tether_nuke.service import ServiceController

    registry = JobRegistry(folder / "jobs.sqlite")
    controller = monitor(registry, lambda p: NoNetwork(), folder / "dl", poll=(30.0, 60.0),
                         tensorpix=ServiceController(TensorPixAdapter(), registry, lambda p: NoNetwork()),
                         clipzy=ServiceController(ClipzyNukeAdapter(), registry, lambda p: NoNetwork()))
    panel = TetherPanel(controller)
    panel.resize(DOCK, 900)
    return panel


def long_read(folder: Path) -> Any:
    """``Plate_sh0100``: a sequence 1001-1024 under a long studio path, selected."""
    seq = folder / LONG
    seq.mkdir(parents=True)
    for n in range(1001, 1025):
        (seq / f"sh0100_main_plate_v003.{n:04d}.exr").write_bytes(b"v/1\x01")
    read = nuke.nodes.Read()
    read.setName("Plate_sh0100")
    read["file"].setValue(f"{seq.as_posix()}/sh0100_main_plate_v003.####.exr")
    for knob, value in (("first", 1001), ("last", 1024), ("origfirst", 1001), ("origlast", 1024)):
        read[knob].setValue(value)
    read.setSelected(True)
    return read


def _settle(panel: Any, until: Callable[[], bool], what: str) -> None:
    """Wait for what the widget's threads deliver through Qt's event loop."""
    eventually(until, pump=_pump, message=what)
    _pump()


def send_no_read(folder: Path) -> Any:
    panel = _panel(folder)
    panel.open_with(("roto",))
    return panel


def send_long_path(folder: Path) -> Any:
    long_read(folder)
    panel = _panel(folder)
    panel.open_with(("roto", "tracking", "depth"))
    panel.quota_remaining = 50  # as the service said: three services of 24 frames need 72
    panel.update_problems()
    return panel


def send_missing_frames(folder: Path) -> Any:
    sequence_read(folder, missing=(1010, 1011))
    panel = _panel(folder)
    panel.open_with(("roto",))
    _settle(panel, lambda: bool(panel.disk_problems), "the disk check")
    return panel


def still_read(folder: Path) -> Any:
    """``Board``: a storyboard still, selected."""
    read = nuke.nodes.Read()
    read.setName("Board")
    read["file"].setValue(str(folder / "storyboard_frame_sh0100.jpg"))
    read.setSelected(True)
    return read


def send_still(folder: Path) -> Any:
    still_read(folder)
    panel = _panel(folder)
    panel.open_with(("depth",))
    return panel


def send_pinned(folder: Path) -> Any:
    """``Plate_sh0100`` pinned, then another Read selected: the panel keeps the pinned one and says so."""
    long_read(folder)
    panel = _panel(folder)
    panel.open_with(("roto",))
    panel.pin_button.click()
    sequence_read(folder).selectOnly()
    panel.follow_selection()
    return panel


def send_uploading(folder: Path) -> Any:
    """A send's upload under way: bytes and percent on the bar, Cancel beside it."""
    sequence_read(folder)
    panel = _panel(folder)
    panel.open_with(("roto", "depth"))
    panel._sending = True
    panel.send_button.setEnabled(False)
    panel._on_event("upload", ("Plate7", 12_582_912, 31_457_280))
    return panel


def send_already_sent(folder: Path) -> Any:
    """Send pressed for frames Autopilot had with these options: its results are offered, or to send anyway."""
    from tether.autopilot.submit import AlreadySent

    sequence_read(folder)
    panel = _panel(folder)
    panel.open_with(("roto", "depth"))
    registry = panel.controller.registry
    registry.record(service="autopilot", job_id="3f2a9c1d-77aa-4e0b-9f1e-0c5d7e2b1a90", state=JobState.COMPLETED,
                    progress=100.0, extra={"plate": {"node": "Plate7"}})
    earlier = registry.get("autopilot", "3f2a9c1d-77aa-4e0b-9f1e-0c5d7e2b1a90")
    panel._on_event("sent", ("Plate7", "Autopilot", AlreadySent(earlier)))
    return panel


def send_bad_options(folder: Path) -> Any:
    sequence_read(folder)
    panel = _panel(folder)
    panel.open_with(("tracking",))
    panel.lens.setText("35mmm")
    panel.sensor_width.setText("36")
    return panel


def send_failure(folder: Path) -> Any:
    from tether_nuke.failure import failure

    sequence_read(folder)
    panel = _panel(folder)
    panel.open_with(("roto",))
    error = ServiceUnavailable("could not connect to https://autopilot.example.com/api/v1/jobs: connection refused",
                               service="autopilot", method="POST", url="https://autopilot.example.com/api/v1/jobs",
                               request_id="req-7f3a9c1d2e")
    panel._on_event("error", failure("sending the clip to Autopilot", error))
    panel.failure_box.toggle.setChecked(True)
    return panel


def jobs_page(folder: Path) -> Any:
    registry = JobRegistry(folder / "jobs.sqlite")
    registry.record(service="autopilot", job_id="3f2a9c1d-77aa-4e0b-9f1e-0c5d7e2b1a90", title="t",
                    state=JobState.RUNNING, progress=40.0,
                    extra={"plate": {"node": "Plate_sh0100_main", "sent": [1001, 1024]},
                           "asked": "roto, camera, depth (jpg)"})
    registry.record(service="tensorpix", job_id="101", state=JobState.COMPLETED, progress=100.0,
                    extra={"plate": {"node": "Plate_sh0200"}, "asked": "Upscale x2, 1080p"})
    registry.mark_fetched("tensorpix", "101", folder / "dl" / "tensorpix" / "101")
    registry.record(service="clipzy", job_id="z-88", state=JobState.FAILED, progress=55.0,
                    extra={"plate": {"node": "Plate_sh0300"}, "asked": "look_reference_v2.mov"})
    panel = _panel(folder)
    _fail(panel, "clipzy", "z-88", "the template clip is shorter than 1 second: choose a longer template")
    panel.open_with((), "jobs")
    # the watcher's asks about the running Autopilot job fail (no network): the notice comes from them
    _settle(panel, lambda: not panel.stale_note.isHidden(), "the stale notice")
    panel.table.selectRow(panel._rows[("clipzy", "z-88")])
    return panel


def _fail(panel: Any, service: str, job_id: str, reason: str) -> None:
    from tether.jobs import Job

    job = Job(id=job_id, service=service, state=JobState.FAILED, raw_state="failed", progress=55.0, error=reason)
    panel.controller.registry.update_from(job, "")


def settings_page(folder: Path) -> Any:
    panel = _panel(folder)
    panel.open_with((), "settings")
    return panel


class RefusingKeyring(MemoryKeyring):
    """A keyring that is there but refuses to store (a locked login keyring does)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise PermissionError("the login keyring is locked")


_keyrings: List[Any] = []  # the keyring a state replaced, put back by close()


def settings_key_refused(folder: Path) -> Any:
    """A TensorPix key pasted and Save pressed while the keyring refuses it: said in red, the key kept."""
    import keyring

    _keyrings.append(keyring.get_keyring())
    keyring.set_keyring(RefusingKeyring())
    panel = settings_page(folder)
    box = panel.settings["tensorpix"]
    box.key_edit.setText("tpx-0123456789abcdef")
    box.save_button.click()
    return panel


def _section(folder: Path, service: str) -> Any:
    panel = _panel(folder)
    panel.open_with((), "submit", service)
    return panel


def tensorpix_still(folder: Path) -> Any:
    from tether import listcache

    listcache.save("tensorpix", "", "", {"ml_models": [("1", "Upscale x2"), ("2", "Denoise (strong)"),
                                                          ("3", "Frame interpolation")]})
    still_read(folder)
    panel = _section(folder, "tensorpix")
    section = panel.sections["tensorpix"]
    _settle(panel, lambda: section.models_box.count() == 3 and "offline" in section.models_note.text(),
            "the cached models, offline")
    return panel


def clipzy_imported(folder: Path) -> Any:
    from tether_nuke.importer import Applied

    sequence_read(folder)
    panel = _section(folder, "clipzy")
    panel.sections["clipzy"].fields["template"].setText(
        "/mnt/projects/FALLOUT_S02/reference/looks/desert_warm_grade_v2.mov")
    panel._on_event("imported", ("c0ffee-42", Applied(names={"Plate7_clipzy": "Plate7_clipzy_styled_v003"},
                                                      notes=["the styled movie has 24 frames for the 24 sent"])))
    return panel


STATES: Dict[str, Callable[[Path], Any]] = {
    "send-no-read": send_no_read, "send-long-path": send_long_path, "send-missing-frames": send_missing_frames,
    "send-still": send_still, "send-bad-options": send_bad_options, "send-failure": send_failure,
    "send-pinned": send_pinned, "send-uploading": send_uploading, "send-already-sent": send_already_sent,
    "jobs": jobs_page, "settings": settings_page,
    "settings-key-refused": settings_key_refused, "tensorpix-still": tensorpix_still,
    "clipzy-imported": clipzy_imported,
}


def build(name: str, folder: Path) -> Any:
    nuke._reset()
    folder.mkdir(parents=True, exist_ok=True)
    widget = STATES[name](folder)
    widget.show()
    widget.resize(DOCK, max(widget.height(), widget.sizeHint().height()))
    _pump()
    return widget


def close(panel: Any) -> None:
    panel.close()
    panel.controller.close()
    panel.deleteLater()
    _pump()
    if _keyrings:
        import keyring

        keyring.set_keyring(_keyrings.pop())


# --- the checks ---------------------------------------------------------------------------------------------------
def _plain(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text.replace("<br>", "\n"))


def clipped(window: Any) -> List[str]:
    """Every visible piece of text the window cuts (each as "ClassName 'text': why"); empty when none is."""
    from tether_nuke.widgets import ElidedLabel

    found: List[str] = []
    right = window.width()
    for widget in window.findChildren(QtWidgets.QWidget):
        if not widget.isVisibleTo(window) or widget.width() <= 0:
            continue
        inside = widget.mapTo(window, QtCore.QPoint(widget.width(), 0)).x()
        scroll = widget.parentWidget()
        while scroll is not None and not isinstance(scroll, QtWidgets.QAbstractScrollArea):
            scroll = scroll.parentWidget()
        if inside > right + 1 and scroll is None:
            found.append(f"{type(widget).__name__} ends at {inside} px, past the window's {right}")
        if isinstance(widget, QtWidgets.QTableWidget):
            found += _clipped_cells(widget)
        if isinstance(widget, QtWidgets.QProgressBar) and widget.isTextVisible() and widget.text():
            need = widget.fontMetrics().horizontalAdvance(widget.text()) + 6
            if need > widget.width() and widget.text() not in widget.toolTip():
                found.append(f"QProgressBar '{widget.text()}': needs {need} px, has {widget.width()}")
        if isinstance(widget, ElidedLabel):
            if widget.text() != widget.full_text() and widget.toolTip() != widget.full_text():
                found.append(f"ElidedLabel '{widget.full_text()}': cut without the whole text in its tooltip")
            continue
        if isinstance(widget, QtWidgets.QLabel) and widget.text():
            text = _plain(widget.text())
            if widget.buddy() is not None:  # a mnemonic's "&" is not drawn
                text = re.sub(r"&(.)", r"\1", text)
            room = widget.contentsRect()
            if widget.wordWrap():
                longest = max((widget.fontMetrics().horizontalAdvance(w) for w in text.split()), default=0)
                if longest > room.width() + 1:
                    found.append(f"QLabel '{text[:60]}': a word of {longest} px in {room.width()} px")
                if widget.heightForWidth(widget.width()) > widget.height() + 1:
                    found.append(f"QLabel '{text[:60]}': needs {widget.heightForWidth(widget.width())} px of "
                                 f"height, has {widget.height()}")
            else:
                need = max(widget.fontMetrics().horizontalAdvance(line) for line in text.split("\n"))
                if need > room.width() + 1:
                    found.append(f"QLabel '{text[:60]}': needs {need} px, has {room.width()}")
        elif isinstance(widget, QtWidgets.QAbstractButton) and widget.text() and \
                widget.sizeHint().width() > widget.width() + 1:
            found.append(f"{type(widget).__name__} '{widget.text()}': needs {widget.sizeHint().width()} px, "
                             f"has {widget.width()}")
    return found


def _clipped_cells(table: Any) -> List[str]:
    """Cells whose text the column cuts, unless the cell's tooltip holds it whole."""
    found = []
    metrics = table.fontMetrics()
    for row in range(table.rowCount()):
        for column in range(table.columnCount()):
            item = table.item(row, column)
            if item is None or not item.text() or table.cellWidget(row, column) is not None:
                continue
            need = metrics.horizontalAdvance(item.text()) + 8  # the cell's margins
            if need > table.columnWidth(column) and item.text() not in item.toolTip():
                found.append(f"cell ({row}, {column}) '{item.text()}': needs {need} px, has "
                             f"{table.columnWidth(column)}, and its tooltip does not hold it")
    return found


def clashing_mnemonics(window: Any) -> List[str]:
    """The Alt+letter shortcuts two visible widgets of the window share (Qt would cycle between them)."""
    seen: Dict[str, List[str]] = {}
    for widget in window.findChildren(QtWidgets.QWidget):
        if not widget.isVisibleTo(window) or not isinstance(widget, (QtWidgets.QAbstractButton, QtWidgets.QLabel)):
            continue
        if isinstance(widget, QtWidgets.QLabel) and widget.buddy() is None:
            continue  # a label's "&" marks a mnemonic only when it has a buddy
        found = re.search(r"&([^&\s])", widget.text())
        if found:
            seen.setdefault(found.group(1).lower(), []).append(widget.text())
    return [f"Alt+{key}: {', '.join(texts)}" for key, texts in sorted(seen.items()) if len(texts) > 1]


def focus_order(start: Any, among: List[Any]) -> List[Any]:
    """The widgets of ``among`` in the order Tab visits them from ``start``."""
    seen: List[Any] = []
    widget = start
    for _ in range(400):
        if widget in among and widget not in seen:
            seen.append(widget)
        widget = widget.nextInFocusChain()
        if widget is start:
            break
    return seen


def each_state(folder: Path) -> Iterator[Tuple[str, Any]]:
    for name in STATES:
        widget = build(name, folder / name)
        try:
            yield name, widget
        finally:
            close(widget)
