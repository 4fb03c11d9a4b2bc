"""The Tether agent: its private channel and controls, hand-off that survives the submitter and a kill -9 of the
agent itself, one watcher per machine, and results that come home. Against the local services over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest
from tether import agent
from tether.agent_server import Agent, AgentRunning
from tether.registry import JobRegistry
from tether_cli import main
from tether_services.server import LocalServices
from waiting import eventually


@pytest.fixture
def notes() -> List[Tuple[str, str]]:
    return []


@pytest.fixture
def running_agent(tmp_path: Path, notes: List[Tuple[str, str]]) -> Iterator[Agent]:
    """An agent on threads of this process, on this test's private runtime folder and registry."""
    live = Agent(agent.runtime_dir(), JobRegistry(), fast=0.05, cap=0.2,
                 notify=lambda title, text: notes.append((title, text))).start()
    yield live
    live.close()


def test_channel_is_private_and_the_controls_answer(running_agent: Agent, capsys: pytest.CaptureFixture[str]) -> None:
    folder = agent.runtime_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(os.stat(agent.socket_path()).st_mode) == 0o600
    with pytest.raises(AgentRunning):
        Agent(folder, JobRegistry()).start()  # one agent per user
    assert main(["agent", "pause"]) == 0 and "agent paused" in capsys.readouterr().out
    assert agent.running()["paused"] is True  # type: ignore[index]
    assert main(["agent", "resume", "--json"]) == 0 and json.loads(capsys.readouterr().out)["paused"] is False
    assert main(["agent", "queue"]) == 0 and "queue is empty" in capsys.readouterr().out
    with agent.AgentClient() as client, pytest.raises(agent.ConfigError, match="no route"):
        client.call("GET", "/nothing")
    assert main(["agent", "stop"]) == 0
    eventually(lambda: agent.running() is None, message="the agent to stop")
    assert main(["agent", "status"]) == 3 and "not running" in capsys.readouterr().out


def test_a_runtime_folder_others_can_open_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared-run"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    os.chmod(tmp_path, 0o755)
    monkeypatch.setenv("TETHER_RUNTIME_DIR", str(shared))
    assert stat.S_IMODE(agent.runtime_dir().stat().st_mode) == 0o700  # made private, since we own it
    monkeypatch.setenv("TETHER_AGENT", "sometimes")
    with pytest.raises(agent.ConfigError, match="auto, off"):
        agent.mode()


def _farm_jobs_with(output_path: str, local_services: LocalServices) -> List[Any]:
    from tether.farm.client import FarmClient

    with FarmClient.from_profile("local") as client:
        return [j for j in client.iter_jobs() if j.output_path == output_path]


@pytest.fixture
def fresh_services(tmp_path: Path) -> Iterator[LocalServices]:
    """Local services of this test alone: a farm that already holds the scene's files from an earlier test (the
    session's farm, keyed by md5) would need one upload, not the two this test stalls one of."""
    with LocalServices(port=0, state_dir=tmp_path / "services", workers=2) as services:
        yield services


def test_handed_off_submit_survives_the_submitter_and_a_killed_agent(
    tiny_blend: Path, tmp_path: Path, fresh_services: LocalServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submitting command is killed -9 once it handed off; the agent is killed -9 mid-upload and started again:
    one job, nothing the farm confirmed sent again, and the frames come home byte-identical to the farm's."""
    from tether.farm.client import FarmClient

    local_services = fresh_services

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    monkeypatch.setenv("TETHER_AGENT", "auto")
    faults = local_services.faults
    faults.clear()
    stall = faults.add("slow", delay=1.0, service="farm", method="POST", path=r"/api/uploads/file$", times=1)
    local_services.requests.clear()
    out = tmp_path / "frames"
    submitter = subprocess.Popen([sys.executable, "-m", "tether_cli", "farm", "submit", str(tiny_blend),
                                  "--frames", "1-2", "--chunk-size", "2", "--out", str(out), "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    registry = JobRegistry()
    try:
        [entry] = eventually(lambda: registry.queue(), message="the hand-off to be queued")
        submitter.send_signal(signal.SIGKILL)  # gone the moment it handed off (or still finishing its reply)
        submitter.wait()
        pid = eventually(lambda: agent.running(), message="the agent the submit started")["pid"]
        # mid-upload: one file confirmed by the farm, the other held in the stalled request
        eventually(lambda: stall.hits == 1 and local_services.requests.count(
            "POST", r"/farm/api/uploads/file$", status=201) == 1,
                   message=lambda: f"one upload done, one in flight: {stall.hits} {local_services.requests.all()}")
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: local_services.requests.count("POST", r"/farm/api/uploads/file$") == 2,
                   message=lambda: f"the stalled upload to end on the farm's side: {local_services.requests.all()}")
        assert registry.queue_entry(entry.id).state == "running"  # type: ignore[union-attr]
        with local_services.farm.lock:  # what the farm holds of this scene's two files (the stalled one may be)
            held = [p for p in local_services.farm._bindings if tmp_path.name in p]
        local_services.requests.clear()
        agent.start()  # resumes what the killed one left running
        done = eventually(lambda: registry.queue_entry(entry.id), lambda e: e.state in ("done", "failed"),
                          message="the resumed hand-off")
        assert done.state == "done", done.error
        # what the farm holds is not sent again (it may be asked about: a kill can come between the farm's reply
        # and the agent noting it); only what it lacks is
        assert 1 <= len(held) <= 2
        assert local_services.requests.count("POST", r"/farm/api/uploads/file$") == 2 - len(held)
        output_path = done.request["output_path"]
        assert [j.id for j in _farm_jobs_with(output_path, local_services)] == [done.job_id]
        record = eventually(lambda: registry.get("farm", str(done.job_id)), lambda r: r and r.fetched_at,
                            message="the frames to come home")
        assert record.output_dir == str(out.resolve())
        with FarmClient.from_profile("local") as client:
            expected = {o.name: o.md5 for o in client.outputs(str(done.job_id))}
        import hashlib

        got = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in out.iterdir()}
        assert got == expected and len(got) == 2
    finally:
        faults.clear()
        with pytest.MonkeyPatch.context():
            if agent.running() is not None:
                with agent.AgentClient() as client:
                    client.stop()
        eventually(lambda: agent.running() is None, message="the agent to stop")
        registry.close()


def recorded_farm_jobs(local_services: LocalServices, monkeypatch: pytest.MonkeyPatch, tiny_blend: Path, title: str,
                       count: int) -> Tuple[Any, List[str], JobRegistry]:
    """``count`` held jobs on the local farm, recorded in this test's registry as a DCC would (TETHER_AGENT=auto):
    the farm client, their ids and the registry."""
    from test_farm_client import EMAIL, PASSWORD, _held_jobs
    from tether.farm.client import FarmClient

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    monkeypatch.setenv("TETHER_AGENT", "auto")
    farm = FarmClient(local_services.url("farm"), email=EMAIL, password=PASSWORD)
    ids = _held_jobs(farm, tiny_blend, title, count) if count else []
    registry = JobRegistry()
    for job_id in ids:
        registry.record(service="farm", job_id=job_id, profile="local")
    return farm, ids, registry


def test_one_watcher_per_machine(tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch,
                                 notes: List[Tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    """Two DCC sessions and a `tether jobs watch` subscribe to the agent: the farm sees the agent's list pages once
    per cycle, no GET per job, whatever the number of watchers."""
    import math
    import threading

    farm, ids, registry = recorded_farm_jobs(local_services, monkeypatch, tiny_blend, "agent-watch", 4)
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda t, m: notes.append((t, m))).start()
    sessions = [agent.AgentWatcher(JobRegistry()) for _ in range(2)]
    codes: List[int] = []
    threads = [threading.Thread(target=lambda w=w: [w.poll_once() for _ in iter(lambda: w.done, True)])
               for w in sessions]
    threads.append(threading.Thread(target=lambda: codes.append(main(["jobs", "watch", *ids]))))
    try:
        for thread in threads:
            thread.start()
        eventually(lambda: all(w.cycles >= 1 for w in sessions), message="both sessions to subscribe")
        local_services.requests.clear()
        start, seen = live.cycle, [w.cycles for w in sessions]
        eventually(lambda: live.cycle >= start + 5 and all(w.cycles >= n + 3 for w, n in zip(sessions, seen)),
                   message="a few cycles of the agent and of each session")
        cycles = live.cycle - start
        lists = local_services.requests.count("GET", r"/farm/api/jobs$")
        pages = math.ceil(len(local_services.farm.jobs) / 100)
        assert local_services.requests.count("GET", r"/farm/api/jobs/[^/]+$") == 0  # no GET per job
        assert lists <= (cycles + 1) * pages  # one cycle may be half inside the window
        for job_id in ids:
            farm.cancel_job(job_id)
        for thread in threads:
            thread.join(timeout=60)
        assert codes == [1]  # the watch saw every job finish, cancelled
        assert all(w.done and {r.state.value for r in w.followed} == {"cancelled"} for w in sessions)
        assert "cancelled" in capsys.readouterr().out
    finally:
        for w in sessions:
            w.close()
        live.close()
        farm.close()


def test_a_watcher_outlives_the_agent_and_picks_up_a_new_one(
        tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher a DCC or the command gets (`watcher_for`) polls the farm itself while no agent runs, subscribes
    once one answers (the farm then sees only the agent's list pages), and polls again when the agent goes; with
    TETHER_AGENT=off it never asks for an agent."""
    import math

    from tether.clients import client_for
    from tether.watch import Watcher

    monkeypatch.setenv("TETHER_AGENT", "off")
    assert type(agent.watcher_for(JobRegistry(), client_for)) is Watcher
    farm, ids, registry = recorded_farm_jobs(local_services, monkeypatch, tiny_blend, "outlives", 3)
    watcher = agent.watcher_for(JobRegistry(), client_for, fast=0.05, cap=0.2, wait=0.5)
    live = None
    try:
        local_services.requests.clear()
        watcher.poll_once()  # no agent: the watcher asks the farm itself
        assert not watcher.subscribed and local_services.requests.count("GET", r"/farm/api/jobs$") >= 1
        assert {r.state.value for r in watcher.followed} == {"held"}

        live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda t, m: None).start()
        watcher.poll_once()
        assert watcher.subscribed and watcher.next_delay() == 0.0
        local_services.requests.clear()
        start = live.cycle
        for _ in range(4):
            watcher.poll_once()
        cycles = live.cycle - start
        pages = math.ceil(len(local_services.farm.jobs) / 100)
        assert local_services.requests.count("GET", r"/farm/api/jobs$") <= (cycles + 1) * pages  # the agent's only
        assert local_services.requests.count("GET", r"/farm/api/jobs/[^/]+$") == 0

        live.close()
        eventually(lambda: agent.running() is None, message="the agent to stop")
        live = None
        for job_id in ids:
            farm.cancel_job(job_id)
        local_services.requests.clear()
        eventually(lambda: watcher.poll_once() is not None and watcher.done, message="the jobs to be seen cancelled")
        assert not watcher.subscribed and local_services.requests.count("GET", r"/farm/api/jobs$") >= 1
        assert {r.state.value for r in watcher.followed} == {"cancelled"}
    finally:
        watcher.close()
        if live is not None:
            live.close()
        farm.close()
        registry.close()


def test_a_job_the_agent_has_not_seen_is_polled_at_once(
        tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DCC that sent a job in-process records it; the agent, backed off to long cycles, is asked once to poll now
    instead of the subscriber waiting out its cycle."""
    from test_farm_client import _held_jobs

    farm, _, registry = recorded_farm_jobs(local_services, monkeypatch, tiny_blend, "", 0)
    live = Agent(agent.runtime_dir(), registry, fast=60.0, cap=60.0, notify=lambda t, m: None).start()
    watcher = agent.AgentWatcher(JobRegistry(), wait=0.5)
    try:
        eventually(lambda: live.cycle >= 1, message="the agent's first cycle")
        (job_id,) = _held_jobs(farm, tiny_blend, "new to the agent", 1)
        registry.record(service="farm", job_id=job_id, profile="local")
        seen = lambda: [j["state"] for j in watcher.snapshot.get("jobs", []) if j["id"] == job_id]  # noqa: E731
        eventually(lambda: watcher.poll_once() is not None and seen() == ["held"], timeout=20,
                   message="the agent to poll the new job before its 60 s cycle")
        assert live.cycle <= 3  # one cycle asked for, not a poll per subscriber look
        farm.cancel_job(job_id)
    finally:
        watcher.close()
        live.close()
        farm.close()
        registry.close()


def test_an_agent_keeping_another_registry_is_not_subscribed_to(
        tmp_path: Path, tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent started with another TETHER_DATA_DIR follows other jobs: a watcher would wait on it forever, so it
    polls the services itself, and one with nothing to fall back on says what to change."""
    from tether.clients import client_for

    farm, ids, registry = recorded_farm_jobs(local_services, monkeypatch, tiny_blend, "elsewhere", 1)
    live = Agent(agent.runtime_dir(), JobRegistry(tmp_path / "other" / "jobs.sqlite"), fast=0.05, cap=0.2,
                 notify=lambda t, m: None).start()
    watcher = agent.watcher_for(JobRegistry(), client_for, fast=0.05, cap=0.2, wait=0.5)
    try:
        local_services.requests.clear()
        watcher.poll_once()
        assert not watcher.subscribed and local_services.requests.count("GET", r"/farm/api/jobs$") >= 1
        assert {r.state.value for r in watcher.followed} == {"held"}
        strict = agent.AgentWatcher(JobRegistry(), wait=0.5)
        with pytest.raises(agent.ConfigError, match="same TETHER_DATA_DIR"):
            strict.poll_once()
        strict.close()
        farm.cancel_job(ids[0])
    finally:
        watcher.close()
        live.close()
        farm.close()
        registry.close()


def test_an_old_job_to_bring_home_is_not_left_behind_by_newer_ones(
        tmp_path: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """A completed hand-off whose results are still to come home (the service did not answer when it completed) is
    fetched however many jobs were recorded since: the agent used to look at the newest 500 only."""
    from datetime import datetime, timedelta, timezone

    from tether.jobs import JobState

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    registry = JobRegistry()
    old = datetime.now(timezone.utc) - timedelta(days=3)
    registry.record(service="farm", job_id="old-handoff", profile="local", state=JobState.COMPLETED,
                    output_dir=tmp_path / "home", submitted_at=old, extra={"agent_fetch": True})
    for i in range(520):  # newer jobs, finished and fetched or never asked for
        registry.record(service="farm", job_id=f"newer-{i}", profile="local", state=JobState.COMPLETED)
    assert [r.job_id for r in registry.unfetched()] == ["old-handoff"]
    live = Agent(agent.runtime_dir(), registry, notify=lambda t, m: None)  # not started: one look, on this thread
    local_services.requests.clear()
    live._pending_fetches()
    assert any("old-handoff" in r.path for r in local_services.requests.all())  # asked the farm for its outputs
    registry.close()


def test_no_agent_and_agent_off_submit_in_process(tiny_blend: Path, local_services: LocalServices,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.agent import use_agent

    monkeypatch.setenv("TETHER_AGENT", "auto")
    assert use_agent() and not use_agent(no_agent=True)
    monkeypatch.setenv("TETHER_AGENT", "off")
    assert not use_agent()


def test_login_service_files_are_written_and_removed_on_a_temp_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import plistlib
    import xml.etree.ElementTree as ET

    from tether_install import agent_service

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert main(["agent", "install", "--dry-run"]) == 0  # names the file and the commands, runs nothing
    said = capsys.readouterr().out
    unit = home / ".config" / "systemd" / "user" / "tether-agent.service"
    assert f"write  {unit}" in said and "systemctl --user enable --now tether-agent.service" in said
    assert not unit.exists()
    assert main(["agent", "install", "--no-enable"]) == 0 and f"wrote {unit}" in capsys.readouterr().out
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m tether_cli agent --detached\n" in text
    assert "WantedBy=default.target" in text and "Restart=on-failure" in text
    assert main(["agent", "install", "--no-enable"]) == 0 and "wrote" not in capsys.readouterr().out  # idempotent
    assert main(["agent", "uninstall", "--no-disable"]) == 0
    assert f"remove {unit}" in capsys.readouterr().out
    assert list(home.iterdir()) == []  # the folders it made went with the file
    assert main(["agent", "uninstall"]) == 0 and "not installed" in capsys.readouterr().out

    command = ["/opt/my tools/python", "-m", "tether_cli", "agent", "--detached"]
    log = tmp_path / "agent.log"
    assert 'ExecStart="/opt/my tools/python" -m' in agent_service.service_file(command, log, "linux").decode()
    plist = plistlib.loads(agent_service.service_file(command, log, "darwin"))
    assert plist["ProgramArguments"] == command and plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False} and plist["StandardErrorPath"] == str(log)
    assert agent_service.service_path("darwin", home) == home / "Library/LaunchAgents/com.tether.agent.plist"
    task = ET.fromstring(agent_service.service_file(command, log, "win32").decode("utf-16").split("\n", 1)[1])
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=ns) == command[0]
    assert task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=ns) == "-m tether_cli agent --detached"
    assert task.find("t:Triggers/t:LogonTrigger", ns) is not None
    assert agent_service.disable_commands(Path("x"), "win32") == [["schtasks", "/Delete", "/TN", "Tether Agent", "/F"]]


def test_bandwidth_cap_paces_the_upload_threads(tmp_path: Path, local_services: LocalServices) -> None:
    """The throttle's waits add up to the bytes over the cap (a fake clock: no timing in the test), and an upload
    through it takes every byte it sends from the cap."""
    from test_farm_client import EMAIL, PASSWORD
    from tether.errors import InputError
    from tether.farm.client import FarmClient
    from tether.transfer import BLOCK, Throttle, upload_files
    from tether_cli.agent_cmd import _rate

    now = [0.0]
    waits: List[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    throttle = Throttle(1_000_000, burst=BLOCK, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        throttle.take(BLOCK)
    assert sum(waits) == pytest.approx((10 * BLOCK - BLOCK) / 1_000_000)

    taken: List[int] = []
    capped = Throttle(50e6)
    capped.take = lambda n: taken.append(n)  # type: ignore[method-assign]
    data = os.urandom(3 * BLOCK + 17)
    (tmp_path / "plate.exr").write_bytes(data)
    with FarmClient(local_services.url("farm"), email=EMAIL, password=PASSWORD) as farm:
        report = upload_files([(tmp_path / "plate.exr", f"{tmp_path.name}/plate.exr")], farm, throttle=capped)
    assert report.bytes_sent == sum(taken) == len(data)
    assert _rate("20M") == 20e6 and _rate("500k") == 500e3 and _rate("1.5GB/s") == 1.5e9 and _rate("4096") == 4096
    with pytest.raises(InputError, match="not a rate"):
        _rate("fast")
    with pytest.raises(SystemExit):
        main(["agent", "--bandwidth", "0"])


def test_settled_hand_offs_older_than_a_month_are_pruned_at_start_and_once_a_day(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Done, cancelled and failed hand-offs (and what a failed one kept) go from the queue after 30 days, when the
    agent starts and once a day after; waiting and uploading ones stay, however old, with their kept files; recent
    settled ones stay listed by `tether agent queue`. Old entries by their timestamps: no waiting."""
    import sqlite3
    import time
    from datetime import timedelta

    from tether.handoff import kept_folder
    from tether.registry import _iso, utcnow

    registry = JobRegistry()

    def entry(state: str, days: float, kept: bool = False) -> int:
        request = {"kept": str(kept_folder(f"k{state}{days}"))} if kept else {}
        made = registry.enqueue(service="tensorpix", request=request, title=f"{state} {days}d")
        if state != "queued":
            registry.settle(made.id, state, job_id="j" if state == "done" else None)
        with sqlite3.connect(registry.path) as db:  # as if last changed that long ago
            db.execute("UPDATE queue SET updated_at = ?, created_at = ? WHERE id = ?",
                       (_iso(utcnow() - timedelta(days=days)),) * 2 + (made.id,))
        return made.id

    old = [entry("done", 31), entry("cancelled", 45), entry("failed", 31, kept=True)]
    waiting = [entry("queued", 90, kept=True), entry("running", 60, kept=True)]
    recent = [entry("done", 29), entry("failed", 2, kept=True), entry("cancelled", 0.01)]
    kept = {e.id: Path(e.request["kept"]) for e in registry.queue() if e.request.get("kept")}
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None)
    live.pause()  # it takes none of the waiting ones
    live.start()
    try:
        left = {e.id: e.state for e in registry.queue()}
        assert sorted(left) == sorted(waiting + recent) and left[waiting[1]] == "queued"  # a dead agent's: resumed
        assert [i for i, path in kept.items() if not path.exists()] == [old[2]]  # the failed one's movie went
        assert main(["agent", "queue", "--json"]) == 0
        assert sorted(e["id"] for e in json.loads(capsys.readouterr().out)) == sorted(waiting + recent)
        # a day later: pruned again, without a restart
        later = entry("done", 31)
        live.next_prune = 0.0
        live._wake()
        eventually(lambda: registry.queue_entry(later) is None, message="the daily pruning")
        assert sorted(e.id for e in registry.queue()) == sorted(waiting + recent)
        assert live.next_prune > time.time() + 23 * 3600
    finally:
        live.close()
    with pytest.raises(ValueError, match="only settled"):
        registry.prune_queue(utcnow(), ("queued", "done"))


@pytest.mark.parametrize("running", [True, False], ids=["agent", "no-agent"])
def test_cancelling_a_hand_off_that_is_a_job_cancels_it_where_it_went(
        running: bool, tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`tether agent cancel` of a hand-off the agent already made into a job cancels the job on its service, at the
    endpoint the hand-off went to (the profile's own URL here leads nowhere), through the running agent or, with
    none running, from the command itself: one path for both."""
    import socket

    from test_farm_client import EMAIL, PASSWORD, _held_jobs
    from tether.farm.client import FarmClient
    from tether.registry import ENDPOINT_KEY

    with socket.socket() as free:  # the profile's farm: a port nothing listens on
        free.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TETHER_LOCAL_PORT", str(free.getsockname()[1]))
    with FarmClient(local_services.url("farm"), email=EMAIL, password=PASSWORD) as farm:
        [job_id] = _held_jobs(farm, tiny_blend, f"cancel {running}", 1)
        registry = JobRegistry()
        entry = registry.enqueue(service="farm", request={ENDPOINT_KEY: local_services.url("farm")},
                                 profile="local", title="made")
        registry.settle(entry.id, "done", job_id=job_id)
        live = Agent(agent.runtime_dir(), registry, notify=lambda title, text: None).start() if running else None
        try:
            assert (agent.running() is not None) is running
            assert main(["agent", "cancel", str(entry.id)]) == 0
            assert f"was farm job {job_id} already: the job is cancelled" in capsys.readouterr().out
        finally:
            if live is not None:
                live.close()
        assert farm.get_job(job_id).state.value == "cancelled"
        assert registry.queue_entry(entry.id).state == "done"  # type: ignore[union-attr]


def test_an_unexpected_error_is_answered_in_one_line_and_logged_without_a_traceback_or_secret(
        running_agent: Agent, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A request that fails unexpectedly is answered 500 with its type and redacted message on one line; the log
    has that line, the traceback only at debug level, and no secret anywhere (whatever handler reads the records)."""
    import logging

    from tether.agent_server import configure_logging
    from tether.errors import register_secret

    secret = "s3cr3t-agent-test-value"
    register_secret(secret)

    def boom(query: Any) -> Any:
        raise RuntimeError(f"the service said\nno to {secret} (api_key={secret}x)")

    running_agent.routes[("GET", "/boom")] = boom
    tether_log = logging.getLogger("tether")
    try:
        configure_logging(tmp_path / "agent.log", stderr=False)
        with caplog.at_level(logging.INFO, logger="tether"), agent.AgentClient() as client:
            reply = client._http.get("/boom")
        assert reply.status_code == 500
        said = reply.json()["error"]
        assert said.startswith("RuntimeError: the service said no to ***") and "\n" not in said
        assert secret not in reply.text and "Traceback" not in reply.text
        logged = (tmp_path / "agent.log").read_text()
        assert logged.count("request /boom failed") == 1 and "Traceback" not in logged and secret not in logged
        assert not any(r.exc_info or secret in r.getMessage() for r in caplog.records)
        # a hand-off that fails unexpectedly (its request names no clip) is said alike
        with caplog.at_level(logging.INFO, logger="tether"):
            entry = running_agent.registry.enqueue(service="tensorpix", request={}, profile="local", title="odd")
            running_agent._wake()
            failed = eventually(lambda: running_agent.registry.queue_entry(entry.id), lambda e: e.state == "failed",
                                message="the odd hand-off to fail")
        assert failed.error == "KeyError: 'clip'"
        logged = (tmp_path / "agent.log").read_text()
        assert f"hand-off {entry.id} failed: KeyError: 'clip'" in logged and "Traceback" not in logged
        assert not any(r.exc_info for r in caplog.records)
        caplog.clear()
        configure_logging(tmp_path / "verbose.log", verbose=True, stderr=False)  # `tether agent --verbose`
        with caplog.at_level(logging.DEBUG, logger="tether"), agent.AgentClient() as client:
            assert client._http.get("/boom").status_code == 500
        debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and "Traceback" in r.getMessage()]
        assert len(debug) == 1 and "in boom" in debug[0]
        assert not any(secret in r.getMessage() for r in caplog.records)
        assert secret not in (tmp_path / "verbose.log").read_text()
    finally:
        configure_logging(None, stderr=False)
        tether_log.setLevel(logging.NOTSET)
