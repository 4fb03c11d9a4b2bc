"""Add-on preferences: which Tether profile and endpoint to use. The token lives in the OS keyring, never here."""

from __future__ import annotations

from typing import Any

from bpy.props import StringProperty
from bpy.types import AddonPreferences

from . import ops
from .access import ONLINE_HELP, online


class TETHER_AP_preferences(AddonPreferences):
    bl_idname = __package__ or "tether"

    profile: StringProperty(  # type: ignore[valid-type]
        name="Profile", default="",
        description="Tether settings profile (as in `tether config show`); empty: the configured default")
    endpoint: StringProperty(  # type: ignore[valid-type]
        name="Farm URL", default="",
        description="Another farm address for this profile; empty: the profile's own URL")

    def draw(self, context: Any) -> None:
        layout = self.layout
        col = layout.column()
        col.prop(self, "profile")
        col.prop(self, "endpoint")
        if not online():
            col.label(text=ONLINE_HELP, icon="ERROR")
            return
        runtime = ops.peek_runtime()
        state = runtime.ui.login if runtime is not None else ""
        col.label(text=state or "Login state not checked yet", icon="CHECKMARK" if "token" in state else "INFO")
        row = col.row(align=True)
        row.operator("tether.login", text="Log In...", icon="URL")
        row.operator("tether.logout", text="Log Out")
        row.operator("tether.check_login", text="", icon="FILE_REFRESH")


CLASSES = (TETHER_AP_preferences,)
