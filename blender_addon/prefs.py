"""Add-on preferences: which Tether profile and endpoint to use. The token lives in the OS keyring, never here."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import StringProperty
from bpy.types import AddonPreferences

ONLINE_HELP = "Online access is off: allow it in Preferences > System > Network > Allow Online Access"


def addon_prefs(context: Any = None) -> Any:
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__ or "")
    return addon.preferences if addon is not None else None


def account(context: Any = None) -> Any:
    from .backend import Account

    prefs = addon_prefs(context)
    if prefs is None:
        return Account()
    return Account(profile=prefs.profile.strip(), endpoint=prefs.endpoint.strip())


def online() -> bool:
    return bool(bpy.app.online_access)


def refuse_offline(op: Any) -> bool:
    """True (after telling the operator's caller how to allow it) when Blender's online access is off."""
    if online():
        return False
    op.report({"ERROR"}, ONLINE_HELP)
    return True


class TETHER_AP_preferences(AddonPreferences):
    bl_idname = __package__ or "tether"

    profile: StringProperty(  # type: ignore[valid-type]
        name="Profile", default="",
        description="Tether settings profile (as in `tether config show`); empty: the configured default")
    endpoint: StringProperty(  # type: ignore[valid-type]
        name="Farm URL", default="",
        description="Another farm address for this profile; empty: the profile's own URL")

    def draw(self, context: Any) -> None:
        from . import ops

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
