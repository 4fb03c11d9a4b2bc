"""Clipzy through the clip-in/clip-out seam against the strict fake nuke: style the selected Read's movie from a
template movie with the local Clipzy engine over HTTP, see the stage while it runs, and import the styled movie as a
Read beside the plate on the plate's frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Tuple

import nuke
import numpy as np
import pytest
from clips import bar_movie
from tether.clipzy.client import ClipzyClient
from tether.jobs import JobState
from tether.registry import JobRegistry
from tether_nuke.clipservices import COLUMN, ClipzyNukeAdapter
from tether_nuke.plate_reader import read_plate
from tether_nuke.service import ServiceController
from waiting import eventually

av = pytest.importorskip("av")
W, H, N = 64, 48, 8


@pytest.fixture(scope="module")
def services() -> Iterator[Any]:
    from tether_services.server import LocalServices

    with LocalServices(port=0, services=["clipzy"]) as svc:
        yield svc


def movie(path: Path, rgb: Tuple[int, int, int], frames: int = N) -> Path:
    return bar_movie(path, frames, rgb, size=(W, H))


def mean_rgb(path: str) -> Tuple[np.ndarray, int]:
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames).astype(np.float64).mean(axis=(0, 1, 2)), len(frames)


def test_style_the_selected_movie_see_the_stage_and_import_it(services: Any, tmp_path: Path) -> None:
    shot = movie(tmp_path / "plate.mp4", (40, 110, 200))
    look = movie(tmp_path / "look.mp4", (210, 120, 40))
    read = nuke.nodes.Read()
    read.setName("Plate1")
    read["file"].setValue(shot.as_posix())
    for knob, value in (("first", 1), ("last", N), ("origfirst", 1), ("origlast", N)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("1001")
    read.setXYpos(100, 200)
    plate = read_plate(read)  # main thread, before the worker

    engine = services.service("clipzy")
    adapter = ClipzyNukeAdapter()
    url = services.url("clipzy")
    events: List[Any] = []
    ctl = ServiceController(adapter, JobRegistry(tmp_path / "jobs.sqlite"), lambda profile: ClipzyClient(url),
                            download_root=tmp_path / "dl", poll=0.05, poll_cap=0.2)
    ctl.add_listener(lambda kind, payload: events.append((kind, payload)))
    engine.hold("style_application")
    try:
        job_id = ctl.submit(plate, {"template": str(look)}).result(timeout=60)
        assert engine.wait_held(30)
        eventually(lambda: any(kind == "job" and payload.state is JobState.RUNNING
                               and "applying the style" in adapter.stage_text(payload) for kind, payload in events),
                   message="the stage in a job event", pump=nuke._run_main_queue)
        engine.release()
        eventually(lambda: any(kind in ("imported", "error") for kind, _ in events), message="the import",
                   pump=nuke._run_main_queue)
    finally:
        engine.release()
        ctl.close()
    errors = [payload for kind, payload in events if kind == "error"]
    assert not errors, errors
    [(imported_id, applied)] = [payload for kind, payload in events if kind == "imported"]
    assert imported_id == job_id
    node = nuke.toNode(applied.names["Plate1_clipzy"])
    assert node is not None and node.Class() == "Read"
    assert (node.firstFrame(), node.lastFrame()) == (1001, 1000 + N)
    assert (node.xpos(), node.ypos()) == (100 + COLUMN, 200)
    styled = Path(node["file"].value())
    assert styled.with_name(f"{styled.stem}.style.json").is_file()
    out_mean, count = mean_rgb(str(styled))
    in_mean, look_mean = mean_rgb(str(shot))[0], mean_rgb(str(look))[0]
    assert count == N and np.all(np.abs(out_mean - look_mean) < np.abs(out_mean - in_mean))
    record = ctl.registry.get("clipzy", job_id)
    assert record is not None and record.state is JobState.COMPLETED and record.fetched_at is not None
    assert record.extra["plate"]["node"] == "Plate1" and record.extra["template_video_id"]
