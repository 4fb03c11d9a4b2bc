"""One progress callback type (tether.progress.Progress) for every transfer, client, submitter and DCC."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest
from tether import jobs, transfer
from tether.autopilot.client import AutopilotClient
from tether.clipzy.client import ClipzyClient
from tether.farm.client import FarmClient
from tether.move.client import MoveClient
from tether.progress import Progress
from tether.tensorpix.client import TensorPixClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("function", [
    FarmClient.fetch_outputs, AutopilotClient.fetch_outputs, TensorPixClient.fetch_outputs,
    ClipzyClient.fetch_outputs, MoveClient.fetch_outputs, jobs.JobService.fetch_outputs, transfer.download,
], ids=lambda f: f.__qualname__)
def test_every_fetch_takes_the_one_progress_type(function: object) -> None:
    module = sys.modules[function.__module__]  # type: ignore[attr-defined]
    annotation = inspect.signature(function).parameters["progress"].annotation  # a string: postponed annotations
    assert annotation == "Optional[Progress]" and module.Progress is Progress  # type: ignore[attr-defined]


def test_no_module_spells_its_own_progress_callable() -> None:
    spelled = re.compile(r"Callable\[\[int, int\], (Optional\[bool\]|bool)\]")
    offenders = [str(p.relative_to(ROOT)) for folder in ("core", "nuke_plugin", "blender_addon")
                 for p in (ROOT / folder).rglob("*.py")
                 if p.name != "progress.py" and spelled.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
