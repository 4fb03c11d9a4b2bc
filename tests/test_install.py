"""`tether install` / `tether doctor` in a temporary HOME, offline: the wheelhouse is repacked once per session from
the distributions already installed in this venv (so only this machine's ABI, cp311 linux, can be checked offline)."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence, Set

import pytest
from hypothesis import given
from hypothesis import strategies as st
from killing import KILLED, run_killed
from packaging.requirements import Requirement
from tether_cli import main as tether_main
from tether_install.extension import PLATFORM_EXTRAS
from tether_install.sources import base_requirements, repack

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
    wheel = repack(dist, out)
    # This venv's cryptography is manylinux_2_34, newer than the deploy's glibc floor (2_28): PyPI also has a 2_28
    # build of it, which a real deploy fetches; offline, the installed one stands in under that tag.
    wheel.rename(wheel.with_name(wheel.name.replace("manylinux_2_34_x86_64", "manylinux_2_28_x86_64")))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    for key in sorted(_closure([*base_requirements(), "qtpy>=2.4", *list(PLATFORM_EXTRAS["linux"])])):
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
    # no Nuke unless a test makes one: the machine's own /usr/local/Nuke* must not change the results
    monkeypatch.setenv("TETHER_NUKE_ROOTS", str(tmp_path / "nukes"))
    return home


# pip's own tool caches (.cache, .rustup from a toolchain shim) are not the installer's doing
_TOOL_CACHES = (".cache", ".rustup", ".cargo")


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in _TOOL_CACHES}


def _install(wheelhouse: Path, *extra: str) -> int:
    # --no-media: this wheelhouse has no media wheels (their tests below bring their own)
    return tether_main(["install", "nuke", "--user", "--nuke-version", "16", "--no-media", "--wheelhouse",
                        str(wheelhouse), *extra])


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
    if original is not None:
        assert installed[".nuke/init.py.tether-backup"] == original
    assert tether_main(["install", "nuke", "--user", "--uninstall"]) == 0
    # exactly as before: the backup goes once the file is back as it was, and so do the folders the install made
    assert _snapshot(home) == before
    left = sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))
    assert [p for p in left if p.split("/")[0] not in _TOOL_CACHES] == ([".nuke", ".nuke/init.py"] if original else [])


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
    assert "nothing deployed" not in proc.stderr  # the block warns only when this Python's tree is missing
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


MEDIA = ("av", "numpy", "OpenImageIO", "opencolorio")  # the media extra's distributions, as installed here


@pytest.fixture(scope="session")
def media_wheelhouse(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline wheelhouse plus the media extra's wheels, repacked from this venv (stored, not compressed: they
    are large and only copied here)."""
    out = tmp_path_factory.mktemp("media-wheelhouse")
    for wheel in wheelhouse.glob("*.whl"):
        os.link(wheel, out / wheel.name)
    for name in MEDIA:
        repack(metadata.distribution(name), out, compression=zipfile.ZIP_STORED)
    return out


def test_nuke_gets_the_media_libraries_and_doctor_imports_them(home: Path, media_wheelhouse: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import json

    def doctor() -> Dict[str, Any]:
        capsys.readouterr()
        tether_main(["doctor", "--json", "--no-endpoints"])
        return {c["check"]: c for c in json.loads(capsys.readouterr().out)}

    assert tether_main(["install", "nuke", "--user", "--nuke-version", "16", "--wheelhouse",
                        str(media_wheelhouse)]) == 0
    out = capsys.readouterr().out
    assert "media libraries (PyAV, numpy, OpenImageIO, OpenColorIO) deployed for Nuke's Python" in out
    site = home / ".local" / "share" / "tether" / "deploy" / "python" / "cp311-linux-x64"
    assert {"av", "numpy", "OpenImageIO", "PyOpenColorIO"} <= {p.name for p in site.iterdir()}
    media = doctor()["nuke: cp311 media libraries"]
    assert media["ok"] and "imported with" in media["detail"], media  # in a bare Python of Nuke 16's version
    # a broken stack is a fault; one left out on purpose is not
    shutil.rmtree(site / "PyOpenColorIO")
    media = doctor()["nuke: cp311 media libraries"]
    assert not media["ok"] and media["problem"] and "OpenColorIO missing" in media["detail"], media
    assert tether_main(["install", "nuke", "--user", "--nuke-version", "16", "--no-media", "--wheelhouse",
                        str(media_wheelhouse)]) == 0
    assert "left out (--no-media): in Nuke, Autopilot is sent an image sequence as a zip" in capsys.readouterr().out
    assert not (site / "numpy").exists()  # what the earlier install put there is taken away


def test_a_platform_without_media_wheels_is_named_and_the_install_goes_on(
        home: Path, wheelhouse: Path, media_wheelhouse: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    partial = tmp_path / "partial"  # the base wheels and OpenColorIO's, none of the other three
    partial.mkdir()
    for wheel in [*wheelhouse.glob("*.whl"), *media_wheelhouse.glob("opencolorio-*.whl")]:
        os.link(wheel, partial / wheel.name)
    assert tether_main(["install", "nuke", "--user", "--nuke-version", "16", "--wheelhouse", str(partial)]) == 0
    out = capsys.readouterr().out
    assert ("media libraries left out for Python 3.11 on linux-x64 (Nuke 16-17): no PyAV, numpy, OpenImageIO wheels "
            f"for it in the wheelhouse {partial}. There, Autopilot is sent an image sequence as a zip") in out, out
    assert "--no-media to leave them out on purpose" in out and "Traceback" not in out
    site = home / ".local" / "share" / "tether" / "deploy" / "python" / "cp311-linux-x64"
    assert (site / "pydantic_core").is_dir() and not (site / "PyOpenColorIO").exists()  # all four or none


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
    media = checks["nuke: cp311 media libraries"]  # left out on purpose (--no-media): said, and no fault
    assert not media["ok"] and not media["problem"] and "not deployed" in media["detail"], media
    assert "TensorPix and Clipzy refuse a sequence" in media["detail"]
    assert checks["endpoint farm"]["ok"] and "answered HTTP" in checks["endpoint farm"]["detail"]
    assert "keyring" in checks
    # a broken deploy and a dead endpoint are problems: non-zero exit
    site = home / ".local" / "share" / "tether" / "deploy" / "python" / "cp311-linux-x64" / "pydantic_core"
    next(site.glob("_pydantic_core.*.so")).unlink()
    monkeypatch.setenv("TETHER_MOVE_URL", "http://127.0.0.1:9")
    code, checks = _doctor(capsys)
    assert code == 1
    assert not checks["nuke: Python cp311 dependencies"]["ok"] and checks["endpoint move"]["problem"]
    # a deleted deploy is not "present", and the fix doctor names works when pasted (offline: plus the wheelhouse)
    plugin = home / ".local" / "share" / "tether" / "deploy" / "nuke_plugin"
    (plugin / "menu.py").unlink()
    code, checks = _doctor(capsys)
    detail = checks[f"nuke: plugin at {plugin}"]["detail"]
    assert code == 1 and "present" not in detail and "menu.py missing" in detail, detail
    fix = detail.split("`")[1]
    assert fix == "tether install nuke --user"
    assert tether_main([*shlex.split(fix)[1:], "--nuke-version", "16", "--no-media", "--wheelhouse",
                        str(wheelhouse)]) == 0
    monkeypatch.delenv("TETHER_MOVE_URL")
    monkeypatch.setenv("TETHER_MOVE_URL", local_services.url(running[0]))  # type: ignore[attr-defined]
    code, checks = _doctor(capsys)
    assert code == 0, [c for c in checks.values() if c["problem"]]


def test_doctor_finds_pyenv_root_and_skips_blenders_without_extensions(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tether_install import doctor

    pyenv = tmp_path / "pyenv"
    exe = pyenv / "versions" / "3.10.14" / "bin" / "python3.10"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("PYENV_ROOT", str(pyenv))
    assert doctor._interpreter("cp310") == str(exe)
    # Blender 3.6 has no extensions: never "installed", even when BLENDER_USER_RESOURCES holds 5.0's extension
    resources = tmp_path / "resources"
    (resources / "extensions" / "user_default" / "tether").mkdir(parents=True)
    (resources / "extensions" / "user_default" / "tether" / "blender_manifest.toml").write_text('version = "0.1.0"\n')
    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(resources))
    (home / ".config" / "blender" / "3.6").mkdir(parents=True)
    (home / ".config" / "blender" / "5.0").mkdir(parents=True)
    checks = {c["check"]: c for c in doctor.check_blender([])}
    assert not checks["blender 3.6: extension installed"]["ok"]
    assert "too old for extensions" in checks["blender 3.6: extension installed"]["detail"]
    assert checks["blender 5.0: extension installed"]["ok"]


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


class _RezEnv:
    """The part of rez's ``env`` a package's ``commands()`` touches: each variable's appends and prepends."""

    def __init__(self) -> None:
        self.vars: Dict[str, List[str]] = {}

    def __getattr__(self, name: str) -> Any:
        values = self.vars.setdefault(name, [])
        return SimpleNamespace(append=values.append, prepend=lambda v: values.insert(0, v))


class _RezResolve(Dict[str, Any]):
    """rez's ``resolve``: ``"nuke" in resolve`` and ``resolve.nuke.version``."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def test_user_blender_from_blender_user_resources_alone(home: Path, tmp_path: Path, wheelhouse: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    resources = tmp_path / "resources"  # no ~/.config/blender: Blender is told where its user files are
    monkeypatch.setenv("BLENDER_USER_RESOURCES", str(resources))
    assert tether_main(_build_cmd(wheelhouse, "--user", "--blender-python", "3.11")) == 0
    assert (resources / "extensions" / "user_default" / "tether" / "blender_manifest.toml").is_file()
    assert (resources / "scripts" / "startup" / "tether_enable_once.py").is_file()
    assert tether_main(["install", "blender", "--user", "--uninstall"]) == 0
    assert not resources.exists() or not any(resources.rglob("*"))


def test_studio_nuke_env_rez_versions_and_rollback(tmp_path: Path, wheelhouse: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    studio = tmp_path / "studio tools"  # a space in the path, as on many studio shares
    assert tether_main(["install", "nuke", "--studio", str(studio), "--nuke-version", "16", "--platform",
                        "linux-x64", "--rez", "--no-media", "--wheelhouse", str(wheelhouse)]) == 0
    assert (studio / "current").read_text() == "0.1.0\n"
    package = (studio / "rez" / "tether" / "0.1.0" / "package.py").read_text()
    rez: Dict[str, Any] = {}
    exec(compile(package, "package.py", "exec"), rez)
    rez.update(env=_RezEnv(), system=SimpleNamespace(platform="linux"),
               resolve=_RezResolve(nuke=SimpleNamespace(version="16.0.2")))
    rez["commands"]()
    assert set(rez["env"].vars) == {"NUKE_PATH", "TETHER_PYTHONPATH"}  # no PYTHONPATH for every Python in a resolve
    assert rez["env"].vars["TETHER_PYTHONPATH"][0] == f"{studio}/versions/0.1.0/python/cp311-linux-x64"
    assert b"\r\n" in (studio / "tether-env.bat").read_bytes()
    assert b"PYTHONPATH=" not in (studio / "tether-env.bat").read_bytes().replace(b"TETHER_PYTHONPATH=", b"")
    # the launcher's Nuke: the plugin's init.py appends the share's trees after its own paths
    nuke = (f"import os, sys, runpy; sys.path.insert(0, {str(FAKE_NUKE)!r}); import nuke; "
            "runpy.run_path(os.environ['NUKE_PATH'].split(':')[0] + '/init.py'); "
            "import tether.settings, pydantic_core; print(pydantic_core.__file__)")
    # any other Python of this environment, the tether command's included: its own packages, not the share's
    host = "import idna, pydantic; print(idna.__file__); print(pydantic.__file__)"
    script = (f'. "{studio}/tether-env.sh" 16 && echo "PYTHONPATH=$PYTHONPATH" && echo "$NUKE_PATH" && '
              f'"{sys.executable}" -I -S -c "{nuke}" && "{sys.executable}" -c "{host}"')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUKE_PATH", "TETHER_PYTHONPATH")}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pythonpath, nuke_path, core, idna, pydantic = proc.stdout.strip().splitlines()
    assert pythonpath == "PYTHONPATH="
    assert nuke_path == str(studio / "versions" / "0.1.0" / "nuke_plugin")
    assert core.startswith(str(studio / "versions" / "0.1.0" / "python" / "cp311-linux-x64"))
    assert not idna.startswith(str(studio)) and not pydantic.startswith(str(studio)), (idna, pydantic)
    assert "nothing deployed" not in proc.stderr
    # a launcher for a Nuke this share was not deployed for says so instead of failing later on an import
    proc = subprocess.run(["bash", "-c", f'. "{studio}/tether-env.sh" 15'], capture_output=True, text=True, env=env,
                          timeout=60)
    assert "nothing deployed for Nuke 15 (cp310-linux-x64)" in proc.stderr, proc.stderr
    _upgrade_and_roll_back(studio, wheelhouse, env, capsys)


def _launcher_root(studio: Path, env: Dict[str, str]) -> str:
    proc = subprocess.run(["bash", "-c", f'. "{studio}/tether-env.sh" 16 && echo "$NUKE_PATH"'], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "nothing deployed" not in proc.stderr, proc.stderr
    return proc.stdout.strip()


def _upgrade_and_roll_back(studio: Path, wheelhouse: Path, env: Dict[str, str],
                           capsys: pytest.CaptureFixture[str]) -> None:
    """0.2.0 goes beside 0.1.0; killed halfway, launchers still start 0.1.0 whole; --rollback brings 0.1.0 back."""
    from tether_install import nuke, plan

    first = studio / "versions" / "0.1.0"

    def files(folder: Path) -> Dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    old = files(first)
    upgrade = nuke.plan(studio, False, ["3.11"], ["linux-x64"], wheelhouse, True, "0.2.0", media=False)
    at = len(upgrade.files)  # each file takes two changes or more: this kill lands halfway through the files
    assert run_killed(lambda: plan.apply(upgrade, "0.2.0"), at) == (KILLED, at)
    assert (studio / "versions" / "0.2.0").is_dir()
    assert _launcher_root(studio, env) == str(first / "nuke_plugin") and files(first) == old
    assert tether_main(["install", "nuke", "--studio", str(studio), "--rollback"]) == 1
    assert "was interrupted: run it again" in capsys.readouterr().err
    assert plan.apply(upgrade, "0.2.0").repaired  # the next run finishes it, and only then flips "current"
    assert (studio / "current").read_text() == "0.2.0\n"
    assert _launcher_root(studio, env) == str(studio / "versions" / "0.2.0" / "nuke_plugin")
    assert files(first) == old  # the earlier version is left whole beside it, its rez package too
    for version in ("0.1.0", "0.2.0"):  # rez-env tether-0.1.0 keeps bringing 0.1.0 back
        package = (studio / "rez" / "tether" / version / "package.py").read_text()
        assert f"root = {(studio / 'versions' / version).as_posix()!r}" in package
    capsys.readouterr()
    assert tether_main(["install", "nuke", "--studio", str(studio), "--rollback"]) == 0
    assert "current version: 0.2.0 -> 0.1.0" in capsys.readouterr().out
    assert _launcher_root(studio, env) == str(first / "nuke_plugin")
    assert tether_main(["install", "nuke", "--studio", str(studio), "--rollback", "0.2.0"]) == 0
    assert _launcher_root(studio, env) == str(studio / "versions" / "0.2.0" / "nuke_plugin")
    assert tether_main(["install", "nuke", "--studio", str(studio), "--rollback", "0.0.9"]) == 1
    assert "version 0.0.9 is not in" in capsys.readouterr().err
    assert tether_main(["install", "nuke", "--studio", str(studio), "--uninstall"]) == 0
    assert not studio.exists()


def test_a_published_version_is_never_rewritten() -> None:
    from tether_install.nuke import build_name
    from tether_install.plan import sha256

    published = {"builds": {"0.1.0": "0.1.0"}, "files": {"versions/0.1.0/a.py": sha256(b"a")}}
    assert build_name(published, "0.1.0", {"a.py": b"a"}) == "0.1.0"  # the same files: nothing to write
    assert build_name(published, "0.1.0", {"a.py": b"changed"}) == "0.1.0+b2"  # beside it, not over it
    assert build_name(published, "0.2.0", {"a.py": b"a"}) == "0.2.0"
    unfinished = {"builds": {}, "files": {"versions/0.1.0/a.py": sha256(b"a")}}
    assert build_name(unfinished, "0.1.0", {"a.py": b"changed"}) == "0.1.0"  # never current: finished in place


def test_plugin_init_appends_tether_trees_after_the_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_PYTHONPATH goes after Nuke's own paths; a tree for another Python is skipped, not loaded."""
    import runpy

    own = tmp_path / f"cp{sys.version_info[0]}{sys.version_info[1]}-linux-x64"
    other = tmp_path / "cp39-linux-x64"
    common = tmp_path / "common"
    for folder in (own, other, common):
        folder.mkdir()
    monkeypatch.setenv("TETHER_PYTHONPATH", os.pathsep.join(map(str, (own, other, common))))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = list(sys.path)
    runpy.run_path(str(ROOT / "nuke_plugin" / "init.py"))
    assert sys.path == [*before, str(own), str(common)]
    sys.path[:] = before  # the Blender extension reads the same variable the same way when it registers
    runpy.run_path(str(ROOT / "blender_addon" / "__init__.py"))["_append_tether_paths"]()
    assert sys.path == [*before, str(own), str(common)]


def test_a_nukes_own_numpy_and_opencolorio_win_and_doctor_says_so(home: Path, tmp_path: Path) -> None:
    """A Nuke that ships numpy or PyOpenColorIO in its own site-packages loads those: Tether's trees go after them, so
    a deployed copy never shadows them; doctor names them, and an OpenColorIO older than 2.2 (no built-in configs)."""
    from tether_install import doctor

    nukes = tmp_path / "nukes"
    n15 = _fake_nuke(nukes, "Nuke15.1v3", "Nuke15.1", ("lib/python3.10/site-packages/numpy/__init__.py",
                                                       "lib/python3.10/site-packages/PyOpenColorIO.so",
                                                       "lib/libOpenColorIO.so.2.1"))
    _fake_nuke(nukes, "Nuke16.0v2", "Nuke16.0", ("lib/python3.11/", "lib/site-packages/PyOpenColorIO/__init__.py",
                                                 "lib/libOpenColorIO.so.2.3.2"))
    _fake_nuke(nukes, "Nuke14.0v6", "Nuke14.0", ("lib/python3.9/",))
    checks = {c["check"]: c for c in doctor.check_nuke()}
    old = checks["nuke: Nuke15.1v3 ships numpy and PyOpenColorIO"]
    assert not old["ok"] and not old["problem"] and "OpenColorIO is 2.1" in old["detail"]
    assert str(n15 / "lib" / "python3.10" / "site-packages" / "numpy") in old["detail"]
    new = checks["nuke: Nuke16.0v2 ships PyOpenColorIO"]
    assert new["ok"] and "never shadow" in new["detail"] and "built-in" not in new["detail"]
    assert not [c for c in checks if c.startswith("nuke: Nuke14.0v6 ships")]
    # and so it is: with Nuke's site-packages first, init.py puts a deployed numpy after it
    site, tree = n15 / "lib" / "python3.10" / "site-packages", tmp_path / "tree"
    (site / "numpy" / "__init__.py").write_text("WHERE = 'nuke'\n")
    (tree / "numpy").mkdir(parents=True)
    (tree / "numpy" / "__init__.py").write_text("WHERE = 'tether'\n")
    code = (f"import sys, runpy; sys.path.insert(0, {str(site)!r}); "
            f"runpy.run_path({str(ROOT / 'nuke_plugin' / 'init.py')!r}); import numpy; print(numpy.WHERE)")
    env = {**os.environ, "TETHER_PYTHONPATH": str(tree)}
    assert subprocess.run([sys.executable, "-I", "-S", "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "nuke"


@given(st.lists(st.sampled_from(["a", " ", "\n", "\r\n", "\t", "#", "é"]), max_size=40).map("".join))
def test_marked_block_round_trips_any_file(original: str) -> None:
    from tether_install.plan import BEGIN, END, apply_block, remove_block

    block = BEGIN.format(dcc="nuke") + "\nprint('x')\n" + END
    installed = apply_block(original, block)
    assert installed.startswith(original)
    assert apply_block(installed, block) == installed  # a second install changes nothing
    assert remove_block(installed, block.splitlines()[0]) == original


# --- finding the installed Nukes ------------------------------------------------------------------------------------
def _fake_nuke(parent: Path, folder: str, binary: str = "", python_files: tuple = ()) -> Path:
    """A Nuke install tree as Foundry's installer lays it out: the binary at the top, its Python somewhere inside."""
    root = parent / folder
    root.mkdir(parents=True)
    if binary.endswith(".app"):
        (root / binary / "Contents" / "MacOS").mkdir(parents=True)
    elif binary:
        (root / binary).write_bytes(b"")
    for rel in python_files:
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return root


@pytest.mark.parametrize("name,expected", [
    ("Nuke15.1v3", (15, 1, 3)), ("Nuke14.0v6", (14, 0, 6)), ("Nuke16.0v10", (16, 0, 10)), ("Nuke13.2", (13, 2, None)),
    ("NukeX15.1v3", (15, 1, 3)), ("NukeStudio16.0v2", (16, 0, 2)), ("nuke15.1v3", (15, 1, 3)),
    ("Nuke16.0v1b12", (16, 0, 1)), ("Nuke", None), ("NukeTools", None), ("Nuke-plugins", None), ("Nuke_15", None),
    ("Nuke15", None), ("Hiero15.1v3", None), ("MyNuke15.1v3", None), ("Nuke15.1v3x", (15, 1, 3)),
])
def test_nuke_folder_names_parse(name: str, expected: object) -> None:
    from tether_install.detect import parse_folder

    assert parse_folder(name) == expected


def test_find_nukes_reads_each_install_and_ignores_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether_install import detect

    linux, mac, win = tmp_path / "usr-local", tmp_path / "Applications", tmp_path / "Program Files"
    _fake_nuke(linux, "Nuke15.1v3", "Nuke15.1", ("lib/python3.10/", "libpython3.10.so.1.0"))
    _fake_nuke(linux, "Nuke15.0v1", "Nuke15.0")  # nothing to read: the table says 3.10
    _fake_nuke(linux, "Nuke13.2v5", "Nuke13.2", ("lib/python3.7/",))
    _fake_nuke(linux, "Nuke12.2v4", "Nuke12.2")
    _fake_nuke(linux, "Nuke18.0v1", "Nuke18.0")  # newer than the table, no Python to read
    _fake_nuke(linux, "Nuke19.0v1", "Nuke19.0", ("lib/python3.12/",))  # newer, but its Python is readable
    _fake_nuke(linux, "Nuke", "", ("14.0/plugins/x.py",))  # the shared plugins folder, not an install
    _fake_nuke(linux, "NukeTools", "Nuke15.1")
    _fake_nuke(linux, "Nuke14.0v2", "", ("plugins/x.gizmo",))  # left behind by an uninstall: no binary
    (linux / "Nuke15.1v4-linux-x86_64.tgz").write_bytes(b"")  # an installer download, not a folder
    _fake_nuke(mac, "Nuke14.0v6", "Nuke14.0v6.app",
               ("Nuke14.0v6.app/Contents/Frameworks/Python.framework/Versions/3.9/", "NukeX14.0v6.app/",
                "NukeStudio14.0v6.app/", "Hiero14.0v6.app/"))
    _fake_nuke(win, "Nuke16.0v2", "Nuke16.0.exe", ("python311.dll", "python3.dll", "python.exe"))
    studio_nukex = _fake_nuke(tmp_path / "custom", "NukeX16.1v1", "Nuke16.1", ("lib/python3.11/",))
    monkeypatch.setenv(detect.ENV, os.pathsep.join([str(linux), str(mac), str(win), str(studio_nukex),
                                                    str(tmp_path / "missing")]))
    found = {n.name: n for n in detect.find_nukes()}
    assert sorted(found) == ["Nuke12.2v4", "Nuke13.2v5", "Nuke14.0v6", "Nuke15.0v1", "Nuke15.1v3", "Nuke16.0v2",
                             "Nuke18.0v1", "Nuke19.0v1", "NukeX16.1v1"]
    got = {name: (n.version, n.python, n.python_source, n.supported) for name, n in found.items()}
    assert got["Nuke15.1v3"] == ("15.1v3", "3.10", "its install", True)
    assert got["Nuke15.0v1"] == ("15.0v1", "3.10", "the table", True)
    assert got["Nuke14.0v6"] == ("14.0v6", "3.9", "its install", True)
    assert got["Nuke16.0v2"] == ("16.0v2", "3.11", "its install", True)
    assert got["NukeX16.1v1"] == ("16.1v1", "3.11", "its install", True)
    assert got["Nuke19.0v1"] == ("19.0v1", "3.12", "its install", True)
    assert got["Nuke13.2v5"][1:] == ("3.7", "its install", False)
    assert got["Nuke12.2v4"][1:] == ("2.7", "the table", False)
    assert not found["Nuke18.0v1"].supported and "update Tether" in found["Nuke18.0v1"].problem
    assert "Python 3.7" in found["Nuke13.2v5"].problem and "Nuke 14 or newer" in found["Nuke13.2v5"].problem


def test_python_read_from_the_tree_wins_over_the_table(tmp_path: Path) -> None:
    from tether_install import detect

    _fake_nuke(tmp_path, "Nuke15.2v1", "Nuke15.2", ("lib/python3.11/",))  # a point release that moved Python
    [nuke] = detect.find_nukes([tmp_path])
    assert (nuke.python, nuke.python_source) == ("3.11", "its install")


def test_standard_places_per_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    from tether_install import detect

    monkeypatch.delenv(detect.ENV, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert detect.search_places() == [Path("/usr/local"), Path("/opt")]
    monkeypatch.setattr(sys, "platform", "darwin")
    assert detect.search_places() == [Path("/Applications")]
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("PROGRAMFILES", r"D:\Apps")
    assert detect.search_places() == [Path(r"D:\Apps")]
    monkeypatch.setenv(detect.ENV, "")  # set but empty: look nowhere
    assert detect.search_places() == []


def test_choose_pythons() -> None:
    from tether_install import deps, detect

    def nuke(name: str, python: str) -> detect.NukeInstall:
        major, minor, patch = detect.parse_folder(name) or (0, 0, 0)
        ok = deps.python_supported(python)
        return detect.NukeInstall(Path("/x") / name, major, minor, patch, python, "its install",
                                  "" if ok else "too old")

    found = [nuke("Nuke13.2v5", "3.7"), nuke("Nuke15.1v3", "3.10"), nuke("NukeX15.1v3", "3.10")]
    pythons, lines = detect.choose_pythons([], False, found)
    assert pythons == ["3.10"]
    assert any("Nuke13.2v5" in line and "NOT SUPPORTED" in line for line in lines)
    pythons, lines = detect.choose_pythons([], False, [found[0]])  # only an unsupported one: everything
    assert pythons == ["3.9", "3.10", "3.11"] and "no supported Nuke found" in lines[-1]
    pythons, lines = detect.choose_pythons([], False, [])
    assert pythons == ["3.9", "3.10", "3.11"] and "no Nuke found" in lines[-1]
    assert detect.choose_pythons(["16", "14"], False, found)[0] == ["3.9", "3.11"]
    assert detect.choose_pythons([], True, found)[0] == ["3.9", "3.10", "3.11"]


def test_user_install_deploys_only_the_nukes_found(home: Path, tmp_path: Path, wheelhouse: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # offline, only cp311 wheels exist: deploying for every Nuke (the old behaviour) would fail on Python 3.9
    nukes = tmp_path / "nukes"
    _fake_nuke(nukes, "Nuke16.0v2", "Nuke16.0", ("lib/python3.11/",))
    _fake_nuke(nukes, "Nuke13.2v5", "Nuke13.2", ("lib/python3.7/",))
    _fake_nuke(nukes, "NukeTools", "")
    assert tether_main(["install", "nuke", "--user", "--no-media", "--wheelhouse", str(wheelhouse)]) == 0
    out = capsys.readouterr().out
    assert f"found Nuke16.0v2 at {nukes / 'Nuke16.0v2'}: Python 3.11 (from its install)" in out
    assert "found Nuke13.2v5" in out and "NOT SUPPORTED" in out and "Nuke 14 or newer" in out
    assert "deploying for the Nukes found: Python 3.11 (cp311)" in out
    site = home / ".local" / "share" / "tether" / "deploy" / "python"
    assert sorted(p.name for p in site.iterdir() if p.name.startswith("cp")) == ["cp311-linux-x64"]


def test_no_nuke_found_falls_back_to_every_supported_nuke(home: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty-wheelhouse"
    empty.mkdir()
    assert tether_main(["install", "nuke", "--user", "--wheelhouse", str(empty)]) == 1
    out, err = capsys.readouterr()
    assert "no Nuke found in" in out and "deploying for every supported Nuke (cp39 for Nuke 14" in out
    assert "could not get the wheels for Python 3.9" in err  # it tried the oldest supported Nuke's Python first
    assert tether_main(["install", "nuke", "--user", "--all-versions", "--wheelhouse", str(empty)]) == 1
    assert "every supported Nuke (--all-versions)" in capsys.readouterr().out


def test_doctor_lists_nukes_and_their_trees(home: Path, tmp_path: Path, wheelhouse: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import json

    nukes = tmp_path / "nukes"
    _fake_nuke(nukes, "Nuke16.0v2", "Nuke16.0", ("lib/python3.11/",))
    _fake_nuke(nukes, "Nuke12.2v4", "Nuke12.2")

    def doctor() -> tuple:
        capsys.readouterr()
        code = tether_main(["doctor", "--json", "--no-endpoints"])
        return code, {c["check"]: c for c in json.loads(capsys.readouterr().out)}

    code, checks = doctor()
    assert checks["nuke: found Nuke16.0v2"]["ok"] and "Python 3.11" in checks["nuke: found Nuke16.0v2"]["detail"]
    old = checks["nuke: found Nuke12.2v4"]
    assert not old["ok"] and not old["problem"] and "Python 2.7" in old["detail"]
    assert not checks["nuke: Nuke16.0v2 dependencies"]["ok"]
    assert code == 1 and checks["nuke: tether installed"]["problem"]  # a supported Nuke without Tether
    assert tether_main(["install", "nuke", "--user", "--no-media", "--wheelhouse", str(wheelhouse)]) == 0
    code, checks = doctor()
    deps16 = checks["nuke: Nuke16.0v2 dependencies"]
    assert deps16["ok"] and "cp311 tree for linux-x64" in deps16["detail"], deps16
    assert "nuke: Nuke12.2v4 dependencies" not in checks
    assert code == 0, [c for c in checks.values() if c["problem"]]
    # a Nuke installed after the deploy: named, with what to run
    _fake_nuke(nukes, "Nuke15.1v3", "Nuke15.1", ("lib/python3.10/",))
    code, checks = doctor()
    deps15 = checks["nuke: Nuke15.1v3 dependencies"]
    assert code == 1 and not deps15["ok"] and deps15["problem"]
    assert "no cp310 tree" in deps15["detail"] and "tether install nuke --user" in deps15["detail"]
    assert not checks["nuke: Python cp310 dependencies"]["ok"] and checks["nuke: Python cp311 dependencies"]["ok"]
    # without Nukes, doctor says where it looked
    for child in nukes.iterdir():
        child.rename(tmp_path / child.name)
    code, checks = doctor()
    assert "no Nuke found in" in checks["nuke: installs found"]["detail"] and code == 0


def test_studio_deploy_provides_for_every_nuke_not_only_this_machines(home: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from tether_cli.install_cmd import nuke_pythons
    from tether_install import deps

    nukes = tmp_path / "nukes"
    _fake_nuke(nukes, "Nuke15.1v3", "Nuke15.1", ("lib/python3.10/",))
    studio = argparse.Namespace(studio=tmp_path / "share", user=False, nuke_version=None, all_versions=False)
    assert nuke_pythons(studio, tmp_path / "share") == deps.all_nuke_pythons()
    user = argparse.Namespace(studio=None, user=True, nuke_version=None, all_versions=False)
    assert nuke_pythons(user, tmp_path / "deploy") == ["3.10"]  # one artist: the Nuke installed here
    asked = argparse.Namespace(studio=tmp_path / "share", user=False, nuke_version=["16"], all_versions=False)
    assert nuke_pythons(asked, tmp_path / "share") == ["3.11"]
    assert "found Nuke15.1v3" in capsys.readouterr().out


@pytest.fixture(scope="module")
def wheel_tether(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tether as a studio installs it: the built wheel in a fresh venv, no checkout in reach. Its dependencies come
    from this test venv's site-packages through a .pth (appended after the venv's own, so the wheel's packages win)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("core", "services", "install", "nuke_plugin", "blender_addon"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = sorted((tmp / "dist").glob("tether-*.whl"))
    shutil.rmtree(src)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig

    Path(site, "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "tether"


def _offline() -> List[str]:
    """A prefix that runs a command with no network at all (a new network namespace), where the kernel allows it."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True) if shutil.which("unshare") else None
    return ["unshare", "-rn"] if probe is not None and probe.returncode == 0 else []


def _wheel_run(tether: Path, home: Path, *args: str, prefix: Sequence[str] = (),
               pip: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    # no PIP_* settings but those given: an offline install must need nothing undocumented
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TETHER_", "PYTHON", "PIP_"))}
    env.update(HOME=str(home), TETHER_NUKE_ROOTS=str(home / "no-nukes"), TETHER_CONFIG_DIR=str(home / "cfg"),
               TETHER_DATA_DIR=str(home / "data"), **(pip or {}))
    return subprocess.run([*prefix, str(tether), *args], capture_output=True, text=True, timeout=600, cwd=home,
                          env=env)


def test_wheel_installed_tether_deploys_both_plugins_offline(wheel_tether: Path, media_wheelhouse: Path,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("bpy")  # blender_ext.py comes from the bpy wheel
    home = tmp_path / "home"
    home.mkdir()
    where = _wheel_run(wheel_tether, home, "doctor")  # runs from the wheel, not from this checkout
    assert str(ROOT) not in where.stdout + where.stderr
    probe = subprocess.run([str(wheel_tether.parent / "python"), "-c",
                            "import tether, tether_cli, tether_install; print(tether_install.__file__)"],
                           capture_output=True, text=True, cwd=home)
    assert str(wheel_tether.parents[1]) in probe.stdout, probe.stdout + probe.stderr

    # the documented command, on the "connected" machine: pip's own settings name the index (here a local mirror)
    built = tmp_path / "wheels"
    made = _wheel_run(wheel_tether, home, "install", "wheelhouse", str(built), "--python", "3.11", "--platform",
                      "linux-x64", pip={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(media_wheelhouse)})
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert (built / "tether-0.1.0-py3-none-any.whl").is_file()  # Tether's own wheel included
    assert "wheels for Python 3.11 on linux-x64, media libraries included" in made.stdout
    assert {w.name.split("-")[0].lower() for w in built.glob("*.whl")} >= {m.lower() for m in MEDIA}

    # the offline machine: no network namespace, no index, nothing but that folder
    offline = _offline()
    studio = tmp_path / "studio"
    share = _wheel_run(wheel_tether, home, "install", "all", "--studio", str(studio), "--nuke-version", "16",
                       "--blender-python", "3.11", "--platform", "linux-x64", "--no-media", "--wheelhouse",
                       str(built), prefix=offline)
    assert share.returncode == 0, share.stdout[-3000:] + share.stderr[-3000:]
    assert (studio / "versions" / "0.1.0" / "nuke_plugin" / "menu.py").is_file()
    assert (studio / "blender" / "index.json").is_file()
    user = _wheel_run(wheel_tether, home, "install", "nuke", "--user", "--nuke-version", "16", "--no-media",
                      "--wheelhouse", str(built), prefix=offline)
    assert user.returncode == 0, user.stdout[-3000:] + user.stderr[-3000:]
    deployed = sorted(p.name for p in home.rglob("nuke_plugin/tether_nuke/*.py"))
    assert "panel.py" in deployed and sorted(home.rglob("nuke_plugin/menu.py")), deployed
    # and the command itself installs from it
    pip = subprocess.run([*offline, str(wheel_tether.parent / "python"), "-m", "pip", "install", "--dry-run", "-q",
                          "--ignore-installed", "--no-index", "--find-links", str(built), "tether[media]"],
                         capture_output=True, text=True, timeout=300, cwd=home,
                         env={k: v for k, v in os.environ.items() if not k.startswith("PIP_")})
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]

    out = studio / "blender"
    [zipped] = sorted(out.glob("*.zip"))
    with zipfile.ZipFile(zipped) as zf:
        names = zf.namelist()
        assert "blender_manifest.toml" in names and "LICENSE" in names
        [lib] = [n for n in names if n.startswith("wheels/tether-")]
        with zipfile.ZipFile(io.BytesIO(zf.read(lib))) as inner:
            tops = {n.split("/")[0] for n in inner.namelist()}
    # the DCC gets the library only
    from tether import __version__

    assert tops == {"tether", f"tether-{__version__}.dist-info"}, tops
