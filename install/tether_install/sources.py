"""What the installer deploys, found the same way from a checkout and from an installed wheel.

The wheel carries the Nuke plugin and the Blender add-on as package data (``tether_install/bundled/``); a checkout
has them at the repository's top. The library the DCCs load is the importable ``tether`` package itself, and the
wheel Blender's extension bundles is made from it here (the library only: no command, installer or services).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

from tether import __version__
from tether.errors import ConfigError

# What each bundled folder must hold to be the real thing (not an empty namespace left by an editable install).
_MARKERS = {"nuke_plugin": "menu.py", "blender_addon": "blender_manifest.toml"}
# Distributions the DCCs never import (the command's terminal output, the installer's version logic).
NOT_FOR_DCCS = {"rich", "markdown-it-py", "mdurl", "pygments", "packaging"}


def plugin_dir(name: str) -> Path:
    """``nuke_plugin`` or ``blender_addon``: the wheel's bundled copy, else the checkout's folder."""
    here = Path(__file__).resolve().parent
    marker = _MARKERS[name]
    for candidate in (here / "bundled" / name, here.parents[1] / name):
        if (candidate / marker).is_file():
            return candidate
    raise ConfigError(f"the {name} folder is neither bundled with this Tether ({here / 'bundled'}) nor in a "
                      f"checkout ({here.parents[1]}): reinstall Tether from its wheel")


def library_dir() -> Path:
    import tether

    return Path(tether.__file__).resolve().parent


def library_files() -> Dict[str, bytes]:
    """The ``tether`` package's files, relative names -> bytes (no bytecode)."""
    root = library_dir()
    return {f"tether/{path.relative_to(root).as_posix()}": path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ (]", requirement, maxsplit=1)[0].strip().lower()


def _declared() -> List[str]:
    """Every requirement the distribution declares, extras' too. Read from the installed metadata, which a checkout's
    editable install and a wheel install both have."""
    try:
        return metadata.requires("tether") or []
    except metadata.PackageNotFoundError:
        raise ConfigError("Tether's package metadata is missing: install it (pip install tether or pip install -e .)")\
            from None


def base_requirements() -> List[str]:
    """The distribution's base requirements (no extras): what ``pip install tether`` installs."""
    return [r for r in _declared() if "extra ==" not in r.replace("extra==", "extra ==")]


def extra_requirements(extra: str) -> List[str]:
    """The requirements of one of the distribution's extras (``media``), their extra marker taken away (other
    markers, e.g. a python_version, kept)."""
    clause = re.compile(rf"""\s*(?:\band\s+)?extra\s*==\s*["']{re.escape(extra)}["']\s*(?:\band\b\s*)?""")
    out: List[str] = []
    for requirement in _declared():
        head, _, marker = requirement.partition(";")
        if clause.search(marker):
            rest = clause.sub(" ", marker).strip()
            out.append(head.strip() + (f"; {rest}" if rest else ""))
    return out


def library_requirements(extra: Optional[List[str]] = None) -> List[str]:
    """The library's own dependencies: the base requirements minus the command-only ones."""
    return [r for r in base_requirements() if _dist_name(r) not in NOT_FOR_DCCS] + list(extra or [])


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_library_wheel(dest: Path) -> Path:
    """A pure ``tether-<version>-py3-none-any.whl`` holding the library only, built from the importable package (no
    checkout, no build backend, no network: works the same offline and from a wheel install)."""
    dest.mkdir(parents=True, exist_ok=True)
    info = f"tether-{__version__}.dist-info"
    requires = "".join(f"Requires-Dist: {r}\n" for r in library_requirements())
    members = dict(library_files())
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: tether\nVersion: {__version__}\n"
        "Summary: Tether's library: job service clients, transfers and job models for Nuke and Blender\n"
        f"License-Expression: Apache-2.0\nRequires-Python: >=3.9\n{requires}").encode()
    members[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tether_install\nRoot-Is-Purelib: true\n"
                                b"Tag: py3-none-any\n")
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in sorted(members.items()))
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            # A fixed date: the same sources make the same bytes, so a redeploy of an unchanged version is a no-op.
            entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, data, zipfile.ZIP_DEFLATED)
    target = dest / f"tether-{__version__}-py3-none-any.whl"
    target.write_bytes(buffer.getvalue())
    return target


def repack(dist: metadata.Distribution, dest: Path, platform_tag: Optional[str] = None,
           compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """The wheel an installed distribution came from, rebuilt from its RECORD: the same files (scripts outside
    site-packages are left out; pip makes them again from ``entry_points.txt``). ``platform_tag`` renames the tag;
    ``compression`` (ZIP_STORED: a fast local copy of a large one)."""
    files = dist.files or []
    info = next(f for f in files if str(f).endswith(".dist-info/WHEEL"))
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    py, abi, plat = (".".join(sorted({t.split("-")[i] for t in tags})) for i in range(3))
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    wheel = dest / f"{name}-{dist.version}-{py}-{abi}-{platform_tag or plat}.whl"
    record_name = str(info).rsplit("/", 1)[0] + "/RECORD"
    rows: List[str] = []
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", compression) as zf:
        for f in files:
            rel = str(f)
            if rel.startswith("..") or "__pycache__" in rel or rel == record_name:
                continue
            data = Path(str(f.locate())).read_bytes()
            zf.writestr(rel, data)
            rows.append(f"{rel},{_record_hash(data)},{len(data)}")
        zf.writestr(record_name, "\n".join([*rows, f"{record_name},,"]) + "\n")
    return wheel


def own_wheel(dest: Path) -> Path:
    """Tether's own wheel (the command, installer and plugins: what ``pip install tether`` needs): repacked from this
    installed wheel, or built from the checkout an editable install runs from (pip fetches the build backend)."""
    import json
    import subprocess
    import sys

    import tether_cli

    here = Path(tether_cli.__file__).resolve().parent
    try:
        dist = metadata.distribution("tether")
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        located = {Path(str(f.locate())).resolve() for f in dist.files or [] if str(f).endswith(".py")}
    except (metadata.PackageNotFoundError, ValueError):
        dist, direct, located = None, {}, set()
    if dist is not None and not direct.get("dir_info", {}).get("editable") and here / "__init__.py" in located:
        return repack(dist, dest)
    checkout = here.parents[1]
    if not (checkout / "pyproject.toml").is_file():
        raise ConfigError(f"Tether here ({here}) is neither an installed wheel nor a checkout: reinstall it from its "
                          "wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(checkout)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"could not build Tether's wheel from {checkout}: {proc.stderr.strip()[-1500:]}")
    return max(dest.glob(f"tether-{__version__}-*.whl"), key=lambda p: p.stat().st_mtime)
