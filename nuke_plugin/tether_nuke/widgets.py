"""Small Qt pieces the panel and the dialogs share (qtpy: PySide2 or PySide6), built so a 420 px dock holds them:
a path elided in its middle with the whole path in its tooltip, notes that wrap, and a failure shown in words with
its technical detail behind a "Details" toggle that can be selected and copied."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from qtpy import QtCore, QtGui, QtWidgets

from .failure import Failure, as_failure

RED, AMBER = "#e0605a", "#d8b040"


class Bridge(QtCore.QObject):
    """Carries controller events from worker threads to ``receiver`` on the GUI thread (a queued signal).

    Owned by the application, never by the widget it serves: a worker may emit while that widget is being deleted.
    A bridge that was the widget's child went with it under a worker's emit (a use after free: the Nuke tests
    segfaulted now and then under load); now Qt drops the connection to a deleted receiver, and the bridge lives on.
    """

    event = QtCore.Signal(str, object)

    def __init__(self, receiver: Callable[[str, Any], None]) -> None:
        super().__init__(QtCore.QCoreApplication.instance())
        self.event.connect(receiver)

    def send(self, kind: str, payload: Any) -> None:
        """From any thread."""
        self.event.emit(kind, payload)


class ElidedLabel(QtWidgets.QLabel):
    """One line that shows as much as fits, cut in the middle ("/shots/sq010/…/plate.####.exr"); the whole text is
    the tooltip and what is selected or copied. Its minimum width is small: it never widens a dock."""

    def __init__(self, text: str = "", parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text if len(text) > 20 else "")
        self._elide()

    def full_text(self) -> str:
        return self._full

    def _elide(self) -> None:
        width = max(self.contentsRect().width(), 10)
        shown = self.fontMetrics().elidedText(self._full, QtCore.Qt.TextElideMode.ElideMiddle, width)
        if shown != self.text():
            super().setText(shown)

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(40, super().minimumSizeHint().height())

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(min(super().sizeHint().width(), 240), super().sizeHint().height())

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._elide()


def note(color: str = "") -> QtWidgets.QLabel:
    """A wrapped, selectable line of text, hidden while empty (so it takes no room)."""
    label = QtWidgets.QLabel("")
    label.setWordWrap(True)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    if color:
        label.setStyleSheet(f"color: {color}")
    label.setVisible(False)
    return label


LONG_WORD = re.compile(r"[^\s<>]{49,}")


def shorten_words(text: str) -> str:
    """Long unbreakable words (paths, ids) cut in their middle, so a line wraps within a dock."""
    return LONG_WORD.sub(lambda m: f"{m.group(0)[:18]}…{m.group(0)[-28:]}", text)


def set_note(label: QtWidgets.QLabel, text: str) -> None:
    """The note's text, paths cut in the middle (the whole text is its tooltip then); hidden when empty."""
    shown = shorten_words(text)
    label.setText(shown)
    label.setToolTip(re.sub(r"<[^>]+>", "", text.replace("<br>", "\n")) if shown != text else "")
    label.setVisible(bool(text))


class FailureBox(QtWidgets.QWidget):
    """A failure in red words; "Details" opens the technical text (selectable, with Copy) below them."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Maximum)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.summary = note(RED)
        self.summary.setVisible(True)
        self.toggle = QtWidgets.QToolButton()
        self.toggle.setText("Details")
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._show_details)
        row.addWidget(self.summary, 1)
        row.addWidget(self.toggle, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        layout.addLayout(row)
        self.details = QtWidgets.QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(90)
        self.copy_button = QtWidgets.QPushButton("Copy details")
        self.copy_button.clicked.connect(self.copy)
        layout.addWidget(self.details)
        layout.addWidget(self.copy_button, 0, QtCore.Qt.AlignmentFlag.AlignRight)
        self.failure: Optional[Failure] = None
        self.clear()

    def show_failure(self, payload: object) -> None:
        self.failure = as_failure(payload)
        set_note(self.summary, self.failure.summary)
        self.details.setPlainText(self.failure.details)
        self.toggle.setVisible(bool(self.failure.details))
        self.toggle.setChecked(False)
        self._show_details(False)
        self.setVisible(True)

    def clear(self) -> None:
        self.failure = None
        self.summary.setText("")
        self.toggle.setChecked(False)
        self._show_details(False)
        self.setVisible(False)

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.copy_button.setVisible(shown)

    def copy(self) -> None:
        clipboard = QtWidgets.QApplication.clipboard()
        if clipboard is not None and self.failure is not None:
            clipboard.setText(f"{self.failure.summary}\n{self.failure.details}".strip())


def fixed_font() -> QtGui.QFont:
    font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
    font.setStyleHint(QtGui.QFont.StyleHint.Monospace)
    return font


__all__ = ["AMBER", "RED", "Bridge", "ElidedLabel", "FailureBox", "fixed_font", "note", "set_note", "shorten_words"]
