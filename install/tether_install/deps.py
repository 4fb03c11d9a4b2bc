"""Tether's Python dependencies for each DCC's Python, on each platform, in one deployable ``python/`` tree.

Layout (decided here): ``python/common/`` holds every pure-Python distribution that resolves to one version for all
target Pythons; ``python/cpXY-<platform>/`` (e.g. ``cp311-linux-x64``) holds the compiled ones (pydantic-core; their
extension files carry the ABI tag, ``_pydantic_core.cpython-311-x86_64-linux-gnu.so``, but some compiled wheels, e.g.
mypyc-built charset-normalizer, differ per platform in their .py files too, so platforms get their own folder);
``python/cpXY/`` holds the pure ones whose version differs for that Python (pydantic 2.13 is the last for 3.9, and
pydantic-core must match pydantic exactly). A Python puts ``python/cpXY-<platform>``, ``python/cpXY`` and
``python/common`` on sys.path, in that order. Tether's own sources go to ``common`` (pure, 3.9-compatible).
"""

from __future__ import annotations

import platform as _platform
import re
import shutil
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tether.encode import MEDIA_LOSS, MEDIA_MODULES
from tether.errors import ConfigError, InputError

from . import extension, sources
from .plan import Content, Data, digest_of

# The one table of which Python each Nuke major runs (VFX Reference Platform). Tether needs Python 3.9+, so Nuke 14
# is the oldest it supports; the older rows are here so that a Nuke 12 or 13 found on disk is named with its Python.
NUKE_PYTHONS = {11: "2.7", 12: "2.7", 13: "3.7", 14: "3.9", 15: "3.10", 16: "3.11", 17: "3.11"}
MIN_PYTHON = (3, 9)


def py_tuple(python: str) -> Tuple[int, ...]:
    return tuple(int(n) for n in python.split("."))


def python_supported(python: str) -> bool:
    return py_tuple(python)[:2] >= MIN_PYTHON


def supported_nuke_majors() -> List[int]:
    return [major for major, py in sorted(NUKE_PYTHONS.items()) if python_supported(py)]


def all_nuke_pythons() -> List[str]:
    """Every Python a supported Nuke runs: what a deploy provides for when it is not told which Nukes."""
    return sorted({NUKE_PYTHONS[m] for m in supported_nuke_majors()}, key=py_tuple)


def nuke_abi_summary() -> str:
    """``cp39 for Nuke 14, cp310 for 15, cp311 for 16-17``, from the table."""
    groups: List[Tuple[str, List[int]]] = []
    for major in supported_nuke_majors():
        py = NUKE_PYTHONS[major]
        if groups and groups[-1][0] == py:
            groups[-1][1].append(major)
        else:
            groups.append((py, [major]))
    parts = [f"{abi(py)} for " + ("Nuke " if i == 0 else "") + (f"{ms[0]}" if len(ms) == 1 else f"{ms[0]}-{ms[-1]}")
             for i, (py, ms) in enumerate(groups)]
    return ", ".join(parts)


def blender_python(version: str) -> str:
    major, minor = _major_minor(version, "Blender")
    if (major, minor) < (4, 2):
        raise InputError(f"Blender {version} is too old: Tether needs Blender 4.2 or newer (extensions)")
    return "3.11" if (major, minor) <= (5, 0) else "3.13"


def nuke_python(version: str) -> str:
    major, _ = _major_minor(version, "Nuke")
    supported = supported_nuke_majors()
    if major < supported[0]:
        old = NUKE_PYTHONS.get(major, "2.7")  # every Nuke before the table ran Python 2
        raise InputError(f"Nuke {version} is too old: it runs Python {old} and Tether needs Python "
                         f"{'.'.join(map(str, MIN_PYTHON))}+ (Nuke {supported[0]} or newer)")
    if major not in NUKE_PYTHONS:
        raise InputError(f"Nuke {version} is newer than this installer knows ({supported[0]}-{supported[-1]}): "
                         "update Tether")
    return NUKE_PYTHONS[major]


def _major_minor(version: str, what: str) -> Tuple[int, int]:
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?", version)
    if not match:
        raise InputError(f"{what} version {version!r} is not a version number (e.g. 15.1)")
    return int(match.group(1)), int(match.group(2) or 0)


def abi(python: str) -> str:
    return "cp" + python.replace(".", "")


def this_platform() -> str:
    machine = _platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "x64"
    osname = "windows" if sys.platform == "win32" else "macos" if sys.platform == "darwin" else "linux"
    return f"{osname}-{arch}"


def requirements(extra: Sequence[str] = ()) -> List[str]:
    """The library's own dependencies (not the command's) plus ``extra``."""
    return sources.library_requirements(list(extra))


def for_python(reqs: Sequence[str], python: str) -> List[str]:
    """Requirements with their markers decided for the target Python: pip judges top-level markers by the Python it
    runs on, which would drop ``tomli; python_version < '3.11'`` from Nuke 14's tree."""
    from packaging.requirements import Requirement

    out: List[str] = []
    env = {"python_version": python, "python_full_version": python + ".0"}
    for text in reqs:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


def nukes_of(python: str) -> str:
    """``Nuke 16-17``: the supported Nukes that run ``python``."""
    majors = [m for m in supported_nuke_majors() if NUKE_PYTHONS[m] == python]
    if not majors:
        return f"no supported Nuke runs Python {python}"
    return "Nuke " + (str(majors[0]) if len(majors) == 1 else f"{majors[0]}-{majors[-1]}")


def media_requirements() -> List[str]:
    """The ``media`` extra (PyAV, numpy, OpenImageIO, OpenColorIO: what :mod:`tether.encode` needs)."""
    return sources.extra_requirements("media")


def _media_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    name = Requirement(requirement).name
    return next((label for _, label, dist in MEDIA_MODULES if dist.lower() == name.lower()), name)


def media_wheels(plat: str, python: str, dest: Path, wheelhouse: Optional[Path]) -> Optional[str]:
    """Put the ``media`` extra's wheels for one platform and Python into ``dest``. None when they are there; else
    which have no wheel there and what that costs, and nothing of them is added (the rest of Tether works without
    them, so the install goes on)."""
    reqs = for_python(media_requirements(), python)
    with tempfile.TemporaryDirectory(prefix="tether-media-") as tmp:
        try:
            extension.pip_download(plat, python, Path(tmp), wheelhouse, reqs)
        except ConfigError as exc:
            missing = _unavailable(plat, python, wheelhouse, reqs)
            where = f"the wheelhouse {wheelhouse}" if wheelhouse else "the package index"
            what = (f"no {', '.join(_media_name(r) for r in missing)} wheel{'s' if len(missing) > 1 else ''}"
                    if missing else f"the media libraries do not resolve together ({str(exc).splitlines()[-1]})")
            return (f"media libraries left out for Python {python} on {plat} ({nukes_of(python)}): {what} for it in "
                    f"{where}. There, {MEDIA_LOSS}. Add the wheels (tether install wheelhouse on a connected "
                    "machine) and install again, or pass --no-media to leave them out on purpose")
        for wheel in Path(tmp).glob("*.whl"):
            shutil.move(str(wheel), str(dest / wheel.name))
    return None


def _unavailable(plat: str, python: str, wheelhouse: Optional[Path], reqs: Sequence[str]) -> List[str]:
    """Which of ``reqs`` has no wheel for this platform and Python (each asked alone, at once)."""
    def lacks(requirement: str) -> bool:
        with tempfile.TemporaryDirectory(prefix="tether-probe-") as tmp:
            try:
                extension.pip_download(plat, python, Path(tmp), wheelhouse, [requirement], no_deps=True)
            except ConfigError:
                return True
            return False

    with ThreadPoolExecutor(max_workers=max(len(reqs), 1)) as pool:
        return [r for r, missing in zip(reqs, pool.map(lacks, reqs)) if missing]


def download(pythons: Sequence[str], platforms: Sequence[str], dest: Path, wheelhouse: Optional[Path],
             extra: Sequence[str] = (), media: bool = False, notes: Optional[List[str]] = None
             ) -> Dict[Tuple[str, str], List[Path]]:
    """Wheels per (platform, python): pip resolves each target Python on its own, binary wheels only. ``media``: the
    media extra's too, where they exist (``notes`` gets a line for each platform and Python without them)."""
    if wheelhouse is not None and not wheelhouse.is_dir():
        raise InputError(f"wheelhouse {wheelhouse} is not a folder")
    result: Dict[Tuple[str, str], List[Path]] = {}
    for plat in platforms:
        if plat not in extension.PLATFORMS:
            raise InputError(f"unknown platform {plat!r}; known: {', '.join(sorted(extension.PLATFORMS))}")
        for python in pythons:
            reqs = for_python(requirements(extra) + list(extension.PLATFORM_EXTRAS[plat.split("-")[0]]), python)
            folder = dest / plat / abi(python)
            folder.mkdir(parents=True, exist_ok=True)
            try:
                extension.pip_download(plat, python, folder, wheelhouse, reqs)
            except ConfigError as exc:
                where = f"the wheelhouse {wheelhouse}" if wheelhouse else "the package index"
                hint = ("add the missing wheels to it (on a connected machine: pip download --only-binary=:all: "
                        f"--python-version {python} --platform <tag> -d WHEELHOUSE ...)" if wheelhouse else
                        "with no network, give --wheelhouse DIR (a folder of wheels made on a connected machine)")
                raise ConfigError(f"could not get the wheels for Python {python} on {plat} from {where}: {hint}\n"
                                  f"{exc}") from None
            if media:
                note = media_wheels(plat, python, folder, wheelhouse)
                if note is not None and notes is not None:
                    notes.append(note)
            result[(plat, python)] = sorted(folder.glob("*.whl"))
    return result


def _dist(wheel: Path) -> Tuple[str, str]:
    parts = wheel.name[:-4].split("-")
    return re.sub(r"[-_.]+", "_", parts[0]).lower(), parts[1]


def _compiled(wheel: Path) -> bool:
    return wheel.name[:-4].split("-")[-3].startswith("cp")


def site_files(wheels: Dict[Tuple[str, str], List[Path]], root: Path,
               keep: Optional[tempfile.TemporaryDirectory[str]] = None) -> Dict[Path, Data]:
    """The unpacked ``python/`` tree: file path -> its content, read from the wheel when it is written (``keep``: held
    while any of it is, e.g. the temporary folder the wheels were downloaded to)."""
    versions: Dict[str, set] = {}
    for found in wheels.values():
        for wheel in found:
            name, version = _dist(wheel)
            versions.setdefault(name, set()).add(version)
    files: Dict[Path, Data] = {}
    origin: Dict[Path, Tuple[Path, str]] = {}
    for (plat, python), found in sorted(wheels.items()):
        for wheel in found:
            name, _ = _dist(wheel)
            if _compiled(wheel):
                folder = root / f"{abi(python)}-{plat}"
            else:
                folder = root / ("common" if len(versions[name]) == 1 else abi(python))
            _unpack(wheel, folder, files, origin, keep)
    for name, data in sources.library_files().items():
        files[root / "common" / name] = data
    return files


def _unpack(wheel: Path, folder: Path, files: Dict[Path, Data], origin: Dict[Path, Tuple[Path, str]],
            keep: Optional[tempfile.TemporaryDirectory[str]]) -> None:
    member = Content.members(wheel, keep)
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                    name = "/".join(parts[2:])
                else:
                    continue  # scripts/headers/data: not needed to import
            dest = folder / name
            data = member(info.filename)
            if dest in files:
                if origin[dest] == (wheel, info.filename):
                    continue  # the same wheel unpacked for another Python or platform
                if digest_of(files[dest]) != data.digest:
                    if ".dist-info/" in name:
                        continue  # per-platform WHEEL/RECORD of one version: the first kept
                    raise ConfigError(f"{wheel.name} and {origin[dest][0].name} both write {dest} with different "
                                      "contents")
            files[dest] = data
            origin[dest] = (wheel, info.filename)


def python_tree(pythons: Sequence[str], platforms: Sequence[str], root: Path, wheelhouse: Optional[Path],
                extra: Sequence[str] = (), media: bool = False) -> Tuple[Dict[Path, Data], List[str]]:
    """The unpacked ``python/`` tree, and a note per platform and Python the media libraries were left out for. The
    wheels stay in a temporary folder as long as the tree's contents do: each file is read from its wheel as it is
    written, never the whole tree into memory."""
    notes: List[str] = []
    tmp = tempfile.TemporaryDirectory(prefix="tether-wheels-")  # removed when the plan of its contents is closed
    wheels = download(sorted(set(pythons), key=py_tuple), platforms, Path(tmp.name), wheelhouse, extra, media, notes)
    return site_files(wheels, root, keep=tmp), notes


# Every Python a deploy may need wheels for: the Nukes' (3.9-3.11), Blender's (3.11, 3.13) and the tether command's own
# (3.9+, whatever the studio machine runs).
WHEELHOUSE_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
NUKE_EXTRAS = ["qtpy>=2.4"]


def build_wheelhouse(dest: Path, pythons: Sequence[str], platforms: Sequence[str], media: bool = True) -> List[str]:
    """A folder of wheels from which, with no index, ``pip install tether`` and every ``tether install ...
    --wheelhouse DIR`` succeed: Tether's own wheel, and for each Python and platform the binary wheels of everything
    it, the Nuke trees and the Blender extension need, the media extra's too (``media``; where a platform has none,
    a line says so). Made on a connected machine (pip's own index settings, a studio mirror in pip.conf included,
    apply)."""
    unknown = [p for p in platforms if p not in extension.PLATFORMS]
    if unknown:
        raise InputError(f"unknown platform {unknown[0]!r}; known: {', '.join(sorted(extension.PLATFORMS))}")
    dest.mkdir(parents=True, exist_ok=True)
    lines = [f"Tether's own wheel: {sources.own_wheel(dest).name}"]
    reqs = sources.base_requirements() + NUKE_EXTRAS
    for plat in platforms:
        for python in sorted(set(pythons), key=py_tuple):
            wanted = for_python(reqs + list(extension.PLATFORM_EXTRAS[plat.split("-")[0]]), python)
            extension.pip_download(plat, python, dest, None, wanted)
            left_out = media_wheels(plat, python, dest, None) if media else None
            lines.append(left_out or f"wheels for Python {python} on {plat}" + (", media libraries included" if media
                                                                               else " (--no-media)"))
    lines.append(f"{len(list(dest.glob('*.whl')))} wheels in {dest}: copy the folder to the offline machine and "
                 f"give it as --wheelhouse {dest} (pip install --no-index --find-links {dest} tether installs the "
                 "command there)")
    return lines
