"""Which Nukes are installed here, and which Python each runs.

Foundry's installers put each release in its own folder named after the version: ``/usr/local/Nuke15.1v3/``
(binary ``Nuke15.1``; ``/opt`` is common too) on Linux, ``/Applications/Nuke15.1v3/`` (``Nuke15.1v3.app``, with
NukeX/NukeStudio/Hiero apps beside it) on macOS, ``C:\\Program Files\\Nuke15.1v3\\`` (``Nuke15.1.exe``) on Windows.
NukeX and NukeStudio are the same install started another way, so a folder is one Nuke whatever its apps.
``TETHER_NUKE_ROOTS`` (os.pathsep-separated) replaces those places: each entry is a Nuke folder or a folder of them.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import deps

ENV = "TETHER_NUKE_ROOTS"
# NukeX/NukeStudio/NukeIndie prefixes are accepted for studios that keep them in folders of their own
_FOLDER = re.compile(r"^Nuke(?P<variant>X|Studio|Assist|Indie)?(?P<major>\d+)\.(?P<minor>\d+)(?:v(?P<patch>\d+))?"
                     r"(?P<rest>[^\d].*)?$", re.IGNORECASE)
_BINARY = re.compile(r"^(Nuke|Hiero)(X|Studio|Assist|Indie)?\d+\.\d+(v\d+)?(\.exe)?$", re.IGNORECASE)
_APP = re.compile(r"^(Nuke|Hiero)\w*?\d+\.\d+(v\d+)?\.app$", re.IGNORECASE)
# where an install keeps its Python, newest layouts first; the Python version is in the matched name
_PYTHON_GLOBS = ("lib/python3.*", "libpython3.*", "lib/libpython3.*", "python3*.dll",
                 "*.app/Contents/Frameworks/Python.framework/Versions/3.*", "*.app/Contents/Frameworks/libpython3.*",
                 "*.app/Contents/MacOS/lib/python3.*")
_PYTHON_NAME = re.compile(r"^(?:lib)?python(3)\.?(\d+)(?:\b|[^\d])|^(3)\.(\d+)$")


@dataclass(frozen=True)
class NukeInstall:
    path: Path
    major: int
    minor: int
    patch: Optional[int]
    python: Optional[str]  # None: neither its install nor the table says
    python_source: str  # "its install", "the table" or ""
    problem: str  # "" when Tether can run in it; else why not and what to do

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}" + ("" if self.patch is None else f"v{self.patch}")

    @property
    def supported(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        py = f"Python {self.python} (from {self.python_source})" if self.python else "Python unknown"
        return f"{self.name} at {self.path}: {py}" + (f" — NOT SUPPORTED: {self.problem}" if self.problem else "")


def parse_folder(name: str) -> Optional[Tuple[int, int, Optional[int]]]:
    """(major, minor, patch) from a folder name such as ``Nuke15.1v3``; None for anything else."""
    match = _FOLDER.match(name)
    if not match:
        return None
    patch = match.group("patch")
    return int(match.group("major")), int(match.group("minor")), int(patch) if patch is not None else None


def search_places() -> List[Path]:
    override = os.environ.get(ENV)
    if override is not None:
        return [Path(p).expanduser() for p in override.split(os.pathsep) if p.strip()]
    if sys.platform == "win32":
        return [Path(os.environ.get("PROGRAMFILES", r"C:\Program Files"))]
    if sys.platform == "darwin":
        return [Path("/Applications")]
    return [Path("/usr/local"), Path("/opt")]


def describe_places() -> str:
    where = ", ".join(str(p / "Nuke*") for p in search_places()) or "nowhere"
    how = f"{ENV} is set" if os.environ.get(ENV) is not None else f"set {ENV} for other places"
    return f"{where} ({how})"


def _is_install(folder: Path) -> bool:
    """A Nuke binary or app at the top: a leftover folder (plugins kept after an uninstall) is not a Nuke."""
    try:
        return any((_BINARY.match(p.name) and p.is_file()) or (_APP.match(p.name) and p.is_dir())
                   for p in folder.iterdir())
    except OSError:
        return False


def pythons_in_tree(folder: Path) -> List[str]:
    found = set()
    for pattern in _PYTHON_GLOBS:
        try:
            hits = list(folder.glob(pattern))
        except OSError:
            continue
        for hit in hits:
            match = _PYTHON_NAME.match(hit.name)
            if match:
                major, minor = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
                found.add(f"{major}.{int(minor)}")
    return sorted(found, key=deps.py_tuple)


def _inspect(folder: Path, major: int, minor: int, patch: Optional[int]) -> NukeInstall:
    table = deps.NUKE_PYTHONS.get(major)
    in_tree = pythons_in_tree(folder)
    python: Optional[str]
    if table in in_tree or (in_tree and len(in_tree) == 1):
        python, source = (table if table in in_tree else in_tree[0]), "its install"
    elif table:
        python, source = table, "the table"
    elif in_tree:  # several and none the table's: the newest is the one the binary links
        python, source = in_tree[-1], "its install"
    else:
        python, source = None, ""
    supported = deps.supported_nuke_majors()
    problem = ""
    if python is None:
        problem = (f"newer than this installer knows ({supported[0]}-{supported[-1]}) and its Python could not be "
                   f"read from {folder}: update Tether, or deploy with --nuke-version N naming the Nuke whose "
                   "Python it runs")
    elif not deps.python_supported(python) or major < supported[0]:
        floor = ".".join(map(str, deps.MIN_PYTHON))
        problem = (f"it runs Python {python} and Tether needs Python {floor}+ (Nuke {supported[0]} or newer): use "
                   f"Tether from a newer Nuke; this one is left out")
    return NukeInstall(folder, major, minor, patch, python, source, problem)


# Where a Nuke keeps the Python modules it ships. Foundry's "Nuke as a Python Module" page names
# <Nuke>/lib/site-packages as Nuke's site-packages (learn.foundry.com/nuke/content/comp_environment/script_editor/
# nuke_python_module.html); Linux builds with their own lib/python3.X keep one there, macOS inside the app;
# pythonextensions/site-packages holds PySide.
_SITE_GLOBS = ("lib/site-packages", "lib/python3.*/site-packages", "pythonextensions/site-packages",
               "*.app/Contents/MacOS/lib/python3.*/site-packages",
               "*.app/Contents/MacOS/pythonextensions/site-packages")
# Media modules Tether also deploys that a Nuke may ship itself: numpy in its site-packages in some versions, and the
# OpenColorIO of Foundry's "Third-Party Libraries and Fonts" list (learn.foundry.com/nuke/content/misc/
# studio_third_party_libraries.html) with its Python binding.
SHIPPED = ("numpy", "PyOpenColorIO")
_OCIO_LIB = re.compile(r"^(?:lib)?OpenColorIO[._-](?:so[._])?(\d+)[._](\d+)", re.IGNORECASE)


def shipped_modules(folder: Path) -> Dict[str, Path]:
    """The modules of :data:`SHIPPED` a Nuke install has in its own site-packages, by name: where it loads them from."""
    found: Dict[str, Path] = {}
    for pattern in _SITE_GLOBS:
        for site in sorted(folder.glob(pattern)):
            for name in SHIPPED:
                hits = [site / name] if (site / name).is_dir() else \
                    [p for p in site.glob(f"{name}*") if p.suffix in (".so", ".pyd")]
                if hits and name not in found:
                    found[name] = hits[0]
    return found


def shipped_ocio(folder: Path) -> Optional[Tuple[int, int]]:
    """The OpenColorIO version a Nuke links, from its library's name (``libOpenColorIO.so.2.1``,
    ``OpenColorIO_2_2.dll``); None when no such file says."""
    versions = [(int(m.group(1)), int(m.group(2))) for pattern in ("lib*/*OpenColorIO*", "*OpenColorIO*",
                                                                  "*.app/Contents/*/*OpenColorIO*")
                for p in folder.glob(pattern) for m in [_OCIO_LIB.match(p.name)] if m]
    return max(versions) if versions else None


def find_nukes(places: Optional[Sequence[Path]] = None) -> List[NukeInstall]:
    seen: Dict[str, NukeInstall] = {}
    for place in search_places() if places is None else places:
        parsed = parse_folder(place.name)
        candidates = [place] if parsed and _is_install(place) else []
        if not candidates:
            try:
                candidates = sorted(p for p in place.iterdir() if parse_folder(p.name) and p.is_dir())
            except OSError:  # missing or unreadable: nothing installed there
                continue
        for folder in candidates:
            version = parse_folder(folder.name)
            if version is None or not _is_install(folder):
                continue
            key = os.path.normcase(str(folder.resolve()))
            seen.setdefault(key, _inspect(folder, *version))
    return sorted(seen.values(), key=lambda n: (n.major, n.minor, n.patch or 0, str(n.path)))


def _label(pythons: Sequence[str]) -> str:
    return ", ".join(f"Python {py} ({deps.abi(py)})" for py in sorted(set(pythons), key=deps.py_tuple))


def choose_pythons(requested: Sequence[str], all_versions: bool, found: Sequence[NukeInstall],
                   user: bool = True) -> Tuple[List[str], List[str]]:
    """The Pythons to deploy for, and what to tell the TD about that choice.

    An explicit ``--nuke-version`` or ``--all-versions`` wins; otherwise the Nukes found decide, and with none
    supported found every supported Nuke is provided for (what a deploy did before detection)."""
    lines: List[str] = []
    if requested:
        pythons = sorted({deps.nuke_python(v) for v in requested}, key=deps.py_tuple)
        lines.append(f"deploying for Nuke {', '.join(requested)} as asked (--nuke-version): {_label(pythons)}")
        return pythons, lines
    everything = deps.all_nuke_pythons()
    if all_versions:
        lines.append(f"deploying for every supported Nuke (--all-versions): {deps.nuke_abi_summary()}")
        return everything, lines
    for nuke in found:
        lines.append(f"found {nuke.describe()}")
    wanted = {n.python for n in found if n.supported and n.python}
    if not wanted:
        why = "no supported Nuke found" if found else "no Nuke found"
        lines.append(f"{why} in {describe_places()}: deploying for every supported Nuke ({deps.nuke_abi_summary()}); "
                     "choose with --nuke-version N (repeat), or point " + ENV + " at where Nuke is installed")
        return everything, lines
    chosen = sorted(wanted, key=deps.py_tuple)
    again = "`tether install nuke --user`" if user else "this deploy"
    lines.append(f"deploying for the Nukes found: {_label(chosen)}; after installing another Nuke, run {again} "
                 "again (or use --all-versions)")
    return chosen, lines


