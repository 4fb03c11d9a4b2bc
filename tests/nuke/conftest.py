"""The plugin's tests run against the strict fake ``nuke`` (tests/nuke/fake) with nuke_plugin on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parent / "fake"
PLUGIN = ROOT / "nuke_plugin"
for path in (str(PLUGIN), str(FAKE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import nuke  # noqa: E402  (the fake, from the path set above)
import nukescripts  # noqa: E402

assert getattr(nuke, "_reset", None) is not None, f"a real nuke module was imported: {nuke.__file__}"


@pytest.fixture(autouse=True)
def fresh_nuke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    nuke._reset()
    nukescripts.panels._reset()
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    yield
    nuke._reset()
