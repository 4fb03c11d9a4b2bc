"""The add-on's account and network facts, read by the operators and panels: which Tether profile and farm address
the preferences name, and whether Blender allows online access. Light (``bpy`` only); the preferences class lives in
``prefs`` and draws the runtime's login state, so this module imports neither of them.
"""

from __future__ import annotations

from typing import Any

import bpy

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
