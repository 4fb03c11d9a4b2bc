"""The panel's job monitor lists Autopilot, TensorPix and Clipzy jobs alike: jobs sent in one Nuke session (the clip
jobs from their dialogs' controllers) show up in a new session's panel built on the same registry, are followed to
the end by polling each service over real HTTP (the local services), and import from the Jobs tab beside their plate
on the plate's frames. Clipzy, which has no cancel route, says so instead of pretending to cancel."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
pytest.importorskip("qtpy")
av = pytest.importorskip("av")

import nuke  # noqa: E402
import numpy as np  # noqa: E402
from clips import bar_movie  # noqa: E402
from panel_support import monitor  # noqa: E402
from PIL import Image  # noqa: E402
from tether.autopilot.client import LOCAL_API_KEY as AUTOPILOT_KEY  # noqa: E402
from tether.autopilot.client import AutopilotClient  # noqa: E402
from tether.autopilot.submit import ServiceChoice  # noqa: E402
from tether.clipzy.client import ClipzyClient  # noqa: E402
from tether.jobs import JobState  # noqa: E402
from tether.registry import JobRegistry  # noqa: E402
from tether.tensorpix.client import LOCAL_API_KEY as TENSORPIX_KEY  # noqa: E402
from tether.tensorpix.client import TensorPixClient  # noqa: E402
from tether_nuke.clipservices import COLUMN, ClipzyNukeAdapter, TensorPixAdapter, tensorpix_options  # noqa: E402
from tether_nuke.plate_reader import read_plate  # noqa: E402
from tether_nuke.service import ServiceController  # noqa: E402
from waiting import PATIENCE, PATIENCE_MS, eventually  # noqa: E402

W, H, N = 64, 48, 8


@pytest.fixture(scope="module")
def services() -> Iterator[Any]:
    from tether_services.server import LocalServices

    with LocalServices(port=0, services=["autopilot", "tensorpix", "clipzy"]) as svc:
        yield svc


def movie(path: Path, rgb: Tuple[int, int, int], frames: int = N) -> Path:
    return bar_movie(path, frames, rgb, size=(W, H))


def movie_read(name: str, path: Path, start: int, xy: Tuple[int, int]) -> nuke.Node:
    read = nuke.nodes.Read()
    read.setName(name)
    read["file"].setValue(path.as_posix())
    for knob, value in (("first", 1), ("last", N), ("origfirst", 1), ("origlast", N)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue(str(start))
    read.setXYpos(*xy)
    return read


def sequence_read(folder: Path) -> nuke.Node:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 255, size=(H * 2, W * 2), dtype=np.uint8)
    for n in range(1001, 1011):
        k = n - 1001
        frame = np.roll(texture, 2 * k, axis=1)[:H, :W]
        Image.fromarray(np.stack([frame] * 3, axis=-1)).save(folder / f"shot.{n:04d}.png")
    read = nuke.nodes.Read()
    read.setName("ApPlate")
    read["file"].setValue(f"{folder.as_posix()}/shot.####.png")
    nuke.addFormat(f"{W} {H} 1 small")
    read["format"].setValue("small")
    for knob, value in (("first", 1001), ("last", 1010), ("origfirst", 1001), ("origlast", 1010)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("3001")
    return read


class Factories:
    """Clients of the local services for every (service, profile), as a Nuke session would make them."""

    def __init__(self, services: Any) -> None:
        self.urls = {name: services.url(name) for name in ("autopilot", "tensorpix", "clipzy")}

    def autopilot(self, profile: Any) -> AutopilotClient:
        return AutopilotClient(self.urls["autopilot"], api_key=AUTOPILOT_KEY)

    def tensorpix(self, profile: Any) -> TensorPixClient:
        return TensorPixClient(self.urls["tensorpix"], token=TENSORPIX_KEY)

    def clipzy(self, profile: Any) -> ClipzyClient:
        return ClipzyClient(self.urls["clipzy"])

    def clip_controllers(self, registry: JobRegistry, root: Path) -> Dict[str, ServiceController]:
        return {"tensorpix": ServiceController(TensorPixAdapter(), registry, self.tensorpix,
                                               download_root=root / "tensorpix", poll=0.1, poll_cap=0.3),
                "clipzy": ServiceController(ClipzyNukeAdapter(), registry, self.clipzy,
                                            download_root=root / "clipzy", poll=0.1, poll_cap=0.3)}


def test_jobs_of_every_service_survive_a_restart_are_followed_and_import(services: Any, tmp_path: Path,
                                                                        qtbot: Any) -> None:
    from tether_nuke.panel import COLUMNS, TetherPanel

    tpx_read = movie_read("TpxPlate", movie(tmp_path / "tpx.mp4", (40, 110, 200)), 1001, (100, 200))
    zy_read = movie_read("ZyPlate", movie(tmp_path / "zy.mp4", (40, 110, 200)), 2001, (400, 200))
    look = movie(tmp_path / "look.mp4", (210, 120, 40))
    ap_read = sequence_read(tmp_path / "seq")
    plates = {name: read_plate(node) for name, node in
              (("tensorpix", tpx_read), ("clipzy", zy_read), ("autopilot", ap_read))}  # main thread
    factories = Factories(services)
    registry_path = tmp_path / "jobs.sqlite"
    tensorpix, clipzy, autopilot = (services.service(n) for n in ("tensorpix", "clipzy", "autopilot"))

    # --- session 1: send all three, then close Nuke while they are still running ---------------------------------
    tensorpix.pause()
    autopilot.pause()
    clipzy.hold("style_application")
    ids: Dict[str, str] = {}
    try:
        first = factories.clip_controllers(JobRegistry(registry_path), tmp_path / "dl1")
        first_ap = monitor(JobRegistry(registry_path), factories.autopilot, tmp_path / "dl1", **first)
        try:
            # TensorPix returns from the 3rd sent frame on: the import must put it there from the record alone
            ids["tensorpix"] = first["tensorpix"].submit(plates["tensorpix"], tensorpix_options([1], start_frame=2),
                                                         follow=False).result(timeout=60)
            ids["clipzy"] = first["clipzy"].submit(plates["clipzy"], {"template": str(look)},
                                                   follow=False).result(timeout=60)
            ids["autopilot"] = first_ap.submit("autopilot", plates["autopilot"],
                                               ServiceChoice(roto=True)).result(timeout=60)
            assert clipzy.wait_held(30)
        finally:
            for ctl in (*first.values(), first_ap):
                ctl.close()

        # --- session 2: a new controller and panel on the same registry ---------------------------------------
        registry = JobRegistry(registry_path)
        controller = monitor(registry, factories.autopilot, tmp_path / "dl2" / "autopilot", poll=(0.1, 0.3),
                             **factories.clip_controllers(registry, tmp_path / "dl2"))
        panel = TetherPanel(controller)
        qtbot.addWidget(panel)
        try:
            panel.open_with((), "jobs")
            keys = {service: (service, job_id) for service, job_id in ids.items()}
            assert set(panel._rows) == set(keys.values())

            def cell(service: str, column: str) -> Any:
                row = panel._rows[keys[service]]
                if column == "Progress":
                    return panel.table.cellWidget(row, COLUMNS.index("State"))
                return panel.table.item(row, COLUMNS.index(column)).text()

            # what (the plate, the service and what it was asked), when (the time sent)
            assert {cell(s, "Service").split(":")[0] for s in keys} == {"Autopilot", "TensorPix", "Clipzy"}
            assert cell("autopilot", "Service") == "Autopilot: roto"
            assert cell("tensorpix", "Service") == "TensorPix: model 1"
            assert cell("clipzy", "Job") == "ZyPlate" and len(cell("clipzy", "Sent")) == 5  # HH:MM, today
            # one watcher per service with unfinished jobs; the held Clipzy job is seen running, live
            assert controller.watching() == ["autopilot", "clipzy", "tensorpix"]
            qtbot.waitUntil(lambda: cell("clipzy", "State") == "running" and cell("clipzy", "Progress").value() > 0,
                            timeout=PATIENCE_MS)
            assert all(not registry.get(*key).finished for key in keys.values())  # type: ignore[union-attr]

            # Clipzy has no cancel route: the button is off and says why; asking anyway says so, nothing is sent
            panel.table.selectRow(panel._rows[keys["clipzy"]])
            assert panel.selected_key() == keys["clipzy"]
            assert not panel.cancel_button.isEnabled()
            assert "no cancel route" in panel.cancel_button.toolTip()
            panel.cancel_selected()
            assert "cannot be cancelled" in panel.status.text() and "no cancel route" in panel.status.text()
            refused = controller.cancel("clipzy", ids["clipzy"])
            with pytest.raises(Exception, match="no cancel route"):
                refused.result(timeout=PATIENCE)
            panel.table.selectRow(panel._rows[keys["autopilot"]])
            assert panel.cancel_button.isEnabled() and panel.cancel_button.toolTip() == ""
            panel.table.selectRow(panel._rows[keys["clipzy"]])
            panel.import_selected()  # still running
            assert "only completed jobs can be imported" in panel.status.text()

            tensorpix.resume()
            autopilot.resume()
            clipzy.release()

            def all_done() -> bool:
                return all(cell(s, "State") == "completed" and cell(s, "Progress").value() == 100 for s in keys)

            qtbot.waitUntil(all_done, timeout=90000)
            qtbot.waitUntil(lambda: controller.watching() == [], timeout=PATIENCE_MS)  # nothing left to poll

            # Import from the Jobs tab, each through its own service's machinery
            for service in ("tensorpix", "clipzy", "autopilot"):
                panel.table.selectRow(panel._rows[keys[service]])
                assert panel.selected_key() == keys[service]
                panel.import_selected()

                def imported(job_id: str = ids[service]) -> bool:
                    nuke._run_main_queue()  # what run_on_main queued from the worker
                    return f"Imported job {job_id}" in panel.status.text() or panel.failure_box.failure is not None

                qtbot.waitUntil(imported, timeout=60000)
                assert panel.failure_box.failure is None, panel.failure_box.failure
        finally:
            controller.close()
    finally:
        tensorpix.resume()
        autopilot.resume()
        clipzy.release()

    enhanced = nuke.toNode("TpxPlate_tensorpix_v001")
    assert enhanced is not None and enhanced.Class() == "Read"
    assert (enhanced.firstFrame(), enhanced.lastFrame()) == (1003, 1000 + N)  # from the 3rd sent frame
    assert (enhanced.xpos(), enhanced.ypos()) == (100 + COLUMN, 200)
    styled = nuke.toNode("ZyPlate_clipzy_v001")
    assert styled is not None and (styled.firstFrame(), styled.lastFrame()) == (2001, 2000 + N)
    assert (styled.xpos(), styled.ypos()) == (400 + COLUMN, 200)
    assert Path(styled["file"].value()).is_relative_to(tmp_path / "dl2" / "clipzy")
    matte = nuke.toNode("ApPlate_roto_v001")
    assert matte is not None and (matte.firstFrame(), matte.lastFrame()) == (3001, 3010)
    for service, job_id in ids.items():
        record = JobRegistry(registry_path).get(service, job_id)
        assert record is not None and record.state is JobState.COMPLETED and record.fetched_at is not None


class Unreachable:
    """A client factory for a test in which nothing may be polled."""

    def __init__(self) -> None:
        self.made: List[Any] = []

    def __call__(self, profile: Any) -> Any:
        self.made.append(profile)
        raise AssertionError("a client was made although no job is active")


def test_nothing_is_polled_while_no_job_is_active(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    for service, job_id in (("autopilot", "a1"), ("tensorpix", "101"), ("clipzy", "z1")):
        registry.record(service=service, job_id=job_id, state=JobState.COMPLETED, progress=100.0)
    registry.record(service="farm", job_id="f1", state=JobState.RUNNING)  # not a Nuke service: not listed
    unreachable = Unreachable()
    controller = monitor(registry, unreachable, tensorpix=ServiceController(TensorPixAdapter(), registry, unreachable),
                         clipzy=ServiceController(ClipzyNukeAdapter(), registry, unreachable))
    try:
        assert controller.watch() == [] and controller.watching() == []
        assert {r.key for r in controller.jobs()} == {("autopilot", "a1"), ("tensorpix", "101"), ("clipzy", "z1")}
        assert controller.cancel_note("autopilot") is None
        assert "no way to cancel" in (controller.cancel_note("tensorpix") or "")
        assert unreachable.made == []
    finally:
        controller.close()


def test_a_wrong_tether_agent_setting_still_follows_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TETHER_AGENT=sometimes is refused by the next send with what to write instead; the Jobs tab meanwhile follows
    its jobs by polling, rather than failing on the watcher's thread."""
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    registry.record(service="tensorpix", job_id="101", state=JobState.RUNNING)
    asked: List[Any] = []

    def unreachable(profile: Any) -> Any:
        asked.append(profile)
        raise ConnectionError("nothing listens here")

    monkeypatch.setenv("TETHER_AGENT", "sometimes")
    controller = monitor(registry, tensorpix=ServiceController(TensorPixAdapter(), registry, unreachable))
    try:
        assert controller.watch() == ["tensorpix"]
        eventually(lambda: asked, message="the watcher to ask the service itself")
    finally:
        controller.close()


class CountingTensorPix(TensorPixClient):
    """The local TensorPix's client, noting which thread asks for which job (the watcher's threads and the clip
    controller's workers have names of their own)."""

    def __init__(self, url: str, asked: List[Tuple[str, str]]) -> None:
        super().__init__(url, token=TENSORPIX_KEY)
        self.asked = asked

    def get_tensorpix_job(self, job_id: str) -> Any:
        import threading

        self.asked.append((str(job_id), threading.current_thread().name))
        return super().get_tensorpix_job(job_id)


def test_a_clip_section_send_with_the_monitor_open_is_polled_once_and_imported_once(
        services: Any, tmp_path: Path, qtbot: Any) -> None:
    from qtpy import QtCore
    from tether_nuke import commands
    from tether_nuke.panel import COLUMNS, TetherPanel

    factories = Factories(services)
    asked: List[Tuple[str, str]] = []
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    clip = ServiceController(TensorPixAdapter(), registry,
                             lambda profile: CountingTensorPix(factories.urls["tensorpix"], asked),
                             download_root=tmp_path / "dl" / "tensorpix", poll=0.1, poll_cap=0.3)
    controller = monitor(registry, factories.autopilot, tmp_path / "dl" / "autopilot", poll=(0.1, 0.3),
                         tensorpix=clip)
    panel = TetherPanel(controller)
    qtbot.addWidget(panel)
    events: List[Tuple[str, Any]] = []
    clip.add_listener(lambda kind, payload: events.append((kind, payload)))
    tensorpix = services.service("tensorpix")
    older_read = movie_read("OldPlate", movie(tmp_path / "old.mp4", (90, 30, 30)), 1, (0, 0))
    read = movie_read("DlgPlate", movie(tmp_path / "dlg.mp4", (30, 90, 30)), 1001, (300, 0))
    tensorpix.pause()
    try:
        # a job the monitor follows (sent earlier, not from the panel's section): a TensorPix watcher runs for it
        older = clip.submit(read_plate(older_read), tensorpix_options([1]), follow=False).result(timeout=60)
        qtbot.waitUntil(lambda: controller.watching() == ["tensorpix"], timeout=PATIENCE_MS)

        section = commands.open_clip_service("tensorpix")  # the open panel's, found through Qt
        assert section is not None, nuke._messages
        assert section is panel.sections["tensorpix"] and commands.open_clip_service("tensorpix") is section
        assert panel.current_service() == "tensorpix"
        assert section.controller is controller.service("tensorpix")  # one controller per service, shared
        qtbot.waitUntil(lambda: section.models_box.count() > 0, timeout=PATIENCE_MS)
        read.setSelected(True)
        panel.follow_selection()
        section.models_box.item(0).setCheckState(QtCore.Qt.CheckState.Checked)
        panel.submit()
        qtbot.waitUntil(lambda: any(kind == "submitted" and p != older for kind, p in events), timeout=60000)
        [sent] = [p for kind, p in events if kind == "submitted" and p != older]
        assert controller.follows(("tensorpix", sent))
        # listed in the monitor at once
        qtbot.waitUntil(lambda: ("tensorpix", sent) in panel._rows, timeout=PATIENCE_MS)

        def polls(job_id: str) -> int:
            return services.requests.count("GET", rf"/tensorpix/api/jobs/{job_id}/$")

        # several poll cycles of both jobs while the service holds them queued
        qtbot.waitUntil(lambda: polls(sent) >= 6 and polls(older) >= 6, timeout=PATIENCE_MS)
        assert controller.watching() == ["tensorpix"]  # still following the older job
        pollers = {thread for job_id, thread in asked if job_id == sent}
        assert pollers and all(t.startswith("tether-tensorpix") for t in pollers), pollers  # its controller's
        assert {t for job_id, t in asked if job_id == older} == {"tether-nuke-watch-tensorpix"}
    finally:
        tensorpix.resume()

    def cell(job_id: str, column: str) -> Any:
        row = panel._rows[("tensorpix", job_id)]
        if column == "Progress":
            return panel.table.cellWidget(row, COLUMNS.index("State"))
        return panel.table.item(row, COLUMNS.index(column)).text()

    try:
        def imported() -> bool:
            nuke._run_main_queue()
            return "Imported job" in panel.status.text() or any(kind == "error" for kind, _ in events)

        qtbot.waitUntil(imported, timeout=60000)
        assert not [p for kind, p in events if kind == "error"]
        # the monitor shows the section's job finished (from its controller's follower), and nothing is left to poll
        qtbot.waitUntil(lambda: cell(sent, "State") == "completed" and cell(sent, "Progress").value() == 100,
                        timeout=PATIENCE_MS)
        qtbot.waitUntil(lambda: controller.watching() == [] and not controller.follows(("tensorpix", sent)),
                        timeout=PATIENCE_MS)
        nuke._run_main_queue()
    finally:
        controller.close()
    nuke._run_main_queue()
    reads = [n.name() for n in nuke.allNodes("Read") if n.name().startswith("DlgPlate_")]
    assert reads == ["DlgPlate_tensorpix_v001"], reads  # imported once, by the one follower
    assert [p[0] for kind, p in events if kind == "imported"] == [sent]
    assert nuke.toNode("OldPlate_tensorpix_v001") is None  # the monitor follows; it does not import on its own
    # every GET of the section's job the service answered came from its controller
    assert polls(sent) == len([1 for job_id, _ in asked if job_id == sent])
    assert all(t.startswith("tether-tensorpix") for job_id, t in asked if job_id == sent)


class Unanswered:
    """A TensorPix client that cannot reach the service: each look fails once the test opens ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.asked: List[str] = []

    def __call__(self, profile: Any) -> Any:
        return self

    def get_job(self, job_id: str) -> Any:
        self.asked.append(threading.current_thread().name)
        self.gate.wait(30)
        raise ConnectionError("TensorPix did not answer")

    def jobs_by_id(self, ids: Any) -> Any:
        return {job_id: self.get_job(job_id) for job_id in ids}

    def abort(self) -> None:  # the controller's close: nothing of its own to end
        pass

    def close(self) -> None:
        pass


def test_the_monitor_leaves_a_job_its_service_follows_until_released(tmp_path: Path) -> None:
    """A job a service controller follows itself (a dialog's send) is not polled by the monitor too; when that
    follower gives up before the end, the monitor takes the job over."""
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    registry.record(service="tensorpix", job_id="301", state=JobState.RUNNING, progress=10.0)
    client = Unanswered()
    clip = ServiceController(TensorPixAdapter(), registry, client, poll=0.05, poll_cap=0.1)
    controller = monitor(registry, Unreachable(), poll=(0.05, 0.1), tensorpix=clip)
    seen: List[Any] = []
    controller.add_listener(lambda kind, payload: seen.append((kind, payload)))
    try:
        clip.take("301")
        assert controller.follows(("tensorpix", "301"))
        assert controller.watch() == [] and controller.watching() == []
        eventually(lambda: client.asked, message="the dialog's follower to ask")
        assert all(name.startswith("tether-tensorpix") for name in client.asked)
        client.gate.set()  # the follower fails: it lets the job go, and the monitor follows it from here
        eventually(lambda: "tether-nuke-watch-tensorpix" in client.asked, message="the monitor to ask")
        assert not controller.follows(("tensorpix", "301"))
        assert controller.watching() == ["tensorpix"]
        assert any(kind == "error" and "did not answer" in payload for kind, payload in seen)
    finally:
        controller.close()
