"""A real scene built here, submitted through the add-on's operator to the local farm, rendered, fetched."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Set

import pytest
from memkeyring import MemoryKeyring
from waiting import eventually

from .conftest import ADDON

bpy = pytest.importorskip("bpy")
pytest.importorskip("tether.transfer", reason="tether.transfer (uploads) has not landed yet")

pytestmark = pytest.mark.render


def _png(path: Path) -> Path:
    from tether_services.farm.scenes import write_png

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path)


def _image_node(mat: Any, image: Any, x: int) -> None:
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    node.location = (x, 0)


def build_scene(root: Path) -> dict:
    """shot/shot.blend using: a texture, a UDIM set, an image sequence, a linked library (with its own texture)
    and a missing file. Frames 1-5 step 2, output //render/shot_### as PNG, Cycles at 16x16 with 1 sample."""
    lib_tex = _png(root / "lib" / "libtex.png")
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=0.5)
    cube = bpy.context.object
    cube.name = "LibCube"
    mat = bpy.data.materials.new("LibMat")
    mat.use_nodes = True
    _image_node(mat, bpy.data.images.load(str(lib_tex)), -300)
    cube.data.materials.append(mat)
    lib_path = root / "lib" / "lib.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(lib_path), relative_remap=True)

    shot_dir = root / "shot"
    wood = _png(shot_dir / "tex" / "wood.png")
    udim = [_png(shot_dir / "tex" / f"udim.{tile}.png") for tile in (1001, 1002)]
    plates = [_png(shot_dir / "seq" / f"plate.{n:04d}.png") for n in (1, 2, 3)]
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0, -4, 0), rotation=(1.5708, 0, 0))
    scene.camera = bpy.context.object
    bpy.ops.mesh.primitive_plane_add(size=2, rotation=(1.5708, 0, 0))
    plane = bpy.context.object
    mat = bpy.data.materials.new("ShotMat")
    mat.use_nodes = True
    _image_node(mat, bpy.data.images.load(str(wood)), -300)
    tiled = bpy.data.images.load(str(udim[0]))
    tiled.source = "TILED"
    _image_node(mat, tiled, -600)
    seq = bpy.data.images.load(str(plates[0]))
    seq.source = "SEQUENCE"
    _image_node(mat, seq, -900)
    missing = bpy.data.images.new("missing", 4, 4)
    missing.source = "FILE"
    missing.filepath = str(shot_dir / "tex" / "missing.png")
    _image_node(mat, missing, -1200)
    plane.data.materials.append(mat)
    bpy.ops.wm.save_as_mainfile(filepath=str(shot_dir / "shot.blend"), relative_remap=True)
    with bpy.data.libraries.load(str(lib_path), link=True, relative=True) as (_src, dst):
        dst.objects = ["LibCube"]
    for obj in dst.objects:
        scene.collection.objects.link(obj)
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    render.resolution_x = render.resolution_y = 16
    render.resolution_percentage = 100
    scene.frame_start, scene.frame_end, scene.frame_step = 1, 5, 2
    render.filepath = "//render/shot_###"
    render.image_settings.file_format = "PNG"
    scene.tether.chunk_size = 2
    bpy.ops.file.make_paths_relative()
    bpy.ops.wm.save_mainfile()
    found = {wood, *udim, *plates, lib_path, lib_tex}
    return {"blend": shot_dir / "shot.blend", "found": {str(p.resolve()) for p in found},
            "missing": str((shot_dir / "tex" / "missing.png").resolve()), "render": shot_dir / "render"}


def _ops() -> Any:
    return sys.modules[f"{ADDON}.ops"]


def _pump_until(condition: Any, what: str, limit: float = 240.0) -> None:
    """Play the timer's part (timers never fire headless) until ``condition()``; the limit only guards a hang."""
    ops = _ops()

    def said() -> str:
        rt = ops.runtime()
        return f"{what}; jobs: {rt.ui.jobs}; notices: {rt.ui.notices}"

    eventually(condition, timeout=limit, message=said, pump=ops.pump, interval=0.1)


def test_submit_render_fetch(addon: Any, farm_url: str, tmp_path: Path, memkeyring: MemoryKeyring,
                             monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    from tether.registry import JobRegistry
    from tether.settings import LOCAL_FARM_EMAIL, LOCAL_FARM_PASSWORD

    monkeypatch.setenv("TETHER_FARM_URL", farm_url)
    built = build_scene(tmp_path)
    ops = _ops()

    # Log in from the preferences' operator: the token goes to the keyring, nowhere else.
    bpy.ops.tether.login(email=LOCAL_FARM_EMAIL, password=LOCAL_FARM_PASSWORD)
    [token] = [v for (svc, user), v in memkeyring.store.items() if user == "local/farm/token"]
    assert "token in the OS keyring" in ops.runtime().ui.login

    # The summary the panel shows: dependencies found exactly, the missing one named with its user.
    ops.request_summary(bpy.context)
    for thread in list(ops.runtime().threads):
        thread.join(60)
    ops.pump()
    summary = ops.runtime().ui.summary
    assert summary is not None and "found" in summary, summary
    # Exactly, including the linked library's own texture (tether.blend patches BAT 1.23's Blender 5.0 gap).
    lib_tex = str((tmp_path / "lib" / "libtex.png").resolve())
    assert lib_tex in built["found"]
    assert set(summary["found"]) == built["found"]
    assert summary["missing"] == [built["missing"]]
    assert summary["missing_from"] == {built["missing"]: "missing"}
    assert (summary["frames"], summary["tasks"], summary["frame_spec"]) == (3, 2, "1-5x2")

    # Submitting refuses until the missing file is acknowledged, and names it.
    with pytest.raises(RuntimeError, match=r"missing\.png \(used by missing\).*Submit Anyway"):
        bpy.ops.tether.submit(wait=True)
    assert bpy.ops.tether.submit(wait=True, allow_missing=True) == {"FINISHED"}
    job_id = ops.runtime().ui.submit.job_id
    assert job_id

    with JobRegistry() as reg:
        rec = reg.get("farm", job_id)
    assert rec is not None and rec.source == str(built["blend"]) and rec.extra.get("scene") == "Scene"
    assert rec.extra.get("frames") == "1-5x2"

    # Follow it the way the panel does (monitor thread -> handoff -> pump), then the automatic fetch.
    ops.ensure_monitor()
    rt = ops.runtime()
    _pump_until(lambda: any(r.job_id == job_id and r.finished for r in rt.ui.jobs), "the job finishing")
    [row] = [r for r in rt.ui.jobs if r.job_id == job_id]
    assert row.state == "completed", row
    assert row.tasks == 2 and row.completed == 2
    _pump_until(lambda: any(f"job {job_id}:" in n.text and "files in" in n.text for n in rt.ui.notices),
                "the fetch finishing")
    names: List[str] = sorted(p.name for p in built["render"].iterdir())
    assert names == ["shot_001.png", "shot_003.png", "shot_005.png"]
    assert all((built["render"] / n).read_bytes().startswith(b"\x89PNG") for n in names)
    _pump_until(lambda: any(r.job_id == job_id and r.fetched_to for r in rt.ui.jobs), "the fetch being recorded")

    # No secret in the saved .blend, the user preferences or any log.
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.save_userpref()
    out, err = capfd.readouterr()
    secrets: Set[bytes] = {token.encode(), LOCAL_FARM_PASSWORD.encode()}
    files = [built["blend"], *Path(tmp_path / "data").rglob("*"),
             *Path(bpy.utils.resource_path("USER")).rglob("*.blend")]
    files = [f for f in files if f.is_file()]
    assert any(f.name == "userpref.blend" for f in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"a secret is in {path}"
    for secret in secrets:
        assert secret.decode() not in out + err


def _run_action(job_id: str, action: str, **extra: Any) -> None:
    ops = _ops()
    assert bpy.ops.tether.job_action(job_id=job_id, action=action, **extra) == {"FINISHED"}
    rt = ops.runtime()
    for thread in list(rt.threads):
        thread.join(60)
    notices = ops.pump()
    assert [n.text for n in notices if n.level == "ERROR"] == []
    assert any(f"{action} job {job_id}: done" in n.text for n in notices)


def test_job_actions_on_the_farm(addon: Any, farm_url: str, tiny_blend: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Scout frames hold the job; priority, hold, release and cancel from the panel's operator reach the farm."""
    from blender_addon.backend import Account, client

    monkeypatch.setenv("TETHER_FARM_URL", farm_url)
    bpy.ops.wm.open_mainfile(filepath=str(tiny_blend))
    settings = bpy.context.scene.tether
    settings.scout = "1"
    settings.chunk_size = 4
    settings.auto_fetch = False
    # Scout frame 1 renders; the other tasks wait for a release, so the job cannot finish under the test's feet.
    assert bpy.ops.tether.submit(wait=True, save_first=True) == {"FINISHED"}
    job_id = _ops().runtime().ui.submit.job_id
    assert bpy.ops.tether.submit(wait=True) == {"FINISHED"}
    other_id = _ops().runtime().ui.submit.job_id
    farm = client(Account())
    try:
        _run_action(job_id, "priority", priority=80)
        assert farm.get_farm_job(job_id).priority == 80
        _run_action(job_id, "hold")
        assert farm.get_farm_job(job_id).status == "held"
        _run_action(job_id, "unhold")
        assert farm.get_farm_job(job_id).status not in ("held", "waiting")  # released, scout-held tasks too
        _run_action(other_id, "cancel")
        assert farm.get_farm_job(other_id).status == "cancelled"
    finally:
        farm.close()


def test_summary_panel_names_output_and_hardware_warnings(addon: Any, farm_url: str, tiny_blend: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel's summary says, before anything is sent, what the farm will make of the scene's output and device,
    and where the frames come back to (Blender 5's path templates resolved)."""
    monkeypatch.setenv("TETHER_FARM_URL", farm_url)
    bpy.ops.wm.open_mainfile(filepath=str(tiny_blend))
    scene = bpy.context.scene
    scene.cycles.device = "GPU"
    scene.render.use_multiview = True
    scene.render.image_settings.views_format = "INDIVIDUAL"
    scene.render.filepath = "//render/{blend_name}/frame_####"
    text = _summary_text()
    assert "GPU Compute" in text and "or set Device to CPU" in text, text
    assert "_L, _R" in text, text
    assert _ops().fetch_folder(scene) == str(tiny_blend.parent / "render" / "tiny")

    scene.render.image_settings.media_type = "VIDEO"
    assert "writes a movie" in _summary_text()


def _summary_text() -> str:
    """Save, let the panel's summary check the saved file, and return what the summary panel shows."""
    from blender_addon.ui import draw_summary

    from .test_addon import Recorder

    bpy.ops.wm.save_mainfile()
    ops = _ops()
    ops.request_summary(bpy.context)
    for thread in list(ops.runtime().threads):
        thread.join(60)
    ops.pump()
    rec = Recorder()
    draw_summary(rec, bpy.context)
    return " ".join(rec.texts())
