"""The dockable Tether panel (Qt through qtpy: PySide2 in Nuke 14-15, PySide6 in Nuke 16+).

Three pages: **Send** (the selected Read's clip facts, the Autopilot options with the vendor's defaults, the problems
that block sending, Send, and Preview payload: the create-job body a send would post, from the core's own builder,
in a read-only dialog), **Jobs** (the job monitor: every Autopilot, TensorPix and Clipzy job of this user from the
shared registry, with its service, live state and progress; Import and Cancel, each through its service's
controller, and Cancel says so when a service has no way to cancel) and **Settings** (profile, endpoint, where the
API key comes from; store a key in the OS keyring). The panel never waits on the network: the controller's workers
do, and their events arrive here through a Qt signal, which Qt delivers on the GUI thread.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import nuke
from qtpy import QtCore, QtGui, QtWidgets
from tether.autopilot.models import MAX_FRAMES
from tether.autopilot.submit import UPLOAD_PLACEHOLDER, ServiceChoice, preview
from tether.errors import InputError, redact
from tether.jobs import JobState
from tether.nukeimport import Check, PlateFacts, check_plate
from tether.registry import JobRecord

from .autopilot import SERVICE, send_metadata, stage_sequence
from .controller import JobController
from .dialog import Bridge, ClipServiceDialog
from .plate_reader import read_plate, selected_read

SERVICES = ("roto", "tracking", "depth")
PAGES = ("submit", "jobs", "settings")
COLUMNS = ("Job", "Service", "Plate", "State", "Progress", "Sent")
SERVICE_ROLE = QtCore.Qt.ItemDataRole.UserRole  # the registry's service name, on the Service cell


def is_alive(widget: Any) -> bool:
    """False once Qt deleted the widget behind the Python object (the user closed the pane)."""
    try:
        widget.isVisible()
    except RuntimeError:
        return False
    return True


def preview_document(plate: PlateFacts, choice: ServiceChoice) -> Dict[str, Any]:
    """What a send of ``plate`` with ``choice`` would post, as plain JSON values. Any thread; no network.

    The same steps as :meth:`JobController.submit`: the disk check, the frames staged as a send stages them, then
    the core's :func:`tether.autopilot.submit.preview` (the builder a send uses), with a placeholder for the key
    the upload would give. The quota is not asked for: a preview sends no request.
    """
    check_plate(plate, check_disk=True, frame_limit=MAX_FRAMES).raise_first()
    with tempfile.TemporaryDirectory(prefix="tether-preview-") as tmp:
        spec = plate.file if plate.is_movie else stage_sequence(plate, Path(tmp))
        built = preview(None, spec, choice, metadata=send_metadata(plate), check_quota=False,
                        source=plate.file).document()
    first, last = plate.sent_range
    try:
        start, end = plate.plate_range
        plate_range: Any = [start, end]
    except InputError as exc:
        plate_range = str(exc)
    built.pop("quota_remaining", None)
    return {
        **built,
        "clip": {"node": plate.node, "file": plate.file, "movie": plate.is_movie, "frames_sent": [first, last],
                 "frame_count": plate.frame_count, "plate_frames": plate_range, "fps": plate.fps,
                 "format": f"{plate.width}x{plate.height} {plate.format_name}".strip(),
                 "colorspace": plate.colorspace},
    }


class PreviewDialog(QtWidgets.QDialog):
    """Read-only, monospaced text with Copy and Close."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tether: Autopilot payload preview")
        self.resize(640, 560)
        layout = QtWidgets.QVBoxLayout(self)
        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.text = QtWidgets.QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QtGui.QFont.StyleHint.Monospace)
        self.text.setFont(font)
        layout.addWidget(self.text)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        self.copy_button = QtWidgets.QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy)
        self.close_button = QtWidgets.QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

    def set_text(self, text: str, valid: bool) -> None:
        self.text.setPlainText(text)
        self.note.setText(f"The job Send would create; \"{UPLOAD_PLACEHOLDER}\" becomes the key the upload gives. "
                          "Nothing was uploaded or sent." if valid else "The input is not valid:")

    def copy(self) -> None:
        clipboard = QtWidgets.QApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.text.toPlainText())


def find_panel() -> Optional[TetherPanel]:
    """The open Tether panel, as Qt knows it (Nuke makes it when its pane is shown), or None."""
    for widget in QtWidgets.QApplication.allWidgets():
        if isinstance(widget, TetherPanel) and is_alive(widget) and not widget.closed:
            return widget
    return None


class TetherPanel(QtWidgets.QWidget):
    def __init__(self, controller: Optional[JobController] = None, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("TetherPanel")
        self.controller = controller or JobController()
        self.plate: Optional[PlateFacts] = None
        self.plate_error: Optional[str] = None
        self.quota_remaining: Optional[int] = None
        self._rows: Dict[Tuple[str, str], int] = {}  # (service, job id) -> row
        self.preview_dialog: Optional[PreviewDialog] = None
        self.dialogs: Dict[str, ClipServiceDialog] = {}  # one per clip service, opened from the menu
        self.closed = False
        self._bridge = Bridge(self)
        self._bridge.event.connect(self._on_event)
        self.controller.add_listener(self._forward)
        self._build()
        self.refresh_jobs()  # and jobs left running by an earlier session are followed again

    def clip_dialog(self, service: str) -> ClipServiceDialog:
        """The clip service's dialog (made once), sending through this panel's controller for that service, so its
        jobs are listed here as they move and polled once."""
        dialog = self.dialogs.get(service)
        if dialog is None or not is_alive(dialog):
            dialog = self.dialogs[service] = ClipServiceDialog(self.controller.service(service), self)
        return dialog

    # --- building -------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        self.tabs = QtWidgets.QTabWidget()
        layout.addWidget(self.tabs)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        send = QtWidgets.QWidget()
        form = QtWidgets.QVBoxLayout(send)
        clip_box = QtWidgets.QGroupBox("Clip")
        clip_form = QtWidgets.QFormLayout(clip_box)
        self.facts: Dict[str, QtWidgets.QLabel] = {}
        for key, label in (("node", "Read"), ("file", "File"), ("frames", "File frames"), ("plate", "Plate frames"),
                           ("fps", "FPS"), ("format", "Format"), ("colorspace", "Colourspace")):
            value = QtWidgets.QLabel("-")
            value.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts[key] = value
            clip_form.addRow(label, value)
        self.use_selected = QtWidgets.QPushButton("Use selected Read")
        self.use_selected.clicked.connect(self.refresh_plate)
        clip_form.addRow(self.use_selected)
        form.addWidget(clip_box)

        services_box = QtWidgets.QGroupBox("Services")
        services_form = QtWidgets.QFormLayout(services_box)
        self.service_boxes = {
            "roto": QtWidgets.QCheckBox("Roto (mattes)"),
            "tracking": QtWidgets.QCheckBox("Track camera"),
            "depth": QtWidgets.QCheckBox("Depth"),
        }
        for box in self.service_boxes.values():
            box.toggled.connect(self.update_problems)
            services_form.addRow(box)
        self.depth_export = QtWidgets.QComboBox()
        self.depth_export.addItems(["jpg", "mov"])  # the vendor's default first
        services_form.addRow("Depth as", self.depth_export)
        self.lens = QtWidgets.QLineEdit()
        self.lens.setPlaceholderText("unknown (solved)")
        self.sensor_width = QtWidgets.QLineEdit()
        self.sensor_width.setPlaceholderText("mm, with height")
        self.sensor_height = QtWidgets.QLineEdit()
        self.sensor_height.setPlaceholderText("mm, with width")
        self.working_fps = QtWidgets.QLineEdit()
        self.working_fps.setPlaceholderText("the clip's")
        for label, edit in (("Lens (mm)", self.lens), ("Sensor width", self.sensor_width),
                            ("Sensor height", self.sensor_height), ("Working fps", self.working_fps)):
            edit.textChanged.connect(self.update_problems)
            services_form.addRow(label, edit)
        self.calculate_distortion = QtWidgets.QCheckBox("Calculate distortion")
        self.fix_focal_length = QtWidgets.QCheckBox("Fix focal length")
        self.fix_sensor_size = QtWidgets.QCheckBox("Fix sensor size")
        self.fix_sensor_size.setChecked(True)  # vendor defaults: False, False, True
        for box in (self.calculate_distortion, self.fix_focal_length, self.fix_sensor_size):
            services_form.addRow(box)
        form.addWidget(services_box)

        self.problems = QtWidgets.QLabel("")
        self.problems.setWordWrap(True)
        form.addWidget(self.problems)
        self.send_button = QtWidgets.QPushButton("Send to Autopilot")
        self.send_button.clicked.connect(self.submit)
        self.preview_button = QtWidgets.QPushButton("Preview payload")
        self.preview_button.setToolTip("Show the job Send would create, as JSON; nothing is uploaded or sent")
        self.preview_button.clicked.connect(self.preview)
        send_row = QtWidgets.QHBoxLayout()
        send_row.addWidget(self.send_button, 1)
        send_row.addWidget(self.preview_button)
        form.addLayout(send_row)
        form.addStretch(1)
        self.tabs.addTab(send, "Send")

        jobs = QtWidgets.QWidget()
        jobs_layout = QtWidgets.QVBoxLayout(jobs)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self.update_job_buttons)
        jobs_layout.addWidget(self.table)
        buttons = QtWidgets.QHBoxLayout()
        self.import_button = QtWidgets.QPushButton("Import")
        self.import_button.clicked.connect(self.import_selected)
        self.cancel_button = QtWidgets.QPushButton("Cancel job")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_jobs)
        for button in (self.import_button, self.cancel_button, self.refresh_button):
            buttons.addWidget(button)
        jobs_layout.addLayout(buttons)
        self.tabs.addTab(jobs, "Jobs")

        settings = QtWidgets.QWidget()
        settings_form = QtWidgets.QFormLayout(settings)
        self.profile_label = QtWidgets.QLabel("-")
        self.endpoint_label = QtWidgets.QLabel("-")
        self.key_label = QtWidgets.QLabel("-")
        self.key_edit = QtWidgets.QLineEdit()
        self.key_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("paste an Autopilot API key to store it in the keyring")
        self.key_button = QtWidgets.QPushButton("Store key")
        self.key_button.clicked.connect(self.store_key)
        settings_form.addRow("Profile", self.profile_label)
        settings_form.addRow("Autopilot URL", self.endpoint_label)
        settings_form.addRow("API key", self.key_label)
        settings_form.addRow(self.key_edit)
        settings_form.addRow(self.key_button)
        self.tabs.addTab(settings, "Settings")

    # --- opening --------------------------------------------------------------------------------------------------
    def open_with(self, services: Tuple[str, ...] = (), page: str = "submit") -> None:
        if services:
            for name, box in self.service_boxes.items():
                box.setChecked(name in services)
        self.tabs.setCurrentIndex(PAGES.index(page) if page in PAGES else 0)
        if page == "submit":
            self.refresh_plate()
        elif page == "jobs":
            self.refresh_jobs()
        elif page == "settings":
            self.refresh_settings()
        self.show()
        self.raise_()

    # --- the plate and its problems ---------------------------------------------------------------------------------
    def refresh_plate(self) -> None:
        """Read the selected Read node (main thread: the panel lives there) and check it."""
        self.plate, self.plate_error = None, None
        node = selected_read()
        if node is not None:
            try:
                self.plate = read_plate(node)
            except InputError as exc:
                self.plate_error = str(exc)
        self._show_facts()
        self.update_problems()
        if self.plate is not None and self.quota_remaining is None:
            self.controller.quota(SERVICE)

    def _show_facts(self) -> None:
        plate = self.plate
        if plate is None:
            for label in self.facts.values():
                label.setText("-")
            return
        first, last = plate.sent_range
        try:
            start, end = plate.plate_range
            plate_text = f"{start}-{end}"
        except InputError as exc:
            plate_text = str(exc)
        kind = "movie" if plate.is_movie else "sequence"
        values = {
            "node": plate.node, "file": plate.file, "frames": f"{first}-{last} ({plate.frame_count} frames, {kind})",
            "plate": plate_text, "fps": f"{plate.fps:g}" if plate.fps else "-",
            "format": f"{plate.width}x{plate.height} {plate.format_name}".strip(),
            "colorspace": plate.colorspace or "-",
        }
        for key, text in values.items():
            self.facts[key].setText(text)

    def _number(self, edit: QtWidgets.QLineEdit, what: str, check: Check) -> Optional[float]:
        text = edit.text().strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            check.error(f"{what} '{text}' is not a number")
            return None
        if value <= 0:
            check.error(f"{what} must be more than 0 (got {text})")
            return None
        return value

    def validate(self, check_disk: bool = True) -> Check:
        """Everything that blocks sending, in words that say what to change."""
        numbers = Check()
        sensor_w = self._number(self.sensor_width, "sensor width", numbers)
        sensor_h = self._number(self.sensor_height, "sensor height", numbers)
        self._number(self.lens, "lens", numbers)
        self._number(self.working_fps, "working fps", numbers)
        chosen = [name for name, box in self.service_boxes.items() if box.isChecked()]
        remaining = None
        if self.quota_remaining is not None and chosen:
            remaining = self.quota_remaining // len(chosen)
        if self.plate_error:
            check = Check()
            check.error(self.plate_error)
        else:
            check = check_plate(self.plate, check_disk=check_disk, frame_limit=MAX_FRAMES, quota_remaining=remaining,
                                sensor_width=sensor_w, sensor_height=sensor_h)
        if not chosen:
            check.error("tick at least one of Roto, Track camera, Depth")
        check.problems[:0] = numbers.problems
        return check

    def update_problems(self, *args: Any) -> Check:
        check = self.validate(check_disk=False)  # quick; the disk is checked again when sending, off this thread
        lines = [f"<span style='color:#e0605a'>{p.message}</span>" for p in check.problems if p.severity == "error"]
        lines += [f"<span style='color:#d8b040'>{p.message}</span>" for p in check.problems if p.severity != "error"]
        self.problems.setText("<br>".join(lines))
        self.send_button.setEnabled(check.ok)
        return check

    def choice(self) -> ServiceChoice:
        metadata: Dict[str, Any] = {}
        for key, edit in (("lens", self.lens), ("sensor_width", self.sensor_width),
                          ("sensor_height", self.sensor_height), ("working_fps", self.working_fps)):
            if edit.text().strip():
                metadata[key] = float(edit.text())
        metadata["calculate_distortion"] = self.calculate_distortion.isChecked()
        metadata["fix_focal_length"] = self.fix_focal_length.isChecked()
        metadata["fix_sensor_size"] = self.fix_sensor_size.isChecked()
        boxes = self.service_boxes
        return ServiceChoice(roto=boxes["roto"].isChecked(), tracking=boxes["tracking"].isChecked(),
                             depth=boxes["depth"].isChecked(), depth_export=self.depth_export.currentText(),
                             tracking_metadata=metadata if boxes["tracking"].isChecked() else {})

    def submit(self) -> None:
        check = self.update_problems()
        if not check.ok or self.plate is None:
            return
        plate = self.plate
        try:
            script = nuke.scriptName()
        except RuntimeError:  # an unsaved script
            script = ""
        self.send_button.setEnabled(False)
        self.status.setText(f"Sending {plate.node}...")
        self.controller.submit(SERVICE, plate, self.choice(), script=script)

    # --- preview ------------------------------------------------------------------------------------------------
    def preview(self) -> None:
        """Show the create-job body Send would post for the selected Read and options; nothing is uploaded or sent.

        The widgets are read here; the disk check, the staging and the payload (the core's own builder) run on a
        thread, as a send's do, and the result comes back through the bridge to :meth:`show_preview`.
        """
        check = self.update_problems()
        if not check.ok or self.plate is None:
            self.show_preview({"problems": check.errors or ["select a Read node and press Use selected Read"]})
            return
        plate, choice, quota = self.plate, self.choice(), self.quota_remaining
        warnings = [p.message for p in check.problems if p.severity != "error"]
        self.preview_button.setEnabled(False)
        self.status.setText(f"Building the payload for {plate.node}...")

        def work() -> None:
            try:
                doc: Dict[str, Any] = preview_document(plate, choice)
                doc["quota_remaining"] = quota if quota is not None else "unknown (not asked for a preview)"
                doc["warnings"] = warnings
            except InputError as exc:
                doc = {"problems": [str(exc)]}
            except Exception as exc:  # shown, never lost on a worker
                doc = {"problems": [f"{type(exc).__name__}: {exc}"]}
            with contextlib.suppress(RuntimeError):  # the panel was closed meanwhile
                self._forward("preview", doc)

        threading.Thread(target=work, name="tether-nuke-preview", daemon=True).start()

    def show_preview(self, doc: Dict[str, Any]) -> PreviewDialog:
        """The payload (or the problems that block it) in a read-only dialog, reused while it is open."""
        self.preview_button.setEnabled(True)
        if doc.get("problems"):
            text = "Nothing can be sent until these are fixed:\n" + "".join(f"  - {p}\n" for p in doc["problems"])
            self.status.setText("Preview: the input is not valid (see the dialog).")
        else:
            text = redact(json.dumps(doc, indent=2, sort_keys=True))
            self.status.setText("Preview: nothing was uploaded or sent.")
        dialog = self.preview_dialog if self.preview_dialog is not None and is_alive(self.preview_dialog) else None
        if dialog is None:
            dialog = self.preview_dialog = PreviewDialog(self)
        dialog.set_text(text, valid=not doc.get("problems"))
        dialog.show()
        dialog.raise_()
        return dialog

    # --- jobs -----------------------------------------------------------------------------------------------------
    def refresh_jobs(self) -> None:
        self.fill_jobs(self.controller.jobs())
        self.controller.watch()  # jobs sent elsewhere (a dialog, the command line) are followed too

    def fill_jobs(self, records: List[JobRecord]) -> None:
        keep = self.selected_key()  # rows move as jobs are added: the selection follows its job
        self.table.setRowCount(len(records))
        self._rows = {}
        for row, record in enumerate(records):
            self._rows[record.key] = row
            plate = record.extra.get("plate") or {}
            sent = plate.get("sent") or []
            values = [record.job_id, self.controller.label(record.service),
                      str(plate.get("node") or record.source or ""), record.state_label, "",
                      f"{sent[0]}-{sent[1]}" if len(sent) == 2 else ""]
            for column, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                if COLUMNS[column] == "Service":
                    item.setData(SERVICE_ROLE, record.service)
                self.table.setItem(row, column, item)
            bar = QtWidgets.QProgressBar()
            bar.setRange(0, 100)
            bar.setValue(round(record.progress))
            if record.state in (JobState.FAILED, JobState.CANCELLED):
                bar.setFormat(record.state_label)
            self.table.setCellWidget(row, COLUMNS.index("Progress"), bar)
        if keep is not None and keep in self._rows:
            self.table.selectRow(self._rows[keep])
        elif keep is not None:
            self.table.clearSelection()
        self.update_job_buttons()

    def selected_key(self) -> Optional[Tuple[str, str]]:
        """(service, job id) of the selected row."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        if not rows:
            return None
        job = self.table.item(rows[0], COLUMNS.index("Job"))
        service = self.table.item(rows[0], COLUMNS.index("Service"))
        if job is None or service is None:
            return None
        return (str(service.data(SERVICE_ROLE)), job.text())

    def selected_job(self) -> Optional[str]:
        key = self.selected_key()
        return key[1] if key is not None else None

    def update_job_buttons(self) -> None:
        """Cancel is offered only for a service that can cancel; otherwise its tooltip says why not."""
        key = self.selected_key()
        note = self.controller.cancel_note(key[0]) if key is not None else None
        self.cancel_button.setEnabled(note is None)
        self.cancel_button.setToolTip(note or "")

    def import_selected(self) -> None:
        key = self.selected_key()
        if key is None:
            self.status.setText("Select a finished job to import.")
            return
        service, job_id = key
        label = self.controller.label(service)
        record = self.controller.record(service, job_id)
        if record is None:
            return
        if record.state is not JobState.COMPLETED:
            self.status.setText(f"{label} job {job_id} is {record.state_label}: only completed jobs can be imported.")
            return
        plate = None
        if not record.extra.get("plate"):
            node = selected_read()
            if node is None:
                self.status.setText(f"{label} job {job_id} was not sent from Nuke: select its plate's Read node "
                                    "first.")
                return
            try:
                plate = read_plate(node)
            except InputError as exc:
                self.status.setText(str(exc))
                return
        self.status.setText(f"Importing {label} job {job_id}...")
        self.controller.import_job(service, job_id, plate)

    def cancel_selected(self) -> None:
        key = self.selected_key()
        if key is None:
            self.status.setText("Select a job to cancel.")
            return
        service, job_id = key
        note = self.controller.cancel_note(service)
        if note is not None:
            self.status.setText(f"Job {job_id} cannot be cancelled: {note}")
            return
        self.status.setText(f"Cancelling {self.controller.label(service)} job {job_id}...")
        self.controller.cancel(service, job_id)

    # --- settings ---------------------------------------------------------------------------------------------------
    def refresh_settings(self) -> None:
        try:
            from tether.settings import active_profile, secret_source

            profile = active_profile(self.controller.profile)
            self.profile_label.setText(profile.name)
            self.endpoint_label.setText(str(profile.autopilot.url))
            source = secret_source(profile.name, "autopilot", "api_key")
            self.key_label.setText(source or "not set: store one below or set TETHER_AUTOPILOT_API_KEY")
        except Exception as exc:
            self.key_label.setText(f"settings not readable: {exc}")

    def store_key(self) -> None:
        from tether.settings import set_secret

        value = self.key_edit.text().strip()
        self.key_edit.clear()  # never left in the widget
        try:
            profile = self.profile_label.text() if self.profile_label.text() not in ("", "-") else "local"
            set_secret(profile, "autopilot", value, "api_key")
            self.status.setText("API key stored in the keyring.")
        except Exception as exc:
            self.status.setText(str(exc))
        self.refresh_settings()

    # --- events from the controller -------------------------------------------------------------------------------
    def _forward(self, kind: str, payload: Any) -> None:
        self._bridge.event.emit(kind, payload)  # any thread -> the GUI thread

    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "jobs":
            self.fill_jobs(payload)
        elif kind == "submitted":
            service, job_id = payload
            self.status.setText(f"Sent: job {job_id} ({self.controller.label(service)}).")
            if service == SERVICE:  # this page's Send (a dialog says so itself)
                self.send_button.setEnabled(True)
                self.tabs.setCurrentIndex(PAGES.index("jobs"))
        elif kind == "imported":
            job_id, applied = payload
            self.status.setText(f"Imported job {job_id}: {', '.join(applied.names.values())}"
                                + (f" ({'; '.join(applied.notes)})" if applied.notes else ""))
        elif kind == "quota":
            self.quota_remaining = payload.remaining
            self.update_problems()
        elif kind == "preview":
            self.show_preview(payload)
        elif kind == "error":
            self.status.setText(f"<span style='color:#e0605a'>{payload}</span>")
            self.send_button.setEnabled(self.validate(check_disk=False).ok)

    def closeEvent(self, event: Any) -> None:
        self.closed = True
        self.controller.remove_listener(self._forward)
        super().closeEvent(event)


__all__ = ["PreviewDialog", "TetherPanel", "find_panel", "is_alive", "preview_document"]
