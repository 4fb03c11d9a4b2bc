"""The Nuke panel hands a send to the Tether agent (issue 15, "hand off and go"): the plate is checked and encoded in
Nuke, the agent uploads, creates and records the job, so closing Nuke after the hand-off loses nothing; the job lands
once, recorded with what an import needs. Without an agent (``TETHER_AGENT=off``, none can be started) the send stays
in-process. The Jobs tab lists the sends the agent holds until they are jobs, and says where results that came home
went. Against a real agent on threads of this process and the local services over real HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("av")

import nuke
import numpy as np
from clips import bar_movie
from PIL import Image
from tether import agent
from tether.agent_server import Agent
from tether.registry import JobRegistry
from tether_nuke import controller as job_controller
from tether_nuke import service
from tether_nuke.clipservices import TensorPixAdapter, tensorpix_options
from tether_nuke.plate_reader import read_plate
from tether_nuke.service import HandedOff, ServiceController
from tether_services.server import LocalServices
from waiting import PATIENCE, PATIENCE_MS, eventually

W, H = 64, 48


@pytest.fixture
def agent_env(local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tuple[Agent, JobRegistry]]:
    """An agent of this test's own (runtime folder and registry), on profile ``local``'s services; the hand-off
    queue is read often, so a test waits on the agent, not on a poll's pause."""
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    monkeypatch.setenv("TETHER_AGENT", "auto")
    monkeypatch.setattr(service, "HANDOFF_POLL", (0.05, 0.2))
    monkeypatch.setattr(job_controller, "HANDOFF_POLL", (0.05, 0.2))
    local_services.faults.clear()
    registry = JobRegistry()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        yield live, registry
    finally:
        live.close()


def sequence_plate(folder: Path, name: str = "Seq1") -> Any:
    """A PNG sequence 1001-1008 on a Read (a send encodes it to a movie in a staging folder first)."""
    folder.mkdir(parents=True)
    for n in range(1001, 1009):
        rgb = np.full((H, W, 3), 20, np.uint8)
        rgb[:, (n - 1001) * 4:(n - 1001) * 4 + 4] = 235
        Image.fromarray(rgb).save(folder / f"shot.{n:04d}.png")
    read = nuke.nodes.Read()
    read.setName(name)
    read["file"].setValue(f"{folder.as_posix()}/shot.####.png")
    nuke.addFormat(f"{W} {H} 1 small")
    read["format"].setValue("small")
    for knob, value in (("first", 1001), ("last", 1008), ("origfirst", 1001), ("origlast", 1008)):
        read[knob].setValue(value)
    return read_plate(read)  # main thread, before any worker


def movie_plate(path: Path, name: str = "Mov1") -> Any:
    read = nuke.nodes.Read()
    read.setName(name)
    read["file"].setValue(bar_movie(path, 8, size=(W, H)).as_posix())
    for knob, value in (("first", 1), ("last", 8), ("origfirst", 1), ("origlast", 8)):
        read[knob].setValue(value)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("1001")
    return read_plate(read)


def tensorpix(registry: JobRegistry, tmp_path: Path, events: List[Any]) -> ServiceController:
    """The panel's TensorPix controller, as Nuke makes it: clients from profile ``local``, the session registry."""
    ctl = ServiceController(TensorPixAdapter(), registry, profile="local", download_root=tmp_path / "dl", poll=0.1,
                            poll_cap=0.3)
    ctl.add_listener(lambda kind, payload: events.append((kind, payload)))
    return ctl


def jobs_with_marker(service: str, job_id: str) -> List[str]:
    """The service's jobs carrying the create marker of ``job_id`` (its submission id, or its video's id)."""
    from tether.clients import client_for

    with client_for(service, "local") as client:
        marker = client.marker_of(client.get_job(job_id))
        assert marker
        return [job.id for job in client.remote_jobs() if client.marker_of(job) == marker]


def send_of(service: str, tmp_path: Path) -> Tuple[Any, Any, str]:
    """The service's Nuke adapter, options and the upload its hand-off keeps."""
    from tether.autopilot.submit import ServiceChoice
    from tether_nuke.autopilot import AutopilotAdapter
    from tether_nuke.clipservices import ClipzyNukeAdapter

    if service == "autopilot":
        return AutopilotAdapter(), ServiceChoice(roto=True), "upload"
    if service == "clipzy":
        return ClipzyNukeAdapter(), {"template": str(bar_movie(tmp_path / "look.mp4", 6, size=(W, H)))}, "clip"
    return TensorPixAdapter(), tensorpix_options([1], start_frame=2), "clip"


@pytest.mark.parametrize("name", ["autopilot", "tensorpix", "clipzy"])
def test_a_panel_send_hands_off_and_lands_once_after_nuke_is_closed(
        name: str, agent_env: Tuple[Agent, JobRegistry], autopilot_services: LocalServices, tmp_path: Path) -> None:
    """Encoded in Nuke, handed off, Nuke closed before the agent took it: the agent uploads the movie kept for it,
    makes one job and records it with the plate, the script, the frames and the colour, as a send in Nuke does."""
    live, registry = agent_env
    live.pause()  # the agent takes nothing until Nuke is gone
    plate = sequence_plate(tmp_path / "seq")
    adapter, options, upload = send_of(name, tmp_path)
    events: List[Any] = []
    ctl = ServiceController(adapter, registry, profile="local", download_root=tmp_path / "dl")
    ctl.add_listener(lambda kind, payload: events.append((kind, payload)))
    try:
        handed = ctl.submit(plate, options, script="/shots/a.nk", asked="what").result(timeout=60)
    finally:
        ctl.close()  # the artist closed Nuke
    assert isinstance(handed, HandedOff) and handed.service == name
    kinds = [kind for kind, _ in events]
    assert "handed off" in kinds and "uploading" not in kinds and "error" not in kinds, events
    entry = registry.queue_entry(handed.entry)
    assert entry is not None and entry.state == "queued" and entry.profile == "local"
    kept = Path(entry.request[upload])
    assert kept.is_file() and entry.request["kept"] == str(kept.parent)  # outlives the send's staging folder
    live.resume()
    done = eventually(lambda: registry.queue_entry(handed.entry), lambda e: e.state in ("done", "failed"),
                      message="the agent to land the job")
    assert done.state == "done", done.error
    seen = live.cycle
    eventually(lambda: live.cycle >= seen + 2, message="the agent to look at the job")
    record = registry.get(name, str(done.job_id))
    assert record is not None and record.profile == "local"
    if name == "clipzy":  # the panel's title, as a send in Nuke records it (a service that names its jobs, as
        assert record.title == "Seq1 (shot.####.png)"  # TensorPix and Autopilot do, renames it when polled)
    extra = record.extra
    assert extra["plate"]["node"] == "Seq1" and extra["script"] == "/shots/a.nk" and extra["asked"] == "what"
    assert extra["frame_count"] == 8 and extra["handoff"] == handed.entry
    assert extra["first_index"] == (2 if name == "tensorpix" else 0)
    assert extra["frame_map"] == {"movie_first": 1, "file_first": 1001, "count": 8} and "colour" in extra
    if name == "autopilot":  # what finds the same frames sent again, and what the import's camera needs
        assert extra["clip_hash"] and extra["options"] and extra["plate_origin"] == "nuke"
    assert jobs_with_marker(name, str(done.job_id)) == [done.job_id]  # one job
    assert not kept.parent.exists()  # the hand-off's own folder goes once the job is recorded


def test_a_followed_hand_off_is_followed_and_imported_once_the_agent_made_the_job(
        agent_env: Tuple[Agent, JobRegistry], tmp_path: Path) -> None:
    _, registry = agent_env
    plate = movie_plate(tmp_path / "plate.mp4")
    events: List[Any] = []
    ctl = tensorpix(registry, tmp_path, events)
    try:
        handed = ctl.submit(plate, tensorpix_options([2], preview=True), follow=True).result(timeout=60)
        assert isinstance(handed, HandedOff)
        eventually(lambda: [k for k, _ in events if k in ("imported", "error")], message="the import",
                   pump=nuke._run_main_queue)
    finally:
        ctl.close()
    assert not [p for kind, p in events if kind == "error"]
    done = registry.queue_entry(handed.entry)
    assert done is not None and done.state == "done"
    assert [p for kind, p in events if kind == "submitted"] == [done.job_id]
    [(job_id, applied)] = [payload for kind, payload in events if kind == "imported"]
    assert job_id == done.job_id
    node = nuke.toNode(applied.names["Mov1_tensorpix"])
    assert node is not None and (node.firstFrame(), node.lastFrame()) == (1001, 1005)  # on the plate's frames
    assert Path(str(done.request["clip"])).is_file()  # the artist's own movie is sent where it is, and left


@pytest.mark.parametrize("why", ["TETHER_AGENT=off", "no agent can be started"])
def test_without_an_agent_the_send_stays_in_process(why: str, local_services: LocalServices, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    if why == "TETHER_AGENT=off":
        monkeypatch.setenv("TETHER_AGENT", "off")
    else:  # no agent runs, and none can be started from here (no `tether` command)
        monkeypatch.setenv("TETHER_AGENT", "auto")
        monkeypatch.setattr(agent, "agent_command", lambda: None)
    registry = JobRegistry()
    events: List[Any] = []
    ctl = tensorpix(registry, tmp_path, events)
    try:
        job_id = ctl.submit(movie_plate(tmp_path / "plate.mp4"), tensorpix_options([1])).result(timeout=60)
    finally:
        ctl.close()
    assert isinstance(job_id, str) and registry.get("tensorpix", job_id) is not None
    assert registry.queue() == [] and "handed off" not in [kind for kind, _ in events]
    assert any(kind == "uploading" for kind, _ in events)  # uploaded here, as before


def jobs_tab(registry: JobRegistry, tmp_path: Path, events: List[Any], qtbot: Any) -> Any:
    """The panel on its Jobs tab, its TensorPix sends through :func:`tensorpix`'s controller."""
    pytest.importorskip("pytestqt")
    from panel_support import monitor
    from tether_nuke.panel import TetherPanel

    panel = TetherPanel(monitor(registry, tensorpix=tensorpix(registry, tmp_path, events)))
    qtbot.addWidget(panel)
    panel.open_with((), "jobs")
    return panel


def test_the_jobs_tab_lists_a_queued_hand_off_until_it_is_a_job(agent_env: Tuple[Agent, JobRegistry],
                                                              tmp_path: Path, qtbot: Any) -> None:
    from tether_nuke.panel import COLUMNS, KEY_ROLE

    live, registry = agent_env
    live.pause()
    panel = jobs_tab(registry, tmp_path, [], qtbot)
    try:
        handed = panel.controller.submit("tensorpix", movie_plate(tmp_path / "plate.mp4"),
                                         tensorpix_options([1])).result(timeout=60)
        state = COLUMNS.index("State")
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1 and panel.table.item(0, 0).text() == "Mov1",
                        timeout=PATIENCE_MS)
        assert panel.table.cellWidget(0, state).format() == "queued for upload"
        assert panel.table.item(0, COLUMNS.index("Service")).text() == "TensorPix"
        panel.table.selectRow(0)
        assert panel.selected_handoff() == handed.entry and panel.selected_key() is None
        assert f"queue entry {handed.entry}" in panel.job_info.text()
        assert not panel.import_button.isEnabled() and panel.cancel_button.isEnabled()  # Cancel stops the send
        live.resume()  # the agent makes the job: the row is the job's now, followed as any other
        done = eventually(lambda: registry.queue_entry(handed.entry), lambda e: e.state == "done",
                          message="the agent to make the job")
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1 and panel.selected_handoff() is None
                        and panel.table.item(0, 0).data(KEY_ROLE) == ["tensorpix", done.job_id], timeout=PATIENCE_MS)
    finally:
        panel.controller.close()


def test_the_agent_says_which_hand_offs_wait_which_uploads_with_its_bytes_and_which_failed(
        agent_env: Tuple[Agent, JobRegistry], local_services: LocalServices, tmp_path: Path) -> None:
    """What a DCC's jobs list shows of the agent's queue (tether.agent.handoffs): the entry uploading now with its
    bytes (only the agent knows them), one waiting, one failed lately; an older failure and other services' are not
    listed; without an agent, the registry's queue, waiting for one to start."""
    import time

    from tether.tensorpix.submit import handoff_request

    live, registry = agent_env
    movie = bar_movie(tmp_path / "plate.mp4", 8, size=(W, H))
    held = local_services.faults.add("slow", delay=1.0, service="tensorpix", method="POST", path=r"/api/videos/$",
                                     times=1)
    live.pause()
    first = registry.enqueue(service="tensorpix", request=handoff_request(str(movie), {"ml_models": [1]}),
                             profile="local", title="first")
    second = registry.enqueue(service="tensorpix", request=handoff_request(str(movie), {"ml_models": [1]}),
                              profile="local", title="second")
    failed = registry.enqueue(service="tensorpix", request={}, title="broken")
    registry.settle(failed.id, "failed", error="the clip is gone")
    other = registry.enqueue(service="farm", request={}, title="a scene")
    live.resume()
    shown = eventually(lambda: agent.handoffs(["tensorpix"]), lambda hs: held.hits == 1 and hs[0].bytes_total,
                       message="the first upload to be held with its bytes sent")
    assert [(h.entry.id, h.words) for h in shown] == [
        (first.id, "uploading 100%"), (second.id, "queued for upload"), (failed.id, "hand-off failed")]
    assert shown[0].phase == "upload" and shown[0].bytes_done == movie.stat().st_size
    assert "the clip is gone" in shown[2].note and other.id in [h.entry.id for h in agent.handoffs()]
    assert failed.id not in [h.entry.id for h in agent.handoffs(["tensorpix"], now=time.time() + 2 * 86400)]
    live.pause()
    live.close()
    waiting = eventually(lambda: agent.running() is None and agent.handoffs(["tensorpix"]),
                         message="the agent to stop")  # the registry's queue: no bytes without an agent
    assert all(h.bytes_total == 0 for h in waiting) and second.id in [h.entry.id for h in waiting]


def test_a_job_whose_results_came_home_says_where(tmp_path: Path) -> None:
    """The agent's download is no import: the Jobs tab says where the results went, and Import stays offered."""
    from tether.jobs import JobState
    from tether_nuke.panel import home_note, imported, state_words

    registry = JobRegistry(tmp_path / "jobs.sqlite")
    home = tmp_path / "comp" / "results"
    registry.record(service="autopilot", job_id="a1", state=JobState.COMPLETED, output_dir=home,
                    extra={"agent_fetch": True, "handoff": 3})
    fresh = registry.get("autopilot", "a1")
    assert fresh is not None and state_words(fresh) == "ready to import" and not home_note(fresh)
    came = registry.mark_fetched("autopilot", "a1", home)
    assert came is not None and not imported(came) and state_words(came) == "results home"
    assert home_note(came) == f"Results came home to {home}"
    done = registry.record(service="autopilot", job_id="a1", extra={"imported": True})  # the panel's import
    assert imported(done) and state_words(done) == "imported"
    registry.record(service="tensorpix", job_id="t1", state=JobState.COMPLETED)  # sent from Nuke, no agent fetch
    here = registry.mark_fetched("tensorpix", "t1", tmp_path / "dl" / "t1")
    assert here is not None and imported(here) and not home_note(here)


def tensorpix_jobs() -> List[str]:
    """Every job on the local TensorPix service (shared by the session's tests: compared before and after)."""
    from tether.clients import client_for

    with client_for("tensorpix", "local") as client:
        return sorted(job.id for job in client.remote_jobs())


def test_cancel_on_a_queued_hand_offs_row_drops_it_and_its_kept_movie(
        agent_env: Tuple[Agent, JobRegistry], tmp_path: Path, qtbot: Any) -> None:
    """The Jobs tab's Cancel on a send the agent holds: the entry is cancelled, the movie encoded for it goes, its
    row leaves the list, and once the agent runs again it makes no job of it."""
    live, registry = agent_env
    before = tensorpix_jobs()
    live.pause()
    events: List[Any] = []
    panel = jobs_tab(registry, tmp_path, events, qtbot)
    assert panel.bring_home.isChecked()  # results come home unless the artist says not
    try:
        handed = panel.controller.submit("tensorpix", sequence_plate(tmp_path / "seq"),
                                         tensorpix_options([1])).result(timeout=60)
        qtbot.waitUntil(lambda: panel.table.rowCount() == 1, timeout=PATIENCE_MS)
        kept = Path(str(registry.queue_entry(handed.entry).request["kept"]))  # type: ignore[union-attr]
        assert kept.is_dir()
        panel.table.selectRow(0)
        assert panel.selected_handoff() == handed.entry and panel.cancel_button.isEnabled()
        panel.cancel_button.click()
        qtbot.waitUntil(lambda: panel.table.rowCount() == 0 and "no job was made" in panel.status.text(),
                        timeout=PATIENCE_MS)
        entry = registry.queue_entry(handed.entry)
        assert entry is not None and entry.state == "cancelled" and not kept.exists()
        live.resume()
        assert registry.claim() is None  # nothing left for the agent to take
    finally:
        panel.controller.close()
    assert tensorpix_jobs() == before and "error" not in [kind for kind, _ in events]


def test_tether_agent_cancel_stops_an_upload_the_service_holds_and_no_job_is_made(
        agent_env: Tuple[Agent, JobRegistry], local_services: LocalServices, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Cancelled while the service holds its uploaded movie: the agent stops at the confirmed step, before the
    create; the kept folder goes; the service ends with no new job; a second cancel says so again."""
    from tether.tensorpix.submit import handoff_request
    from tether_cli import main

    live, registry = agent_env
    before = tensorpix_jobs()
    held = local_services.faults.add("slow", delay=1.0, service="tensorpix", method="POST", path=r"/api/videos/$",
                                     times=1)
    request = handoff_request(str(bar_movie(tmp_path / "plate.mp4", 8, size=(W, H))), {"ml_models": [1]}, keep=True)
    entry = registry.enqueue(service="tensorpix", request=request, profile="local", title="held")
    live._wake()
    eventually(lambda: held.hits, message="the upload to be held by the service")
    assert main(["agent", "cancel", str(entry.id)]) == 0
    assert "cancelled: no job was made" in capsys.readouterr().out
    ended = registry.queue_entry(entry.id)
    assert ended is not None and ended.state == "cancelled" and ended.job_id is None
    assert not Path(request["kept"]).exists()
    assert live.current == {} and tensorpix_jobs() == before
    assert agent.cancel(entry.id)["state"] == "cancelled"


def test_cancelling_a_hand_off_that_is_a_job_cancels_the_job(agent_env: Tuple[Agent, JobRegistry],
                                                            autopilot_services: LocalServices, tmp_path: Path) -> None:
    """Once the agent made the job, the cancel goes to the service as any job's does."""
    from tether.clients import client_for

    _, registry = agent_env
    autopilot_services.service("autopilot").pause()  # its jobs wait: one is still there to cancel
    adapter, options, _ = send_of("autopilot", tmp_path)
    ctl = ServiceController(adapter, registry, profile="local", download_root=tmp_path / "dl")
    try:
        handed = ctl.submit(movie_plate(tmp_path / "plate.mp4"), options, follow=False).result(timeout=60)
    finally:
        ctl.close()
    assert isinstance(handed, HandedOff)
    done = eventually(lambda: registry.queue_entry(handed.entry), lambda e: e.state in ("done", "failed"),
                      message="the agent to make the job")
    assert done.state == "done", done.error
    ended = agent.cancel(handed.entry)
    assert ended["cancelled_job"] and ended["job_id"] == done.job_id
    with client_for("autopilot", "local") as client:
        assert client.get_job(str(done.job_id)).state.value == "cancelled"


@pytest.mark.parametrize("name", ["autopilot", "tensorpix"])
def test_results_come_home_beside_the_saved_comp_and_the_import_uses_them(
        name: str, agent_env: Tuple[Agent, JobRegistry], autopilot_services: LocalServices, tmp_path: Path) -> None:
    """A send from a saved script: the agent downloads the finished job's results into a folder of their own
    beside the comp (verified and atomic, its fetch path) and says so; Import makes the nodes from those files,
    without a request to the service."""
    live, registry = agent_env
    notes: List[Tuple[str, str]] = []
    live.notify = lambda title, text: notes.append((title, text))
    script = tmp_path / "comp" / "shot010.nk"
    script.parent.mkdir()
    adapter, options, _ = send_of(name, tmp_path)
    ctl = ServiceController(adapter, registry, profile="local", download_root=tmp_path / "dl")
    try:
        handed = ctl.submit(movie_plate(tmp_path / "plate.mp4"), options, script=str(script),
                            follow=False).result(timeout=60)
        assert isinstance(handed, HandedOff)
        entry = registry.queue_entry(handed.entry)
        assert entry is not None and entry.fetch and entry.output_dir
        home = Path(entry.output_dir)
        assert home.parent == script.parent / "tether" and home.name.startswith(f"Mov1_{name}_")
        done = eventually(lambda: registry.queue_entry(handed.entry), lambda e: e.state == "done",
                          message="the agent to make the job")
        record = eventually(lambda: registry.get(name, str(done.job_id)), lambda r: r.fetched_at is not None,
                            message="the agent to bring the results home")
        came = sorted(p for p in home.rglob("*") if p.is_file())
        assert came and not [p for p in came if p.name.endswith(".part")]
        # the notice follows the record's fetched mark: waited for, not raced
        eventually(lambda: ("Tether: results are home", f"{record.title}: {len(came)} file(s) in {home}") in notes,
                   message=lambda: f"the notice that the results are home: {notes}")
        asked = len(autopilot_services.requests)
        future = ctl.import_job(str(done.job_id))
        names = eventually(lambda: future.result(timeout=0) if future.done() else None,
                           message="the import", pump=nuke._run_main_queue)
    finally:
        ctl.close()
    assert len(autopilot_services.requests) == asked  # nothing downloaded again, not even asked
    files = [nuke.toNode(n)["file"].value() for n in names.values() if "file" in nuke.toNode(n).knobs()]
    assert files and all(Path(f).is_relative_to(home) for f in files), files
    assert sorted(p for p in home.rglob("*") if p.is_file()) == came and not (tmp_path / "dl").exists()


def test_results_stay_on_the_service_when_asked_or_the_script_is_unsaved(agent_env: Tuple[Agent, JobRegistry],
                                                                         tmp_path: Path) -> None:
    """Bring results home unticked, or a script never saved (no comp folder): the agent downloads nothing."""
    live, registry = agent_env
    live.pause()
    ctl = tensorpix(registry, tmp_path, [])
    try:
        plate = movie_plate(tmp_path / "plate.mp4")
        off = ctl.submit(plate, tensorpix_options([1]), script=str(tmp_path / "shot.nk"), home=False).result(60)
        unsaved = ctl.submit(plate, tensorpix_options([1]), script="").result(60)
    finally:
        ctl.close()
    for handed in (off, unsaved):
        entry = registry.queue_entry(handed.entry)
        assert entry is not None and not entry.fetch and entry.output_dir is None


def test_a_followed_send_seen_complete_first_waits_for_its_results_to_come_home(
        agent_env: Tuple[Agent, JobRegistry], local_services: LocalServices, tmp_path: Path) -> None:
    """A followed clip send asked to bring its results home is seen complete before the agent downloaded them (the
    agent's download is held until the import asks for them): the import waits for the agent instead of fetching a
    copy of its own, the movie lands once in the home folder, and the Read made reads it there."""
    import threading

    live, registry = agent_env
    held, release, asked = threading.Event(), threading.Event(), threading.Event()
    fetch = live._fetch

    def held_fetch(rec: Any) -> None:
        held.set()
        release.wait(PATIENCE)
        fetch(rec)

    live._fetch = held_fetch  # type: ignore[method-assign]
    route = live.routes.get(("GET", "/home"), lambda query: {})
    live.routes[("GET", "/home")] = lambda query: (asked.set(), route(query))[1]
    script = tmp_path / "comp" / "shot010.nk"
    script.parent.mkdir()
    events: List[Any] = []
    ctl = tensorpix(registry, tmp_path, events)
    panel_events: List[Any] = []  # what the panel hears: the Job monitor passes the service's events on
    monitor = job_controller.JobController(registry, profile="local", controllers={"tensorpix": ctl})
    monitor.add_listener(lambda kind, payload: panel_events.append((kind, payload)))
    try:
        handed = ctl.submit(movie_plate(tmp_path / "plate.mp4"), tensorpix_options([2], preview=True),
                            script=str(script), follow=True).result(timeout=60)
        assert isinstance(handed, HandedOff)
        def ended() -> List[str]:
            return [k for k, _ in events if k in ("imported", "error")]

        # the import waits for the agent (or, as it did, downloads a copy of its own and ends)
        eventually(lambda: held.is_set() and (asked.is_set() or ended()), message="the agent's download to be held",
                   pump=nuke._run_main_queue)
        # the panel says what it waits for while the agent's download is held
        assert [p[1] for kind, p in events if kind == "awaiting home"] == [True], events
        local_services.requests.clear()
        release.set()
        eventually(ended, message="the import", pump=nuke._run_main_queue)
    finally:
        release.set()
        monitor.close()  # and the service controller it holds
    assert not [p for kind, p in events if kind == "error"]
    done = registry.queue_entry(handed.entry)
    assert done is not None and done.output_dir
    # ... and no longer once the import went on with the results that came home
    kinds = [(kind, p) for kind, p in events if kind in ("awaiting home", "imported")]
    assert [k for k, _ in kinds] == ["awaiting home", "awaiting home", "imported"], events
    assert kinds[:2] == [("awaiting home", (str(done.job_id), True)), ("awaiting home", (str(done.job_id), False))]
    assert [p for kind, p in panel_events if kind == "awaiting home"] == [("tensorpix", str(done.job_id), True),
                                                                          ("tensorpix", str(done.job_id), False)]
    home = Path(done.output_dir)
    came = [p for p in home.rglob("*") if p.is_file()]
    assert len(came) == 1 and came[0].suffix == ".mp4", came  # one movie, no partial file
    record = registry.get("tensorpix", str(done.job_id))
    assert record is not None and record.extra["fetched_to"] == str(home) and record.extra["imported"]
    [(_, applied)] = [payload for kind, payload in events if kind == "imported"]
    assert Path(nuke.toNode(applied.names["Mov1_tensorpix"])["file"].value()) == came[0]
    assert not (tmp_path / "dl").exists()  # no copy of its own
    # downloaded once, by the agent, after the import began waiting
    assert local_services.requests.count("GET", r"/tensorpix/.*\.mp4", service="tensorpix") == 1, \
        local_services.requests.all()


def test_without_an_agent_the_import_brings_the_results_home_itself(local_services: LocalServices, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A job the agent was to bring home, and no agent runs to do it (gone before the job completed): the import
    downloads the results into their home folder as the agent would (verified, atomic), notes them fetched there,
    and reads them from there."""
    from tether.clients import client_for
    from tether.jobs import JobState

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    monkeypatch.setenv("TETHER_AGENT", "off")
    registry = JobRegistry()
    events: List[Any] = []
    ctl = tensorpix(registry, tmp_path, events)
    home = tmp_path / "comp" / "tether" / "Mov1_tensorpix"
    try:
        job_id = ctl.submit(movie_plate(tmp_path / "plate.mp4"), tensorpix_options([2], preview=True),
                            follow=False).result(timeout=60)
        assert isinstance(job_id, str)
        with client_for("tensorpix", "local") as client:
            eventually(lambda: client.get_job(job_id).state, lambda s: s is JobState.COMPLETED,
                       message="the job to complete")
        # as the agent records a send it took with a home folder
        registry.record(service="tensorpix", job_id=job_id, state=JobState.COMPLETED, output_dir=home,
                        extra={"agent_fetch": True, "handoff": 1})
        future = ctl.import_job(job_id)
        names = eventually(lambda: future.result(timeout=0) if future.done() else None, message="the import",
                           pump=nuke._run_main_queue)
    finally:
        ctl.close()
    came = [p for p in home.iterdir() if p.is_file()]
    assert len(came) == 1 and came[0].suffix == ".mp4", came
    record = registry.get("tensorpix", job_id)
    assert record is not None and record.fetched_at is not None and record.extra["fetched_to"] == str(home)
    assert Path(nuke.toNode(names["Mov1_tensorpix"])["file"].value()) == came[0]
    assert not (tmp_path / "dl").exists()


def test_the_panel_follows_its_jobs_through_the_running_agent(
        agent_env: Tuple[Agent, JobRegistry], local_services: LocalServices, tmp_path: Path) -> None:
    """Issue 15's one watcher per machine, in Nuke: with an agent running, the Jobs tab's watcher and a followed send
    subscribe to it, so the service sees only the agent's list pages (no GET per job, lists bounded by the agent's
    cycles); the jobs still reach their end and the followed one is imported when it completes."""
    import math

    from tether.clients import client_for
    from tether.jobs import JobState
    from tether.tensorpix.client import PAGE_SIZE
    from tether.tensorpix.submit import build_options

    live, registry = agent_env
    engine = local_services.service("tensorpix")
    engine.pause()  # every job stays queued while the requests are counted
    events: List[Any] = []
    ctl = tensorpix(registry, tmp_path, events)
    monitor = job_controller.JobController(registry, profile="local", controllers={"tensorpix": ctl},
                                           poll_fast=0.05, poll_cap=0.1)
    movie = bar_movie(tmp_path / "clip.mp4", 8, size=(W, H))
    try:
        with client_for("tensorpix", "local") as client:  # three jobs sent earlier, listed in the Jobs tab
            video = client.wait_ready(client.upload_video(movie).id)
            watched = [str(client.create_job(build_options(tensorpix_options([2], preview=True), video.id)).id)
                       for _ in range(3)]
        for job_id in watched:
            registry.record(service="tensorpix", job_id=job_id, profile="local")
        handed = ctl.submit(movie_plate(tmp_path / "plate.mp4"), tensorpix_options([2], preview=True),
                            follow=True).result(timeout=60)
        assert isinstance(handed, HandedOff)
        followed = eventually(lambda: [p for kind, p in events if kind == "submitted"], message="the agent's job")[0]
        assert ctl.follows(followed) and monitor.watch() == ["tensorpix"]
        eventually(lambda: live.cycle >= 2, message="the agent to watch the jobs")
        local_services.requests.clear()
        start = live.cycle
        eventually(lambda: live.cycle >= start + 4, message="a few of the agent's cycles")
        cycles = live.cycle - start
        pages = math.ceil(len(tensorpix_jobs()) / PAGE_SIZE)
        lists = local_services.requests.count("GET", r"/api/jobs/$", service="tensorpix")
        assert local_services.requests.count("GET", r"/api/jobs/\d+/$", service="tensorpix") == 0  # no GET per job
        assert lists <= (cycles + 1) * pages, (lists, cycles, pages)  # one cycle may be half inside the window
        engine.resume()
        eventually(lambda: [k for k, _ in events if k in ("imported", "error")], message="the followed import",
                   pump=nuke._run_main_queue)
        eventually(lambda: [registry.get("tensorpix", j) for j in watched],
                   lambda recs: all(r is not None and r.state is JobState.COMPLETED for r in recs),
                   message="the watched jobs to complete")
        eventually(lambda: not monitor.watching(), message="the Jobs tab's watcher to end with its jobs")
    finally:
        engine.resume()
        monitor.close()
    assert not [p for kind, p in events if kind == "error"]
    [(job_id, _)] = [payload for kind, payload in events if kind == "imported"]
    assert job_id == followed


def test_the_jobs_tab_says_when_a_service_stops_answering_the_agent(
        agent_env: Tuple[Agent, JobRegistry], local_services: LocalServices, tmp_path: Path) -> None:
    """Subscribed to the agent, the Jobs tab still says when a service stops answering (the agent's cycle could not
    ask it) and when it answers again."""
    from tether.clients import client_for
    from tether.tensorpix.submit import build_options

    _, registry = agent_env
    engine = local_services.service("tensorpix")
    engine.pause()
    events: List[Any] = []
    monitor = job_controller.JobController(registry, profile="local", poll_fast=0.05, poll_cap=0.1)
    monitor.add_listener(lambda kind, payload: events.append((kind, payload)))
    try:
        with client_for("tensorpix", "local") as client:
            video = client.wait_ready(client.upload_video(bar_movie(tmp_path / "clip.mp4", 8, size=(W, H))).id)
            job_id = str(client.create_job(build_options(tensorpix_options([2], preview=True), video.id)).id)
        registry.record(service="tensorpix", job_id=job_id, profile="local")
        local_services.faults.add("status", status=403, service="tensorpix", method="GET", path=r"/api/jobs/")
        assert monitor.watch() == ["tensorpix"]
        eventually(lambda: [p for kind, p in events if kind == "stale" and p[0] == "tensorpix" and p[1]],
                   message="the Jobs tab to say TensorPix does not answer")
        local_services.faults.clear()
        eventually(lambda: ("stale", ("tensorpix", "")) in events, message="the Jobs tab to say it answers again")
    finally:
        local_services.faults.clear()
        engine.resume()
        monitor.close()
