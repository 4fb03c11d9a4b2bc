"""The part of ``nukescripts`` the plugin uses: registering a dockable panel (test stand-in)."""

from . import panels

__all__ = ["panels"]
