"""The README's first command: `tether demo` renders, fetches and runs every round trip, from nothing."""

from __future__ import annotations

from pathlib import Path

from tether.nukeimport.nk import parse_nk
from tether_cli import main


def test_demo_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "tether-demo"
    assert main(["demo", "--out", str(out)]) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert [f.name for f in frames] == [f"frame_{n:04d}.png" for n in range(1, 25)]
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in frames)
    nodes = parse_nk((out / "autopilot" / "tether_demo.nk").read_text())
    classes = {node.node_class for node in nodes}
    assert {"Read", "Copy", "Camera3"} <= classes, classes
    assert list((out / "tensorpix").glob("*.mp4")) and list((out / "clipzy").glob("*.mp4"))
    assert list((out / "clipzy").glob("*.style.json")) and list((out / "move").glob("*.fbx"))
