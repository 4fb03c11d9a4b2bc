"""`tether blender build-extension`: the zip builds, passes Blender's own validation, installs and enables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from tether_cli import main as tether_main
from tether_install.extension import find_blender_ext, write_manifest

pytest.importorskip("bpy")
pytestmark = pytest.mark.xdist_group("ext_zip")  # one worker builds the zip (8 s), once


@pytest.fixture(scope="module")
def ext_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    code = tether_main(["blender", "build-extension", "--platform", "linux-x64", "--python", "3.11",
                        "--python", "3.13", "--out", str(out)])
    assert code == 0
    [zipped] = sorted(out.glob("*.zip"))
    return zipped


def test_zip_has_manifest_and_wheels_per_python(ext_zip: Path) -> None:
    with zipfile.ZipFile(ext_zip) as zf:
        names = zf.namelist()
        manifest = zf.read("blender_manifest.toml").decode()
    assert "__init__.py" in names and "runtime.py" in names
    wheels = [n for n in names if n.startswith("wheels/")]
    core = [w for w in wheels if "pydantic_core" in w]
    assert any("-cp311-cp311-" in w for w in core) and any("-cp313-cp313-" in w for w in core), core
    assert any(w.startswith("wheels/tether-") for w in wheels)
    assert not any("rich-" in w for w in wheels)  # the CLI's output library is not shipped
    listed = [line.strip().strip('",') for line in manifest.splitlines() if line.strip().startswith('"./wheels/')]
    assert sorted(listed) == sorted(f"./{w}" for w in wheels)
    assert 'platforms = [\n  "linux-x64",\n]' in manifest


def test_validate_rejects_a_broken_manifest(tmp_path: Path) -> None:
    """The validation step is real: Blender's tool refuses a manifest it does not accept."""
    staging = tmp_path / "tether"
    staging.mkdir()
    src = Path(__file__).resolve().parents[2] / "blender_addon" / "blender_manifest.toml"
    (staging / "blender_manifest.toml").write_text(src.read_text().replace('id = "tether"', 'id = "bad id!"'))
    (staging / "__init__.py").write_text("")
    write_manifest(staging, "linux-x64", [])
    proc = subprocess.run([sys.executable, str(find_blender_ext()), "validate", str(staging)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "id" in (proc.stdout + proc.stderr)


def test_zip_installs_and_enables(ext_zip: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        import bpy, addon_utils
        bpy.context.preferences.system.use_online_access = True
        result = bpy.ops.extensions.package_install_files(filepath={str(ext_zip)!r}, repo="user_default",
                                                          enable_on_install=True)
        name = "bl_ext.user_default.tether"
        mod = sys.modules.get(name)
        import tether.farm.submit  # from the bundled wheels
        print("RESULT" + json.dumps({{
            "result": sorted(result),
            "enabled": name in bpy.context.preferences.addons,
            "scene_prop": hasattr(bpy.types.Scene, "tether"),
            "submit_op": "TETHER_OT_submit" in dir(bpy.types),
            "prefs_id": type(bpy.context.preferences.addons[name].preferences).bl_idname,
            "tether_from": tether.farm.submit.__file__,
        }}))
        addon_utils.disable(name, default_set=True)
        print("AFTER" + json.dumps({{"scene_prop": hasattr(bpy.types.Scene, "tether")}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=180,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT"):])
    assert out["result"] == ["FINISHED"]
    assert out["enabled"] and out["scene_prop"] and out["submit_op"]
    assert out["prefs_id"] == "bl_ext.user_default.tether"
    assert str(tmp_path / "user") in out["tether_from"], out["tether_from"]
    after = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("AFTER"))[len("AFTER"):])
    assert after == {"scene_prop": False}
