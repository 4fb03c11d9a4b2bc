"""The Blender extension zip (``tether blender build-extension``), one per platform, with the wheels it needs.

The add-on folder (``blender_addon/``) is staged with a ``wheels/`` folder holding the tether library (the library
only, ``sources.build_library_wheel``), its pure-Python dependencies once, and the compiled ones (pydantic-core) for
each Python Blender ships: cp311 for Blender 4.2-5.0 and cp313 for 5.1+. Blender installs only the wheels matching its
own Python and platform, so one zip serves both. The manifest's ``platforms`` and ``wheels`` are written, then
Blender's own ``blender_ext.py`` (shipped inside the ``bpy`` wheel, or found next to a ``blender`` binary) builds and
validates the zip headless.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tether.errors import ConfigError, InputError

from . import sources

# Blender's platform names -> pip's --platform tags
PLATFORMS: Dict[str, Tuple[str, ...]] = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "linux-arm64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
    "windows-x64": ("win_amd64",),
    "windows-arm64": ("win_arm64",),
    "macos-x64": ("macosx_11_0_x86_64", "macosx_10_12_x86_64"),
    "macos-arm64": ("macosx_11_0_arm64",),
}
# The Pythons Blender ships: 4.2-5.0 have 3.11, 5.1+ have 3.13.
PYTHONS = ("3.11", "3.13")
# pip evaluates environment markers (sys_platform) for this machine, not the target: keyring's per-OS backends are
# named here so a zip built on Linux for Windows still carries them.
PLATFORM_EXTRAS: Dict[str, Tuple[str, ...]] = {
    "windows": ("pywin32-ctypes>=0.2.0",),
    "linux": ("SecretStorage>=3.2", "jeepney>=0.4.2"),
    "macos": (),
}


# --- finding things ---------------------------------------------------------------------------------------------
def find_blender_ext(explicit: Optional[Path] = None) -> Path:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"blender_ext.py not found at {explicit}")
        return explicit
    candidates: List[str] = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("bpy")
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                candidates += glob.glob(os.path.join(folder, "*", "scripts", "addons_core", "bl_pkg", "cli",
                                                     "blender_ext.py"))
    except (ImportError, ValueError):
        pass
    binary = shutil.which("blender")
    if binary:
        root = Path(binary).resolve().parent
        candidates += glob.glob(str(root / "*" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"))
    if not candidates:
        raise ConfigError("Blender's blender_ext.py was not found: install the bpy wheel (pip install bpy) or put "
                          "`blender` on PATH, or give --blender-ext PATH")
    return Path(sorted(candidates)[-1])


def run(cmd: Sequence[str], what: str) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise ConfigError(f"{what} failed (exit {proc.returncode}):\n  " + "\n  ".join(tail))
    return proc.stdout


# --- wheels -------------------------------------------------------------------------------------------------------
def _os_of(platform: str) -> str:
    return platform.split("-")[0]




def pip_download(platform: str, python: str, dest: Path, wheelhouse: Optional[Path], requirements: Sequence[str],
                  no_deps: bool = False) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", python, "--implementation", "cp", "--abi", "cp" + python.replace(".", ""),
           "--abi", "abi3", "--abi", "none"]
    for tag in PLATFORMS[platform]:
        cmd += ["--platform", tag]
    cmd += ["--platform", "any"]
    if no_deps:
        cmd.append("--no-deps")
    if wheelhouse is not None:
        cmd += ["--no-index", "--find-links", str(wheelhouse)]
    run(cmd + list(requirements), f"downloading wheels for {platform} / Python {python}")


def _dist_name(wheel: str) -> str:
    return re.sub(r"[-_.]+", "-", wheel.split("-")[0]).lower()


def _compiled(wheel: str) -> bool:
    """A wheel for one CPython (cp311-cp311-..., cp311-abi3-...), not a pure py3-none-any one."""
    python_tag = wheel[:-4].split("-")[-3]
    return python_tag.startswith("cp")


def collect_wheels(platform: str, pythons: Sequence[str], staging: Path, tether_wheel: Path,
                   wheelhouse: Optional[Path]) -> List[str]:
    """Resolve once for the oldest Python; the other Pythons get the same versions of the compiled wheels.

    Blender installs the highest version of a wheel it finds, ignoring which Python it was resolved for, so a
    separate resolution per Python could put a pure wheel that needs a newer Python into the older Blender.
    """
    wheels_dir = staging / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    first, *others = sorted(pythons, key=lambda v: tuple(int(n) for n in v.split(".")))
    pip_download(platform, first, wheels_dir, wheelhouse, [str(tether_wheel), *PLATFORM_EXTRAS[_os_of(platform)]])
    compiled = [w.name for w in wheels_dir.glob("*.whl") if _compiled(w.name)]
    pins = sorted({f"{_dist_name(w)}=={w.split('-')[1]}" for w in compiled if "-abi3-" not in w})
    for python in others:
        if pins:
            pip_download(platform, python, wheels_dir, wheelhouse, pins, no_deps=True)
    return [f"./wheels/{w.name}" for w in sorted(wheels_dir.glob("*.whl"))]


# --- manifest and build -------------------------------------------------------------------------------------------
def _toml_list(values: Sequence[str]) -> str:
    return "[\n" + "".join(f'  "{v}",\n' for v in values) + "]"


def write_manifest(staging: Path, platform: str, wheels: Sequence[str]) -> None:
    path = staging / "blender_manifest.toml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^#\s*platforms\s*=.*\n", "", text)
    text = re.sub(r"(?m)^#\s*wheels\s*=.*\n", "", text)
    addition = f"platforms = {_toml_list([platform])}\nwheels = {_toml_list(wheels)}\n"
    # Top-level keys must come before the first [table].
    head, sep, tail = text.partition("\n[")
    path.write_text(head.rstrip("\n") + "\n\n" + addition + (sep + tail if sep else ""), encoding="utf-8")


def precompile(staging: Path, pythons: Sequence[str]) -> List[str]:
    """Ship the add-on's bytecode: Blender never writes .pyc files, so without them every start compiles the
    sources again. Unchecked-hash pycs stay valid after the zip is extracted (new mtimes); one per Python found."""
    done: List[str] = []
    for python in pythons:
        exe = sys.executable if f"{sys.version_info[0]}.{sys.version_info[1]}" == python else \
            shutil.which(f"python{python}")
        if not exe:
            continue
        try:
            run([exe, "-m", "compileall", "-q", "-l", "--invalidation-mode", "unchecked-hash", str(staging)],
                 f"compiling the add-on for Python {python}")
        except ConfigError:  # e.g. a pyenv shim for a version that is not active: that Python compiles at start
            continue
        done.append(python)
    manifest = staging / "blender_manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^paths_exclude_pattern\s*=.*$", 'paths_exclude_pattern = ["/.git/", "/*.zip"]', text)
    manifest.write_text(text, encoding="utf-8")
    return done


def build_extension(platforms: Sequence[str], pythons: Sequence[str], out: Path, wheelhouse: Optional[Path] = None,
                    source: Optional[Path] = None, blender_ext: Optional[Path] = None) -> List[Path]:
    source = (source or sources.plugin_dir("blender_addon")).resolve()
    if not (source / "blender_manifest.toml").is_file():
        raise InputError(f"{source} has no blender_manifest.toml: give the add-on folder with --source")
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise InputError(f"unknown platform {unknown[0]!r}; known: {', '.join(sorted(PLATFORMS))}")
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise InputError(f"wheelhouse {wheelhouse} is not a folder")
    tool = find_blender_ext(blender_ext)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    zips: List[Path] = []
    with tempfile.TemporaryDirectory(prefix="tether-ext-") as tmp:
        tmp_path = Path(tmp)
        tether_wheel = sources.build_library_wheel(tmp_path / "self")
        for platform in platforms:
            staging = tmp_path / platform / "tether"
            shutil.copytree(source, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "wheels"))
            wheels = collect_wheels(platform, pythons, staging, tether_wheel, wheelhouse)
            write_manifest(staging, platform, wheels)
            precompile(staging, pythons)
            target = out / f"tether-{_version(staging)}-{platform.replace('-', '_')}.zip"
            if target.exists():
                target.unlink()
            run([sys.executable, str(tool), "build", "--source-dir", str(staging), "--output-filepath",
                  str(target)], f"blender_ext build for {platform}")
            run([sys.executable, str(tool), "validate", str(target)], f"blender_ext validate for {platform}")
            zips.append(target)
    return zips


def _version(staging: Path) -> str:
    match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (staging / "blender_manifest.toml").read_text("utf-8"))
    return match.group(1) if match else "0"
