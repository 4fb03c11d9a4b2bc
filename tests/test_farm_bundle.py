"""The farm bundle: one scene with every kind of dependency (tests/bundle_scene.py), submitted with `tether farm
submit` to the local farm, the originals moved away before the farm lays out the upload, rendered, and compared tile
by tile (one tile per kind) with the render Blender made of the original scene."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List

import httpx
import pytest
from tether.farm.bundle import OUTSIDE, build, outside_name
from tether_cli import main
from tether_services.server import LocalServices
from waiting import eventually

HERE = Path(__file__).resolve().parent
# one worker builds the every-kind scene and reads its USD stage, once, for every test here
pytestmark = pytest.mark.xdist_group("bundle")
# as the file holds them: Blender stores C:\\tex\\t.png with forward slashes
WINDOWS = {"C:/tex/t.png": "winC", "D:/tex/t.png": "winD"}


@pytest.fixture(scope="session")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    from tether_services.farm.scenes import blender_python

    root = tmp_path_factory.mktemp("kinds")
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(root / ".blender-user"))
    script = (HERE / "bundle_scene.py").read_text()
    proc = subprocess.run([*blender_python(), script, "--", json.dumps(str(root / "scene"))],
                          capture_output=True, text=True, timeout=120, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TETHER_KINDS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    return dict(json.loads(lines[-1][len("TETHER_KINDS "):]), root=str(root / "scene"))


@pytest.fixture(scope="session")
def usd_walked(kinds: Dict[str, Any]) -> None:
    """Both USD stages read by one headless Blender (the bundle keeps what it read while the layers are unchanged)."""
    from tether.farm.bundle import usd_references

    assert usd_references([Path(kinds["files"]["usd"]), Path(kinds["files"]["usd_bad"])]) is not None


def _exists(path: Path) -> bool:
    """A file, or at least one file of a sequence, a UDIM set or a cache folder."""
    from blender_asset_tracer.trace import file_sequence

    try:
        return next(file_sequence.expand_sequence(path), None) is not None
    except file_sequence.DoesNotExist:
        return False


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _tiles(png: Path, tile: int, count: int) -> List[List[Any]]:
    from PIL import Image

    image = Image.open(png).convert("RGB")
    return [[image.getpixel((k * tile + x, y)) for x in range(tile) for y in range(tile)] for k in range(count)]


def test_outside_names_keep_drives_and_hosts_apart() -> None:
    assert outside_name("C:\\tex\\t.png") == PurePosixPath(OUTSIDE, "C", "tex", "t.png")
    assert outside_name("D:\\tex\\t.png") == PurePosixPath(OUTSIDE, "D", "tex", "t.png")
    assert outside_name("d:/tex/t.png") == PurePosixPath(OUTSIDE, "D", "tex", "t.png")
    assert outside_name("\\\\nas\\show\\t.png") == PurePosixPath(OUTSIDE, "UNC", "nas", "show", "t.png")
    assert outside_name("//nas/show/t.png") == PurePosixPath(OUTSIDE, "UNC", "nas", "show", "t.png")
    assert outside_name("/home/ann/t.png") == PurePosixPath(OUTSIDE, "home", "ann", "t.png")


def test_every_kind_renders_from_the_bundle_alone(kinds: Dict[str, Any], usd_walked: None,
                                                  local_services: LocalServices,
                                                  monkeypatch: pytest.MonkeyPatch, farm_url: str,
                                                  farm_headers: Dict[str, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    blend, root = Path(kinds["blend"]), Path(kinds["root"])
    before = _md5(blend)

    # The layout: inside the project as it is, outside under _outside_project/, nothing but .blends written.
    plan = build(blend)
    names = {f.name for f in plan.files}
    outside = str(outside_name(str(root)))
    assert names >= {"shot.blend", "tex/rel.png", "tex/udim.1001.png", "tex/udim.1002.png", "seq/plate.0001.png",
                     "tex/tint.osl", "tex/font.woff2", f"{outside}/shared/par.png", f"{outside}/abs/tex/abs.png",
                     f"{outside}/abs/hdri/sky.hdr", f"{outside}/abs/cache/tile.abc", f"{outside}/abs/vse/strip.png",
                     f"{outside}/abs/audio/tone.wav", f"{outside}/abs/clip/clip.0001.png", f"{outside}/lib/lib.blend",
                     f"{outside}/lib/libtex.png", f"{outside}/abs/fluid/config/config_0001.uni",
                     "fluid/config/config_0001.uni", f"{outside}/abs/vol/cloud.vdb", "tex/beam.ies",
                     f"{outside}/abs/ies/lamp.ies", f"{outside}/abs/fonts/caption.woff2",
                     # the USD stage's root layer (named by the .blend) and the sublayer only the root layer names
                     f"{outside}/abs/usd/root.usda", f"{outside}/abs/usd/mesh.usda"}, sorted(names)
    assert any(n.startswith("bakes/") and n.endswith(".blob") for n in names), sorted(names)
    # particle disk caches: the scene's beside it, the library's beside the library
    for folder in ("blendcache_shot/", f"{outside}/lib/blendcache_lib/"):
        assert any(n.startswith(folder) and n.endswith(".bphys") for n in names), sorted(names)
    assert not any("packed" in n for n in names)  # a packed image stays packed
    # A scene saved on Windows: its paths are named as written, never joined onto this machine's folders.
    assert {str(p): plan.deps.missing_from[p] for p in plan.deps.missing} == WINDOWS

    # Submit through the command; the farm does not lay the job out until the originals are gone.
    farm = local_services.farm
    held: List[Any] = []
    start_sync = farm._start_sync
    monkeypatch.setattr(farm, "_start_sync", held.append)
    assert main(["farm", "submit", str(blend), "--allow-missing", "--json"]) == 0, capsys.readouterr().err
    job_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["job_id"]
    assert _md5(blend) == before  # the user's scene is never changed
    moved = root.with_name(root.name + "-moved")
    root.rename(moved)
    try:
        [job] = held
        start_sync(job)
        view = eventually(lambda: httpx.get(f"{farm_url}/api/jobs/{job_id}", headers=farm_headers, timeout=30).json(),
                          lambda seen: seen["status"] in ("completed", "failed"), timeout=90,
                          message=f"job {job_id} to finish")
        assert view["status"] == "completed", view

        # Every path of every .blend the farm received is relative, stays inside the job's workspace and names a
        # file there (the originals are gone).
        import tether.blend
        from tether.blend import trace_usages

        workspace = job.workspace
        for usage in trace_usages(workspace / job.scene):
            if tether.blend.missing_name(usage) in WINDOWS.values():
                continue  # missing, submitted anyway: left as written
            assert usage.asset_path.startswith(b"//"), (usage.block_name, usage.asset_path)
            assert Path(os.path.abspath(usage.abspath)).is_relative_to(workspace), usage.abspath
            assert _exists(usage.abspath), (usage.block_name, usage.asset_path)
        bundle_root = (workspace / job.scene).parents[len(PurePosixPath(plan.scene).parts) - 1]
        usd_layer = bundle_root / plan.name_for(Path(kinds["files"]["usd"]))
        assert usd_layer.with_name("mesh.usda").is_file()  # where the root layer's ./mesh.usda finds it

        reply = httpx.get(f"{farm_url}/api/jobs/{job_id}/outputs/kinds_0001.png", headers=farm_headers,
                          timeout=30)
        assert reply.status_code == 200
        frame = moved / "farm.png"
        frame.write_bytes(reply.content)
        tile, kinds_list = kinds["tile"], kinds["kinds"]
        got = _tiles(frame, tile, len(kinds_list))
        want = _tiles(moved / "reference.png", tile, len(kinds_list))
        magenta = (255, 0, 255)  # Blender's colour for an image it could not load
        for kind, g, w in zip(kinds_list, got, want):
            assert magenta not in w, f"the reference render misses the '{kind}' file"
            worst = max(abs(a - b) for gp, wp in zip(g, w) for a, b in zip(gp, wp))
            assert worst <= 3, f"tile '{kind}' differs from the local render by {worst}"
    finally:
        moved.rename(root)
        shutil.rmtree(root / "render", ignore_errors=True)


def test_a_path_the_bundle_misses_refuses_the_upload(kinds: Dict[str, Any], local_services: LocalServices,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The headless proof is independent of the tracer: with the tracer blind to OSL scripts and to IES profiles of
    materials (as BAT is), the files stay where the scene named them, and the upload is refused naming the node, the
    field and the path."""
    import tether.blend

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    local_services.requests.clear()
    # Missing files first: named as the scene wrote them, with what "submit anyway" would do.
    assert main(["farm", "submit", str(kinds["blend"])]) != 0
    err = capsys.readouterr().err
    assert all(f"{path} (used by {name})" in err for path, name in WINDOWS.items()), err
    assert "--allow-missing" in err and "the farm will render without them" in err

    monkeypatch.setattr(tether.blend, "_node_file_usages", lambda block: iter(()))
    assert main(["farm", "submit", str(kinds["blend"]), "--allow-missing"]) != 0
    err = capsys.readouterr().err
    assert "material 'osl', node 'Script', filepath" in err and kinds["files"]["osl"] in err, err
    assert "material 'ies', node 'IES Texture', filepath" in err and kinds["files"]["ies"] in err, err
    assert "nothing was uploaded" in err
    assert local_services.requests.count("POST", r"/farm/api/(uploads|jobs)") == 0


def test_usd_layers_the_bundle_cannot_carry_are_refused(kinds: Dict[str, Any], usd_walked: None) -> None:
    """USD files are not rewritten: a name that would not find its file on the farm is refused before upload
    (absolute, or crossing the project folder), a missing one is named as missing."""
    from tether.blend import Dependencies
    from tether.farm.bundle import _usd_layers

    bad, root = Path(kinds["files"]["usd_bad"]), Path(kinds["root"]) / "project"
    deps = Dependencies()
    found = _usd_layers([(bad, bad, "usd/bad.usda")], root, deps)
    assert found.files == []
    crossing, absolute = found.errors
    assert "'../../abs/usd/mesh.usda', which crosses the project folder" in crossing and "--project-root" in crossing
    assert "'/nowhere/x.usda' by an absolute path" in absolute and "make it relative" in absolute
    assert deps.missing == [bad.with_name("gone.usda")] and deps.missing_from[deps.missing[0]] == "USD layer bad.usda"
    # with the project folder above both, the crossing name keeps its place in the bundle
    above = _usd_layers([(bad, bad, "project/usd/bad.usda")], Path(kinds["root"]), Dependencies())
    assert [name for _src, _up, name in above.files] == ["abs/usd/mesh.usda"]


def test_an_absolute_bake_folder_is_rewritten_in_place_or_refused(kinds: Dict[str, Any], tmp_path: Path) -> None:
    """A Geometry Nodes bake folder is a string of its own in the file: its bundle path is written in place when it
    fits, and a path that would not fit is refused before anything is sent, saying what to change."""
    from tether.farm.bundle import verify

    scene, root = Path(kinds["gn_abs"]), Path(kinds["root"])
    refused = build(scene)
    [error] = refused.errors
    assert "GNTile" in error and "abs/gnbakes" in error and "--project-root" in error, error

    built = build(scene, project=root, staging=tmp_path / "staging")
    build(scene, project=root, staging=tmp_path / "again")
    # the rewritten copy is the same bytes each time: an unchanged scene is not uploaded again
    assert (tmp_path / "staging" / built.scene).read_bytes() == (tmp_path / "again" / built.scene).read_bytes()
    assert built.errors == [] and built.scene == "gnproject/gn_abs.blend"
    assert any(f.name.startswith("abs/gnbakes/") and f.name.endswith(".blob") for f in built.files)
    assert verify(built, scene) == []


@pytest.fixture
def submitter(farm_url: str) -> Any:
    from tether.farm.client import FarmClient
    from tether.farm.submit import FarmSubmitter
    from tether.settings import LOCAL_FARM_EMAIL, LOCAL_FARM_PASSWORD

    client = FarmClient(farm_url, email=LOCAL_FARM_EMAIL, password=LOCAL_FARM_PASSWORD)
    yield FarmSubmitter(client)
    client.close()


def test_output_and_hardware_checks_before_upload(kinds: Dict[str, Any], submitter: Any) -> None:
    from tether.farm.submit import FarmOptions

    def check(name: str, **extra: Any) -> Any:
        return submitter.preflight(FarmOptions(scene=Path(kinds["variants"][name]), allow_missing=True, **extra))

    movie = check("movie")
    assert any("writes a movie" in e and "image format" in e for e in movie.errors), movie.errors
    stereo = check("stereo")
    assert stereo.ok and any("_L, _R" in w for w in stereo.warnings), stereo.warnings
    gpu = check("gpu")  # the farm's default instance is a CPU one
    assert gpu.ok and any("GPU Compute" in w and "gpu-t4" in w for w in gpu.warnings), gpu.warnings
    idle = submitter.preflight(FarmOptions(scene=Path(kinds["blend"]), allow_missing=True, instance_type="gpu-t4"))
    assert any("GPU stays idle" in w for w in idle.warnings), idle.warnings
    eevee = check("eevee")
    assert any("EEVEE needs a GPU" in e and "gpu-t4" in e for e in eevee.errors), eevee.errors
    assert not any("EEVEE" in e for e in check("eevee", instance_type="gpu-t4").errors)
    addon = check("addon")
    assert any("studio_tools (on Kinds)" in w for w in addon.warnings), addon.warnings
    # Blender 5's path templates: the fetch folder is the one Blender writes to, not a literal {blend_name}
    assert addon.facts.output_dir() == Path(kinds["root"]) / "project" / "render" / "addon"
    plain = check("gpu", instance_type="cpu-standard-8")
    assert not any("add-ons" in w or "_L" in w for w in plain.warnings)


def test_stereo_views_come_back_as_their_own_files(kinds: Dict[str, Any], local_services: LocalServices,
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    out = tmp_path / "frames"
    code = main(["farm", "submit", kinds["variants"]["stereo"], "--allow-missing", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["kinds_0001_L.png", "kinds_0001_R.png"]
