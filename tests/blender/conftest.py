"""Fixtures for the Blender add-on tests: the real ``bpy`` (imported once), the add-on enabled the legacy way,
isolated Blender and Tether user folders and an in-memory keyring. The local farm is the suite's ``farm_url``."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Blender reads this when bpy is imported: set it before any test imports bpy.
_USER = Path(tempfile.mkdtemp(prefix="tether-blender-user-"))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(_USER))

bpy = pytest.importorskip("bpy", reason="the bpy wheel (Blender as a Python module) is not installed")
ADDON = "blender_addon"




@pytest.fixture(scope="session")
def blender() -> Any:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bpy.context.preferences.system.use_online_access = True
    return bpy


@pytest.fixture()
def tether_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tether's registry and config in a temp folder; no credentials from the environment."""
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("TETHER_PROFILE", "TETHER_FARM_TOKEN", "TETHER_FARM_PASSWORD", "TETHER_FARM_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture()
def addon(blender: Any, tether_dirs: Path) -> Iterator[Any]:
    """The add-on enabled the legacy way (a module on sys.path), on an empty saved-nowhere scene."""
    import addon_utils

    blender.ops.wm.read_homefile(use_empty=True)
    blender.context.preferences.system.use_online_access = True
    module = addon_utils.enable(ADDON, default_set=True, handle_error=_raise)
    assert module is not None, "the add-on did not enable"
    try:
        yield module
    finally:
        addon_utils.disable(ADDON, default_set=True, handle_error=_raise)


def _raise(exc: BaseException) -> None:
    raise exc
