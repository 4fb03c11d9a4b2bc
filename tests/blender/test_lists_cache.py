"""The farm's lists kept on disk (tether.listcache): shown at once in a fresh session, offline too, replaced by fresh
ones, a choice that vanished flagged; no credential in the file. Real bpy, the local farm over real HTTP."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
from memkeyring import MemoryKeyring

from .conftest import ADDON
from .test_addon import _draw_all, _rt, _settle

bpy = pytest.importorskip("bpy")


def _ops() -> Any:
    return sys.modules[f"{ADDON}.ops"]


def _join() -> None:
    for thread in list(_rt().threads):
        thread.join(60)


def _ids(lists: Dict[str, Any]) -> Dict[str, List[str]]:
    return {name: sorted(item[0] for item in items) for name, items in lists.items()}


def _farm_ids(url: str) -> Dict[str, List[str]]:
    """What the farm itself lists, asked directly (not through the add-on)."""
    from tether.farm.client import FarmClient
    from tether.settings import LOCAL_FARM_EMAIL, LOCAL_FARM_PASSWORD

    farm = FarmClient(url, email=LOCAL_FARM_EMAIL, password=LOCAL_FARM_PASSWORD)
    try:
        return {"instance_type": sorted(i.id for i in farm.instances() if i.enabled),
                "blender_version": sorted(p.id for p in farm.packages()),
                "project": sorted(p.name for p in farm.projects() if not p.archived)}
    finally:
        farm.close()


def test_cached_lists_never_overwrite_fresh_ones(blender: Any) -> None:
    from blender_addon.runtime import Runtime

    rt = Runtime()
    fresh = {"instance_type": [("cpu-8", "cpu-8", "")]}
    rt.handoff.post("catalog", lists=fresh, fetched_at=200.0, cached=False, key="local u", error="")
    rt.handoff.post("catalog", lists={"instance_type": [("old", "old", "")]}, fetched_at=100.0, cached=True,
                    key="local u", error="")
    rt.pump(1.0)
    assert rt.ui.catalog == fresh and rt.ui.catalog_time == 200.0 and not rt.ui.catalog_cached
    # Another farm's lists from disk do replace them (the profile changed).
    rt.handoff.post("catalog", lists={"instance_type": [("b", "b", "")]}, fetched_at=50.0, cached=True,
                    key="other v", error="")
    rt.pump(1.0)
    assert rt.ui.catalog_key == "other v" and rt.ui.catalog_cached


# --- in Blender, against a farm -------------------------------------------------------------------------------
def test_lists_from_disk_in_a_fresh_session_with_the_farm_stopped(
        addon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memkeyring: MemoryKeyring) -> None:
    import addon_utils
    from tether import listcache
    from tether.settings import LOCAL_FARM_EMAIL, LOCAL_FARM_PASSWORD
    from tether_services.server import LocalServices

    from blender_addon.runtime import when_text

    with LocalServices(port=0, state_dir=tmp_path / "farm-state", services=["farm"], workers=1) as services:
        url = services.url("farm")
        monkeypatch.setenv("TETHER_FARM_URL", url)
        assert bpy.ops.tether.login(email=LOCAL_FARM_EMAIL, password=LOCAL_FARM_PASSWORD) == {"FINISHED"}
        [token] = [v for (_svc, user), v in memkeyring.store.items() if user == "local/farm/token"]
        expected = _farm_ids(url)
        _draw_all()  # the first draw starts the fetch
        _settle()
        ui = _rt().ui
        assert not ui.catalog_cached and ui.catalog_error == ""
        assert _ids(ui.catalog) == expected
        shown = dict(ui.catalog)
        assert f"Farm lists as of {when_text(ui.catalog_time)}" in _draw_all().texts()
        _settle()

    # The farm is stopped: its port is closed. On disk: the lists and when, and no credential.
    cached = listcache.load("farm", "local", url)
    assert cached is not None and cached.path is not None and cached.lists == shown
    data = cached.path.read_bytes()
    for secret in (token, LOCAL_FARM_PASSWORD, LOCAL_FARM_EMAIL):
        assert secret.encode() not in data
    assert b"Bearer" not in data and b"token" not in data.lower()

    # A fresh session (the add-on off and on again: a new runtime) shows them at once, and says they are old.
    addon_utils.disable(ADDON, default_set=True)
    assert addon_utils.enable(ADDON, default_set=True) is not None
    assert _ops().peek_runtime() is None
    _draw_all()
    _join()  # the fetch gives up after its retries
    _settle()
    ui = _rt().ui
    assert ui.catalog == shown and ui.catalog_cached and ui.catalog_time == cached.fetched_at
    assert ui.catalog_error  # the fetch failed, and the lists stayed
    texts = _draw_all().texts()
    _settle()
    assert f"Offline: farm lists from {when_text(cached.fetched_at)}" in texts
    # The menus offer the cached entries: the artist can still choose.
    settings = bpy.context.scene.tether
    first = expected["instance_type"][-1]
    settings.instance_type_menu = first
    assert settings.instance_type == first


def test_fresh_lists_replace_cached_and_a_vanished_choice_is_flagged(
        addon: Any, farm_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether import listcache

    from blender_addon.runtime import when_text

    monkeypatch.setenv("TETHER_FARM_URL", farm_url)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    expected = _farm_ids(farm_url)
    yesterday = time.time() - 86400
    old = {"instance_type": [("gpu-retired", "gpu-retired (1 GPU)", "retired last week")],
           "blender_version": [(v, v, "") for v in expected["blender_version"]], "project": [("old-show", "", "")]}
    listcache.save("farm", "local", farm_url, old, yesterday)
    settings = bpy.context.scene.tether
    settings.instance_type = "gpu-retired"  # chosen from yesterday's list

    ops = _ops()
    ops.request_catalog(bpy.context)
    _join()
    rt = _rt()
    events = [e for e in rt.handoff.drain(5.0) if e.kind == "catalog"]
    assert [bool(e.data.get("cached")) for e in events] == [True, False]  # from disk first, then fresh

    rt.apply(events[0])
    assert [i[0] for i in rt.ui.catalog["instance_type"]] == ["gpu-retired"] and rt.ui.catalog_cached
    assert rt.ui.lists_note() == f"Farm lists as of {when_text(yesterday)}, refreshing..."
    assert time.strftime("%Y-%m-%d", time.localtime(yesterday)) in rt.ui.lists_note()
    assert rt.ui.not_listed(ops.chosen_from_lists(settings)) == []  # still offered yesterday

    rt.apply(events[1])
    assert _ids(rt.ui.catalog) == expected
    assert not rt.ui.catalog_cached and rt.ui.catalog_time > yesterday
    rt.auto_started = True
    rt.ui.summary_running = True  # drawing only: no preflight
    rec = _draw_all()
    texts = rec.texts()
    flag = [t for t in texts if t.startswith("Instance type 'gpu-retired' is not in the farm's list any more")]
    assert len(flag) == 2  # in the settings and in the summary
    assert [e for e in rec.log if e["call"] == "set" and e["name"] == "alert" and e["value"]]
    assert settings.instance_type == "gpu-retired"  # flagged, not changed
    assert f"Farm lists as of {when_text(rt.ui.catalog_time)}" in texts
    # The cache now holds the fresh lists.
    cached = listcache.load("farm", "local", farm_url)
    assert cached is not None and cached.fetched_at == rt.ui.catalog_time
    assert _ids(cached.lists) == expected
    _settle()


def test_online_access_off_still_shows_the_lists_from_disk(addon: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether import listcache

    from blender_addon.runtime import when_text

    monkeypatch.setenv("TETHER_FARM_URL", "http://127.0.0.1:9/farm")
    lists = {"instance_type": [("cpu-4", "cpu-4", "")], "blender_version": [("blender-5.0", "blender-5.0", "")]}
    saved = listcache.save("farm", "local", "http://127.0.0.1:9/farm", lists)
    bpy.context.preferences.system.use_online_access = False
    try:
        _draw_all()
        _settle()
        assert _rt().ui.catalog == lists and _rt().ui.catalog_error == ""  # nothing was asked of the network
        assert f"Offline: farm lists from {when_text(saved.fetched_at)}" in _draw_all().texts()
    finally:
        bpy.context.preferences.system.use_online_access = True
