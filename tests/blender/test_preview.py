"""Preview Payload: the add-on writes what Submit would send into a Text datablock, from the same headless preflight,
and sends nothing (the local farm's request log is the witness)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Set, Tuple

import pytest
from memkeyring import MemoryKeyring

from .conftest import ADDON

bpy = pytest.importorskip("bpy")

TEXT = "Tether payload"


def _ops() -> Any:
    return sys.modules[f"{ADDON}.ops"]


def _requests(services: Any) -> List[Tuple[str, str]]:
    return [(r.method, r.path) for r in services.requests.all() if r.service == "farm"]


def _preview() -> dict:
    assert bpy.ops.tether.preview_payload(wait=True) == {"FINISHED"}
    assert [t.name for t in bpy.data.texts if t.name.startswith(TEXT)] == [TEXT]  # replaced, never a .001
    return json.loads(bpy.data.texts[TEXT].as_string())


def test_preview_payload_matches_the_panel_and_sends_nothing(
        addon: Any, farm_url: str, local_services: Any, tiny_blend: Path, memkeyring: MemoryKeyring,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from tether.settings import LOCAL_FARM_EMAIL, LOCAL_FARM_PASSWORD
    from tether_services.farm.engine import INSTANCES

    monkeypatch.setenv("TETHER_FARM_URL", farm_url)
    bpy.ops.wm.open_mainfile(filepath=str(tiny_blend))
    bpy.ops.tether.login(email=LOCAL_FARM_EMAIL, password=LOCAL_FARM_PASSWORD)
    [token] = [v for (_svc, user), v in memkeyring.store.items() if user == "local/farm/token"]
    instance = [i["id"] for i in INSTANCES if i["enabled"]][1]  # not the farm's default, so the choice shows
    s = bpy.context.scene.tether
    s.instance_type = instance
    s.chunk_size = 3
    s.use_frames_override = True
    s.frames_override = "2-7"
    env = s.environment.add()
    env.name, env.value = "SHOT", "sh010"
    bpy.ops.wm.save_mainfile()
    local_services.requests.clear()

    doc = _preview()
    payload = doc["payload"]
    assert doc["submit"].startswith("ready") and doc["ready"] and doc["errors"] == []
    assert (payload["frame_range"], payload["chunk_size"], payload["instance_type"]) == ("2-7", 3, instance)
    assert payload["environment_variables"] == {"SHOT": "sh010"}
    assert list(payload) == sorted(payload)
    texture = (tiny_blend.parent / "textures" / "checker.png").resolve()
    blend = tiny_blend.resolve()
    # The bundle: the project is the scene's folder, the texture keeps its place in it.
    remote = [f"{blend.parent.as_posix()}/tiny.blend", f"{blend.parent.as_posix()}/textures/checker.png"]
    assert payload["upload_paths"] == remote
    assert doc["uploads"] == [{"path": str(p), "remote": r, "size": p.stat().st_size}
                              for p, r in zip((blend, texture), remote)]
    assert doc["upload_size"] == blend.stat().st_size + texture.stat().st_size

    # The preflight asked the farm for its lists, nothing else: no upload, no job, no project.
    asked = _requests(local_services)
    assert asked and {m for m, _ in asked} == {"GET"}, asked
    assert {p.rsplit("/api/", 1)[-1] for _, p in asked} <= {"enterprise/instances", "packages"}, asked

    # Again, with the settings unchanged: the fresh result is reused, the farm is not asked at all.
    local_services.requests.clear()
    assert _preview() == doc
    assert _requests(local_services) == []

    # A choice the farm refuses: the errors come first and no payload is shown.
    s.instance_type = "no-such-instance"
    blocked_text = ""
    blocked = _preview()
    blocked_text = bpy.data.texts[TEXT].as_string()
    assert blocked["submit"].startswith("blocked") and not blocked["ready"] and blocked["payload"] is None
    assert any("unknown instance type 'no-such-instance'" in e for e in blocked["errors"]), blocked["errors"]
    assert blocked_text.index('"errors"') < blocked_text.index('"payload"')
    assert not [r for r in _requests(local_services) if r[0] != "GET"]

    out, err = capfd.readouterr()
    secrets: Set[str] = {token, LOCAL_FARM_PASSWORD}
    for text in (json.dumps(doc), blocked_text, out + err):
        for secret in secrets:
            assert secret not in text


def test_preview_names_missing_files_and_refuses_unsaved(addon: Any, farm_url: str, tiny_blend: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_FARM_URL", farm_url)
    with pytest.raises(RuntimeError, match=r"Save the \.blend first"):
        bpy.ops.tether.preview_payload(wait=True)
    assert TEXT not in bpy.data.texts
    bpy.ops.wm.open_mainfile(filepath=str(tiny_blend))
    (tiny_blend.parent / "textures" / "checker.png").unlink()
    doc = _preview()
    missing = str((tiny_blend.parent / "textures" / "checker.png").resolve())
    assert list(doc["missing"]) == [missing]
    assert "Submit Anyway" in doc["submit"] and doc["payload"] is not None  # what Submit Anyway would send
    assert all(u["path"] != missing for u in doc["uploads"])
