"""The clip services' sections of the Tether panel (TensorPix, Clipzy; qtpy: PySide2 or PySide6), loaded on first use.

TensorPix gets its own form (models by name: the last list from disk at once, then the service's; resolution, the
numeric options with their unit and range, preview). Any other adapter describes its options in ``options_spec``:
``[{"name", "label", "kind": "file"|"text"|"number"|"bool", "required", "help"}]``. A section holds only its
service's options and says what in them blocks sending; the panel holds the Read, Send, its progress and Cancel,
and sends through the service's controller (the job monitor's, shared), which follows the job and imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from qtpy import QtCore, QtGui, QtWidgets
from tether.errors import InputError

from .clipservices import (
    MODELS_SERVICE,
    TENSORPIX_NUMBERS,
    TENSORPIX_RESOLUTIONS,
    clock,
    load_models,
    save_models,
    tensorpix_options,
)
from .service import ServiceController
from .widgets import RED, Bridge

NAME_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
GONE_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2


class ClipServiceSection(QtWidgets.QWidget):
    """One clip service's options in the panel; ``problems_now()`` says what in them blocks sending."""

    def __init__(self, controller: ServiceController, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.adapter = controller.adapter
        self.controller = controller
        self.label = self.adapter.label
        self._bridge = Bridge(self._on_event)
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.spec: List[Dict[str, Any]] = list(getattr(self.adapter, "options_spec", None) or [])
        self.fields: Dict[str, Any] = {}
        self.tab_order: List[QtWidgets.QWidget] = []  # its fields in the order Tab visits them
        self.line_edits: List[QtWidgets.QLineEdit] = []  # Enter in one sends
        if self.spec:
            self._spec_form(form)
        else:
            self._tensorpix_form(form)

    # --- forms --------------------------------------------------------------------------------------------
    def _tensorpix_form(self, form: Any) -> None:
        self.models_box = QtWidgets.QListWidget()
        self.models_box.setMaximumHeight(110)
        models_label = QtWidgets.QLabel("&Models")
        models_label.setBuddy(self.models_box)
        form.addRow(models_label, self.models_box)
        self.models_box.itemChanged.connect(self.changed)
        self.models_note = QtWidgets.QLabel("listing the models...")
        self.models_note.setWordWrap(True)
        form.addRow("", self.models_note)
        self.models_shown_at: Optional[float] = None  # when the list shown was fetched
        self.resolution = QtWidgets.QComboBox()
        for text, value in TENSORPIX_RESOLUTIONS:
            self.resolution.addItem(text, value)
        form.addRow(self._label("&Resolution", self.resolution), self.resolution)
        self.numbers: Dict[str, Any] = {}
        for key, label, low, top, unit in TENSORPIX_NUMBERS:
            spin = QtWidgets.QSpinBox() if unit == "%" else QtWidgets.QDoubleSpinBox()
            spin.setRange(0, top)  # 0: TensorPix's own (the note below says so)
            if isinstance(spin, QtWidgets.QDoubleSpinBox):
                spin.setDecimals(1)
                spin.setSingleStep(0.5)
            spin.setSuffix(f" {unit}")
            spin.setToolTip(f"{label}: {low:g} to {top:g} {unit}, or 0 to leave it to TensorPix")
            spin.valueChanged.connect(self.changed)
            self.numbers[key] = spin
            form.addRow(self._label(f"{label} ({low:g}-{top:g} {unit})", spin), spin)
        self.numbers_note = QtWidgets.QLabel("A number left at 0 is TensorPix's own choice.")
        self.numbers_note.setWordWrap(True)
        form.addRow(self.numbers_note)
        self.preview = QtWidgets.QCheckBox("Preview &only (first frames)")
        form.addRow(self.preview)
        self.tab_order = [self.models_box, self.resolution, *self.numbers.values(), self.preview]
        self.controller._task("listing the models", self._load_models)

    @staticmethod
    def _label(text: str, buddy: QtWidgets.QWidget) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(text)
        label.setBuddy(buddy)
        return label

    def _spec_form(self, form: Any) -> None:
        for item in self.spec:
            kind = item.get("kind", "text")
            widget: Any
            if kind == "bool":
                widget = QtWidgets.QCheckBox(item.get("label", item["name"]))
                widget.toggled.connect(self.changed)
            elif kind == "number":
                widget = QtWidgets.QDoubleSpinBox()
                widget.setRange(-1e9, 1e9)
                widget.valueChanged.connect(self.changed)
            else:
                widget = QtWidgets.QLineEdit()
                widget.setPlaceholderText(item.get("help", ""))
                widget.textChanged.connect(self.changed)
                self.line_edits.append(widget)
            widget.setToolTip(item.get("help", ""))
            self.fields[item["name"]] = widget
            self.tab_order.append(widget)
            label = item.get("label", item["name"])
            if kind == "file":
                row = QtWidgets.QHBoxLayout()
                browse = QtWidgets.QPushButton("&Browse...")
                browse.clicked.connect(lambda _=False, w=widget: self._browse(w))
                row.addWidget(widget, 1)
                row.addWidget(browse)
                self.tab_order.append(browse)
                form.addRow(self._label(label, widget), row)
            elif kind == "bool":
                form.addRow(widget)
            else:
                form.addRow(self._label(label, widget), widget)

    changed = QtCore.Signal()  # an option changed: the panel says again what blocks sending

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
            self._bridge.send("models", (cached[0], cached[1], "cached"))
        try:
            fresh = [(str(m.id), str(m.name or "")) for m in client.models()]
        except Exception as exc:
            self._bridge.send("models", (None, cached[1] if cached else None, str(exc)))
            return
        stamp = save_models(*key, fresh)
        self._bridge.send("models", (fresh, stamp, "fresh"))

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
        self.changed.emit()

    # --- state --------------------------------------------------------------------------------------------
    def problems_now(self) -> List[str]:
        """What in the options blocks sending, in words that say what to change."""
        try:
            self.options()
        except InputError as exc:
            return [str(exc)]
        return []

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
        for key, label, low, top, unit in TENSORPIX_NUMBERS:
            if 0 < numbers[key] < low:
                raise InputError(f"{label} goes from {low:g} to {top:g} {unit}: raise it, or set 0 for TensorPix's own")
        return tensorpix_options(ids, int(self.resolution.currentData()), preview=self.preview.isChecked(),
                                 **numbers)

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


__all__ = ["ClipServiceSection"]
