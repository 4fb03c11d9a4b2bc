"""The agent as a good neighbour: priorities between hand-offs (a higher one overtakes a running upload between
files, never mid-file), and a priority changed while it waits. Against the local farm over real HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from tether import agent
from tether.agent_server import Agent
from tether.registry import JobRegistry
from tether_cli import main
from tether_services.server import LocalServices
from waiting import eventually

UPLOADS = r"/farm/api/uploads/file$"


@pytest.fixture
def fresh_services(tmp_path: Path) -> Iterator[LocalServices]:
    """A farm of this test alone: uploads are keyed by md5, so the session's farm could already hold these files."""
    with LocalServices(port=0, state_dir=tmp_path / "services", workers=2) as services:
        yield services


def _textures(folder: Path, count: int) -> List[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"tex_{i:03d}.png" for i in range(count)]
    for path in paths:
        path.write_bytes(os.urandom(4096))
    return paths


def _request(scene: Path, extras: List[Path]) -> dict:  # type: ignore[type-arg]
    from tether.farm.submit import FarmOptions, handoff_request

    return handoff_request(FarmOptions(scene=scene, frames="1", extra_files=extras))


def test_a_higher_priority_hand_off_overtakes_between_files(
        tiny_blend: Path, tmp_path: Path, fresh_services: LocalServices, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.farm.client import FarmClient

    services = fresh_services
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(services.port))
    from tether.transfer import SMALL_WORKERS

    # more small files than the small-file workers: some wait for a worker, and give way when it comes
    low_files, high_files = _textures(tmp_path / "low", SMALL_WORKERS + 8), _textures(tmp_path / "high", 2)
    # every upload is held until the faults are cleared: the low hand-off's first files stay in flight
    stall = services.faults.add("slow", delay=60.0, service="farm", method="POST", path=r"/api/uploads/file$",
                                times=0)
    import tether.farm.submit as farm_submit

    resumed: List[Tuple[str, bool]] = []  # (the scene's first extra file's folder, resumed) of each run
    run_handoff = farm_submit.run_handoff

    def noting(client: Any, request: Dict[str, Any], **kwargs: Any) -> str:
        resumed.append((Path(request["extra_files"][0]).parent.name, kwargs["resumed"]))
        return run_handoff(client, request, **kwargs)

    monkeypatch.setattr(farm_submit, "run_handoff", noting)
    registry = JobRegistry()
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    try:
        low = registry.enqueue(service="farm", request=_request(tiny_blend, low_files), profile="local",
                               title="low", priority=0)
        live._wake()
        eventually(lambda: stall.hits >= SMALL_WORKERS, message="the low hand-off's upload to fill its workers")
        high = registry.enqueue(service="farm", request=_request(tiny_blend, high_files), profile="local",
                                title="high", priority=5)
        assert [e.title for e in registry.queue(["queued", "running"])] == ["high", "low"]  # the order shown
        services.faults.clear()  # the files in flight finish; the next file of the low one gives way
        done = [eventually(lambda e=e: registry.queue_entry(e.id), lambda x: x.state in ("done", "failed"),
                           message=f"hand-off {e.title}") for e in (high, low)]
        assert [d.state for d in done] == ["done", "done"], [d.error for d in done]
        with FarmClient.from_profile("local") as client:
            made = {j.id: j.created_at for j in client.iter_jobs()}
        high_done, low_done = done
        assert made[str(high_done.job_id)] < made[str(low_done.job_id)]  # the one claimed second was made first
        assert low_done.attempts == 1  # giving way is not a failed attempt
        # but the run after it is a resumed one: the first run may have sent files (or, where a service makes
        # something before its upload ends, more)
        assert resumed == [("low", False), ("high", False), ("low", True)]
        assert low_done.request["gave_way"] == 1
        sent = services.requests.count("POST", UPLOADS)
        assert sent == services.requests.count("POST", UPLOADS, status=201)  # none cut off mid-file
        assert len(low_files) + len(high_files) <= sent <= len(low_files) + len(high_files) + 2  # none sent twice
    finally:
        services.faults.clear()
        live.close()
        registry.close()


def test_priority_changes_while_queued(capsys: pytest.CaptureFixture[str]) -> None:
    registry = JobRegistry()
    first = registry.enqueue(service="farm", request={}, title="first")
    second = registry.enqueue(service="farm", request={}, title="second")
    assert [e.id for e in registry.queue()] == [first.id, second.id]
    assert not registry.outranked(first.id)
    assert main(["agent", "priority", str(second.id), "7"]) == 0  # no agent runs: the queue is the registry's
    assert "priority 7" in capsys.readouterr().out
    assert [e.id for e in registry.queue()] == [second.id, first.id] and registry.outranked(first.id)
    assert main(["agent", "queue", "--json"]) == 0
    assert [(e["id"], e["priority"]) for e in json.loads(capsys.readouterr().out)] == [
        (second.id, 7), (first.id, 0)]
    registry.settle(first.id, "done", job_id="j1")
    with pytest.raises(agent.ConfigError, match="is done"):
        registry.set_priority(first.id, 3)
    with pytest.raises(agent.ConfigError, match="no entry 999"):
        registry.set_priority(999, 3)
    registry.close()


def test_small_files_overlap_and_the_farm_takes_one_file_per_request(
        tmp_path: Path, local_services: LocalServices, faults: object) -> None:
    """A thousand textures cost their latency, not their bytes: small files go many at a time (the big ones keep
    their few streams). What the farm's routes allow is all there is: one md5 per check, one file per upload."""
    import hashlib
    import threading

    from test_farm_client import EMAIL, PASSWORD
    from tether.errors import BadRequest
    from tether.farm.client import FarmClient
    from tether.transfer import SMALL_WORKERS, HashCache, UploadReport, upload_files

    services = local_services  # the files are random and named after this test's folder: new to the farm
    files = _textures(tmp_path / "tex", SMALL_WORKERS + 8)
    stall = services.faults.add("slow", delay=60.0, service="farm", method="POST", path=r"/api/uploads/file$",
                                times=0)
    reports: List[UploadReport] = []
    with FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD) as farm, \
            HashCache(tmp_path / "hashes.sqlite") as cache:
        sender = threading.Thread(target=lambda: reports.append(upload_files(
            [(p, f"{tmp_path.name}/{p.name}") for p in files], farm, cache=cache)))
        sender.start()
        try:
            eventually(lambda: stall.hits >= SMALL_WORKERS, message=lambda: f"{stall.hits} uploads in flight")
            assert stall.hits == SMALL_WORKERS  # every small worker holds one; no more until one is answered
        finally:
            services.faults.clear()
            sender.join(timeout=60)
        assert reports and reports[0].files_sent == len(files)

        md5s = [hashlib.md5(p.read_bytes()).hexdigest() for p in files[:2]]
        with pytest.raises(BadRequest, match="md5"):  # no batch check: the seed's route takes one md5
            farm.json("POST", "/api/uploads/md5", json={"md5s": md5s})
        with pytest.raises(BadRequest, match="exactly one file"):  # nor several files in one upload
            farm.json("POST", "/api/uploads/file", data={"md5": md5s[0], "path": "x/a.png"},
                      files=[("file", ("a.png", files[0].read_bytes())), ("file", ("b.png", files[1].read_bytes()))])


def test_agent_start_passes_its_bandwidth_cap(capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import build_parser

    # the cap goes before or after the action alike; unless given after it, the one before it stands
    for words in (["agent", "start", "--bandwidth", "5M"], ["agent", "--bandwidth", "5M", "start"]):
        assert build_parser().parse_args(words).bandwidth == 5e6
    assert build_parser().parse_args(["agent", "--bandwidth", "5M", "start", "--bandwidth", "7M"]).bandwidth == 7e6
    try:
        assert main(["agent", "--bandwidth", "5M", "start"]) == 0
        assert agent.running()["bandwidth"] == 5e6  # type: ignore[index]
        assert main(["agent", "start", "--bandwidth", "7M"]) == 0  # one runs: it keeps its cap, and says so
        assert "already runs with its own cap" in capsys.readouterr().err
    finally:
        with agent.AgentClient() as client:
            client.stop()
        eventually(lambda: agent.running() is None, message="the agent to stop")


def test_a_watch_writes_only_what_moved(tiny_blend: Path, local_services: LocalServices) -> None:
    """Every `tether jobs watch` and DCC panel subscribed to the agent reads the view the agent already stored: a
    cycle where nothing moved writes nothing; a change is written once."""
    from test_farm_client import EMAIL, PASSWORD, _held_jobs
    from tether.farm.client import FarmClient
    from tether.jobs import JobState
    from tether.watch import Watcher

    with FarmClient(local_services.url("farm"), email=EMAIL, password=PASSWORD) as farm, JobRegistry() as registry:
        [job_id] = _held_jobs(farm, tiny_blend, "watch-writes", 1)
        # The scout chunk may have started before the hold landed (running tasks finish under a hold): wait until
        # the job is laid out and nothing of it renders, so the only change left is the one this test makes.
        held = local_services.farm.jobs[job_id]
        eventually(lambda: held.phase != "syncing" and all(t.status != "rendering" for t in held.tasks),
                   message="the held job settled")
        registry.record(service="farm", job_id=job_id, profile="local")
        watcher = Watcher(registry, lambda service, profile: farm)  # type: ignore[arg-type,return-value]
        watcher.poll_once()
        stored = registry.get("farm", job_id)
        assert stored is not None and stored.raw_state
        assert watcher.poll_once() == [] and registry.get("farm", job_id) == stored  # not even updated_at
        farm.cancel_job(job_id)
        [change] = watcher.poll_once()
        now = registry.get("farm", job_id)
        assert now is not None and now.state is JobState.CANCELLED and now.updated_at > stored.updated_at
        assert change.after == now


def test_the_foreground_agent_says_a_rate_limit_wait_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints the library's warnings while it runs; the agent has handlers of its own (terminal and log
    file): a wait is said once on each, not twice."""
    import logging
    import threading

    tether_log = logging.getLogger("tether")
    handlers = list(tether_log.handlers)
    codes: List[int] = []
    runner = threading.Thread(target=lambda: codes.append(main(["agent"])))
    runner.start()
    try:
        eventually(lambda: agent.running(), message="the foreground agent")
        logging.getLogger("tether.http").warning("rate limited by farm, waiting 3 s (budget 60 s left)")
    finally:
        with agent.AgentClient() as client:
            client.stop()
        runner.join(timeout=30)
        for handler in [h for h in tether_log.handlers if h not in handlers]:
            tether_log.removeHandler(handler)
            handler.close()
    assert codes == [0]
    assert capsys.readouterr().err.count("rate limited by farm") == 1
    assert agent.log_path().read_text().count("rate limited by farm") == 1


def test_configure_logging_again_replaces_its_handlers(tmp_path: Path) -> None:
    """The agent's logging set up twice in one process (a test, a restarted foreground agent) writes each line once,
    to the newest file only: the handlers the first call added are removed and closed."""
    import logging

    from tether.agent_server import configure_logging

    tether_log = logging.getLogger("tether")
    before = list(tether_log.handlers)
    try:
        configure_logging(tmp_path / "first.log", stderr=True)
        configure_logging(tmp_path / "second.log", stderr=True)
        added = [h for h in tether_log.handlers if h not in before]
        assert len(added) == 2  # one terminal, one file: not four
        logging.getLogger("tether.agent").info("once")
        assert (tmp_path / "second.log").read_text().count("once") == 1
        assert "once" not in (tmp_path / "first.log").read_text()
    finally:
        configure_logging(None, stderr=False)  # removes what it added
        assert [h for h in tether_log.handlers if h not in before] == []
        tether_log.setLevel(logging.NOTSET)
