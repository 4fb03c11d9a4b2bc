"""The Tether menu: Roto, Track camera, Depth, All three, Enhance (TensorPix), Style (Clipzy), Job monitor, Settings;
each opens the one Tether panel at its page.

Imported by menu.py at start-up, so it imports only ``nuke`` and ``nukescripts`` (already loaded by Nuke). Each
command loads the panel (Qt, the core, httpx, pydantic) when first clicked. Each entry is registered on its own,
so one failing entry leaves the others, and every failure is logged rather than raised into Nuke's start-up.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, List, Optional, Tuple

import nuke

from . import PANEL_ID

log = logging.getLogger("tether")

MENU = "Tether"
PANEL_WIDGET = "tether_nuke.panel.TetherPanel"
PANEL_TITLE = "Tether"  # one panel for every service (Autopilot, TensorPix, Clipzy)


def _report(what: str, exc: BaseException) -> None:
    log.exception("Tether: %s failed", what)
    with contextlib.suppress(Exception):  # no UI (terminal session): the log has it
        nuke.message(f"Tether: {what} failed:\n{exc}")


def _open_panel() -> Any:
    """The Tether panel, docked first when it is not open (Nuke makes the widget; Qt finds it again)."""
    from .panel import TetherPanel, find_panel  # Qt and the core load here, on first use

    panel = find_panel()
    if panel is None:
        import nukescripts

        created = nukescripts.panels.registerWidgetAsPanel(PANEL_WIDGET, PANEL_TITLE, PANEL_ID, True)
        widget = created.addToPane(nuke.getPaneFor("Properties.1")) if created is not None else None
        panel = widget if isinstance(widget, TetherPanel) else find_panel()
    return panel


def show_panel(services: Tuple[str, ...] = (), page: str = "submit", service: str = "") -> Optional[Any]:
    """Open (or raise) the Tether panel with ``page`` shown; on Send, ``service``'s options (Autopilot's with
    ``services`` ticked); None when it cannot open."""
    try:
        panel = _open_panel()
        if panel is not None:
            panel.open_with(services, page, service)
        return panel
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


def open_clip_service(name: str) -> Optional[Any]:
    """The panel's section of a clip service (``controller.ADAPTERS[name]``), shown on its Send page for the
    selected Read. It sends through the panel's controller for that service: its jobs show in the Job monitor as they
    move, and one follower polls each."""
    panel = show_panel((), "submit", name)
    return panel.sections.get(name) if panel is not None else None


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
