"""The panel and its clip-service sections on Nuke 14's stack: Python 3.9 + PySide2 5.15, offscreen.

pytest-qt no longer supports PySide2, so tests/nuke/pyside2_driver.py drives the widgets (QtTest clicks and keys,
Qt's event loop for the worker threads' queued signals) in the shared 3.9 venv (tests/py39_env.py) and reports each
check as JSON. test_nuke_panel.py covers the same behaviour on PySide6 (Nuke 16).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHECKS = {
    "check_no_read_selected_blocks_sending", "check_clip_facts_and_defaults", "check_typing_and_clicking_revalidate",
    "check_still_image_is_refused", "check_preview_dialog", "check_job_table_follows_the_registry_and_live_events",
    "check_clip_service_jobs_in_the_monitor", "check_settings_page", "check_the_panel_follows_the_selection_or_the_pin",
    "check_closing_stops_the_events", "check_commands_open_the_panel_through_nukescripts",
    "check_options_spec_section", "check_tensorpix_section_lists_models", "check_tensorpix_models_from_the_cache",
}


@pytest.fixture(scope="module")
def tensorpix() -> Iterator[Any]:
    from tether_services.server import LocalServices

    with LocalServices(port=0, services=["tensorpix"]) as svc:
        yield svc


@pytest.mark.xdist_group("py39")  # one worker builds the shared 3.9 venv, once
@pytest.mark.timeout(900)  # builds the shared 3.9 venv when it runs first; the driver itself takes seconds
def test_panel_and_dialog_work_on_pyside2(py39_venv: Path, tensorpix: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QT_", "PYTHON", "TETHER_")) and k not in ("VIRTUAL_ENV", "PYSIDE_DESIGNER_PLUGINS")}
    env.update(QT_API="pyside2", QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(HERE / "fake"), str(ROOT / "nuke_plugin"), str(ROOT / "tests")]),
               TETHER_DATA_DIR=str(tmp_path / "data"), TETHER_CONFIG_DIR=str(tmp_path / "config"))
    result = subprocess.run([str(py39_venv), str(HERE / "pyside2_driver.py"), str(tmp_path / "work"),
                             tensorpix.url("tensorpix")], capture_output=True, text=True, timeout=180, cwd=tmp_path,
                            env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the driver printed no report (exit {result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}"
    report = json.loads(lines[-1])
    # the binding really is PySide2 (qtpy falls back silently to any binding it finds) under Python 3.9
    assert report["api"] == "PySide2", report
    assert report["pyside"].startswith("5.15") and report["qt"].startswith("5.15"), report
    assert report["python"][:2] == [3, 9], report
    failed = {name: text for name, text in report["checks"].items() if text != "ok"}
    assert not failed, "\n".join(f"{name}:\n{text}" for name, text in failed.items()) + result.stderr[-2000:]
    assert set(report["checks"]) == CHECKS
    assert result.returncode == 0, result.stderr[-4000:]
