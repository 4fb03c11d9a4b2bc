"""The dockable Tether panel (Qt through qtpy: PySide2 in Nuke 14-15, PySide6 in Nuke 16+): one panel for every
service.

Three pages: **Send** (the Read's clip facts: the selected Read, followed as the selection changes, or the one
pinned; a service chosen, each its own section: Autopilot's options with the vendor's defaults, TensorPix's and
Clipzy's from ``dialog.ClipServiceSection``; the problems that block sending, said as you type; Send, the default
button, with the upload's progress and Cancel; for Autopilot, Preview payload: the create-job body a send would post,
from the core's own builder, in a read-only dialog), **Jobs** (the job monitor: every Autopilot, TensorPix and Clipzy
job of this user from the shared registry, with its service, live state and progress; Import and Cancel, each
through its service's controller, and Cancel says so when a service has no way to cancel) and **Settings** (per
service: its URL, where its API key comes from, storing a key in the OS keyring, Test connection). The panel never
waits on the network: the controllers' workers do, and their events arrive here through a Qt signal, which Qt
delivers on the GUI thread.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import nuke
from qtpy import QtCore, QtGui, QtWidgets
from tether.autopilot.models import MAX_FRAMES
from tether.autopilot.submit import UPLOAD_PLACEHOLDER, AlreadySent, ServiceChoice, preview
from tether.errors import CancelledByUser, InputError, redact
from tether.fileio import human_bytes
from tether.jobs import JobState
from tether.nukeimport import Check, PlateFacts, check_plate, nuke_plate
from tether.nukeimport.plate import Problem
from tether.registry import JobRecord

from .autopilot import SERVICE, send_metadata, stage_sequence
from .clipservices import clock
from .controller import JobController
from .dialog import ClipServiceSection
from .failure import as_failure, failure
from .plate_reader import read_key, read_plate, selected_read
from .widgets import AMBER, RED, Bridge, ElidedLabel, FailureBox, fixed_font, note, set_note

SERVICES = ("roto", "tracking", "depth")
PAGES = ("submit", "jobs", "settings")
COLUMNS = ("Job", "Service", "State", "Sent")
KEY_ROLE = QtCore.Qt.ItemDataRole.UserRole  # (service, job id), on the Job cell
HANDOFF_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1  # a hand-off's queue entry, on its Job cell (no job id yet)
SERVICE_CHOICES = {"autopilot": "Autopilot: roto, camera, depth", "tensorpix": "TensorPix: enhance",
                   "clipzy": "Clipzy: style like a template"}
SERVICE_LABELS = {"roto": "&Roto (mattes)", "tracking": "Track &camera", "depth": "D&epth"}
DEPTH_EXPORTS = (("jpg", "JPEG frames (8-bit)"), ("mov", "QuickTime movie (8-bit)"))  # the vendor's default first
# Film backs as Nuke's Camera offers them (width x height, mm); "Custom" leaves the fields as typed
FILM_BACKS = (("Custom", None), ("Super 35 (24.89 x 18.66)", (24.89, 18.66)), ("Full frame (36 x 24)", (36.0, 24.0)),
              ("ARRI Alexa Mini (28.25 x 18.17)", (28.25, 18.17)), ("RED Dragon 6K (30.72 x 15.84)", (30.72, 15.84)),
              ("Micro Four Thirds (17.3 x 13)", (17.3, 13.0)))
NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(mm|fps)?\s*$", re.IGNORECASE)


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
                        source=plate.file, colour=plate.colour).document()
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
        self.text.setFont(fixed_font())
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


def parse_number(text: str, unit: str) -> Tuple[Optional[float], str]:
    """``(value, "")`` for "35", "35mm" or "35 mm"; ``(None, why)`` otherwise; ``(None, "")`` when empty."""
    if not text.strip():
        return None, ""
    match = NUMBER.match(text)
    if match is None or (match.group(2) and match.group(2).lower() != unit):
        return None, f"'{text.strip()}' is not a number of {unit}: type e.g. 35 or 35 {unit}"
    value = float(match.group(1))
    if value <= 0:
        return None, "must be more than 0"
    return value, ""


def job_options(record: JobRecord) -> str:
    """What the job was asked to do, in a few words (recorded at send; guessed from the service's own record for a
    job sent from the command line)."""
    asked = record.extra.get("asked")
    if asked:
        return str(asked)
    services = record.extra.get("services")
    if services:
        return ", ".join(str(s).replace("_map", "").replace("tracking", "camera") for s in services)
    options = record.extra.get("options") or {}
    models = options.get("ml_models") if isinstance(options, dict) else None
    if models:
        return "model " + ", ".join(str(m) for m in models)
    return ""


def imported(record: JobRecord) -> bool:
    """Its results were imported here (a download by the agent, its results come home, is no import)."""
    return record.fetched_at is not None and bool(record.extra.get("imported") or not record.extra.get("agent_fetch"))


def home_note(record: JobRecord) -> str:
    """Where the agent downloaded a finished job's results (they came home by themselves), or ""."""
    if record.fetched_at is None or not record.extra.get("agent_fetch"):
        return ""
    return f"Results came home to {record.extra.get('fetched_to') or record.output_dir}"


def state_words(record: JobRecord) -> str:
    """The state as the monitor says it: with progress while it runs, and whether its results were imported."""
    if record.missing:
        return "gone from the service"
    if record.state is JobState.UNKNOWN:
        return "sent, waiting for news"
    if record.state is JobState.COMPLETED:
        if imported(record):
            return "imported"
        return "results home" if home_note(record) else "ready to import"  # fits the State column
    if record.state in (JobState.RUNNING, JobState.QUEUED, JobState.HELD) and record.progress:
        return f"{record.state.value} {round(record.progress)}%"
    return record.state.value


# one cheap question per service for Settings' Test connection, and what its answer says
PROBES: Dict[str, Callable[[Any], str]] = {
    "autopilot": lambda client: f"Connected: {client.quota().remaining} frames left this period",
    "tensorpix": lambda client: f"Connected: {len(client.models())} models offered",
    "clipzy": lambda client: f"Connected: the engine says {client.health().get('status', 'ok')}",
}


class ServiceSettingsBox(QtWidgets.QGroupBox):
    """One service's settings: its URL (saved to the profile), its API key (stored in the OS keyring; a key that
    could not be stored stays in the field), and Test connection."""

    def __init__(self, service: str, label: str, panel: TetherPanel) -> None:
        super().__init__(label)
        self.service, self.label, self.panel = service, label, panel
        form = QtWidgets.QFormLayout(self)
        form.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.url = QtWidgets.QLineEdit()
        self.url.setPlaceholderText("https://...")
        self.key_label = QtWidgets.QLabel("-")
        self.key_label.setWordWrap(True)
        self.key_edit = QtWidgets.QLineEdit()
        self.key_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText(f"paste the {label} API key")
        self.save_button = QtWidgets.QPushButton("Save")
        self.save_button.setToolTip("Save the URL in the profile and store the key pasted in the OS keyring")
        self.save_button.clicked.connect(self.save)
        self.test_button = QtWidgets.QPushButton("Test connection")
        self.test_button.clicked.connect(lambda *_: panel.test_connection(service))
        for edit in (self.url, self.key_edit):
            edit.returnPressed.connect(self.save_button.click)
        self.result = note()
        form.addRow("URL", self.url)
        form.addRow("API key", self.key_label)
        form.addRow(self.key_edit)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        form.addRow(buttons)
        form.addRow(self.result)
        self.tab_order = [self.url, self.key_edit, self.save_button, self.test_button]

    def refresh(self, profile: Any) -> None:
        from tether.settings import secret_env_var, secret_source
        from tether.spec import SPECS

        self.url.setText(str(getattr(profile, self.service).url))
        kind = SPECS[self.service].kind
        source = secret_source(profile.name, self.service, kind)
        self.key_label.setText(source or f"not set: paste one below, or set {secret_env_var(self.service, kind)}")

    def set_result(self, text: str, ok: bool) -> None:
        set_note(self.result, text if ok else f"<span style='color:{RED}'>{text}</span>")

    def save(self) -> bool:
        """Save the URL when it changed, and store the key when one is pasted; a failure is said here and what was
        typed stays (so it can be fixed or saved again). The service's next request uses them."""
        from pydantic import ValidationError
        from tether.settings import ServiceSettings, active_profile, save_profile, set_secret
        from tether.spec import SPECS

        try:
            profile = active_profile(self.panel.controller.profile)
            current = getattr(profile, self.service)
            url = self.url.text().strip()
            if url != current.url:
                try:
                    changed = ServiceSettings(**{**current.model_dump(), "url": url})
                except ValidationError as exc:
                    raise InputError(f"URL '{url}': {exc.errors()[0]['msg']}") from None
                save_profile(profile.model_copy(update={self.service: changed}))
            key = self.key_edit.text().strip()
            if key:
                set_secret(profile.name, self.service, key, SPECS[self.service].kind)
                self.key_edit.clear()  # stored: never left in the widget
        except Exception as exc:
            self.set_result(failure(f"saving the {self.label} settings", exc).summary, ok=False)
            return False
        self.panel.controller.service(self.service).forget_clients()
        self.set_result("Saved.", ok=True)
        self.panel.refresh_settings()
        return True


class TetherPanel(QtWidgets.QWidget):
    """Send (Autopilot), Jobs (every service's) and Settings, usable in a 420 px dock in every state."""

    def __init__(self, controller: Optional[JobController] = None, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("TetherPanel")
        self.controller = controller or JobController()
        self.plate: Optional[PlateFacts] = None
        self.plate_error: Optional[str] = None
        self.disk_problems: List[str] = []  # what the last disk check of the plate found (worker)
        self.quota_remaining: Optional[int] = None
        self.offline: Optional[str] = None  # why the service did not answer when last asked, else None
        self.stale: Dict[str, str] = {}  # service -> why its jobs' states may be out of date
        self._rows: Dict[Tuple[str, str], int] = {}  # (service, job id) -> row
        self._job_records: List[JobRecord] = []  # the jobs listed, below the hand-offs
        self._handoffs: Dict[int, Any] = {}  # queue entry -> tether.agent.HandOff, listed first
        self.preview_dialog: Optional[PreviewDialog] = None
        self.sections: Dict[str, ClipServiceSection] = {}  # the clip services' options, made when first shown
        self.pinned: Optional[str] = None  # the Read sent whatever is selected (by name), else None: follow
        self._plate_key: Any = None  # what the shown plate was read from (see read_key)
        self.closed = False  # the panel was closed, or its controller was: it asks nothing more
        self._sending = False
        self._sending_to = SERVICE  # the service of the send in flight (or the last one)
        self._cancelling = False
        self._bridge = Bridge(self._on_event)
        self.controller.add_listener(self._forward)
        self.controller.add_close_hook(self._controller_closing)
        self._build()
        # the panel follows the selected Read by looking at it a few times a second while shown: nuke.addKnobChanged
        # is global, runs for every knob of every node (xpos too, as Foundry's nuke.addKnobChanged page says), and a
        # callback left behind by a closed pane would touch a deleted widget; this timer dies with the panel
        self.selection_timer = QtCore.QTimer(self)
        self.selection_timer.setInterval(300)
        self.selection_timer.timeout.connect(self.follow_selection)
        self.refresh_jobs()  # and jobs left running by an earlier session are followed again

    def section(self, service: str) -> ClipServiceSection:
        """The clip service's section of the Send page (made once), sending through this panel's controller for that
        service, so its jobs are listed here as they move and polled once."""
        section = self.sections.get(service)
        if section is None:
            section = self.sections[service] = ClipServiceSection(self.controller.service(service))
            section.changed.connect(self.update_problems)
            for edit in section.line_edits:
                edit.returnPressed.connect(self._enter)
            self._page_layouts[service].addWidget(section)
            self._chain_tabs()
        return section

    def show_service(self, service: str) -> Optional[ClipServiceSection]:
        """Show ``service``'s options on the Send page (Autopilot's, or a clip service's section)."""
        index = self.service_combo.findData(service)
        if index < 0:
            raise InputError(f"the panel sends to {', '.join(self.services)}, not '{service}'")
        self.service_combo.setCurrentIndex(index)
        return self.sections.get(service)

    def current_service(self) -> str:
        return str(self.service_combo.currentData())

    def _service_chosen(self, index: int) -> None:
        service = self.current_service()
        if service != SERVICE:
            self.section(service)
        for name, holder in self._pages.items():  # only the section shown takes room
            holder.setVisible(name == service)
        self.send_button.setText(f"&Send to {self.controller.label(service)}")
        self.preview_button.setVisible(service == SERVICE)
        self._chain_tabs()
        self.update_problems()

    # --- building -------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        self.tabs = QtWidgets.QTabWidget()
        layout.addWidget(self.tabs, 1)
        self.status = note()
        self.status.setVisible(True)
        layout.addWidget(self.status)
        self.failure_box = FailureBox()
        layout.addWidget(self.failure_box)
        self.tabs.addTab(self._send_page(), "Send")
        self.tabs.addTab(self._jobs_page(), "Jobs")
        self.tabs.addTab(self._settings_page(), "Settings")

    def _form(self, parent: QtWidgets.QWidget) -> QtWidgets.QFormLayout:
        form = QtWidgets.QFormLayout(parent)
        form.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return form

    def _send_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        form = QtWidgets.QVBoxLayout(page)
        clip_box = QtWidgets.QGroupBox("Clip")
        clip_form = self._form(clip_box)
        self.facts: Dict[str, QtWidgets.QLabel] = {}
        self.pin_button = QtWidgets.QPushButton("Pi&n")
        self.pin_button.setCheckable(True)
        self.pin_button.setToolTip("Keep sending this Read whatever is selected; unpinned, the panel follows the "
                                   "selected Read")
        self.pin_button.toggled.connect(self.set_pinned)
        for key, label in (("node", "Read"), ("file", "File"), ("frames", "File frames"), ("plate", "Plate frames"),
                           ("fps", "FPS"), ("format", "Format"), ("colorspace", "Colourspace")):
            value: QtWidgets.QLabel = ElidedLabel("-") if key == "file" else QtWidgets.QLabel("-")
            if key != "file":
                value.setWordWrap(True)
                value.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts[key] = value
            if key == "node":
                row = QtWidgets.QHBoxLayout()
                row.addWidget(value, 1)
                row.addWidget(self.pin_button, 0, QtCore.Qt.AlignmentFlag.AlignTop)
                clip_form.addRow(label, row)
            else:
                clip_form.addRow(label, value)
        self.pin_note = note(AMBER)  # says which Read is pinned, while one is
        clip_form.addRow(self.pin_note)
        self.clip_note = note(RED)  # what is wrong with the plate itself (missing frames, a still): beside it
        clip_form.addRow(self.clip_note)
        form.addWidget(clip_box)

        self.services = self.controller.services()
        self.service_combo = QtWidgets.QComboBox()
        for name in self.services:
            self.service_combo.addItem(SERVICE_CHOICES.get(name, self.controller.label(name)), name)
        service_row = QtWidgets.QFormLayout()
        service_label = QtWidgets.QLabel("Ser&vice")
        service_label.setBuddy(self.service_combo)
        service_row.addRow(service_label, self.service_combo)
        form.addLayout(service_row)
        # one section per service, the chosen one shown (a QStackedWidget would be as tall as its tallest page)
        self._pages: Dict[str, QtWidgets.QWidget] = {}
        self._page_layouts: Dict[str, QtWidgets.QVBoxLayout] = {}
        for name in self.services:
            holder = self._pages[name] = QtWidgets.QWidget()
            holder_layout = self._page_layouts[name] = QtWidgets.QVBoxLayout(holder)
            holder_layout.setContentsMargins(0, 0, 0, 0)
            holder.setVisible(name == SERVICE)
            form.addWidget(holder)
        self._autopilot_section(self._page_layouts[SERVICE])

        self.problems = note()
        form.addWidget(self.problems)
        self.send_button = QtWidgets.QPushButton("&Send to Autopilot")
        self.send_button.setDefault(True)  # Enter in a field sends (the panel is no QDialog: _enter does it)
        self.send_button.clicked.connect(lambda: self.submit())
        self.preview_button = QtWidgets.QPushButton("&Preview payload")
        self.preview_button.setToolTip("Show the job Send would create, as JSON; nothing is uploaded or sent")
        self.preview_button.clicked.connect(self.preview)
        send_row = QtWidgets.QHBoxLayout()
        send_row.addWidget(self.send_button, 1)
        send_row.addWidget(self.preview_button)
        form.addLayout(send_row)
        self.bring_home = QtWidgets.QCheckBox("Bring results &home")
        self.bring_home.setChecked(True)
        self.bring_home.setToolTip("The Tether agent downloads the finished job's results into a folder beside the "
                                   "saved script (tether/), even with Nuke closed, and Import uses them; an unsaved "
                                   "script's results are downloaded when imported")
        form.addWidget(self.bring_home)
        self.send_progress = QtWidgets.QProgressBar()  # while a send runs: its upload, then Cancel stops it
        self.send_progress.setTextVisible(True)
        self.cancel_send_button = QtWidgets.QPushButton("Cance&l send")
        self.cancel_send_button.clicked.connect(self.cancel_send)
        progress_row = QtWidgets.QHBoxLayout()
        progress_row.addWidget(self.send_progress, 1)
        progress_row.addWidget(self.cancel_send_button)
        form.addLayout(progress_row)
        self._show_sending(None)
        # no paying twice: a clip already sent with these options offers that job's results instead
        self.offer_box = QtWidgets.QWidget()
        offer = QtWidgets.QVBoxLayout(self.offer_box)
        offer.setContentsMargins(0, 0, 0, 0)
        self.offer_note = note(AMBER)
        self.offer_import = QtWidgets.QPushButton("&Import its results")
        self.offer_import.clicked.connect(self.import_offered)
        self.offer_send = QtWidgets.QPushButton("Send &anyway")
        self.offer_send.clicked.connect(lambda: self.submit(force=True))
        offer_row = QtWidgets.QHBoxLayout()
        offer_row.addWidget(self.offer_import, 1)
        offer_row.addWidget(self.offer_send)
        offer.addWidget(self.offer_note)
        offer.addLayout(offer_row)
        self.offer_box.hide()
        self.offered: Optional[str] = None  # the earlier job's id while its results are offered
        form.addWidget(self.offer_box)
        form.addStretch(1)
        self.service_combo.currentIndexChanged.connect(self._service_chosen)
        self._chain_tabs()
        scroll = QtWidgets.QScrollArea()  # a short dock scrolls; it never widens
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(page)
        return scroll

    def _autopilot_section(self, layout: Any) -> None:
        services_box = QtWidgets.QGroupBox("Autopilot services")
        services_form = self._form(services_box)
        self.service_boxes = {name: QtWidgets.QCheckBox(text) for name, text in SERVICE_LABELS.items()}
        for box in self.service_boxes.values():
            box.toggled.connect(self.update_problems)
            services_form.addRow(box)
        self.depth_export = QtWidgets.QComboBox()
        for export, text in DEPTH_EXPORTS:
            self.depth_export.addItem(text, export)
        services_form.addRow("Depth as", self.depth_export)
        self.quota_note = note()
        services_form.addRow(self.quota_note)
        layout.addWidget(services_box)

        self.tracking_box = QtWidgets.QGroupBox("Camera tracking")
        tracking_form = self._form(self.tracking_box)
        self.lens = QtWidgets.QLineEdit()
        self.lens.setPlaceholderText("unknown: solved")
        self.film_back = QtWidgets.QComboBox()
        for text, size in FILM_BACKS:
            self.film_back.addItem(text, size)
        self.film_back.currentIndexChanged.connect(self._film_back_chosen)
        self.sensor_width = QtWidgets.QLineEdit()
        self.sensor_width.setPlaceholderText("with the height")
        self.sensor_height = QtWidgets.QLineEdit()
        self.sensor_height.setPlaceholderText("with the width")
        self.working_fps = QtWidgets.QLineEdit()
        self.working_fps.setPlaceholderText("the clip's")
        self.hints: Dict[str, QtWidgets.QLabel] = {}
        for key, label, edit in (("lens", "Lens (mm)", self.lens), ("film_back", "Film back", self.film_back),
                                 ("sensor_width", "Sensor width (mm)", self.sensor_width),
                                 ("sensor_height", "Sensor height (mm)", self.sensor_height),
                                 ("working_fps", "Working fps", self.working_fps)):
            if isinstance(edit, QtWidgets.QLineEdit):
                edit.textChanged.connect(self.update_problems)
                edit.returnPressed.connect(self._enter)
            tracking_form.addRow(label, edit)
            hint = self.hints[key] = note(RED)
            tracking_form.addRow(hint)
        self.calculate_distortion = QtWidgets.QCheckBox("Calculate &distortion")
        self.fix_focal_length = QtWidgets.QCheckBox("Fix &focal length")
        self.fix_sensor_size = QtWidgets.QCheckBox("Fix sensor si&ze")
        self.fix_sensor_size.setChecked(True)  # vendor defaults: False, False, True
        for box in (self.calculate_distortion, self.fix_focal_length, self.fix_sensor_size):
            tracking_form.addRow(box)
        layout.addWidget(self.tracking_box)
        self.autopilot_order: List[QtWidgets.QWidget] = [
            *self.service_boxes.values(), self.depth_export, self.lens, self.film_back, self.sensor_width,
            self.sensor_height, self.working_fps, self.calculate_distortion, self.fix_focal_length,
            self.fix_sensor_size]

    def _chain_tabs(self) -> None:
        """Tab goes down the page: Pin, Service, the shown service's fields, Send, Preview, Cancel send; every
        section's fields are in the chain (Tab skips the hidden ones), so switching service keeps the order."""
        fields: List[QtWidgets.QWidget] = list(self.autopilot_order)
        for service in self.services:
            if service in self.sections:
                fields += self.sections[service].tab_order
        chain = [self.pin_button, self.service_combo, *fields, self.send_button, self.preview_button,
                 self.cancel_send_button, self.offer_import, self.offer_send]
        for before, after in zip(chain, chain[1:]):
            QtWidgets.QWidget.setTabOrder(before, after)
        service = self.current_service()
        shown = self.autopilot_order if service == SERVICE else (
            self.sections[service].tab_order if service in self.sections else [])
        self.tab_order = [self.pin_button, self.service_combo, *shown, self.send_button] + (
            [self.preview_button] if service == SERVICE else [])

    def _jobs_page(self) -> QtWidgets.QWidget:
        jobs = QtWidgets.QWidget()
        jobs_layout = QtWidgets.QVBoxLayout(jobs)
        self.stale_note = note(AMBER)
        jobs_layout.addWidget(self.stale_note)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setVisible(False)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setMinimumSectionSize(40)
        stretch, fit = QtWidgets.QHeaderView.ResizeMode.Stretch, QtWidgets.QHeaderView.ResizeMode.ResizeToContents
        for column, mode in enumerate((stretch, stretch, QtWidgets.QHeaderView.ResizeMode.Fixed, fit)):
            header.setSectionResizeMode(column, mode)
        header.resizeSection(COLUMNS.index("State"), 120)
        self.table.itemSelectionChanged.connect(self.update_job_buttons)
        self.table.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._job_menu)
        jobs_layout.addWidget(self.table, 1)
        self.job_info = note()
        jobs_layout.addWidget(self.job_info)
        buttons = QtWidgets.QHBoxLayout()
        self.import_button = QtWidgets.QPushButton("&Import")
        self.import_button.clicked.connect(self.import_selected)
        self.cancel_button = QtWidgets.QPushButton("&Cancel job")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.refresh_button = QtWidgets.QPushButton("&Refresh")
        self.refresh_button.clicked.connect(self.refresh_jobs)
        for button in (self.import_button, self.cancel_button, self.refresh_button):
            buttons.addWidget(button)
        jobs_layout.addLayout(buttons)
        self.menu_actions: Dict[str, Any] = {}
        return jobs

    def _settings_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        top = self._form_layout()
        self.profile_label = QtWidgets.QLabel("-")
        top.addRow("Profile", self.profile_label)
        layout.addLayout(top)
        self.settings: Dict[str, ServiceSettingsBox] = {}
        for service in self.services:
            box = self.settings[service] = ServiceSettingsBox(service, self.controller.label(service), self)
            layout.addWidget(box)
        layout.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(page)
        return scroll

    def _form_layout(self) -> QtWidgets.QFormLayout:
        form = QtWidgets.QFormLayout()
        form.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return form

    # --- opening --------------------------------------------------------------------------------------------------
    def open_with(self, services: Tuple[str, ...] = (), page: str = "submit", service: str = "") -> None:
        """Show ``page``; on Send, ``service``'s options (Autopilot's with ``services`` ticked when they are
        given)."""
        if services:
            service = service or SERVICE
            for name, box in self.service_boxes.items():
                box.setChecked(name in services)
        if service:
            self.show_service(service)
        self.tabs.setCurrentIndex(PAGES.index(page) if page in PAGES else 0)
        if page == "submit":
            self.refresh_plate()
        elif page == "jobs":
            self.refresh_jobs()
        elif page == "settings":
            self.refresh_settings()
        self.show()
        self.raise_()

    def _enter(self) -> None:
        """Enter in a field sends, as a dialog's default button would (only when Send is enabled)."""
        if self.send_button.isEnabled():
            self.send_button.click()

    # --- the plate and its problems ---------------------------------------------------------------------------------
    def refresh_plate(self) -> None:
        """Read the Read to send (the pinned one, else the selected one; main thread: the panel lives there), check
        it at once, and check its frames on disk on a thread (a network share may take a while to list): missing
        frames show before Send."""
        self.plate, self.plate_error, self.disk_problems = None, None, []
        node = self._node()
        self._plate_key = read_key(node)
        if node is not None:
            try:
                self.plate = read_plate(node)
            except InputError as exc:
                self.plate_error = str(exc)
        self._show_facts()
        self.update_problems()
        if self.plate is not None:
            plate, forward = self.plate, self._bridge.send

            def work() -> None:  # only what the disk adds: the quick checks are said for the service shown
                quick = set(check_plate(plate, check_disk=False).errors)
                forward("disk", (plate, [e for e in check_plate(plate, check_disk=True).errors if e not in quick]))

            threading.Thread(target=work, name="tether-nuke-disk-check", daemon=True).start()
            if self.quota_remaining is None:
                self.controller.quota(SERVICE)

    def _node(self) -> Any:
        """The pinned Read while it exists (a deleted or renamed one unpins, said beside the Read), else the
        selected one."""
        if self.pinned is not None:
            node = nuke.toNode(self.pinned)
            if node is not None and node.Class() == "Read":
                return node
            gone, self.pinned = self.pinned, None
            self.pin_button.blockSignals(True)
            self.pin_button.setChecked(False)
            self.pin_button.blockSignals(False)
            set_note(self.pin_note, f"The pinned Read {gone} is gone: the panel follows the selected Read again.")
        return selected_read()

    def follow_selection(self) -> bool:
        """Read the plate again when the Read to send changed: another selected (or none), or its knobs edited.
        The selection timer calls it while the panel is shown; True when the plate was read again."""
        if self.closed:
            return False
        if read_key(self._node()) == self._plate_key:
            return False
        self.refresh_plate()
        return True

    def set_pinned(self, pinned: bool) -> None:
        """Pin the Read shown (sent whatever is selected after), or follow the selection again."""
        if pinned and self.plate is None:
            self.pin_button.blockSignals(True)
            self.pin_button.setChecked(False)
            self.pin_button.blockSignals(False)
            set_note(self.pin_note, "Select a Read to pin first.")
            return
        self.pinned = self.plate.node if pinned and self.plate is not None else None
        self.pin_button.setText("Unpi&n" if self.pinned else "Pi&n")
        set_note(self.pin_note, f"Pinned: {self.pinned} is sent whatever is selected." if self.pinned else "")
        self.refresh_plate()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self.closed:
            self.selection_timer.start()
            self.follow_selection()

    def hideEvent(self, event: Any) -> None:
        self.selection_timer.stop()  # a hidden pane asks Nuke nothing
        super().hideEvent(event)

    def _show_facts(self) -> None:
        plate = self.plate
        if plate is None:
            for label in self.facts.values():
                if isinstance(label, ElidedLabel):
                    label.set_full_text("-")
                else:
                    label.setText("-")
            return
        first, last = plate.sent_range
        try:
            start, end = plate.plate_range
            plate_text = f"{start}-{end}"
        except InputError as exc:
            plate_text = str(exc)
        if plate.is_still:
            frames = "a still image"
        else:
            kind = "movie" if plate.is_movie else "sequence"
            frames = f"{first}-{last} ({plate.frame_count} frames, {kind})"
        values = {
            "node": plate.node, "frames": frames,
            "plate": plate_text, "fps": f"{plate.fps:g}" if plate.fps else "-",
            "format": f"{plate.width}x{plate.height} {plate.format_name}".strip(),
            "colorspace": plate.colorspace or "-",
        }
        for key, text in values.items():
            self.facts[key].setText(text)
        file_label = self.facts["file"]
        assert isinstance(file_label, ElidedLabel)
        file_label.set_full_text(plate.file)

    def _film_back_chosen(self, index: int) -> None:
        size = self.film_back.itemData(index)
        if size:
            self.sensor_width.setText(f"{size[0]:g}")
            self.sensor_height.setText(f"{size[1]:g}")

    def _numbers(self) -> Tuple[Dict[str, float], Dict[str, str]]:
        """The tracking numbers typed (units allowed: "35mm"), and a problem per field beside it."""
        values: Dict[str, float] = {}
        problems: Dict[str, str] = {}
        for key, edit, unit in (("lens", self.lens, "mm"), ("sensor_width", self.sensor_width, "mm"),
                                ("sensor_height", self.sensor_height, "mm"), ("working_fps", self.working_fps, "fps")):
            value, why = parse_number(edit.text(), unit)
            if why:
                problems[key] = why
            elif value is not None:
                values[key] = value
        if ("sensor_width" in values) != ("sensor_height" in values) and not (
                {"sensor_width", "sensor_height"} & set(problems)):
            missing = "sensor_height" if "sensor_width" in values else "sensor_width"
            problems[missing] = "give the sensor's width and height (mm), or neither (pick a film back)"
        return values, problems

    def chosen(self) -> List[str]:
        return [name for name, box in self.service_boxes.items() if box.isChecked()]

    def validate(self, check_disk: bool = True) -> Check:
        """Everything that blocks sending to the service shown, in words that say what to change. The tracking
        fields count only when Track camera is ticked (they are disabled otherwise)."""
        service = self.current_service()
        if service != SERVICE:
            section = self.section(service)
            if self.plate_error:
                check = Check()
                check.error(self.plate_error)
            else:
                check = check_plate(self.plate, check_disk=check_disk, service=section.label)
                if not check_disk:
                    check.problems[:0] = [Problem("error", text) for text in self.disk_problems]
            for problem in section.problems_now():
                check.error(problem)
            return check
        chosen = self.chosen()
        tracking = "tracking" in chosen
        values, field_problems = self._numbers() if tracking else ({}, {})
        if self.plate_error:
            check = Check()
            check.error(self.plate_error)
        else:
            check = check_plate(self.plate, check_disk=check_disk, frame_limit=MAX_FRAMES,
                                sensor_width=values.get("sensor_width"), sensor_height=values.get("sensor_height"))
            check.problems = [p for p in check.problems if "sensor" not in p.message]  # said beside the fields
            if not check_disk:
                check.problems[:0] = [Problem("error", text) for text in self.disk_problems]
        if not chosen:
            check.error("tick at least one of Roto, Track camera, Depth")
        quota = self.quota_problem()
        if quota:
            check.error(quota)
        labels = {"lens": "lens", "sensor_width": "sensor width", "sensor_height": "sensor height",
                  "working_fps": "working fps"}
        check.problems[:0] = [Problem("error", f"{labels[key]}: {why}") for key, why in field_problems.items()]
        return check

    def quota_problem(self) -> str:
        """The frames this send needs (each ticked service counts them) against what the account has left."""
        if self.quota_remaining is None or self.plate is None or self.plate_error or self.plate.is_still:
            return ""
        chosen = self.chosen()
        needed = self.plate.frame_count * max(1, len(chosen))
        if needed <= self.quota_remaining:
            return ""
        each = f" ({self.plate.frame_count} for each of {len(chosen)} services)" if len(chosen) > 1 else ""
        return (f"this send needs {needed} frames{each} and the account has {self.quota_remaining} left this "
                "period: untick a service or shorten the Read's range")

    def update_problems(self, *args: Any) -> Check:
        tracking = "tracking" in self.chosen() and self.current_service() == SERVICE
        self.tracking_box.setEnabled(tracking)
        self.depth_export.setEnabled("depth" in self.chosen())
        _, field_problems = self._numbers() if tracking else ({}, {})
        for key, hint in self.hints.items():
            set_note(hint, field_problems.get(key, ""))
        check = self.validate(check_disk=False)  # quick; the disk is checked on a thread, and again when sending
        plate_errors = [p.message for p in check.problems if p.severity == "error" and self.plate is not None
                        and p.message.startswith(f"Read {self.plate.node}")]
        set_note(self.clip_note, "\n".join(plate_errors))
        shown = set(plate_errors) | {f"{k.replace('_', ' ')}: {v}" for k, v in field_problems.items()}
        lines = [f"<span style='color:{RED}'>{p.message}</span>" for p in check.problems
                 if p.severity == "error" and p.message not in shown]
        lines += [f"<span style='color:{AMBER}'>{p.message}</span>" for p in check.problems if p.severity != "error"]
        if self.offline and self.current_service() == SERVICE:
            lines.append(f"<span style='color:{AMBER}'>{self.offline}</span>")
        set_note(self.problems, "<br>".join(lines))
        self._show_quota()
        self.send_button.setEnabled(check.ok and not self._sending)
        self.send_button.setToolTip("" if check.ok else "Nothing can be sent yet: " + "; ".join(check.errors))
        return check

    def _show_quota(self) -> None:
        if self.quota_remaining is None:
            set_note(self.quota_note, "")
            return
        text = f"Quota: {self.quota_remaining} frames left this period"
        if self.plate is not None and not self.plate_error and not self.plate.is_still and self.chosen():
            text += f"; this send uses {self.plate.frame_count * len(self.chosen())}"
        set_note(self.quota_note, text)

    def choice(self) -> ServiceChoice:
        values, _ = self._numbers()
        metadata: Dict[str, Any] = dict(values)
        metadata["calculate_distortion"] = self.calculate_distortion.isChecked()
        metadata["fix_focal_length"] = self.fix_focal_length.isChecked()
        metadata["fix_sensor_size"] = self.fix_sensor_size.isChecked()
        boxes = self.service_boxes
        return ServiceChoice(roto=boxes["roto"].isChecked(), tracking=boxes["tracking"].isChecked(),
                             depth=boxes["depth"].isChecked(), depth_export=str(self.depth_export.currentData()),
                             tracking_metadata=metadata if boxes["tracking"].isChecked() else {})

    def asked(self) -> str:
        """What a send asks for, in a few words (the Job monitor shows it)."""
        words = {"roto": "roto", "tracking": "camera", "depth": f"depth ({self.depth_export.currentData()})"}
        return ", ".join(words[name] for name in self.chosen())

    def submit(self, force: bool = False) -> None:
        """Send the plate shown to the service shown, on a worker; the upload's progress and Cancel show meanwhile.
        Autopilot's jobs are followed by the Job monitor; a clip service's by its controller, which imports the
        movie when it is done. ``force``: send to Autopilot even frames it was sent with these options before."""
        check = self.update_problems()
        self.offer_box.hide()
        if not check.ok or self.plate is None or self._sending:
            return
        plate, service = self.plate, self.current_service()
        if service == SERVICE:
            options: Any = self.choice()
            asked, follow = self.asked(), False
        else:
            section = self.section(service)
            options = section.options()
            asked, follow = section.asked(options), True
        try:
            script = nuke.scriptName()
        except RuntimeError:  # an unsaved script
            script = ""
        self._sending, self._sending_to, self._cancelling = True, service, False
        self.send_button.setEnabled(False)
        self.failure_box.clear()
        label = self.controller.label(service)
        set_note(self.status, f"Sending {plate.node} ({plate.frame_count} frames) to {label}...")
        self._show_sending(f"Preparing {plate.node}...")
        forward = self._bridge.send
        future = self.controller.service(service).submit(plate, options, script=script, follow=follow, asked=asked,
                                                         force=force, home=self.bring_home.isChecked())
        future.add_done_callback(lambda f: forward("sent", (plate.node, label, f.exception())))

    def cancel_send(self) -> None:
        """Stop the send in flight at its next encoded frame or uploaded block; nothing is recorded."""
        self._cancelling = True
        self.controller.service(self._sending_to).cancel_send()
        self.cancel_send_button.setEnabled(False)
        set_note(self.status, "Cancelling the send...")

    def _show_sending(self, text: Optional[str], done: int = 0, total: int = 0) -> None:
        """The send's progress row: ``text`` on the bar (busy while the total is unknown); hidden for None."""
        sending = text is not None
        self.send_progress.setVisible(sending)
        self.cancel_send_button.setVisible(sending)
        self.cancel_send_button.setEnabled(sending and not self._cancelling)
        if not sending:
            return
        self.send_progress.setRange(0, 1000 if total else 0)
        self.send_progress.setValue(done * 1000 // total if total else 0)
        self.send_progress.setFormat(text or "")

    def show_offer(self, earlier: AlreadySent) -> None:
        """The same frames went with the same options as ``earlier``'s job: offer its results, or to send anyway."""
        self.failure_box.clear()  # not a failure: nothing was sent, and nothing needs to be
        self.offered = earlier.job_id
        done = earlier.state is JobState.COMPLETED
        set_note(self.offer_note, f"These frames were already sent with these options: {earlier.what} "
                                  f"({'completed' if done else earlier.state.value}). "
                                  + ("Import its results instead of paying for the frames again?" if done else
                                     "The Job monitor follows it; import it when it completes."))
        self.offer_import.setEnabled(done)
        set_note(self.status, "")
        self.offer_box.show()
        self.tabs.setCurrentIndex(PAGES.index("submit"))

    def import_offered(self) -> None:
        """The offered job's results onto the Read now selected (its frames are the same, by content)."""
        if self.offered is None or self.plate is None:
            return
        self.offer_box.hide()
        set_note(self.status, f"Importing Autopilot job {self.offered} onto {self.plate.node}...")
        self.controller.import_job(SERVICE, self.offered, self.plate, onto=True)

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
        set_note(self.status, f"Building the payload for {plate.node}...")

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
            set_note(self.status, "Preview: the input is not valid (see the dialog).")
        else:
            text = redact(json.dumps(doc, indent=2, sort_keys=True))
            set_note(self.status, "Preview: nothing was uploaded or sent.")
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

    def fill_jobs(self, records: List[JobRecord], handoffs: Optional[List[Any]] = None) -> None:
        """The jobs, below the sends the agent holds that are not jobs yet (``handoffs``: the controller's, as last
        read, unless given)."""
        keep = self.selected_key()  # rows move as jobs are added: the selection follows its job
        kept_handoff = self.selected_handoff()
        shown = self.controller.handoffs() if handoffs is None else handoffs
        self._job_records = list(records)
        self._handoffs = {h.entry.id: h for h in shown}
        self.table.setRowCount(len(shown) + len(records))
        self._rows = {}
        self._records = {record.key: record for record in records}
        for row, handoff in enumerate(shown):
            self._fill_handoff(row, handoff)
        for row, record in enumerate(records, start=len(shown)):
            self._rows[record.key] = row
            plate = record.extra.get("plate") or {}
            name = str(plate.get("node") or Path(record.source or record.title or record.job_id).name)
            label = self.controller.label(record.service)
            options = job_options(record)
            sent = clock(record.submitted_at.timestamp()) if record.submitted_at else ""
            service = f"{label}: {options}" if options else label
            # every cell's tooltip holds the whole row: a cell cut to its column is read there
            tip = "\n".join(line for line in (name, service, f"job {record.job_id}, sent {sent}",
                                               str(plate.get("file") or ""), home_note(record), record.error or "")
                            if line)
            values = [name, service, record.state_label, sent]
            for column, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(tip)
                if column == 0:
                    item.setData(KEY_ROLE, list(record.key))
                self.table.setItem(row, column, item)
            stopped = record.state in (JobState.FAILED, JobState.CANCELLED) or record.missing
            # a stopped job's bar is empty: its red words never sit on the bar's fill
            self._state_bar(row, 0 if stopped else 100 if record.state is JobState.COMPLETED else record.progress,
                            state_words(record), record.error or "", stopped)
        if keep is not None and keep in self._rows:
            self.table.selectRow(self._rows[keep])
        elif kept_handoff is not None and kept_handoff in self._handoffs:
            self.table.selectRow(list(self._handoffs).index(kept_handoff))
        elif keep is not None or kept_handoff is not None:
            self.table.clearSelection()
        self.update_job_buttons()

    def _fill_handoff(self, row: int, handoff: Any) -> None:
        """A send the agent holds: what was sent and where, its state and progress in the agent's queue."""
        entry = handoff.entry
        name = str((handoff.record.get("plate") or {}).get("node") or entry.title)
        label = self.controller.label(entry.service)
        sent = clock(entry.created_at.timestamp())
        tip = "\n".join((entry.title, label, f"queue entry {entry.id}, handed off {sent}", handoff.note))
        for column, text in enumerate([name, label, handoff.words, sent]):
            item = QtWidgets.QTableWidgetItem(text)
            item.setToolTip(tip)
            if column == 0:
                item.setData(HANDOFF_ROLE, entry.id)
            self.table.setItem(row, column, item)
        self._state_bar(row, 0 if handoff.failed else handoff.progress, handoff.words, entry.error or "",
                        handoff.failed)

    def _state_bar(self, row: int, value: float, words: str, error: str, stopped: bool) -> None:
        bar = QtWidgets.QProgressBar()
        bar.setRange(0, 100)
        bar.setValue(round(value))
        bar.setFormat(words)
        bar.setToolTip(f"{words}: {error}" if error else words)
        if stopped:
            bar.setStyleSheet(f"QProgressBar {{ color: {RED}; }}")
        self.table.setCellWidget(row, COLUMNS.index("State"), bar)

    def selected_handoff(self) -> Optional[int]:
        """The queue entry of the selected row when it is a send the agent holds (no job yet)."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        item = self.table.item(rows[0], COLUMNS.index("Job")) if rows else None
        entry = item.data(HANDOFF_ROLE) if item is not None else None
        return int(entry) if entry is not None else None

    def selected_key(self) -> Optional[Tuple[str, str]]:
        """(service, job id) of the selected row."""
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        if not rows:
            return None
        item = self.table.item(rows[0], COLUMNS.index("Job"))
        key = item.data(KEY_ROLE) if item is not None else None
        return (str(key[0]), str(key[1])) if key else None

    def selected_job(self) -> Optional[str]:
        key = self.selected_key()
        return key[1] if key is not None else None

    def update_job_buttons(self) -> None:
        """Cancel is offered only for a service that can cancel (its tooltip says why not); Import only for a
        completed job; the selected job's facts (and why it failed) show below the table."""
        key = self.selected_key()
        handoff = self._handoffs.get(self.selected_handoff() or -1)
        if handoff is not None:  # no job yet: nothing to import; Cancel stops the agent's upload, no job is made
            self.cancel_button.setEnabled(True)
            self.import_button.setEnabled(False)
            self.cancel_button.setToolTip("the Tether agent stops this send's upload and makes no job" if not
                                          handoff.failed else "remove this failed send from the list")
            set_note(self.job_info, f"<span style='color:{RED}'>{handoff.note}</span>" if handoff.failed
                     else handoff.note)
            return
        self.import_button.setEnabled(True)
        note_text = self.controller.cancel_note(key[0]) if key is not None else None
        record = self.controller.record(*key) if key is not None else None
        self.cancel_button.setEnabled(note_text is None and (record is None or not record.finished))
        self.cancel_button.setToolTip(note_text or "")
        self.import_button.setText("Re-&import" if record is not None and imported(record) else "&Import")
        if record is None:
            set_note(self.job_info, "")
            return
        sent = clock(record.submitted_at.timestamp())
        lines = [f"{self.controller.label(record.service)} job {record.job_id}, sent {sent}"]
        if record.state is JobState.FAILED:
            lines.append(f"<span style='color:{RED}'>Failed: {record.error or 'the service gave no reason'}</span>")
        elif imported(record):
            lines.append(f"Imported from {record.output_dir or 'its download folder'}")
        elif home_note(record):
            lines.append(home_note(record))
        set_note(self.job_info, "<br>".join(lines))

    def _job_menu(self, pos: Any) -> Optional[QtWidgets.QMenu]:
        """Right-click on a job: Import, Re-import as a new version, Cancel, Reveal results, Copy job id."""
        index = self.table.indexAt(pos)
        if index.isValid():
            self.table.selectRow(index.row())
        menu = self.job_menu()
        if menu is not None:
            menu.popup(self.table.viewport().mapToGlobal(pos))
        return menu

    def job_menu(self) -> Optional[QtWidgets.QMenu]:
        key = self.selected_key()
        if key is None:
            return None
        record = self.controller.record(*key)
        menu = QtWidgets.QMenu(self)
        completed = record is not None and record.state is JobState.COMPLETED
        done = record is not None and imported(record)
        folder = record.output_dir if record is not None else None
        self.menu_actions = {
            "import": menu.addAction("Import", self.import_selected),
            "reimport": menu.addAction("Re-import as a new version", self.import_selected),
            "cancel": menu.addAction("Cancel job", self.cancel_selected),
            "reveal": menu.addAction("Reveal results", self.reveal_selected),
            "copy": menu.addAction("Copy job id", self.copy_job_id),
        }
        self.menu_actions["import"].setEnabled(completed and not done)
        self.menu_actions["reimport"].setEnabled(completed and done)
        self.menu_actions["cancel"].setEnabled(self.cancel_button.isEnabled())
        self.menu_actions["reveal"].setEnabled(bool(folder) and Path(str(folder)).is_dir())
        return menu

    def reveal_selected(self) -> Optional[str]:
        key = self.selected_key()
        record = self.controller.record(*key) if key is not None else None
        if record is None or not record.output_dir:
            set_note(self.status, "Nothing was downloaded for this job yet: import it first.")
            return None
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(record.output_dir)))
        return str(record.output_dir)

    def copy_job_id(self) -> None:
        key = self.selected_key()
        clipboard = QtWidgets.QApplication.clipboard()
        if key is not None and clipboard is not None:
            clipboard.setText(key[1])
            set_note(self.status, f"Copied job id {key[1]}.")

    def import_selected(self) -> None:
        key = self.selected_key()
        if key is None:
            set_note(self.status, "Select a finished job to import.")
            return
        service, job_id = key
        label = self.controller.label(service)
        record = self.controller.record(service, job_id)
        if record is None:
            return
        if record.state is not JobState.COMPLETED:
            why = f" ({record.error})" if record.state is JobState.FAILED and record.error else ""
            set_note(self.status, f"{label} job {job_id} is {record.state_label}{why}: only completed jobs can be "
                                "imported.")
            return
        plate = None
        if nuke_plate(record.extra) is None:  # sent from the command line: its plate is no Read of this script
            node = selected_read()
            if node is None:
                set_note(self.status, f"{label} job {job_id} was not sent from Nuke: select its plate's Read node "
                                    "first.")
                return
            try:
                plate = read_plate(node)
            except InputError as exc:
                set_note(self.status, str(exc))
                return
        self.failure_box.clear()
        set_note(self.status, f"Importing {label} job {job_id}...")
        self.controller.import_job(service, job_id, plate)

    def cancel_selected(self) -> None:
        entry = self.selected_handoff()
        if entry is not None:
            set_note(self.status, f"Cancelling the send the Tether agent holds (queue entry {entry})...")
            self.controller.cancel_handoff(entry)
            return
        key = self.selected_key()
        if key is None:
            set_note(self.status, "Select a job to cancel.")
            return
        service, job_id = key
        note_text = self.controller.cancel_note(service)
        if note_text is not None:
            set_note(self.status, f"Job {job_id} cannot be cancelled: {note_text}")
            return
        set_note(self.status, f"Cancelling {self.controller.label(service)} job {job_id}...")
        self.controller.cancel(service, job_id)

    def _show_stale(self) -> None:
        set_note(self.stale_note, "\n".join(
            f"{self.controller.label(service)} has not answered since {since}: its jobs' states below may be out of "
            "date (Tether keeps asking)." for service, since in sorted(self.stale.items())))

    # --- settings ---------------------------------------------------------------------------------------------------
    def refresh_settings(self) -> None:
        try:
            from tether.settings import active_profile

            profile = active_profile(self.controller.profile)
        except Exception as exc:
            self.profile_label.setText(f"settings not readable: {exc}")
            return
        self.profile_label.setText(profile.name)
        for box in self.settings.values():
            box.refresh(profile)

    def test_connection(self, service: str) -> Future[str]:
        """Ask ``service`` something cheap with what Settings holds now (a fresh client); the answer, or why not,
        shows in its box."""
        box, adapter = self.settings[service], self.controller.service(service).adapter
        box.set_result("Asking...", ok=True)
        forward, profile = self._bridge.send, self.controller.profile
        done: Future[str] = Future()

        def work() -> None:
            try:
                client = adapter.client(profile)
                try:
                    answer = PROBES[service](client)
                finally:
                    client.close()
                done.set_result(answer)
                forward("connection", (service, answer, True))
            except Exception as exc:
                forward("connection", (service, failure(f"asking {adapter.label}", exc), False))
                done.set_exception(exc)

        threading.Thread(target=work, name=f"tether-nuke-test-{service}", daemon=True).start()
        return done

    # --- events from the controller -------------------------------------------------------------------------------
    def _forward(self, kind: str, payload: Any) -> None:
        self._bridge.send(kind, payload)  # any thread -> the GUI thread

    def _controller_closing(self) -> None:
        """The controller is closing (Nuke exits, the plugin is reloaded): its pool is about to go, so the
        selection timer must not ask it for a quota or a plate check again. Called on the closing thread; a timer
        stops only on its own thread, so from another the stop is queued (and ``closed`` already keeps a tick
        that comes first from asking)."""
        self.closed = True
        if QtCore.QThread.currentThread() == self.thread():
            self.selection_timer.stop()
        else:
            self._bridge.send("controller closed", None)

    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "controller closed":
            self.selection_timer.stop()
        elif kind == "jobs":
            self.fill_jobs(payload)
        elif kind == "handoffs":
            self.fill_jobs(self._job_records, payload)
        elif kind == "handoff cancelled":
            what = (f"its job {payload['job_id']} is cancelled" if payload.get("cancelled_job") else
                    "no job was made" if payload["state"] == "cancelled" else
                    f"it is {payload['state']}: the agent has not stopped it yet")
            set_note(self.status, f"Cancelled the send of {payload['title']} (queue entry {payload['id']}): {what}.")
        elif kind == "handed off":
            service, entry = payload
            set_note(self.status, f"Handed to the Tether agent (queue entry {entry}): it uploads and creates the "
                                  f"{self.controller.label(service)} job, and Nuke may close meanwhile.")
            self.tabs.setCurrentIndex(PAGES.index("jobs"))  # where it is listed until it is a job
        elif kind == "submitted":
            service, job_id = payload
            set_note(self.status, f"Sent: job {job_id} ({self.controller.label(service)}).")
            self.tabs.setCurrentIndex(PAGES.index("jobs"))  # where it is followed
        elif kind in ("encoding", "uploading"):
            service, node, done, total = payload
            if self._sending and service == self._sending_to:
                self._show_sending(f"Encoding {node}: frame {done} of {total}" if kind == "encoding" else
                                   f"Uploading {human_bytes(done)} of {human_bytes(total)} "
                                   f"({done * 100 // max(total, 1)}%)", done, total)
                self.send_progress.setToolTip(f"{kind.capitalize()} {node}")
        elif kind == "sent":  # this page's send is over, sent or not
            node, label, error = payload
            self._sending = False
            self._show_sending(None)
            if isinstance(error, CancelledByUser):
                set_note(self.status, f"Cancelled: {node} was not sent to {label}, and nothing was recorded.")
            self.update_problems()
            if isinstance(error, AlreadySent):
                self.show_offer(error)
        elif kind == "awaiting home":  # the import goes on after it: its own note again
            service, job_id, waiting = payload
            label = self.controller.label(service)
            set_note(self.status, f"Waiting for the Tether agent to bring {label} job {job_id} home (it downloads "
                                  "the results beside the comp)..." if waiting else
                                  f"Importing {label} job {job_id}...")
        elif kind == "imported":
            job_id, applied = payload
            set_note(self.status, f"Imported job {job_id}: {', '.join(applied.names.values())}"
                                + (f" ({'; '.join(applied.notes)})" if applied.notes else ""))
        elif kind == "quota":
            self.quota_remaining = payload.remaining
            self.offline = None
            self.update_problems()
        elif kind == "disk":
            plate, found = payload
            if plate is self.plate:
                self.disk_problems = found
                self.update_problems()
        elif kind == "stale":
            service, why = payload
            if why:
                self.stale[service] = why
            else:
                self.stale.pop(service, None)
            self._show_stale()
        elif kind == "preview":
            self.show_preview(payload)
        elif kind == "connection":
            service, answer, ok = payload
            self.settings[service].set_result(as_failure(answer).summary if not ok else answer, ok)
        elif kind == "error":
            problem = as_failure(payload)
            if problem.summary.lower().startswith("asking for the quota"):
                self.offline = "Autopilot is not answering: the quota is unknown, and Send may fail"
                self.update_problems()
                return
            set_note(self.status, "")
            self.failure_box.show_failure(problem)

    def closeEvent(self, event: Any) -> None:
        self.closed = True
        self.selection_timer.stop()
        self.controller.remove_listener(self._forward)
        self.controller.remove_close_hook(self._controller_closing)
        super().closeEvent(event)


__all__ = ["PreviewDialog", "TetherPanel", "find_panel", "is_alive", "preview_document"]
