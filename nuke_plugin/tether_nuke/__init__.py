"""Tether inside Nuke: send a Read node's clip to Autopilot (mattes, camera and depth come back), TensorPix or Clipzy
(a movie comes back), and import the results beside the plate.

Modules (only ``commands`` is imported at start-up; the rest load on first use):

- ``commands``: the menu entries and panel registration (cheap to import);
- ``plate_reader``: a Read node -> :class:`tether.nukeimport.PlateFacts`;
- ``importer``: an :class:`tether.nukeimport.ImportDescription` -> nodes, in one undo step;
- ``mainthread``: the one way worker threads reach Nuke's nodes;
- ``work``: worker threads whose outcomes reach listeners as events (no Qt);
- ``service``: the seam every service goes through, and its controller: send, follow, import, cancel (no Qt);
- ``autopilot``, ``clipservices``: the services' adapters (Autopilot; TensorPix and Clipzy, clip in, clip out);
- ``controller``: the job monitor's controller, one service controller per service, watching their jobs (no Qt);
- ``failure``: what went wrong, in words and with its technical detail (no Qt);
- ``panel``: the dockable Qt panel (qtpy: PySide2 or PySide6); ``dialog``: the clip services' sections of it;
  ``widgets``: the Qt pieces they share (elided paths, wrapped notes, a failure with its "Details").
"""

__all__ = ["PANEL_ID"]

PANEL_ID = "com.tether.autopilot"
