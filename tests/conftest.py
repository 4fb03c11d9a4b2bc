"""Shared fixtures: the running local services, per-test faults, and a tiny real .blend.

- ``local_services`` (session): a :class:`tether_services.server.LocalServices` on 127.0.0.1, port 0, temp store,
  2 render workers (started on the first job, not before).
- ``faults`` (function): ``local_services.faults``, cleared after the test (and before it, in case).
- ``farm_url`` (session): ``local_services.url("farm")``.
- ``farm_token`` / ``farm_headers`` (function): a fresh login of the local farm account and its auth header.
- ``tiny_blend`` (function): a private copy, in ``tmp_path/scene/``, of a tiny scene built once per session in a
  subprocess with bpy (this process never imports bpy): camera, cube with an image texture
  (``textures/checker.png``, referenced relatively), light, Cycles CPU 32x32 with 2 samples, frames 1-8,
  ``render.filepath = //render/frame_####`` (PNG). Returns the .blend path.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import httpx
import pytest
from hypothesis import HealthCheck, settings
from tether_services.farm.engine import EMAIL, PASSWORD
from tether_services.faults import Faults
from tether_services.server import LocalServices

# Property tests are judged on what they find, not on how fast a shared 2-core machine draws their inputs: a stall
# there failed test_frames' health check ("input generation is slow", one draw of 1.2 s) with nothing wrong.
settings.register_profile("tether", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tether")


@pytest.fixture(scope="session")
def local_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServices]:
    with LocalServices(port=0, state_dir=tmp_path_factory.mktemp("services"), workers=2) as services:
        yield services


@pytest.fixture
def faults(local_services: LocalServices) -> Iterator[Faults]:
    local_services.faults.clear()
    yield local_services.faults
    local_services.faults.clear()


@pytest.fixture(scope="session")
def farm_url(local_services: LocalServices) -> str:
    return local_services.url("farm")


@pytest.fixture
def farm_token(farm_url: str) -> str:
    reply = httpx.post(f"{farm_url}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    reply.raise_for_status()
    return str(reply.json()["access_token"])


@pytest.fixture
def farm_headers(farm_token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {farm_token}"}


@pytest.fixture(scope="session")
def _tiny_scene_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tether_services.farm.scenes import build_demo_scene

    folder = tmp_path_factory.mktemp("tiny-scene")
    return Path(build_demo_scene(folder / "tiny.blend", frames="1-8", size=32, samples=2)["blend"])


@pytest.fixture
def tiny_blend(tmp_path: Path, _tiny_scene_master: Path) -> Path:
    target = tmp_path / "scene"
    shutil.copytree(_tiny_scene_master.parent, target, ignore=shutil.ignore_patterns(".blender-user", "render"))
    return target / _tiny_scene_master.name


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's config, registry or hash cache, or sees their TETHER_* settings."""
    import os

    for name in list(os.environ):
        if name.startswith("TETHER_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("TETHER_DATA_DIR", str(home / "data"))
    # No test finds the user's agent or starts one unless it asks to (tests/test_agent.py).
    monkeypatch.setenv("TETHER_RUNTIME_DIR", str(home / "run"))
    monkeypatch.setenv("TETHER_AGENT", "off")


@pytest.fixture(scope="session")
def py39_venv(request: pytest.FixtureRequest) -> Path:
    """The python of a session-wide Python 3.9 venv with Tether, qtpy and PySide2 5.15 (Nuke 14's stack); see
    tests/py39_env.py. Built in the background from the start of the session (see :func:`_start_build`). Skips when
    this machine has no Python 3.9; a failed install is an error, not a skip."""
    _start_build("venv39", request.config)  # started at collection, unless collected otherwise
    built = _build_result("venv39")
    if built is None:
        pytest.skip("no Python 3.9 interpreter on this machine")
    return built / "bin" / "python"


@pytest.fixture
def memkeyring() -> Iterator[Any]:
    """Secrets go to an in-memory keyring for the test (see tests/memkeyring.py)."""
    import keyring
    from memkeyring import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def autopilot_services(local_services: LocalServices) -> Iterator[LocalServices]:
    """The session's local services, with the local Autopilot as new before the test and put back after it."""
    _fresh_autopilot(local_services)
    yield local_services
    _fresh_autopilot(local_services)


def _fresh_autopilot(services: LocalServices) -> None:
    """No faults, no pause, no quota used, default limits, list shape and id form, and nothing left to run: a job an
    earlier test left pending or running (one paused and never awaited, a send a closed panel left behind) is
    cancelled. Left to run, it would queue this test's inferences behind its own on the two workers and add its
    frames to the quota this test counts."""
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient

    autopilot = services.service("autopilot")
    services.faults.clear()
    autopilot.rate_limit = 0
    autopilot.clock = time.monotonic
    autopilot._rate.clear()
    autopilot.echo_exports = True
    autopilot.list_form = "paged"
    autopilot.id_form = "string"
    with AutopilotClient(services.url("autopilot"), api_key=LOCAL_API_KEY) as client:
        for status in ("pending", "running"):
            for job in list(client.iter_jobs(status=status)):
                client.cancel(str(job.id))
    autopilot.resume()
    autopilot.frames_inferenced = 0
    autopilot.frame_limit = 1000


def _build_venv39(folder: Path) -> Optional[Path]:
    from py39_env import build_venv, python39

    python = python39()
    return None if python is None else build_venv(python, folder).parents[1]


def _build_venv312(folder: Path) -> Optional[Path]:
    """A Python 3.12 venv with mypy and fake-bpy-module (whose stubs need 3.12), or None without a 3.12."""
    import subprocess

    from py39_env import find_python

    python = find_python("3.12")
    if python is None:
        return None
    subprocess.run([python, "-m", "venv", str(folder)], check=True)
    pip = subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "mypy>=1.14,<1.19",
                          "fake-bpy-module", "pydantic", "httpx"], capture_output=True, text=True, timeout=800)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return folder


# Venvs that take pip a while, each started on a thread of its own when a test that needs it is collected, so its
# install overlaps the other tests instead of adding to them: name -> its builder; name -> (the thread's pool, the
# build's future)
_BUILDERS: Dict[str, Callable[[Path], Optional[Path]]] = {"venv39": _build_venv39, "venv312": _build_venv312}
_BUILDS: Dict[str, Any] = {}


def _shared_build(folder: Path, build: Callable[[Path], Optional[Path]]) -> Optional[Path]:
    """Under pytest-xdist every worker collects the test, so each starts this; one builds under a file lock and the
    others find its ``done`` marker (the folder is keyed by the run's id, shared by its workers)."""
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder.parent / "done"
        if done.exists():
            return folder if done.read_text() == "built" else None
        built = build(folder)
        done.write_text("built" if built is not None else "none")
        return built


def _start_build(name: str, config: pytest.Config) -> None:
    """The build of venv ``name`` begun, in the run's own temporary folder (shared by its xdist workers; pytest
    removes it with the run's other folders, three runs later)."""
    if name in _BUILDS:
        return
    from concurrent.futures import ThreadPoolExecutor

    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    parent = (base.parent if hasattr(config, "workerinput") else base) / f"tether-{name}"
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tether-{name}")
    _BUILDS[name] = (pool, pool.submit(_shared_build, parent / "venv", _BUILDERS[name]))


def _build_result(name: str) -> Optional[Path]:
    """The venv ``name`` (None: this machine lacks its Python), waited for."""
    _BUILDS[name][0].shutdown(wait=False)
    built: Optional[Path] = _BUILDS[name][1].result(timeout=900)
    return built


# The longest tests go first, while every worker is busy, so they end before the short ones do and no worker runs one
# alone at the end (xdist hands out tests in this order; an xdist_group goes where its first test is). Those that wait
# for a venv built in the background come next, once it has had the first ones' time to build.
LONGEST_FIRST = (
    "test_install.py::test_wheel_installed_tether_deploys_both_plugins_offline",
    "test_quality.py::test_mypy_nuke_plugin_clean",
    "test_quality.py::test_mypy_clean",
    "test_install.py::test_nuke_gets_the_media_libraries_and_doctor_imports_them",
    "test_install.py::test_doctor_reports_install_and_endpoints",
    "test_install.py::test_doctor_lists_nukes_and_their_trees",
    "test_install.py::test_studio_nuke_env_rez_versions_and_rollback",
    "test_demo.py::test_demo_round_trips",
    "test_install.py::test_user_install_is_idempotent_and_uninstall_restores_init_py",
    "test_install.py::test_studio_blender_repository_installs_and_enables_in_bpy",
    "test_agent.py::test_handed_off_submit_survives_the_submitter_and_a_killed_agent",
    "test_quality.py::test_mypy_blender_addon_clean",
    "nuke/test_nuke_panel_pyside2.py::",
)


def _rank(item: pytest.Item) -> int:
    return next((i for i, key in enumerate(LONGEST_FIRST) if key in item.nodeid), len(LONGEST_FIRST))


@pytest.hookimpl(trylast=True)  # after -k/-m deselected: a venv starts only for a test that runs
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: List[pytest.Item]) -> None:
    """When the add-on's type check (its 3.12 venv, ~20 s of pip) or a Python 3.9 test (the 3.9 venv with PySide2,
    ~30 s) is collected, its venv starts building now, so that pip overlaps the other tests; the longest tests are
    moved to the front (:data:`LONGEST_FIRST`; the rest keep their order)."""
    items.sort(key=_rank)
    if config.option.collectonly:
        return
    if any(item.name == "test_mypy_blender_addon_clean" for item in items):
        _start_build("venv312", config)
    if any("py39_venv" in getattr(item, "fixturenames", ()) for item in items):
        _start_build("venv39", config)


@pytest.fixture(scope="session")
def venv312() -> Iterator[Any]:
    """The future of the 3.12 venv (None inside without a 3.12)."""
    yield _BUILDS["venv312"][1]
