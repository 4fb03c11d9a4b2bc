"""One Python 3.9 venv per test session, with Nuke 14's stack: Tether (from this checkout), qtpy and PySide2 5.15.

Nuke 14 runs Python 3.9 with PySide2 5.15.2; 5.15.2.1 is the last PySide2 on PyPI (the same Qt 5.15.2). Used by
tests/test_py39.py (the core imports and evaluates its models under 3.9) and by tests/nuke/test_nuke_panel_pyside2.py
(the panel driven under PySide2) through the ``py39_venv`` fixture in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
PYSIDE2 = "PySide2==5.15.2.1"
QTPY = "qtpy>=2.4"


def find_python(version: str) -> Optional[str]:
    """A working ``python<version>`` on PATH, else the newest pyenv one, else None."""
    found = shutil.which(f"python{version}")
    if found:
        probe = subprocess.run([found, "--version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return found
    candidates = sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob(f"{version}*/bin/python{version}"))
    return str(candidates[-1]) if candidates else None


def python39() -> Optional[str]:
    return find_python("3.9")


def build_venv(python: str, folder: Path) -> Path:
    """Make the venv in ``folder`` and install into it; returns its python. Raises AssertionError with pip's
    output when the install fails (no index reachable, no wheel for this platform): a failure, never a skip."""
    subprocess.run([python, "-m", "venv", str(folder)], check=True)
    py = folder / "bin" / "python"
    # one resolver run for all three, so pip cannot later swap a dependency Tether pinned
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT), QTPY, PYSIDE2],
                             capture_output=True, text=True, timeout=800)
    assert install.returncode == 0, (f"pip could not install Tether, {QTPY} and {PYSIDE2} into a Python 3.9 venv:\n"
                                     + install.stdout[-3000:] + install.stderr[-3000:])
    return py
