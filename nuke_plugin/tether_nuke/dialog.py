"""The clip services' dialog (TensorPix, Clipzy; qtpy: PySide2 or PySide6), loaded on first use.

TensorPix gets its own form (models: the last list from disk at once, then the service's; resolution, the numeric
options, preview). Any other adapter describes its options in ``options_spec``: ``[{"name", "label", "kind":
"file"|"text"|"number"|"bool", "required", "help"}]``; an optional ``stage_text(job)`` is shown while the job runs
and an optional ``action`` labels the button. The dialog sends through the service's controller (the job monitor's,
shared), which follows the job and imports it when it completes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from qtpy import QtCore, QtGui, QtWidgets
from tether.errors import InputError
from tether.nukeimport import PlateFacts, check_plate

from .clipservices import MODELS_SERVICE, TENSORPIX_RESOLUTIONS, clock, load_models, save_models, tensorpix_options
from .plate_reader import read_plate, selected_read
from .service import ServiceController
from .widgets import RED, Bridge, FailureBox, note, set_note

NAME_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
GONE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2


class ClipServiceDialog(QtWidgets.QDialog):
    """The dialog of one clip service: its options for the selected Read, what blocks sending (said as you type),
    Send (the default button: Enter sends), and the job's progress. It grows with its text."""

    def __init__(self, controller: ServiceController, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setModal(False)
        self.adapter = controller.adapter
        self.controller = controller
        label = self.adapter.label
        self.setWindowTitle(f"Tether: {label}")
        self.plate: Optional[PlateFacts] = None
        self.plate_problems: List[str] = []
        self._bridge = Bridge(self)
        self._bridge.event.connect(self._on_event)
        bridge, ctl = self._bridge, self.controller

        def listen(kind: str, payload: Any) -> None:
            bridge.event.emit(kind, payload)

        # the controller is the job monitor's, which outlives this dialog
        ctl.add_listener(listen)
        self.destroyed.connect(lambda *_: ctl.remove_listener(listen))
        outer = QtWidgets.QVBoxLayout(self)
        outer.setSizeConstraint(QtWidgets.QLayout.SizeConstraint.SetMinimumSize)
        form = QtWidgets.QFormLayout()
        form.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addLayout(form)
        self.read_label = QtWidgets.QLabel("-")
        self.read_label.setWordWrap(True)
        form.addRow("Read", self.read_label)
        self.spec: List[Dict[str, Any]] = list(getattr(self.adapter, "options_spec", None) or [])
        self.fields: Dict[str, Any] = {}
        if self.spec:
            self._spec_form(form)
        else:
            self._tensorpix_form(form)
        self.problems = note(RED)  # what blocks sending, kept current as the selection and the fields change
        outer.addWidget(self.problems)
        self.send_button = QtWidgets.QPushButton(getattr(self.adapter, "action", "") or f"Send to {label}")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.submit)
        outer.addWidget(self.send_button)
        self.stop_button = QtWidgets.QPushButton("Stop encoding")  # shown only while a sequence is encoded
        self.stop_button.setToolTip("Stop making the movie: nothing is uploaded")
        self.stop_button.clicked.connect(self.controller.cancel_send)
        self.stop_button.setVisible(False)
        outer.addWidget(self.stop_button)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 100)
        outer.addWidget(self.progress)
        self.status = note()
        self.status.setVisible(True)
        outer.addWidget(self.status)
        self.failure_box = FailureBox()
        outer.addWidget(self.failure_box)
        self.resize(420, self.sizeHint().height())
        self.refresh_plate()

    def _fit(self) -> None:
        """Grow (never shrink) to show every line of text at the current width."""
        layout = self.layout()
        if layout is None:
            return
        width = self.width()
        need = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        if need > self.height():
            self.resize(width, need)

    # --- forms --------------------------------------------------------------------------------------------
    def _tensorpix_form(self, form: Any) -> None:
        self.models_box = QtWidgets.QListWidget()
        form.addRow("Models", self.models_box)
        self.models_box.itemChanged.connect(self.update_problems)
        self.models_note = QtWidgets.QLabel("listing the models...")
        self.models_note.setWordWrap(True)
        form.addRow("", self.models_note)
        self.models_shown_at: Optional[float] = None  # when the list shown was fetched
        self.resolution = QtWidgets.QComboBox()
        for text, value in TENSORPIX_RESOLUTIONS:
            self.resolution.addItem(text, value)
        form.addRow("Resolution", self.resolution)
        self.numbers: Dict[str, Any] = {}
        for key, label, top, unit in (("grain", "Grain", 100, " %"), ("sharpen_strength", "Sharpen", 100, " %"),
                                      ("stabilization_smoothing", "Stabilisation", 100, " %"),
                                      ("fps_interpolation_factor", "Frame rate x", 8, " x"),
                                      ("playback_speed", "Speed x", 16, " x")):
            spin = QtWidgets.QDoubleSpinBox()
            spin.setRange(0, top)
            spin.setDecimals(0 if unit == " %" else 2)
            spin.setSuffix(unit)
            spin.setSpecialValueText("service default")
            spin.setToolTip(f"0 to {top}{unit.strip()}; 0 leaves the service's default")
            self.numbers[key] = spin
            form.addRow(label, spin)
        self.preview = QtWidgets.QCheckBox("Preview only (first frames)")
        form.addRow(self.preview)
        self.controller._task("listing the models", self._load_models)

    def _spec_form(self, form: Any) -> None:
        for item in self.spec:
            kind = item.get("kind", "text")
            widget: Any
            if kind == "bool":
                widget = QtWidgets.QCheckBox(item.get("label", item["name"]))
            elif kind == "number":
                widget = QtWidgets.QDoubleSpinBox()
                widget.setRange(-1e9, 1e9)
            else:
                widget = QtWidgets.QLineEdit()
                widget.setPlaceholderText(item.get("help", ""))
                widget.textChanged.connect(self.update_problems)
            widget.setToolTip(item.get("help", ""))
            self.fields[item["name"]] = widget
            if kind == "file":
                row = QtWidgets.QHBoxLayout()
                browse = QtWidgets.QPushButton("...")
                browse.clicked.connect(lambda _=False, w=widget: self._browse(w))
                row.addWidget(widget)
                row.addWidget(browse)
                form.addRow(item.get("label", item["name"]), row)
            else:
                form.addRow(item.get("label", item["name"]) if kind != "bool" else "", widget)

    def _browse(self, edit: Any) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Choose a file")
        if path:
            edit.setText(path)

    def _load_models(self) -> None:
        """Worker: the last list from disk at once, then the service's (cached for the next time)."""
        client = self.controller.client()
        key = (MODELS_SERVICE, str(getattr(client, "profile", "") or ""), str(getattr(client, "base_url", "")))
        cached = load_models(*key)
        if cached is not None:
            self._bridge.event.emit("models", (cached[0], cached[1], "cached"))
        try:
            fresh = [(str(m.id), str(m.name or "")) for m in client.models()]
        except Exception as exc:
            self._bridge.event.emit("models", (None, cached[1] if cached else None, str(exc)))
            return
        stamp = save_models(*key, fresh)
        self._bridge.event.emit("models", (fresh, stamp, "fresh"))

    def _show_models(self, models: Optional[List[Tuple[str, str]]], fetched_at: Optional[float],
                     how: str) -> None:
        """``how``: "cached" (from disk, a fresh list is on its way), "fresh", else why the fetch failed."""
        if models is None:  # the fetch failed: keep what is shown
            self.models_note.setText(f"offline: models from {clock(fetched_at)}" if fetched_at is not None
                                     else f"offline: no models listed yet ({how})")
            self.models_note.setToolTip(how)
            return
        box = self.models_box
        ticked = [box.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(box.count())
                  if box.item(i).checkState() == QtCore.Qt.CheckState.Checked]
        names = {str(box.item(i).data(QtCore.Qt.ItemDataRole.UserRole)): box.item(i).data(NAME_ROLE)
                 for i in range(box.count())}
        box.blockSignals(True)  # filling it is no change the artist made
        box.clear()
        offered = {model_id for model_id, _ in models}
        rows = list(models) + [(str(t), names.get(str(t)) or "") for t in ticked if str(t) not in offered]
        for model_id, name in rows:
            gone = model_id not in offered
            item = QtWidgets.QListWidgetItem((name or f"model {model_id}") + ("  (no longer offered)" if gone else ""))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, int(model_id) if model_id.isdigit() else model_id)
            item.setData(NAME_ROLE, name)
            item.setData(GONE_ROLE, gone)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            checked = any(str(t) == model_id for t in ticked)
            item.setCheckState(QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)
            if gone:  # kept ticked and flagged: sending refuses it until it is unticked
                item.setForeground(QtGui.QBrush(QtGui.QColor(RED)))
                item.setToolTip(f"TensorPix no longer lists model {model_id}")
            box.addItem(item)
        box.blockSignals(False)
        self.models_shown_at = fetched_at
        note = f"models as of {clock(fetched_at)}"
        self.models_note.setText(note + (" (checking for changes...)" if how == "cached" else ""))
        self.models_note.setToolTip("")
        self.update_problems()

    # --- state --------------------------------------------------------------------------------------------
    def refresh_plate(self) -> None:
        """Read the selected Read (main thread) and say at once what would stop it being sent here."""
        node = selected_read()
        self.plate, self.plate_problems = None, []
        try:
            self.plate = read_plate(node) if node is not None else None
        except InputError as exc:
            self.plate_problems = [str(exc)]
        if self.plate is not None:
            self.plate_problems = check_plate(self.plate, check_disk=False, service=self.adapter.label).errors
        self.read_label.setText(self.plate.node if self.plate else "no Read selected")
        self.update_problems()

    def problems_now(self) -> List[str]:
        """What blocks sending, in words that say what to change."""
        problems = list(self.plate_problems)
        if self.plate is None and not problems:
            problems.append("select the plate's Read node")
        try:
            self.options()
        except InputError as exc:
            problems.append(str(exc))
        return problems

    def update_problems(self, *args: Any) -> List[str]:
        problems = self.problems_now()
        set_note(self.problems, "\n".join(problems))
        self.send_button.setEnabled(not problems)
        self._fit()
        return problems

    def options(self) -> Dict[str, Any]:
        if self.spec:
            out: Dict[str, Any] = {}
            for item in self.spec:
                widget = self.fields[item["name"]]
                kind = item.get("kind", "text")
                value = widget.isChecked() if kind == "bool" else (
                    widget.value() if kind == "number" else widget.text().strip())
                if value in ("", None) and item.get("required"):
                    raise InputError(f"{item.get('label', item['name'])} is required")
                if value not in ("", None):
                    out[item["name"]] = value
            return out
        ticked = [self.models_box.item(i) for i in range(self.models_box.count())
                  if self.models_box.item(i).checkState() == QtCore.Qt.CheckState.Checked]
        gone = [str(item.data(QtCore.Qt.ItemDataRole.UserRole)) for item in ticked
                if item.data(GONE_ROLE)]
        if gone:
            raise InputError(f"TensorPix no longer offers model {', '.join(gone)}: untick it or choose another")
        ids = [item.data(QtCore.Qt.ItemDataRole.UserRole) for item in ticked]
        if not ids:
            raise InputError("tick at least one model")
        numbers = {k: spin.value() for k, spin in self.numbers.items()}
        return tensorpix_options(ids, int(self.resolution.currentData()), preview=self.preview.isChecked(),
                                 **numbers)

    def submit(self) -> None:
        self.refresh_plate()
        problems = self.problems_now()
        if problems or self.plate is None:
            set_note(self.status, "Not sent: " + "; ".join(problems))
            return
        options = self.options()
        self.send_button.setEnabled(False)
        self.failure_box.clear()
        self.progress.setValue(0)
        set_note(self.status, f"Sending {self.plate.node} ({self.plate.frame_count} frames) to "
                            f"{self.adapter.label}...")
        self.controller.submit(self.plate, options, asked=self.asked(options))

    def asked(self, options: Dict[str, Any]) -> str:
        """What the options ask for, in a few words, for the Job monitor."""
        if self.spec:
            return ", ".join(Path(str(options[i["name"]])).name for i in self.spec if i.get("kind") == "file"
                             and options.get(i["name"]))
        box = self.models_box
        ticked = [box.item(i) for i in range(box.count()) if box.item(i).checkState() == QtCore.Qt.CheckState.Checked]
        names = [item.data(NAME_ROLE) or f"model {item.data(QtCore.Qt.ItemDataRole.UserRole)}" for item in ticked]
        resolution = self.resolution.currentText()
        return ", ".join(names) + ("" if int(self.resolution.currentData()) < 0 else f", {resolution}")

    def _on_event(self, kind: str, payload: Any) -> None:
        if kind == "models":
            self._show_models(*payload)
        elif kind == "encoding":
            node, done, total = payload
            self.stop_button.setVisible(done < total)
            self.progress.setValue(round(100 * done / max(total, 1)))
            set_note(self.status, f"Encoding {node}: frame {done} of {total}...")
        elif kind == "job":
            stage = getattr(self.adapter, "stage_text", None)
            self.progress.setValue(round(payload.progress))
            set_note(self.status, f"job {payload.id}: {stage(payload) if callable(stage) else payload.state_label}")
        elif kind == "imported":
            job_id, applied = payload
            self.progress.setValue(100)
            set_note(self.status, f"Imported job {job_id}: {', '.join(applied.names.values())}"
                                + (f" ({'; '.join(applied.notes)})" if applied.notes else ""))
            self.update_problems()
        elif kind == "error":
            self.stop_button.setVisible(False)
            set_note(self.status, "")
            self.failure_box.show_failure(payload)
            self.update_problems()
        self._fit()


__all__ = ["ClipServiceDialog"]
