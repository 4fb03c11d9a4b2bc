"""Tether's init.py: run by every Nuke (GUI, render nodes, ``nuke -t``). No UI, no network, no heavy imports.

It only makes Tether's Python packages importable: this folder is on NUKE_PATH (so ``tether_nuke`` already is), and
Tether's dependency trees are appended to ``sys.path`` after Nuke's own entries, so the host's packages always win.
The trees are those named by ``TETHER_PYTHONPATH`` (os.pathsep-separated, set by the studio launcher or rez package;
a variable of Tether's own, so no other Python on the machine sees them), else the ones ``tether install`` put beside
this folder for this Nuke's Python (``../python/cpXY-<platform>``, ``cpXY``, ``common``). A failure is logged, never
raised: a broken install must not stop a render.
"""

import logging
import os
import platform
import sys


def _trees():
    listed = os.environ.get("TETHER_PYTHONPATH")
    if listed is not None:
        return [p for p in listed.split(os.pathsep) if p]
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
    abi = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    osname = "windows" if sys.platform == "win32" else "macos" if sys.platform == "darwin" else "linux"
    arch = "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x64"
    return [os.path.join(root, f"{abi}-{osname}-{arch}"), os.path.join(root, abi),
            os.path.join(root, "common")]


def _other_python(tree):
    """A tree built for another Python (``cp310-linux-x64`` in Nuke 16): its compiled files would not load."""
    name = os.path.basename(os.path.normpath(tree)).split("-")[0]
    return name[:2] == "cp" and name[2:].isdigit() and name != f"cp{sys.version_info[0]}{sys.version_info[1]}"


try:
    for _tree in _trees():
        if _other_python(_tree):
            logging.getLogger("tether").warning("Tether: %s is for another Python: skipped (the launcher's Nuke "
                                                "version does not match this Nuke)", _tree)
        elif os.path.isdir(_tree) and _tree not in sys.path:
            sys.path.append(_tree)
except Exception:  # never break Nuke's start-up
    logging.getLogger("tether").exception("Tether: init.py could not add its paths")
