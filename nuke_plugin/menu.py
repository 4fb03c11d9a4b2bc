"""Tether's menu.py: the Tether menu and the dockable panel's registration (GUI sessions only).

Imports nothing heavy: ``tether_nuke.commands`` loads the core, httpx, pydantic and Qt on first use. Any error is
logged and swallowed so that Nuke always starts.
"""

import logging

try:
    from tether_nuke.commands import register

    register()
except Exception:  # never break Nuke's start-up
    logging.getLogger("tether").exception("Tether: the menu could not be registered")
