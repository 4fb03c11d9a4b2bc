"""`tether install` / `tether doctor` in a temporary HOME, offline: the wheelhouse is repacked once per session from
the distributions already installed in this venv (so only this machine's ABI, cp311 linux, can be checked offline)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Set

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from tether.cli import main as tether_main
from tether.cli.blender_cmd import PLATFORM_EXTRAS

ROOT = Path(__file__).resolve().parents[1]
FAKE_NUKE = ROOT / "tests" / "nuke" / "fake"
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the offline wheelhouse is repacked for Linux")


def _closure(names: List[str]) -> Set[str]:
    seen: Set[str] = set()
    todo = list(names)
    while todo:
        req = Requirement(todo.pop())
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        todo += [r for r in (dist.requires or []) if "extra ==" not in r]
    return seen


def _repack(dist: metadata.Distribution, out: Path) -> None:
    """A wheel made from an installed distribution's RECORD (files outside site-packages left out)."""
    info = next(f for f in dist.files or [] if str(f).endswith(".dist-info/WHEEL"))
    tags = [line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag:")]
    py = ".".join(sorted({t.split("-")[0] for t in tags}))
    ab = ".".join(sorted({t.split("-")[1] for t in tags}))
    plat = ".".join(sorted({t.split("-")[2] for t in tags}))
    # This venv's cryptography is manylinux_2_34, newer than the deploy's glibc floor (2_28): PyPI also has a 2_28
    # build of it, which a real deploy fetches; offline, the installed one stands in under that tag.
    plat = plat.replace("manylinux_2_34_x86_64", "manylinux_2_28_x86_64")
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = out / f"{name}-{dist.version}-{py}-{ab}-{plat}.whl"
    record_name = str(info).rsplit("/", 1)[0] + "/RECORD"
    rows = []
    with zipfile.ZipFile(wheel, "w") as zf:
        for f in dist.files or []:
            rel = str(f)
            if rel.startswith("..") or "__pycache__" in rel or rel == record_name:
                continue
            data = Path(str(f.locate())).read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{rel},sha256={digest},{len(data)}")
        zf.writestr(record_name, "\n".join([*rows, f"{record_name},,"]) + "\n")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    deps = [r for r in metadata.distribution("tether").requires or [] if "extra ==" not in r]
    for key in sorted(_closure([*deps, "qtpy>=2.4", *list(PLATFORM_EXTRAS["linux"])])):
        _repack(metadata.distribution(key), out)
    return out


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "BLENDER_USER_RESOURCES", "NUKE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    return home


def _snapshot(folder: Path) -> Dict[str, bytes]:
    # pip's own tool caches (.cache, .rustup from a toolchain shim) are not the installer's doing
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in (".cache", ".rustup", ".cargo")}


def _install(wheelhouse: Path, *extra: str) -> int:
    return tether_main(["install", "nuke", "--user", "--nuke-version", "16", "--wheelhouse", str(wheelhouse),
                        *extra])


@pytest.mark.parametrize("original", [None, b"import nuke\n\n\nnuke.pluginAddPath('/studio/gizmos')\n\n# mine"])
def test_user_install_is_idempotent_and_uninstall_restores_init_py(
        home: Path, wheelhouse: Path, original: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    init = home / ".nuke" / "init.py"
    if original is not None:
        init.parent.mkdir()
        init.write_bytes(original)
    before = _snapshot(home)
    assert _install(wheelhouse, "--dry-run") == 0
    dry = capsys.readouterr().out
    assert _snapshot(home) == before  # the dry run wrote nothing
    assert f"edit   {init}" in dry and "nuke_plugin/menu.py" in dry
    assert _install(wheelhouse) == 0
    first = capsys.readouterr().out
    text = init.read_bytes()
    assert text.startswith(original or b"") and b">>> tether" in text
    installed = _snapshot(home)
    assert _install(wheelhouse) == 0
    assert "already up to date: nothing changed" in capsys.readouterr().out
    assert _snapshot(home) == installed
    assert "change(s)" in first
    assert tether_main(["install", "nuke", "--user", "--uninstall"]) == 0
    after = _snapshot(home)
    backups = {k for k in after if k.endswith(".tether-backup")}
    assert {k: v for k, v in after.items() if k not in backups} == before
    if original is not None:
        assert after[".nuke/init.py.tether-backup"] == original


def test_half_finished_install_is_repaired(home: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _install(wheelhouse) == 0
    target = home / ".local" / "share" / "tether" / "deploy"
    menu = target / "nuke_plugin" / "menu.py"
    menu.unlink()
    manifest = target / ".tether-install" / "nuke.json"
    manifest.write_text(manifest.read_text().replace('"complete"', '"incomplete"'))
    capsys.readouterr()
    assert _install(wheelhouse) == 0
    out = capsys.readouterr().out
    assert "repaired" in out and f"wrote {menu}" in out
    assert menu.read_bytes() == (ROOT / "nuke_plugin" / "menu.py").read_bytes()


def test_deployed_nuke_folder_loads_in_fake_nuke(home: Path, wheelhouse: Path) -> None:
    assert _install(wheelhouse) == 0
    script = f"""
import sys, runpy
sys.path.insert(0, {str(FAKE_NUKE)!r})
import nuke
runpy.run_path({str(home / '.nuke' / 'init.py')!r})
plugin = [p for p in nuke.pluginPath() if p.endswith('nuke_plugin')][0]
runpy.run_path(plugin + '/init.py')
runpy.run_path(plugin + '/menu.py')
import tether, tether_nuke, pydantic_core
assert 'Tether' in [m.name() for m in nuke.menu('Nuke').items()] if hasattr(nuke.menu('Nuke'), 'items') else True
print('FROM', tether.__file__, tether_nuke.__file__, pydantic_core.__file__)
"""
    # -S: no site-packages, like a DCC Python that ships none of these; the block appends after the host paths
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, env=env,
                          cwd=home, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deploy = str(home / ".local" / "share" / "tether" / "deploy")
    froms = proc.stdout.split("FROM", 1)[1].split()
    assert all(f.startswith(deploy) for f in froms), froms


def test_abi_tree_holds_tagged_compiled_files(home: Path, wheelhouse: Path) -> None:
    assert _install(wheelhouse) == 0
    site = home / ".local" / "share" / "tether" / "deploy" / "python"
    tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}-x86_64-linux-gnu"
    compiled = sorted(p.name for p in (site / "cp311-linux-x64").rglob("*.so"))
    assert f"_pydantic_core.{tag}.so" in compiled
    assert all(tag in name or "abi3" in name for name in compiled), compiled
    assert not list((site / "common").rglob("*.so"))  # nothing compiled in the shared pure folder


def test_target_not_writable(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert tether_main(["install", "nuke", "--studio", str(blocker / "tether")]) == 1
    assert "is not writable" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere: only the case above applies then
            assert tether_main(["install", "nuke", "--studio", str(locked / "x")]) == 1
            assert "is not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_version_out_of_range(home: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tether_main(["install", "nuke", "--user", "--nuke-version", "13", "--wheelhouse", str(wheelhouse)]) == 1
    assert "Nuke 13 is too old" in capsys.readouterr().err


def test_empty_wheelhouse_says_what_to_do(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _install(empty) == 1
    err = capsys.readouterr().err
    assert "could not get the wheels for Python 3.11" in err and str(empty) in err


def _doctor(capsys: pytest.CaptureFixture[str]) -> tuple:
    import json

    capsys.readouterr()
    code = tether_main(["doctor", "--json"])
    return code, {c["check"]: c for c in json.loads(capsys.readouterr().out)}


def test_doctor_reports_install_and_endpoints(home: Path, wheelhouse: Path, local_services: object,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tether.settings import SERVICES

    running = list(local_services.names)  # type: ignore[attr-defined]
    for service in SERVICES:
        if service in running:
            monkeypatch.setenv(f"TETHER_{service.upper()}_URL", local_services.url(service))  # type: ignore[attr-defined]
        else:
            monkeypatch.setenv(f"TETHER_{service.upper()}_URL", local_services.url(running[0]))  # type: ignore[attr-defined]
    code, before = _doctor(capsys)
    assert not before["nuke: tether installed"]["ok"]
    assert _install(wheelhouse) == 0
    code, checks = _doctor(capsys)
    assert code == 0, checks
    assert checks["nuke: install manifest"]["ok"] and "version 0.1.0" in checks["nuke: install manifest"]["detail"]
    assert checks["nuke: Python cp311 dependencies"]["ok"]
    assert checks["nuke: cp311 tree loads"]["ok"], checks["nuke: cp311 tree loads"]
    assert checks["endpoint farm"]["ok"] and "answered HTTP" in checks["endpoint farm"]["detail"]
    assert "keyring" in checks
    # a broken deploy and a dead endpoint are problems: non-zero exit
    site = home / ".local" / "share" / "tether" / "deploy" / "python" / "cp311-linux-x64" / "pydantic_core"
    next(site.glob("_pydantic_core.*.so")).unlink()
    monkeypatch.setenv("TETHER_MOVE_URL", "http://127.0.0.1:9")
    code, checks = _doctor(capsys)
    assert code == 1
    assert not checks["nuke: Python cp311 dependencies"]["ok"] and checks["endpoint move"]["problem"]


def _build_cmd(wheelhouse: Path, *args: str) -> List[str]:
    return ["install", "blender", *args, "--platform", "linux-x64", "--wheelhouse", str(wheelhouse)]


def test_studio_blender_repository_installs_and_enables_in_bpy(tmp_path: Path, wheelhouse: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bpy")
    import json

    studio = tmp_path / "studio"
    assert tether_main(_build_cmd(wheelhouse, "--studio", str(studio), "--blender-python", "3.11")) == 0
    capsys.readouterr()
    assert tether_main(_build_cmd(wheelhouse, "--studio", str(studio), "--blender-python", "3.11")) == 0
    assert "already up to date: nothing changed" in capsys.readouterr().out
    index = json.loads((studio / "blender" / "index.json").read_text())
    [entry] = index["data"]
    assert entry["id"] == "tether" and entry["platforms"] == ["linux-x64"]
    zipped = studio / "blender" / entry["archive_url"][2:]
    assert entry["archive_hash"] == "sha256:" + hashlib.sha256(zipped.read_bytes()).hexdigest()
    script = """
import json, sys
import bpy
bpy.context.preferences.system.use_online_access = True
from bl_pkg import bl_extension_cli as cli
assert cli.subcmd_repo.add(name="studio", repo_id="studio", directory="", url=sys.argv[1], access_token="",
                           source="USER", cache=True, clear_all=False, no_prefs=True)
ok = cli.subcmd_pkg.install(sync=True, packages=["studio.tether"], enable_on_install=True, no_prefs=True)
import tether.farm.submit
print("RESULT" + json.dumps({"install": ok, "enabled": "bl_ext.studio.tether" in bpy.context.preferences.addons,
      "scene_prop": hasattr(bpy.types.Scene, "tether"), "from": tether.farm.submit.__file__}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")
    proc = subprocess.run([sys.executable, "-c", script, (studio / "blender" / "index.json").as_uri()],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))[len("RESULT"):])
    assert out["install"] and out["enabled"] and out["scene_prop"]
    assert out["from"].startswith(str(tmp_path / "user")), out["from"]
    assert tether_main(["install", "blender", "--studio", str(studio), "--uninstall"]) == 0
    assert not studio.exists() or not any(studio.rglob("*"))


def test_user_blender_without_binary_unpacks_and_uninstalls(home: Path, wheelhouse: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (home / ".config" / "blender" / "5.0").mkdir(parents=True)
    (home / ".config" / "blender" / "4.1").mkdir(parents=True)  # too old: left alone
    before = _snapshot(home)
    assert tether_main(_build_cmd(wheelhouse, "--user")) == 0
    ext = home / ".config" / "blender" / "5.0" / "extensions" / "user_default" / "tether"
    assert (ext / "blender_manifest.toml").is_file() and (ext / "__init__.py").is_file()
    assert any("-cp311-" in w.name for w in (ext / "wheels").glob("pydantic_core-*.whl"))
    assert (home / ".config" / "blender" / "5.0" / "scripts" / "startup" / "tether_enable_once.py").is_file()
    assert not (home / ".config" / "blender" / "4.1" / "extensions").exists()
    capsys.readouterr()
    assert tether_main(_build_cmd(wheelhouse, "--user", "--verbose")) == 0
    second = capsys.readouterr().out
    assert "already up to date: nothing changed" in second, second
    assert tether_main(["install", "blender", "--user", "--uninstall"]) == 0
    assert _snapshot(home) == before
    # every folder the install made in Blender's tree is gone again (the XDG data dir itself may stay)
    assert sorted(p.relative_to(home / ".config").as_posix() for p in (home / ".config").rglob("*")) == [
        "blender", "blender/4.1", "blender/5.0"]
    assert not (home / ".local" / "share" / "tether" / "deploy").exists()


def test_studio_nuke_env_and_rez(tmp_path: Path, wheelhouse: Path) -> None:
    studio = tmp_path / "studio tools"  # a space in the path, as on many studio shares
    assert tether_main(["install", "nuke", "--studio", str(studio), "--nuke-version", "16", "--platform",
                        "linux-x64", "--rez", "--wheelhouse", str(wheelhouse)]) == 0
    compile((studio / "rez" / "tether" / "0.1.0" / "package.py").read_text(), "package.py", "exec")
    assert b"\r\n" in (studio / "tether-env.bat").read_bytes()
    script = (f'. "{studio}/tether-env.sh" 16 && "{sys.executable}" -I -S -c "import os, sys; '
              "sys.path[:0] = os.environ['PYTHONPATH'].split(':'); import tether.settings, pydantic_core; "
              "print(os.environ['NUKE_PATH']); print(pydantic_core.__file__)\"")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUKE_PATH")}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nuke_path, core = proc.stdout.strip().splitlines()
    assert nuke_path == str(studio / "nuke_plugin")
    assert core.startswith(str(studio / "python" / "cp311-linux-x64"))


@given(st.lists(st.sampled_from(["a", " ", "\n", "\r\n", "\t", "#", "é"]), max_size=40).map("".join))
def test_marked_block_round_trips_any_file(original: str) -> None:
    from tether_install.plan import BEGIN, END, apply_block, remove_block

    block = BEGIN.format(dcc="nuke") + "\nprint('x')\n" + END
    installed = apply_block(original, block)
    assert installed.startswith(original)
    assert apply_block(installed, block) == installed  # a second install changes nothing
    assert remove_block(installed, block.splitlines()[0]) == original
