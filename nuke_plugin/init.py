"""Tether's init.py: run by every Nuke (GUI, render nodes, ``nuke -t``). No UI, no network, no heavy imports.

It only makes Tether's Python packages importable: this folder is on NUKE_PATH (so ``tether_nuke`` already is), and a
``site`` folder beside it, when the installer put Tether's core and its dependencies there for Nuke's Python, is
added to the plugin path. A failure is logged, never raised: a broken install must not stop a render.
"""

import logging
import os

try:
    import nuke

    _site = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
    if os.path.isdir(_site):
        nuke.pluginAddPath(_site)
except Exception:  # never break Nuke's start-up
    logging.getLogger("tether").exception("Tether: init.py could not add its paths")
