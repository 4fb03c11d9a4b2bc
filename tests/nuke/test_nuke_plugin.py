"""The plugin against the strict fake: start-up files, menu, threading rules, and a real round trip with the local
Autopilot over HTTP (submit from a Read with an offset and a trimmed range, follow, import on plate frames)."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, List

import nuke
import nukescripts
import numpy as np
import pytest
from panel_support import monitor
from PIL import Image
from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
from tether.autopilot.submit import ServiceChoice
from tether.jobs import JobState
from tether.registry import JobRegistry
from tether_nuke import mainthread
from tether_nuke.plate_reader import read_plate
from waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parent / "fake"
PLUGIN = ROOT / "nuke_plugin"


# --- the fake is strict -------------------------------------------------------------------------------------------
def test_the_fake_refuses_what_nuke_would() -> None:
    read = nuke.nodes.Read()
    with pytest.raises(AttributeError):
        nuke.createNodee("Read")  # type: ignore[attr-defined]
    with pytest.raises(NameError):
        read["flie"]
    assert read.knob("flie") is None
    with pytest.raises(ValueError):
        read["frame_mode"].setValue("start_at")
    with pytest.raises(AttributeError):
        read.colour = 1  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="unknown command"):
        nuke.createNode("NoSuchNode")
    with pytest.raises(RuntimeError, match="hangs Nuke"):
        nuke.executeInMainThread(print)
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            read.name()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors and "off the main thread" in str(errors[0])


def test_run_on_main_never_calls_execute_in_main_thread_from_main() -> None:
    seen: List[str] = []
    mainthread.run_on_main(seen.append, "direct")  # the fake raises if this queued from the main thread
    thread = threading.Thread(target=mainthread.run_on_main, args=(seen.append, "queued"))
    thread.start()
    thread.join()
    assert seen == ["direct"]
    assert nuke._run_main_queue() == 1 and seen == ["direct", "queued"]


# --- start-up -----------------------------------------------------------------------------------------------------
def test_init_adds_only_paths_and_survives_a_terminal_session(tmp_path: Path) -> None:
    nuke.env["gui"] = False
    runpy.run_path(str(PLUGIN / "init.py"))
    assert nuke._menus == {}  # no UI from init.py


def test_menu_has_every_entry_and_registers_the_panel() -> None:
    runpy.run_path(str(PLUGIN / "menu.py"))
    tether = nuke.menu("Nuke").findItem("Tether")
    assert tether is not None
    assert [i.name() for i in tether.items()] == ["Roto", "Track camera", "Depth", "All three",
                                                  "Enhance (TensorPix)", "Style from template (Clipzy)",
                                                  "Job monitor", "Settings"]
    assert "com.tether.autopilot" in nukescripts.panels._registered


def test_menu_errors_never_break_startup(caplog: pytest.LogCaptureFixture) -> None:
    nuke.env["gui"] = False  # nuke.menu raises, as it would in a session without menus
    runpy.run_path(str(PLUGIN / "menu.py"))
    assert "cannot create the Tether menu" in caplog.text


def test_startup_imports_no_httpx_pydantic_or_qt() -> None:
    code = (
        f"import sys, runpy; sys.path[:0] = [{str(FAKE)!r}, {str(PLUGIN)!r}]; import nuke; "
        f"runpy.run_path({str(PLUGIN / 'init.py')!r}); runpy.run_path({str(PLUGIN / 'menu.py')!r}); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('httpx', 'pydantic', 'qtpy', 'PySide2', 'PySide6', 'tether', 'numpy')); print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- the round trip with the local Autopilot --------------------------------------------------------------------------
W, H = 64, 48
FIRST_ON_DISK, LAST_ON_DISK = 1001, 1020
FIRST, LAST = 1003, 1014  # the Read's range: 12 frames
START = 2001


@pytest.fixture(scope="module")
def services() -> Iterator[Any]:
    from tether_services.server import LocalServices

    with LocalServices(port=0, services=["autopilot"]) as svc:
        yield svc


def plate_frames(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 255, size=(H * 2, W * 2), dtype=np.uint8)
    for n in range(FIRST_ON_DISK, LAST_ON_DISK + 1):
        k = n - FIRST_ON_DISK
        frame = np.roll(np.roll(texture, 2 * k, axis=1), k, axis=0)[:H, :W]
        rgb = np.stack([frame] * 3, axis=-1).copy()
        rgb[10:20, 4 + 2 * k:14 + 2 * k] = (250, 220, 10)
        Image.fromarray(rgb).save(folder / f"shot.{n:04d}.png")
    return f"{folder.as_posix()}/shot.####.png"


def test_submit_follow_and_import_on_plate_frames(tmp_path: Path, services: Any) -> None:
    read = nuke.nodes.Read()
    read.setName("Plate1")
    read["file"].setValue(plate_frames(tmp_path / "plate"))
    nuke.addFormat(f"{W} {H} 1 small")
    read["format"].setValue("small")
    for knob, value in (("first", FIRST), ("last", LAST), ("origfirst", FIRST_ON_DISK),
                        ("origlast", LAST_ON_DISK)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue(str(START))
    plate = read_plate(read)  # main thread
    url = services.url("autopilot")
    registry_path = tmp_path / "jobs.sqlite"

    def factory(profile: Any) -> AutopilotClient:
        return AutopilotClient(url, api_key=LOCAL_API_KEY)

    events: List[Any] = []
    first = monitor(JobRegistry(registry_path), factory, tmp_path / "dl", poll=(0.2, 0.5))
    first.add_listener(lambda kind, payload: events.append((kind, threading.current_thread().name)))
    try:
        job_id = first.submit("autopilot", plate, ServiceChoice(roto=True, tracking=True)).result(timeout=60)
        eventually(lambda: getattr(first.record("autopilot", job_id), "finished", False),
                   message="the job to finish", pump=nuke._run_main_queue)
    finally:
        first.close()
    record = first.record("autopilot", job_id)
    assert record is not None and record.state is JobState.COMPLETED
    assert record.extra["plate"]["sent"] == [FIRST, LAST] and record.extra["frame_count"] == LAST - FIRST + 1
    assert any(kind == "jobs" for kind, _ in events)
    assert all(name != threading.main_thread().name for _, name in events)  # events come from workers

    # Nuke closed and reopened: a new controller on the same registry lists the job and imports it
    second = monitor(JobRegistry(registry_path), factory, tmp_path / "dl2")
    try:
        assert [r.job_id for r in second.jobs()] == [job_id]
        done = second.import_job("autopilot", job_id)
        eventually(done.done, message="the import", pump=nuke._run_main_queue)
        names = done.result()
    finally:
        second.close()
    matte = nuke.toNode(names["Plate1_roto"])
    cam = nuke.toNode(names["Plate1_camera"])
    copy = nuke.toNode(names["Plate1_roto_alpha"])
    assert matte is not None and cam is not None and copy is not None
    assert (matte.firstFrame(), matte.lastFrame()) == (START, START + LAST - FIRST)
    assert copy.input(0) is read
    keys = [k.x for k in cam["rotate"].animation(1).keys()]  # noqa: SIM118 (Nuke's AnimationCurve)
    assert keys == [float(f) for f in range(START, START + LAST - FIRST + 1)]
    # the camera matches the service's own JSON, frame for frame
    solved = json.loads(next((tmp_path / "dl2").rglob("camera.json")).read_text())
    for row in solved["frames"]:
        frame = START + row["frame"] - 1
        assert cam["rotate"].getValueAt(frame, 1) == pytest.approx(row["rotate"][1], abs=1e-5)
    assert cam["focal"].value() == pytest.approx(solved["focal"])
