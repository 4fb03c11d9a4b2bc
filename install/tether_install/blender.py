"""Blender: the extension zip from ``tether blender build-extension`` (reused, not rebuilt here), installed into
each Blender for one artist, or published as a local extension repository (zips + ``index.json`` made by Blender's
own ``blender_ext.py server-generate``) for a studio."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from tether.errors import ConfigError, InputError

from . import deps, extension
from .plan import Content, Plan


def user_config_root() -> Path:
    """Blender's per-user folder holding ``<version>/`` (what Blender itself uses on each OS)."""
    home = Path(os.path.expanduser("~"))
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "Blender Foundation" / "Blender"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Blender"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "blender"


def extensions_dir(version: str) -> Path:
    override = os.environ.get("BLENDER_USER_RESOURCES")
    base = Path(override) if override else user_config_root() / version
    return base / "extensions" / "user_default"


def binary_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--factory-startup", "-b", "--version"], capture_output=True, text=True,
                             timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"could not run {binary} --version ({exc}): give the path of a Blender binary") from None
    match = re.search(r"Blender (\d+\.\d+)", out)
    if not match:
        raise InputError(f"{binary} did not report a Blender version: give the path of a Blender binary")
    return match.group(1)


def found_versions() -> List[str]:
    root = user_config_root()
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if re.match(r"^\d+\.\d+$", p.name)),
                  key=lambda v: tuple(int(n) for n in v.split(".")))


def _members(path: Any) -> List[tuple]:
    """What a zip holds, minus what changes on every build: .pyc files embed the temporary staging path, and the
    tether wheel is rebuilt (new timestamps), so its own members are compared instead."""
    out: List[tuple] = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".pyc"):
                out.append((info.filename,))
            elif info.filename.endswith(".whl"):
                out.append((info.filename, _members(io.BytesIO(zf.read(info)))))
            else:
                out.append((info.filename, info.CRC, info.file_size))
    return sorted(out)


def _keep_if_same(published: Path, built: Path) -> None:
    """A rebuilt zip differs in its timestamps only: keep the published bytes, so a redeploy is a no-op."""
    try:
        if published.is_file() and _members(published) == _members(built):
            shutil.copyfile(published, built)
    except zipfile.BadZipFile:
        pass


def build_zip(platform: str, pythons: Sequence[str], out: Path, wheelhouse: Optional[Path]) -> Path:
    [zipped] = extension.build_extension(platforms=[platform], pythons=sorted(set(pythons)), out=out,
                                           wheelhouse=wheelhouse)
    return zipped


def studio_plan(target: Path, platforms: Sequence[str], wheelhouse: Optional[Path], version: str,
                pythons: Sequence[str] = extension.PYTHONS) -> Plan:
    plan = Plan("blender", target)
    repo = target / "blender"
    tmp = tempfile.TemporaryDirectory(prefix="tether-ext-")  # read as written: removed when the plan is closed
    out = Path(tmp.name) / "repo"
    zips = extension.build_extension(platforms=list(platforms), pythons=list(pythons), out=out,
                                       wheelhouse=wheelhouse)
    for zipped in zips:
        _keep_if_same(repo / zipped.name, zipped)
    extension.run([sys.executable, str(extension.find_blender_ext()), "server-generate", "--repo-dir",
                      str(out)], "blender_ext server-generate")
    for path in sorted(out.iterdir()):
        if path.is_file():
            # the index goes last: an artist's Blender syncing meanwhile never reads one naming a zip not there
            (plan.last if path.name == "index.json" else plan.files)[repo / path.name] = Content.file(path, tmp)
    plan.notes.append(f"artists add the repository once (Preferences > Get Extensions > Repositories > + > Add "
                      f"Remote Repository): {(repo / 'index.json').as_uri()}  — then install 'Tether Render Farm'; "
                      "a redeploy shows up as an update")
    return plan


ENABLE_SCRIPT = '''"""Enables the Tether extension once (by `tether install blender --user`)."""
import os

_STAMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tether_enabled_once")


def register():
    if os.path.exists(_STAMP):
        return  # enabled once already: the artist's later choice is theirs
    import addon_utils
    addon_utils.enable("bl_ext.user_default.tether", default_set=True, persistent=True)
    open(_STAMP, "w").close()


def unregister():
    pass
'''


def user_plan(target: Path, binaries: Sequence[str], platform: str, wheelhouse: Optional[Path],
              version: str, blender_pythons: Sequence[str] = extension.PYTHONS) -> Plan:
    """``blender_pythons``: the Pythons to bundle for when only ``BLENDER_USER_RESOURCES`` says where Blender is."""
    plan = Plan("blender", target)
    targets = [(b, binary_version(b)) for b in binaries] or \
              [("", v) for v in found_versions() if _at_least_42(v)]
    if not targets and os.environ.get("BLENDER_USER_RESOURCES"):
        targets = [("", "")]  # Blender takes its user files from there whatever its version
    if not targets:
        raise InputError("no Blender found: give --blender PATH (the blender binary), start Blender 4.2+ once so "
                         f"that {user_config_root()} exists, or set BLENDER_USER_RESOURCES to the folder your "
                         "Blender uses")
    pythons = [deps.blender_python(v) for _, v in targets if v] or list(blender_pythons)
    tmp = tempfile.TemporaryDirectory(prefix="tether-ext-")  # a dry run writes nothing to the target
    zipped = build_zip(platform, pythons, Path(tmp.name), wheelhouse)
    _keep_if_same(target / "blender" / zipped.name, zipped)
    plan.files[target / "blender" / zipped.name] = Content.file(zipped, tmp)
    member = Content.members(zipped, tmp)
    with zipfile.ZipFile(zipped) as zf:
        members = {name: member(name) for name in zf.namelist() if not name.endswith("/")}
    published = target / "blender" / zipped.name
    for binary, ver in targets:
        if binary:
            plan.after.append(_install_with_binary(binary, ver, published))
            plan.trees.append(extensions_dir(ver) / "tether")
        else:
            dest = extensions_dir(ver) / "tether"
            for name, data in members.items():
                plan.files[dest / name] = data
            plan.files[extensions_dir(ver).parent.parent / "scripts" / "startup" / "tether_enable_once.py"] = \
                ENABLE_SCRIPT.encode()
    return plan


def _at_least_42(version: str) -> bool:
    try:
        deps.blender_python(version)
        return True
    except InputError:
        return False


def _install_with_binary(binary: str, version: str, zipped: Path) -> Callable[[], List[Path]]:
    def step() -> List[Path]:
        proc = subprocess.run([binary, "--command", "extension", "install-file", "-r", "user_default", "-e",
                               str(zipped)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise ConfigError(f"{binary} could not install {zipped.name}: {(proc.stdout + proc.stderr)[-1500:]}")
        folder = extensions_dir(version) / "tether"
        return sorted(p for p in folder.rglob("*") if p.is_file())
    return step
