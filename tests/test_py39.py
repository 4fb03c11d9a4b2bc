"""The core runs inside Nuke 14's Python 3.9: install it into a real 3.9 and evaluate every model there."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import importlib, pkgutil, sys
import tether
assert sys.version_info[:2] == (3, 9), sys.version
skip = {"tether.cli.demo_cmd", "tether.cli.serve_cmd"}  # need the local services extra
names = [m.name for m in pkgutil.walk_packages(tether.__path__, "tether.")]
for name in names:
    if name not in skip:
        importlib.import_module(name)
from pydantic import BaseModel
models = [obj for name in names if name in sys.modules for obj in vars(sys.modules[name]).values()
          if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__.startswith("tether")]
for model in models:
    model.model_json_schema()  # forces every annotation to be evaluated under 3.9
from tether.farm.models import JobCreate
JobCreate(job_title="t", project="p", instance_type="i", frame_range="1-10x2", blender_version="b",
          output_path="o", upload_paths=["/a.blend"])
print("ok", len(names), "modules", len(models), "models")
"""


def _python39() -> str | None:
    found = shutil.which("python3.9")
    if found:
        probe = subprocess.run([found, "--version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return found
    for candidate in sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob("3.9*/bin/python3.9")):
        return str(candidate)
    return None


@pytest.mark.timeout(900)
def test_core_imports_and_models_evaluate_on_python39(tmp_path: Path) -> None:
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 interpreter on this machine")
    venv = tmp_path / "venv39"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], capture_output=True, text=True,
                             timeout=800)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    result = subprocess.run([str(py), "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok"), result.stdout
