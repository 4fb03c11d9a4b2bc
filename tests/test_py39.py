"""The core runs inside Nuke 14's Python 3.9: install it into a real 3.9 and evaluate every model there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHECK = r"""
import importlib, pkgutil, sys
import tether, tether_cli
assert sys.version_info[:2] == (3, 9), sys.version
skip = {"tether_cli.demo_cmd", "tether_cli.serve_cmd"}  # need the local services extra
names = [m.name for m in pkgutil.walk_packages(tether.__path__, "tether.")]
names += [m.name for m in pkgutil.walk_packages(tether_cli.__path__, "tether_cli.")]
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


@pytest.mark.xdist_group("py39")  # one worker builds the shared 3.9 venv, once
@pytest.mark.timeout(900)  # the shared venv (tests/py39_env.py) is built by the first test that asks for it
def test_core_imports_and_models_evaluate_on_python39(py39_venv: Path, tmp_path: Path) -> None:
    result = subprocess.run([str(py39_venv), "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok"), result.stdout
