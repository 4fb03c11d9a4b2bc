"""``nukescripts.panels.registerWidgetAsPanel``: records the registration; ``addToPane`` builds the widget."""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Optional

_registered: Dict[str, PythonPanel] = {}


class PythonPanel:
    def __init__(self, widget: str, name: str, panel_id: str) -> None:
        self.widget = widget
        self.name = name
        self.panel_id = panel_id
        self.instances: List[Any] = []

    def addToPane(self, pane: Optional[Any] = None) -> Any:
        module, _, cls = self.widget.rpartition(".")
        instance = getattr(importlib.import_module(module), cls)()
        self.instances.append(instance)
        return instance


def registerWidgetAsPanel(widget: str, name: str, id: str, create: bool = False) -> Optional[PythonPanel]:
    if not isinstance(widget, str) or widget.count(".") < 1:
        raise TypeError("registerWidgetAsPanel takes the widget class as a 'module.Class' string")
    panel = PythonPanel(widget, name, id)
    _registered[id] = panel
    return panel if create else None


def _reset() -> None:
    _registered.clear()
