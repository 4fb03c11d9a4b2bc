"""Tether inside Nuke: send a Read node's clip to Autopilot and import mattes, camera and depth back.

Modules (only ``commands`` is imported at start-up; the rest load on first use):

- ``commands``: the menu entries and panel registration (cheap to import);
- ``plate_reader``: a Read node -> :class:`tether.nukeimport.PlateFacts`;
- ``importer``: an :class:`tether.nukeimport.ImportDescription` -> nodes, in one undo step;
- ``mainthread``: the one way worker threads reach Nuke's nodes;
- ``controller``: submission, watching and importing on worker threads (no Qt);
- ``panel``: the dockable Qt panel (qtpy: PySide2 or PySide6).
"""

__all__ = ["PANEL_ID"]

PANEL_ID = "com.tether.autopilot"
