"""Render the Tether panel (every service's section, Jobs, Settings) in every state of panel_states.py to PNGs, for
a person to look at.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/nuke/render_states.py OUT_FOLDER

Each state is drawn at the 420 px a dock gives it (the window grows downwards only to show all of its text); the
problems :func:`panel_states.clipped` and :func:`panel_states.clashing_mnemonics` find are printed beside each
file. Nothing here is committed: the PNGs are for
review only.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE, HERE / "fake", HERE.parents[1] / "nuke_plugin"):
    sys.path.insert(0, str(path))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list) -> int:
    from qtpy import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["tether-render-states"])
    app.setStyle("Fusion")
    out = Path(argv[1] if len(argv) > 1 else "panel-states")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tether-states-") as tmp:
        os.environ["TETHER_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["TETHER_CONFIG_DIR"] = str(Path(tmp) / "config")
        from panel_states import DOCK, clashing_mnemonics, clipped, each_state

        bad = 0
        for name, widget in each_state(Path(tmp)):
            target = out / f"{name}.png"
            widget.grab().save(str(target))
            problems = clipped(widget) + clashing_mnemonics(widget)
            bad += bool(problems)
            width = widget.minimumSizeHint().width()
            print(f"{target}  {widget.width()}x{widget.height()}  minimum width {width}"
                  + ("" if width <= DOCK else f" (over {DOCK})") + "".join(f"\n    {p}" for p in problems))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
