"""``tether doctor``: is Tether installed for each DCC found, does it load, does its Python ABI match, is the keyring
usable, which proxy and trust store the connections use, and does every configured endpoint answer."""

from __future__ import annotations

import ast
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import blender as blender_mod
from . import deps, detect
from .nuke import VERSIONS, nuke_home
from .plan import BEGIN, END, load_manifest


def _check(name: str, ok: bool, detail: str, problem: bool = True) -> Dict[str, Any]:
    return {"check": name, "ok": ok, "detail": detail, "problem": (not ok) and problem}


def check_nuke() -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    nukes = detect.find_nukes()
    for nuke in nukes:  # an unsupported Nuke is named, but is no problem: the others may be used
        out.append(_check(f"nuke: found {nuke.name}", nuke.supported, nuke.describe(), problem=False))
        if nuke.supported:
            out.extend(_shipped(nuke))
    if not nukes:
        out.append(_check("nuke: installs found", False, f"no Nuke found in {detect.describe_places()}",
                          problem=False))
    supported = [n for n in nukes if n.supported and n.python]
    init = nuke_home() / "init.py"
    text = init.read_text("utf-8", errors="replace") if init.is_file() else ""
    begin = BEGIN.format(dcc="nuke")
    # (the folder holding nuke_plugin/ and python/, the folder holding the manifest, the command that redeploys)
    roots: List[Tuple[Path, Path, str]] = []
    if begin in text and END in text:
        block = text[text.index(begin):text.index(END)]
        for line in block.splitlines():
            if line.startswith("_tether_root = "):
                root = Path(ast.literal_eval(line.split("=", 1)[1].strip()))  # the repr() we wrote
                roots.append((root, root, "`tether install nuke --user`"))
    for entry in os.environ.get("NUKE_PATH", "").split(os.pathsep):
        if entry and (Path(entry) / "tether_nuke").is_dir():
            root = Path(entry).parent
            # a studio share keeps each version in <share>/versions/<name>/, its manifest at <share>
            share = root.parents[1] if root.parent.name == VERSIONS else root
            roots.append((root, share, f"`{_quoted('tether', 'install', 'nuke', '--studio', str(share))}`"))
    if not roots:
        found = bool(supported) or (nuke_home()).is_dir()
        out.append(_check("nuke: tether installed", False, "no Tether block in ~/.nuke/init.py and no Tether "
                          "folder on NUKE_PATH: run `tether install nuke --user`", problem=found))
        for nuke in supported:
            out.append(_check(f"nuke: {nuke.name} dependencies", False, "not deployed: Tether is not installed",
                              problem=False))
        return out
    plat = deps.this_platform()
    for root, share, redeploy in roots:
        plugin = root / "nuke_plugin"
        missing = [name for name in ("init.py", "menu.py") if not (plugin / name).is_file()]
        out.append(_check(f"nuke: plugin at {plugin}", not missing, "init.py and menu.py present" if not missing
                          else f"{' and '.join(missing)} missing: run {redeploy} again"))
        manifest = load_manifest(share, "nuke")
        state = manifest.get("state") if manifest else "missing"
        out.append(_check("nuke: install manifest", state == "complete",
                          f"state {state}, version {manifest.get('version') if manifest else '-'}"
                          + ("" if state == "complete" else f": run {redeploy} again to repair")))
        for nuke in supported:
            abi = deps.abi(nuke.python or "")
            site = root / "python" / f"{abi}-{plat}"
            ok = bool(_compiled(site, abi))
            out.append(_check(f"nuke: {nuke.name} dependencies", ok,
                              f"{abi} tree for {plat} in {site}" if ok else
                              f"no {abi} tree for {plat} in {root / 'python'} (Python {nuke.python}): run "
                              f"{redeploy} again to add it"))
        wanted = {deps.abi(n.python or "") for n in supported}
        present = {m.group(1) for m in (re.match(r"^(cp\d+)(?:-|$)", p.name) for p in _children(root / "python"))
                   if m}
        for abi in sorted(wanted | present, key=lambda a: (len(a), a)):
            site = root / "python" / f"{abi}-{plat}"
            compiled = _compiled(site, abi)
            out.append(_check(f"nuke: Python {abi} dependencies", bool(compiled),
                              f"{len(compiled)} pydantic-core build(s) for this platform in {site}",
                              problem=abi in wanted or (root / "python" / abi).is_dir() or site.is_dir()))
            if compiled:
                out.append(_loads(root, abi))
                out.append(_media(root, abi, redeploy))
    return out


def _shipped(nuke: detect.NukeInstall) -> List[Dict[str, Any]]:
    """The media modules a Nuke ships itself: those are the ones it loads (init.py appends Tether's trees after
    Nuke's own entries, so Tether's copies never shadow them), so say so, and when its OpenColorIO is older than 2.2,
    whose built-in configs the send's default (``ocio://studio-config-latest``) needs."""
    own = detect.shipped_modules(nuke.path)
    if not own:
        return []
    names = " and ".join(own)
    detail = (f"{nuke.name} ships its own {names} ({', '.join(str(p) for p in own.values())}): Nuke loads those, "
              "not Tether's (Tether's trees go after Nuke's own on sys.path, so they never shadow them)")
    ocio = detect.shipped_ocio(nuke.path)
    old = ocio is not None and "PyOpenColorIO" in own and ocio < (2, 2)
    if ocio is not None and old:
        detail += (f"; its OpenColorIO is {ocio[0]}.{ocio[1]}, without OCIO's built-in configs (2.2+): a plate "
                   "sent from that Nuke needs the project's OCIO config, or $OCIO, to be a config file")
    return [_check(f"nuke: {nuke.name} ships {names}", not old, detail, problem=False)]


def _quoted(*words: str) -> str:
    """A command as it pastes into the shell doctor runs in (a share path with spaces stays one argument)."""
    return subprocess.list2cmdline(words) if sys.platform == "win32" else shlex.join(words)


def _children(folder: Path) -> List[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _compiled(site: Path, abi: str) -> List[str]:
    return glob.glob(str(site / "pydantic_core" / f"_pydantic_core.*{abi[2:]}*"))


def _interpreter(abi: str) -> Optional[str]:
    version = f"{abi[2]}.{abi[3:]}"
    found = shutil.which(f"python{version}")
    candidates = [found] if found else []
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv, "versions", f"{version}*", "bin", f"python{version}")))
    for exe in candidates:
        if subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0:
            return exe
    return None


def _imports(root: Path, abi: str, what: str, modules: str) -> Dict[str, Any]:
    """Imports ``modules`` from the deployed tree in a Python of that ABI with no site-packages, as a DCC's Python
    would."""
    exe = _interpreter(abi)
    if exe is None:
        return _check(f"nuke: {abi} {what}", False, f"not checked: no Python {abi} here", problem=False)
    paths = [str(root / "python" / f"{abi}-{deps.this_platform()}"), str(root / "python" / abi),
             str(root / "python" / "common")]
    code = f"import sys; sys.path[:0] = {paths!r}; import {modules}"
    proc = subprocess.run([exe, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=120)
    tail = (proc.stderr.strip().splitlines() or [""])[-1]
    return _check(f"nuke: {abi} {what}", proc.returncode == 0,
                  f"imported with {exe}" if proc.returncode == 0 else f"{exe}: {tail}")


def _loads(root: Path, abi: str) -> Dict[str, Any]:
    return _imports(root, abi, "tree loads", "tether.settings, tether.farm.submit, pydantic_core")


def _media(root: Path, abi: str, redeploy: str) -> Dict[str, Any]:
    """Are the media libraries (tether.encode's) in the tree, and do they import: a Nuke without them sends Autopilot
    a zip of frames and TensorPix/Clipzy no sequence at all, which is a choice (--no-media), not a fault."""
    from tether.encode import MEDIA_LOSS, MEDIA_MODULES

    site = root / "python" / f"{abi}-{deps.this_platform()}"
    there = [label for module, label, _ in MEDIA_MODULES if (site / module).is_dir()]
    missing = [label for _, label, _ in MEDIA_MODULES if label not in there]
    what = "media libraries"
    if not there:
        return _check(f"nuke: {abi} {what}", False, f"not deployed (--no-media, or no wheels for this platform): "
                      f"in that Nuke, {MEDIA_LOSS}; {redeploy} without --no-media adds them", problem=False)
    if missing:
        return _check(f"nuke: {abi} {what}", False, f"{', '.join(missing)} missing from {site} (the others are "
                      f"there): run {redeploy} again")
    return _imports(root, abi, what, ", ".join(module for module, _, _ in MEDIA_MODULES))


def check_blender(binaries: Sequence[str]) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    versions = [blender_mod.binary_version(b) for b in binaries]
    if not binaries and shutil.which("blender"):
        versions.append(blender_mod.binary_version(shutil.which("blender") or "blender"))
    versions += [v for v in blender_mod.found_versions() if v not in versions]
    for version in versions:
        if not _supported(version):  # no extensions before 4.2: nothing of Tether's to look for there
            out.append(_check(f"blender {version}: extension installed", False, f"Blender {version} is too old for "
                              "extensions: Tether needs Blender 4.2 or newer", problem=False))
            continue
        folder = blender_mod.extensions_dir(version) / "tether"
        manifest = folder / "blender_manifest.toml"
        detail = f"{folder}"
        ok = manifest.is_file()
        if ok:
            match = re.search(r'(?m)^version\s*=\s*"([^"]+)"', manifest.read_text("utf-8"))
            detail += f" (version {match.group(1) if match else '?'})"
            py = deps.abi(deps.blender_python(version))
            wheels = [w for w in (folder / "wheels").glob("pydantic_core-*.whl") if f"-{py}-" in w.name]
            out.append(_check(f"blender {version}: pydantic-core for {py}", bool(wheels),
                              f"{len(wheels)} wheel(s) in {folder / 'wheels'}"))
        if not ok:
            detail += " is not there: install it with `tether install blender --user`"
        out.append(_check(f"blender {version}: extension installed", ok, detail, problem=bool(binaries)))
    return out


def _supported(version: str) -> bool:
    try:
        deps.blender_python(version)
        return True
    except Exception:
        return False


def check_keyring() -> Dict[str, Any]:
    try:
        import keyring
        from keyring.backends import fail

        ring = keyring.get_keyring()
        ok = not isinstance(ring, fail.Keyring)
        return _check("keyring", ok, f"{type(ring).__module__}.{type(ring).__name__}"
                      + ("" if ok else ": no OS keyring; use TETHER_* environment variables for secrets"),
                      problem=False)
    except Exception as exc:  # a broken backend must not stop the report
        return _check("keyring", False, f"unavailable ({type(exc).__name__}: {exc})", problem=False)


def check_network(profile: Optional[str]) -> List[Dict[str, Any]]:
    """The trust store and, per configured endpoint, the proxy its requests go through."""
    from tether import network
    from tether.errors import ConfigError
    from tether.settings import SERVICES, active_profile

    try:
        out = [_check("network: trust store", True, network.trust_store(), problem=False)]
    except ConfigError as exc:
        out = [_check("network: trust store", False, str(exc))]
    prof = active_profile(profile)
    for service in SERVICES:
        url = getattr(getattr(prof, service, None), "url", "")
        if url:
            proxy = network.proxy_for(url)
            out.append(_check(f"network: proxy for {service}", True,
                              f"{url} via {network.redact_proxy(proxy)}" if proxy else f"{url} direct (no proxy)",
                              problem=False))
    return out


def _answered(url: str, status: int) -> Tuple[bool, str]:
    """Any HTTP answer below 500 means the service is up; say what the status means for a bare base URL."""
    if status >= 500:
        return False, f"{url} answered HTTP {status}: the service is failing; try again later or ask its admin"
    if status in (401, 403):
        return True, f"reachable: {url} answered HTTP {status} (it wants credentials, as a bare request has none)"
    if status >= 400:
        return True, f"reachable: {url} answered HTTP {status} for its base URL (the service is up; its API routes " \
                     "are below it)"
    return True, f"reachable: {url} answered HTTP {status}"


def _not_running_hint(url: str, settings: Any) -> str:
    """For the 'local' profile's own endpoints: how to start the local services."""
    from tether.settings import LOCAL_PORT, LOCAL_PROFILE, local_base_url

    if settings.name != LOCAL_PROFILE or not url.startswith(local_base_url(settings.local_port)):
        return ""
    serve = "tether serve" if settings.local_port == LOCAL_PORT else f"tether serve --port {settings.local_port}"
    return f"; the local services are not running: start them with `{serve}`"


def check_endpoints(profile: Optional[str], timeout: float = 3.0) -> List[Dict[str, Any]]:
    import httpx
    from tether import network
    from tether.settings import SERVICES, load_settings

    out: List[Dict[str, Any]] = []
    settings = load_settings(profile)
    prof = settings.active
    for service in SERVICES:
        url = getattr(prof, service).url
        if not url:
            out.append(_check(f"endpoint {service}", True, "not configured", problem=False))
            continue
        try:
            with httpx.Client(timeout=timeout, follow_redirects=True, verify=network.ssl_context(),
                              mounts=network.LOOPBACK_MOUNTS) as client:
                reply = client.get(url)
            ok, detail = _answered(url, reply.status_code)
            out.append(_check(f"endpoint {service}", ok, detail))
        except httpx.HTTPError as exc:
            why = network.CERT_HINT if network.is_certificate_error(exc) else type(exc).__name__
            out.append(_check(f"endpoint {service}", False,
                              f"{url} did not answer ({why}){_not_running_hint(url, settings)}"))
    return out


def run(binaries: Sequence[str], profile: Optional[str], endpoints: bool = True) -> List[Dict[str, Any]]:
    checks = check_nuke() + check_blender(binaries) + [check_keyring()] + check_network(profile)
    if endpoints:
        checks += check_endpoints(profile)
    checks.append(_check("python", True, f"doctor runs on {sys.version.split()[0]}", problem=False))
    return checks
