"""The Tether menu: Roto, Track camera, Depth, All three, Enhance (TensorPix), Job monitor, Settings.

Imported by menu.py at start-up, so it imports only ``nuke`` and ``nukescripts`` (already loaded by Nuke). Each
command loads the panel (Qt, the core, httpx, pydantic) when first clicked. Each entry is registered on its own,
so one failing entry leaves the others, and every failure is logged rather than raised into Nuke's start-up.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import nuke

from . import PANEL_ID

log = logging.getLogger("tether")

MENU = "Tether"
PANEL_WIDGET = "tether_nuke.panel.TetherPanel"
PANEL_TITLE = "Tether Autopilot"

_panel: Optional[Any] = None  # the one open panel widget, reused


def _report(what: str, exc: BaseException) -> None:
    log.exception("Tether: %s failed", what)
    with contextlib.suppress(Exception):  # no UI (terminal session): the log has it
        nuke.message(f"Tether: {what} failed:\n{exc}")


def show_panel(services: Tuple[str, ...] = (), page: str = "submit") -> Optional[Any]:
    """Open (or raise) the Tether panel with ``services`` ticked and ``page`` shown; None when it cannot open."""
    global _panel
    try:
        from .panel import TetherPanel, is_alive  # Qt and the core load here, on first use

        if _panel is None or not is_alive(_panel):
            import nukescripts

            created = nukescripts.panels.registerWidgetAsPanel(PANEL_WIDGET, PANEL_TITLE, PANEL_ID, True)
            widget = created.addToPane(nuke.getPaneFor("Properties.1")) if created is not None else None
            _panel = widget if isinstance(widget, TetherPanel) else TetherPanel.instance()
        if _panel is not None:
            _panel.open_with(services, page)
        return _panel
    except Exception as exc:
        _report("opening the panel", exc)
        return None


def roto() -> None:
    show_panel(("roto",))


def track_camera() -> None:
    show_panel(("tracking",))


def depth() -> None:
    show_panel(("depth",))


def all_three() -> None:
    show_panel(("roto", "tracking", "depth"))


_dialogs: Dict[str, Any] = {}  # one clip-service dialog per service, reused


def _monitor() -> Optional[Any]:
    """The open panel's JobController (the job monitor), or None."""
    if _panel is None:
        return None
    try:
        return _panel.controller
    except RuntimeError:  # the panel's widget is gone
        return None


def open_clip_service(name: str) -> Optional[Any]:
    """The dialog of a clip-in/clip-out service (``clipservices.ADAPTERS[name]``) for the selected Read.

    With the job monitor open, the dialog uses the monitor's controller for that service: one controller (and
    client) per service in the session, whose jobs the monitor lists as they move.
    """
    try:
        from .clipservices import make_dialog  # Qt and the core load here, on first use

        dialog = _dialogs.get(name)
        if dialog is None:
            monitor = _monitor()
            dialog = _dialogs[name] = make_dialog(name, monitor.clip(name) if monitor is not None else None)
            dialog.controller.add_listener(functools.partial(tell_the_monitor, source=dialog.controller))
        dialog.refresh_plate()
        dialog.show()
        dialog.raise_()
        return dialog
    except Exception as exc:
        _report(f"opening {name}", exc)
        return None


def tell_the_monitor(kind: str, payload: Any, source: Optional[Any] = None) -> None:
    """A clip sent from a dialog joins the open panel's job monitor at once and its progress shows there (any
    thread: only the panel's controller is touched, never a widget). The dialog's controller follows the job, so the
    monitor does not poll it too. Events of ``source``, when it is the monitor's own controller, reach it already."""
    if kind not in ("submitted", "job", "released", "imported"):
        return
    controller = _monitor()
    if controller is None or (source is not None and controller.owns(source)):
        return
    controller.clip_event(kind, payload)


def enhance_tensorpix() -> None:
    open_clip_service("tensorpix")


def style_clipzy() -> None:
    open_clip_service("clipzy")


def job_monitor() -> None:
    show_panel((), "jobs")


def settings() -> None:
    show_panel((), "settings")


ENTRIES: List[Tuple[str, Callable[[], None]]] = [
    ("Roto", roto),
    ("Track camera", track_camera),
    ("Depth", depth),
    ("All three", all_three),
    ("Enhance (TensorPix)", enhance_tensorpix),
    ("Style from template (Clipzy)", style_clipzy),
    ("Job monitor", job_monitor),
    ("Settings", settings),
]


def register() -> List[str]:
    """Build the menu and register the dockable panel (so saved layouts restore it). Returns the entries added."""
    added: List[str] = []
    try:
        menu = nuke.menu("Nuke").addMenu(MENU)
    except Exception:
        log.exception("Tether: cannot create the %s menu", MENU)
        return added
    for label, command in ENTRIES:
        try:
            menu.addCommand(label, command)
            added.append(label)
        except Exception:
            log.exception("Tether: cannot add the menu entry %s", label)
    try:
        import nukescripts

        # the class is named as a string: nothing of the panel (or Qt) is imported until Nuke shows it
        nukescripts.panels.registerWidgetAsPanel(PANEL_WIDGET, PANEL_TITLE, PANEL_ID)
    except Exception:
        log.exception("Tether: cannot register the panel")
    return added


__all__ = ["ENTRIES", "register", "show_panel"]
