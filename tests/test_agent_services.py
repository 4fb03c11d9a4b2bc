"""Hand-off to the agent for every clip service (Autopilot, TensorPix, Clipzy, Move), through the one seam the farm's
hand-off uses (``handoff_request``/``run_handoff``): the command hands off and returns; an agent killed -9 mid-upload,
or after the service made the job but before the agent recorded it, resumes on its restart with one job and nothing
the service confirmed sent again. Against the local services over real HTTP; the kill is a forked copy of this
process running the agent's own hand-off step that dies with ``os._exit`` (no cleanup, no ``finally``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from tether import agent
from tether.agent_server import Agent
from tether.registry import JobRegistry
from tether_cli import main
from tether_services.server import LocalServices
from waiting import eventually

pytest.importorskip("av")
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill is a forked process's os._exit")

KILLED = 137
# (method, path) of each service's uploads of a file (Move's and Autopilot's go to their presigned store)
UPLOADS = {"tensorpix": ("POST", r"^/tensorpix/api/videos/$"), "clipzy": ("POST", r"^/clipzy/api/v1/videos/upload$"),
           "move": ("PUT", r"^/move/_store/uploads/"), "autopilot": ("PUT", r"^/autopilot/_store/")}
SERVICES = tuple(UPLOADS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    from test_tensorpix import make_clip

    folder = tmp_path_factory.mktemp("handoff-clips")
    return make_clip(folder / "shot.mp4", 12), make_clip(folder / "look.mp4", 9)


def request_for(service: str, clip: Path, template: Path) -> Tuple[Dict[str, Any], List[str]]:
    """The service's hand-off JSON for ``clip``, and the command that would make it."""
    if service == "tensorpix":
        from tether.tensorpix.submit import handoff_request

        return handoff_request(str(clip), {"ml_models": [1]}), ["tensorpix", "submit", str(clip), "--model", "1"]
    if service == "clipzy":
        from tether.clipzy.submit import ClipzyRequest
        from tether.clipzy.submit import handoff_request as clipzy_request

        return (clipzy_request(ClipzyRequest(clip=clip, template=str(template))),
                ["clipzy", "submit", str(clip), "--template", str(template)])
    if service == "move":
        from tether.move.submit import MoveRequest
        from tether.move.submit import handoff_request as move_request

        return move_request(MoveRequest(video=clip)), ["move", "submit", str(clip)]
    from tether.autopilot.submit import ServiceChoice
    from tether.autopilot.submit import handoff_request as autopilot_request

    return autopilot_request(None, str(clip), ServiceChoice(roto=True)), ["autopilot", "submit", str(clip), "--roto"]


def jobs_of(service: str, marker: str) -> List[str]:
    """The service's own jobs carrying ``marker``."""
    from tether.clients import client_for

    with client_for(service, "local") as client:
        return [job.id for job in client.remote_jobs() if client.marker_of(job) == marker]


@pytest.fixture
def services_env(local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServices]:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    local_services.faults.clear()
    yield local_services
    local_services.faults.clear()


def run_killed(entry_id: int, kill: Callable[[Agent], None]) -> int:
    """The agent's hand-off step for ``entry_id`` in a forked child that ``kill`` arms to die; its exit status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            registry = JobRegistry()
            entry = registry.claim()
            assert entry is not None and entry.id == entry_id
            child = Agent(agent.runtime_dir(), registry, notify=lambda title, text: None)
            kill(child)
            child._run(entry)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def die_mid_upload(name: str) -> Callable[[Agent], None]:
    """Die once the upload of ``name`` has started (its bytes read, not all on the wire)."""
    def arm(child: Agent) -> None:
        made = child._progress

        def progress(entry: Any) -> Callable[[Any], Any]:
            on = made(entry)

            def event(p: Any) -> Any:
                if p.phase == "upload" and p.file == name and p.bytes_done > 0:
                    os._exit(KILLED)
                return on(p)

            return event

        child._progress = progress  # type: ignore[method-assign]

    return arm


def die_after_create(child: Agent) -> None:
    """Die when the job is made and about to be recorded: the service has it, the queue does not know."""
    def record(**kwargs: Any) -> Any:
        os._exit(KILLED)

    child.registry.record = record  # type: ignore[method-assign]


@pytest.mark.parametrize("where", ["mid-upload", "after-create"])
@pytest.mark.parametrize("service", SERVICES)
def test_a_killed_agent_resumes_with_one_job_and_nothing_confirmed_sent_again(
        service: str, where: str, clips: Tuple[Path, Path], services_env: LocalServices) -> None:
    clip, template = clips
    request, _ = request_for(service, clip, template)
    registry = JobRegistry()
    entry = registry.enqueue(service=service, request=request, profile="local", title=clip.name)
    requests = services_env.requests
    requests.clear()
    kill = die_mid_upload(clip.name) if where == "mid-upload" else die_after_create
    assert run_killed(entry.id, kill) == KILLED
    left = registry.queue_entry(entry.id)
    assert left is not None and left.state == "running" and left.job_id is None
    done_before = dict(left.request.get("done") or {})
    method, path = UPLOADS[service]
    if where == "mid-upload":  # the cut-off upload has ended on the service's side too (after those confirmed)
        eventually(lambda: requests.count(method, path) >= 1 + ("template_video_id" in done_before),
                   message=lambda: f"the killed upload to end on the service's side: {requests.all()}")
    sent_before = requests.count(method, path, status=201) + requests.count(method, path, status=200)
    requests.clear()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        done = eventually(lambda: registry.queue_entry(entry.id), lambda e: e.state in ("done", "failed"),
                          message="the resumed hand-off")
    finally:
        live.close()
    assert done.state == "done", done.error
    record = registry.get(service, str(done.job_id))
    assert record is not None
    # one job on the service for this submission, the one recorded
    from tether.clients import client_for

    with client_for(service, "local") as client:
        marker = client.marker_of(client.get_job(str(done.job_id)))
    assert marker and jobs_of(service, marker) == [done.job_id]
    resent = requests.count(method, path)
    if where == "after-create":  # every upload was confirmed and noted before the kill: none goes again
        assert done_before and resent == 0
    else:  # only the upload cut off goes again (Clipzy's template, confirmed before, does not)
        assert resent == 1
        if service == "clipzy":
            assert "template_video_id" in done_before and sent_before == 1
    assert not Path(request.get("kept") or "/nonexistent").exists()  # a hand-off's own folder goes with it


@pytest.mark.parametrize("service", SERVICES)
def test_the_command_hands_off_and_the_job_lands_once(service: str, clips: Tuple[Path, Path],
                                                      services_env: LocalServices, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`tether SERVICE submit` with an agent running returns once the submission is queued (the submitting process
    is then free to go: the agent alone uploads, creates and records); --no-agent keeps it in-process."""
    clip, template = clips
    _, command = request_for(service, clip, template)
    monkeypatch.setenv("TETHER_AGENT", "auto")
    registry = JobRegistry()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        assert main([*command, "--json"]) == 0
        handed = [line for line in capsys.readouterr().out.splitlines() if '"handoff"' in line]
        assert len(handed) == 1
        [entry] = registry.queue()
        done = eventually(lambda: registry.queue_entry(entry.id), lambda e: e.state in ("done", "failed"),
                          message="the agent to land the job")
        assert done.state == "done", done.error
        assert registry.get(service, str(done.job_id)) is not None
        assert main([*command, "--no-agent", "--json"]) == 0  # in-process: no second queue entry
        assert len(registry.queue()) == 1
    finally:
        live.close()


def test_a_farm_hand_off_keeps_its_scene_and_its_endpoint_override_without_a_secret(
        tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Blender add-on's hand-off: the job's record keeps the scene's name, and an endpoint override goes with the
    request (the profile's own farm URL here leads nowhere), while the queue holds no credential."""
    import json
    import socket

    from tether.farm.submit import FarmOptions, handoff_request
    from tether_services.farm.engine import PASSWORD

    with socket.socket() as free:  # the profile's farm: a port nothing listens on
        free.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TETHER_LOCAL_PORT", str(free.getsockname()[1]))
    registry = JobRegistry()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        entry = agent.hand_off("farm", handoff_request(FarmOptions(scene=tiny_blend, frames="1")), profile="local",
                               title="tiny", start_agent=False, record={"scene": "Scene"},
                               endpoint=local_services.url("farm"))
        assert PASSWORD not in json.dumps(entry.request) and "token" not in json.dumps(entry.request).lower()
        done = eventually(lambda: registry.queue_entry(entry.id), lambda e: e.state in ("done", "failed"),
                          message="the agent to land the job on the override's farm")
        assert done.state == "done", done.error
        record = registry.get("farm", str(done.job_id))
        assert record is not None and record.extra["scene"] == "Scene"
        assert record.extra["endpoint"] == local_services.url("farm")
        # the agent's one watcher follows it on that farm too (at the profile's URL it would fail, or be missing)
        start = live.cycle
        eventually(lambda: live.cycle >= start + 3, message="a few of the agent's cycles")
        assert done.job_id in {j["id"] for j in live.snapshot["jobs"]} and not live.snapshot["errors"]
        assert not registry.get("farm", str(done.job_id)).missing  # type: ignore[union-attr]
    finally:
        live.close()


@pytest.mark.parametrize("service", ["tensorpix", "clipzy"])
def test_the_submitting_command_killed_mid_upload_lands_its_job_once_and_the_results_come_home(
        service: str, clips: Tuple[Path, Path], services_env: LocalServices, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """`tether SERVICE submit --out DIR` in a process of its own, killed -9 once its hand-off is queued and the agent
    is uploading it (the command still waiting on the agent's reply to its wake): the agent lands the job once, and
    when it finishes its outputs download into DIR by themselves, whole (no part file), as the service has them."""
    import signal
    import subprocess
    import sys
    import threading

    from tether.clients import client_for

    clip, template = clips
    _, command = request_for(service, clip, template)
    out = tmp_path / "results"
    monkeypatch.setenv("TETHER_AGENT", "auto")
    method, path = UPLOADS[service]
    # the agent's upload is held in flight until the submitter is dead
    stall = services_env.faults.add("slow", delay=60.0, service=service, method=method,
                                    path=path.replace(f"^/{service}", ""), times=1)
    registry = JobRegistry()
    notes: List[Tuple[str, str]] = []
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2,
                 notify=lambda title, text: notes.append((title, text))).start()
    woken, killed = threading.Event(), threading.Event()

    def held_wake(query: Dict[str, str]) -> Dict[str, Any]:
        woken.set()
        live._work.set()  # the agent takes the hand-off at once; the command waits for this reply until it dies
        killed.wait(60)
        return {"ok": True}

    live.routes[("POST", "/wake")] = held_wake
    submitter = subprocess.Popen([sys.executable, "-m", "tether_cli", *command, "--out", str(out), "--json"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        eventually(lambda: woken.is_set() and stall.hits == 1, message="the hand-off queued and its upload in flight")
        [entry] = registry.queue()
        assert entry.state == "running" and submitter.poll() is None  # the command is still there, and is killed
        submitter.send_signal(signal.SIGKILL)
        assert submitter.wait(timeout=30) == -signal.SIGKILL
        killed.set()
        services_env.faults.clear()
        done = eventually(lambda: registry.queue_entry(entry.id), lambda e: e.state in ("done", "failed"),
                          message="the agent to land the job")
        assert done.state == "done", done.error
        with client_for(service, "local") as client:
            marker = client.marker_of(client.get_job(str(done.job_id)))
            assert marker and jobs_of(service, marker) == [done.job_id]  # exactly once
            assert [e.id for e in registry.queue()] == [entry.id]
            record = eventually(lambda: registry.get(service, str(done.job_id)), lambda r: r and r.fetched_at,
                                message="the results to come home")
            assert record.output_dir == str(out.resolve())
            expected = {p.name: p.read_bytes() for p in client.fetch_outputs(str(done.job_id), tmp_path / "check")}
        assert {p.name: p.read_bytes() for p in out.iterdir()} == expected and expected
        assert any(title == "Tether: results are home" for title, _ in notes)
    finally:
        killed.set()
        services_env.faults.clear()
        if submitter.poll() is None:
            submitter.kill()
        submitter.wait()
        live.close()
        registry.close()


def test_a_clip_handed_off_twice_before_it_is_a_job_is_refused_the_second_time(
        clips: Tuple[Path, Path], services_env: LocalServices, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two Autopilot sends of one clip with the same options, the first still waiting in the agent's queue (no job
    yet, so no record to find): the second is refused as already sent, naming the hand-off, and queues nothing;
    other options, --force, or a cancelled hand-off send again."""
    import json

    from tether.autopilot.submit import AlreadySent, ServiceChoice, handoff_request

    clip, _ = clips
    monkeypatch.setenv("TETHER_AGENT", "auto")
    registry = JobRegistry()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    live.pause()  # nothing it holds becomes a job
    command = ["autopilot", "submit", str(clip), "--roto", "--json"]
    try:
        assert main(command) == 0
        [first] = registry.queue()
        capsys.readouterr()
        assert main(command) == 0
        out, err = capsys.readouterr()
        assert json.loads(out) == {"job_id": None, "reused": True, "handoff": first.id}
        assert f"already sent with the same options as the Tether agent's hand-off {first.id}" in err
        assert "--force" in err and [e.id for e in registry.queue()] == [first.id]
        # the library's own path (the Nuke panel's) is refused alike, before anything is encoded or kept
        with pytest.raises(AlreadySent) as refused:
            handoff_request(None, str(clip), ServiceChoice(roto=True), registry=registry)
        assert refused.value.handoff == first.id and refused.value.job_id is None
        assert main([*command[:-2], "--depth", "--json"]) == 0  # other options: another send
        assert main([*command, "--force"]) == 0
        assert len(registry.queue(("queued",))) == 3
        for entry in registry.queue():
            agent.cancel(entry.id)
        assert main(command) == 0 and len(registry.queue(("queued",))) == 1  # a cancelled one does not count
    finally:
        live.close()


def test_a_waited_send_refused_for_a_waiting_hand_off_ends_with_that_hand_offs_job(
        clips: Tuple[Path, Path], services_env: LocalServices, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``tether autopilot submit --wait`` of a clip the agent still holds a waiting hand-off of (same options): refused
    as already sent, it follows that hand-off until the agent made it a job (the agent resumed meanwhile), then waits
    for that job as usual; no second job on the service."""
    import json

    from tether.clients import client_for

    clip, _ = clips
    monkeypatch.setenv("TETHER_AGENT", "auto")
    registry = JobRegistry()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    live.pause()  # the first hand-off waits
    followed: List[int] = []
    follow = agent.follow_handoff

    def resumed_then_followed(entry_id: int, *args: Any, **kwargs: Any) -> Any:
        followed.append(entry_id)
        live.resume()  # only now may the waiting hand-off become a job: the refused send is following it
        return follow(entry_id, *args, **{**kwargs, "interval": 0.05, "cap": 0.2})

    monkeypatch.setattr(agent, "follow_handoff", resumed_then_followed)
    command = ["autopilot", "submit", str(clip), "--roto", "--json"]
    try:
        with client_for("autopilot", "local") as client:
            before = {job.id for job in client.remote_jobs()}
        assert main(command) == 0
        [first] = registry.queue()
        capsys.readouterr()
        assert main([*command, "--wait"]) == 0
        out, err = capsys.readouterr()
        done = registry.queue_entry(first.id)
        assert followed == [first.id] and done is not None and done.state == "done" and done.job_id
        assert json.loads(out) == {"job_id": done.job_id, "reused": True, "handoff": first.id}
        assert "did not become a job" not in err
        record = registry.get("autopilot", done.job_id)
        assert record is not None and record.state == "completed"  # waited for as usual
        with client_for("autopilot", "local") as client:
            assert {job.id for job in client.remote_jobs()} - before == {done.job_id}  # no second job
    finally:
        live.close()
