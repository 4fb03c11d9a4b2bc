"""The local job registry, the watcher's polling state machine and `tether jobs`.

The watcher is tested against a small in-process JobService whose jobs the test advances by hand; the contract
between the watcher and the real farm client (list pages, not one GET per job) is measured in
benchmarks/bench_watch.py against the local farm.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import pytest
from tether import registry as registry_module
from tether.errors import ConfigError, ServiceUnavailable
from tether.jobs import Job, JobState
from tether.registry import JobRegistry
from tether.watch import ChangeKind, Watcher
from tether_cli import jobs_cmd
from tether_cli import main as cli_main


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("TETHER_DATA_DIR", str(path))
    return path


@pytest.fixture()
def reg(tmp_path: Path) -> JobRegistry:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    yield registry
    registry.close()


def job(job_id: str, state: JobState, progress: float = 0.0, *, service: str = "farm", raw: Optional[str] = None,
        error: Optional[str] = None, **counts: int) -> Job:
    return Job(service=service, id=job_id, title=f"title {job_id}", state=state, raw_state=raw or state.value,
               progress=progress, error=error, counts=counts)


# --- the registry ------------------------------------------------------------------------------------------
def test_record_round_trip(reg: JobRegistry) -> None:
    submitted = datetime(2025, 3, 1, 12, 30, 5, 123456, tzinfo=timezone.utc)
    rec = reg.record(service="farm", job_id="j1", profile="studio", title="Shot 010", source="/shots/010.blend",
                     output_dir=Path("/renders/010"), submitted_at=submitted,
                     extra={"frames": "1-24x2", "chunk_size": 4})
    got = reg.get("farm", "j1")
    assert got == rec
    assert (got.service, got.job_id, got.profile, got.title) == ("farm", "j1", "studio", "Shot 010")
    assert (got.source, got.output_dir) == ("/shots/010.blend", str(Path("/renders/010")))
    assert got.state is JobState.QUEUED and got.progress == 0.0 and not got.finished
    assert got.submitted_at == submitted
    assert got.extra == {"frames": "1-24x2", "chunk_size": 4}
    assert got.finished_at is None and got.fetched_at is None and got.error is None
    data = got.to_dict()
    assert json.loads(json.dumps(data))["submitted_at"] == "2025-03-01T12:30:05.123456Z"
    assert data["state"] == "queued"
    assert reg.get("farm", "nope") is None and reg.get("other", "j1") is None


def test_record_again_merges_and_keeps_submission_time(reg: JobRegistry) -> None:
    first = reg.record(service="farm", job_id="j1", title="a", source="/a.blend", extra={"frames": "1-10"})
    again = reg.record(service="farm", job_id="j1", output_dir="/out", extra={"chunk_size": 2})
    assert again.submitted_at == first.submitted_at
    assert (again.title, again.source, again.output_dir) == ("a", "/a.blend", "/out")
    assert again.extra == {"frames": "1-10", "chunk_size": 2}
    assert reg.count() == 1


def test_list_filters_and_order(reg: JobRegistry) -> None:
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for i, (service, profile, source) in enumerate(
        [("farm", "local", "/a.blend"), ("farm", "studio", "/b.blend"), ("autopilot", "local", "Read1"),
         ("farm", "local", "/a.blend")]
    ):
        reg.record(service=service, job_id=f"j{i}", profile=profile, source=source,
                   submitted_at=base + timedelta(minutes=i))
    reg.update_from(job("j1", JobState.COMPLETED, 100), "studio")
    assert [r.job_id for r in reg.list()] == ["j3", "j2", "j1", "j0"]
    assert [r.job_id for r in reg.list(service="farm")] == ["j3", "j1", "j0"]
    assert [r.job_id for r in reg.list(profile="local")] == ["j3", "j2", "j0"]
    assert [r.job_id for r in reg.list(source="/a.blend")] == ["j3", "j0"]
    assert [r.job_id for r in reg.list(unfinished_only=True)] == ["j3", "j2", "j0"]
    assert [r.job_id for r in reg.list(limit=2)] == ["j3", "j2"]
    assert [r.job_id for r in reg.list(service="farm", unfinished_only=True, limit=1)] == ["j3"]
    assert [r.service for r in reg.find("j2")] == ["autopilot"]
    assert reg.find("j2", "farm") == []


def test_update_from_tracks_state_and_finish_time(reg: JobRegistry) -> None:
    reg.record(service="farm", job_id="j1", profile="local", title="mine", source="/s.blend")
    running = reg.update_from(job("j1", JobState.RUNNING, 40, tasks=10, completed=4), "")
    assert running.state is JobState.RUNNING and running.progress == 40
    assert running.title == "title j1" and running.source == "/s.blend" and running.profile == "local"
    assert running.extra["counts"] == {"tasks": 10, "completed": 4}
    assert running.finished_at is None
    done = reg.update_from(job("j1", JobState.FAILED, 70, error="frame 7: out of memory"), "local")
    assert done.finished and done.finished_at is not None and done.error == "frame 7: out of memory"
    # Re-queued by the service: no longer finished.
    again = reg.update_from(job("j1", JobState.QUEUED, 0), "local")
    assert not again.finished and again.finished_at is None


def test_update_from_records_an_unknown_job_and_keeps_vendor_state(reg: JobRegistry) -> None:
    created = datetime(2025, 2, 2, 8, 0, tzinfo=timezone.utc)
    odd = Job(service="tensorpix", id="77", state=JobState.UNKNOWN, raw_state="7", created_at=created)
    rec = reg.update_from(odd, "local")
    assert rec.state is JobState.UNKNOWN and rec.raw_state == "7" and rec.state_label == "unknown (7)"
    assert rec.submitted_at == created and rec.profile == "local"
    assert not rec.finished  # unknown is followed, never guessed finished


def test_mark_fetched_missing_and_forget(reg: JobRegistry, tmp_path: Path) -> None:
    reg.record(service="farm", job_id="j1")
    fetched = reg.mark_fetched("farm", "j1", tmp_path / "out")
    assert fetched is not None and fetched.fetched_at is not None
    assert fetched.extra["fetched_to"] == str(tmp_path / "out")
    gone = reg.mark_missing("farm", "j1", "deleted on the farm")
    assert gone is not None and gone.missing and gone.error == "deleted on the farm"
    assert "not found on the service" in gone.state_label
    # The service answering for it again clears the flag.
    assert not reg.update_from(job("j1", JobState.RUNNING), "").missing
    assert reg.mark_fetched("farm", "nope") is None
    assert reg.forget("farm", "j1") is True
    assert reg.forget("farm", "j1") is False
    assert reg.get("farm", "j1") is None


def test_restart_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "jobs.sqlite"
    first = JobRegistry(path)
    first.record(service="farm", job_id="j1", profile="local", source="/a.blend", output_dir="/out",
                 extra={"frames": "1-5"})
    first.update_from(job("j1", JobState.COMPLETED, 100), "local")
    first.mark_fetched("farm", "j1", "/out")
    first.record(service="farm", job_id="j2", title="second")
    before = first.list()
    first.close()

    second = JobRegistry(path)
    assert second.list() == before
    assert second.get("farm", "j1").fetched_at is not None  # type: ignore[union-attr]
    second.close()
    mode = sqlite3.connect(str(path)).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_default_path_honours_data_dir(data_dir: Path) -> None:
    with JobRegistry() as reg:
        reg.record(service="farm", job_id="j1")
        assert reg.path == data_dir / "jobs.sqlite"
    assert (data_dir / "jobs.sqlite").is_file()


def test_schema_version_and_migration_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobRegistry(path) as reg:
        reg.record(service="farm", job_id="j1", title="kept")
    db = sqlite3.connect(str(path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == registry_module.SCHEMA_VERSION == 2
    db.close()

    def v3(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE jobs ADD COLUMN note TEXT DEFAULT 'added'")

    monkeypatch.setattr(registry_module, "MIGRATIONS", [*registry_module.MIGRATIONS, v3])
    with JobRegistry(path) as reg:
        assert reg.get("farm", "j1").title == "kept"  # type: ignore[union-attr]
    db = sqlite3.connect(str(path))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert db.execute("SELECT note FROM jobs").fetchone()[0] == "added"
    db.close()

    # A file from a newer Tether is refused with a message, not misread.
    monkeypatch.setattr(registry_module, "MIGRATIONS", registry_module.MIGRATIONS[:1])
    with pytest.raises(ConfigError, match="newer Tether"):
        JobRegistry(path).list()


def test_unreadable_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="move it aside"):
        JobRegistry(path).list()


def test_concurrent_writers_threads(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    shared = JobRegistry(path)
    errors: List[BaseException] = []

    def writer(name: str, registry: JobRegistry) -> None:
        try:
            for i in range(40):
                registry.record(service="farm", job_id=f"{name}-{i}", title=name)
                registry.update_from(job(f"{name}-{i}", JobState.RUNNING, i), "local")
                registry.update_from(job("common", JobState.RUNNING, i), "local")
        except BaseException as exc:
            errors.append(exc)

    own = [JobRegistry(path) for _ in range(2)]
    threads = [threading.Thread(target=writer, args=(f"shared{n}", shared)) for n in range(2)]
    threads += [threading.Thread(target=writer, args=(f"own{n}", reg)) for n, reg in enumerate(own)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert shared.count() == 4 * 40 + 1
    assert all(r.state is JobState.RUNNING for r in shared.list())
    for reg in [shared, *own]:
        reg.close()


def _process_writer(path: str, name: str, count: int) -> None:
    reg = JobRegistry(path)
    for i in range(count):
        reg.record(service="farm", job_id=f"{name}-{i}", source=name)
        reg.update_from(job(f"{name}-{i}", JobState.COMPLETED, 100), "local")
        reg.update_from(job("common", JobState.RUNNING, i), "local")
    reg.close()


def test_concurrent_writers_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "jobs.sqlite")
    JobRegistry(path).close()  # both children find the schema in place... or race to make it: either is fine
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(path, f"p{n}", 60)) for n in range(2)]
    for p in procs:
        p.start()
    with JobRegistry(path) as reader:  # a reader in the middle of it (a DCC listing jobs) is never blocked out
        reader.list()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with JobRegistry(path) as reg:
        assert reg.count() == 2 * 60 + 1
        assert len(reg.list(source="p0")) == len(reg.list(source="p1")) == 60
        assert all(r.finished_at is not None for r in reg.list(source="p0"))


# --- the watcher -------------------------------------------------------------------------------------------
class FakeService:
    """A JobService whose jobs the test moves; counts calls to prove one jobs_by_id per group per cycle."""

    def __init__(self, service: str = "farm") -> None:
        self.service = service
        self.jobs: Dict[str, Job] = {}
        self.calls: List[Tuple[str, ...]] = []
        self.get_calls = 0
        self.fail: Optional[Exception] = None
        self.cancelled: List[str] = []
        self.closed = False

    def set(self, job_id: str, state: JobState, progress: float = 0.0, **kw: object) -> None:
        self.jobs[job_id] = job(job_id, state, progress, service=self.service, **kw)  # type: ignore[arg-type]

    def get_job(self, job_id: str) -> Job:
        self.get_calls += 1
        return self.jobs[job_id]

    def jobs_by_id(self, job_ids: Iterable[str]) -> Dict[str, Job]:
        ids = tuple(job_ids)
        self.calls.append(ids)
        if self.fail is not None:
            raise self.fail
        return {i: self.jobs[i] for i in ids if i in self.jobs}

    def cancel_job(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self.set(job_id, JobState.CANCELLED)

    def fetch_outputs(self, job_id: str, dest: Path,
                      progress: Optional[Callable[[int, int], bool]] = None) -> List[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / f"{job_id}.0001.png"
        out.write_bytes(b"frame")
        if progress is not None:
            progress(5, 5)
        return [out]

    def close(self) -> None:
        self.closed = True


def factory(services: Dict[Tuple[str, Optional[str]], FakeService]) -> Callable[[str, Optional[str]], FakeService]:
    made: List[Tuple[str, Optional[str]]] = []

    def make(service: str, profile: Optional[str]) -> FakeService:
        made.append((service, profile))
        return services[(service, profile)]

    make.made = made  # type: ignore[attr-defined]
    return make


def test_watcher_one_call_per_group_per_cycle_and_changes(reg: JobRegistry) -> None:
    local, studio, other = FakeService("farm"), FakeService("farm"), FakeService("autopilot")
    make = factory({("farm", "local"): local, ("farm", "studio"): studio, ("autopilot", "local"): other})
    for i in range(5):
        reg.record(service="farm", job_id=f"l{i}", profile="local")
        local.set(f"l{i}", JobState.QUEUED)
    for i in range(3):
        reg.record(service="farm", job_id=f"s{i}", profile="studio")
        studio.set(f"s{i}", JobState.QUEUED)
    reg.record(service="autopilot", job_id="a0", profile="local")
    other.set("a0", JobState.RUNNING, 10)
    reg.record(service="farm", job_id="old", profile="local", state=JobState.COMPLETED)  # finished: never asked

    watcher = Watcher(reg, make, fast=2, cap=60)
    first = watcher.poll_once()
    assert [c.kind for c in first] == [ChangeKind.STATE]  # a0: queued -> running; queued jobs did not move
    assert first[0].job_id == "a0" and first[0].state_changed
    assert len(local.calls) == len(studio.calls) == len(other.calls) == 1
    assert sorted(local.calls[0]) == [f"l{i}" for i in range(5)] and sorted(studio.calls[0]) == ["s0", "s1", "s2"]
    assert local.get_calls == 0

    local.set("l0", JobState.RUNNING, 25)
    local.set("l1", JobState.COMPLETED, 100)
    studio.set("s2", JobState.FAILED, 50, error="frame 3 crashed")
    other.set("a0", JobState.RUNNING, 35)
    second = {(c.job_id, c.kind) for c in watcher.poll_once()}
    assert second == {("l0", ChangeKind.STATE), ("l1", ChangeKind.FINISHED), ("s2", ChangeKind.FINISHED),
                      ("a0", ChangeKind.PROGRESS)}
    assert len(local.calls) == len(studio.calls) == len(other.calls) == 2
    assert reg.get("farm", "s2").error == "frame 3 crashed"  # type: ignore[union-attr]
    watcher.poll_once()  # finished jobs drop out of the next request
    assert sorted(local.calls[2]) == ["l0", "l2", "l3", "l4"] and sorted(studio.calls[2]) == ["s0", "s1"]
    assert sorted(make.made) == [("autopilot", "local"), ("farm", "local"), ("farm", "studio")]  # type: ignore
    assert not watcher.done

    for i in range(5):
        local.set(f"l{i}", JobState.COMPLETED, 100)
    for i in range(3):
        studio.set(f"s{i}", JobState.CANCELLED)
    other.set("a0", JobState.COMPLETED, 100)
    final = watcher.poll_once()
    assert {c.job_id for c in final if c.kind is ChangeKind.FINISHED} == {"l0", "l2", "l3", "l4", "s0", "s1", "a0"}
    assert {c.job_id for c in final if c.failed} == {"s0", "s1"}
    assert watcher.done
    calls = (len(local.calls), len(studio.calls), len(other.calls))
    assert watcher.poll_once() == [] and (len(local.calls), len(studio.calls), len(other.calls)) == calls
    watcher.close()
    assert local.closed and studio.closed and other.closed


def test_a_change_carries_the_view_it_was_read_from_and_shared_clients_stay_open(reg: JobRegistry) -> None:
    """A follower shows the service's own view of what moved (its vendor reply too); a DCC's clients, lent to a
    watcher, are still its own once the watcher closes."""
    svc = FakeService()
    reg.record(service="farm", job_id="j1", profile="local")
    svc.set("j1", JobState.RUNNING, 10)
    watcher = Watcher(reg, factory({("farm", "local"): svc}), shared_clients=True)
    [change] = watcher.poll_once()
    assert change.job is svc.jobs["j1"] and change.after is not None and change.after.progress == 10
    watcher.close()
    assert not svc.closed


def test_watcher_backoff_grows_to_cap_and_resets(reg: JobRegistry) -> None:
    svc = FakeService()
    reg.record(service="farm", job_id="j1", profile="local")
    svc.set("j1", JobState.RUNNING, 1)
    watcher = Watcher(reg, factory({("farm", "local"): svc}), fast=2, cap=10, factor=2)
    assert watcher.next_delay() == 2
    watcher.poll_once()  # queued -> running
    assert watcher.next_delay() == 2
    delays = []
    for _ in range(4):
        assert watcher.poll_once() == []
        delays.append(watcher.next_delay())
    assert delays == [4, 8, 10, 10]
    svc.set("j1", JobState.RUNNING, 50)
    assert [c.kind for c in watcher.poll_once()] == [ChangeKind.PROGRESS]
    assert watcher.next_delay() == 2


def test_watcher_reports_errors_backs_off_and_recovers(reg: JobRegistry) -> None:
    good, bad = FakeService(), FakeService("autopilot")
    reg.record(service="farm", job_id="f1", profile="local")
    reg.record(service="autopilot", job_id="a1", profile="local")
    good.set("f1", JobState.QUEUED)
    bad.fail = ServiceUnavailable("cannot reach http://127.0.0.1:9/api: connection refused", service="autopilot")
    watcher = Watcher(reg, factory({("farm", "local"): good, ("autopilot", "local"): bad}), fast=1, cap=30)
    changes = watcher.poll_once()
    assert [c.kind for c in changes] == [ChangeKind.ERROR]
    assert changes[0].service == "autopilot" and changes[0].job_id is None
    assert "connection refused" in changes[0].message and isinstance(changes[0].error, ServiceUnavailable)
    assert len(good.calls) == 1  # the other service was still asked
    assert watcher.next_delay() == 2
    watcher.poll_once()
    assert watcher.next_delay() == 4
    bad.fail = RuntimeError("unexpected reply shape")  # even a bug in a client does not stop the watcher
    assert "RuntimeError" in watcher.poll_once()[0].message
    bad.fail = None
    bad.set("a1", JobState.COMPLETED, 100)
    assert [(c.job_id, c.kind) for c in watcher.poll_once()] == [("a1", ChangeKind.FINISHED)]
    assert watcher.next_delay() == 1


def test_watcher_client_that_cannot_be_made_is_an_error_event(reg: JobRegistry) -> None:
    reg.record(service="nosuch", job_id="x", profile="local")

    def make(service: str, profile: Optional[str]) -> FakeService:
        raise ConfigError(f"no client for service '{service}' yet")

    changes = Watcher(reg, make).poll_once()
    assert [c.kind for c in changes] == [ChangeKind.ERROR] and "no client" in changes[0].message


def test_watcher_missing_job_reported_once_then_not_asked(reg: JobRegistry) -> None:
    svc = FakeService()
    reg.record(service="farm", job_id="gone", profile="local")
    reg.record(service="farm", job_id="here", profile="local")
    svc.set("here", JobState.RUNNING)
    watcher = Watcher(reg, factory({("farm", "local"): svc}))
    kinds = {(c.job_id, c.kind) for c in watcher.poll_once()}
    assert kinds == {("gone", ChangeKind.MISSING), ("here", ChangeKind.STATE)}
    assert reg.get("farm", "gone").missing  # type: ignore[union-attr]
    assert watcher.poll_once() == []
    assert svc.calls[-1] == ("here",)


def test_watcher_sees_jobs_finished_by_another_process(reg: JobRegistry, tmp_path: Path) -> None:
    svc = FakeService()
    reg.record(service="farm", job_id="j1", profile="local")
    svc.set("j1", JobState.RUNNING, 5)
    watcher = Watcher(reg, factory({("farm", "local"): svc}))
    watcher.poll_once()
    with JobRegistry(reg.path) as cli:  # e.g. `tether jobs watch` in a terminal got there first
        cli.update_from(job("j1", JobState.COMPLETED, 100), "local")
    changes = watcher.poll_once()
    assert [(c.job_id, c.kind) for c in changes] == [("j1", ChangeKind.FINISHED)]
    assert len(svc.calls) == 1 and watcher.done


def test_watcher_limited_to_given_jobs_and_run_loop(reg: JobRegistry) -> None:
    svc = FakeService()
    for name in ("a", "b"):
        reg.record(service="farm", job_id=name, profile="local")
        svc.set(name, JobState.QUEUED)
    watcher = Watcher(reg, factory({("farm", "local"): svc}), jobs=[("farm", "a")], fast=0.001, cap=0.002)
    seen: List[str] = []

    def on_changes(changes: list) -> None:
        seen.extend(f"{c.job_id}:{c.after.state.value}" for c in changes)
        svc.set("a", JobState.COMPLETED, 100)

    svc.set("a", JobState.RUNNING, 10)
    watcher.run(on_changes)
    assert seen == ["a:running", "a:completed"]
    assert all(call == ("a",) for call in svc.calls)
    assert watcher.done and [r.job_id for r in watcher.followed] == ["a"]



def test_watcher_cycles_wait_its_backoff_on_the_clock_and_stop_when_cancelled(reg: JobRegistry) -> None:
    from tether.poll import Clock

    svc = FakeService()
    reg.record(service="farm", job_id="a", profile="local")
    svc.set("a", JobState.QUEUED)
    watcher = Watcher(reg, factory({("farm", "local"): svc}), fast=2, cap=8)
    waits: List[float] = []
    cycles = watcher.follow(clock=Clock(monotonic=lambda: 0.0, sleep=waits.append))
    for _ in range(4):  # nothing moves: the waits grow to the cap, read off the watcher's own backoff
        next(cycles)
    assert waits == [3.0, 4.5, 6.75] and len(svc.calls) == 4
    svc.set("a", JobState.COMPLETED, 100)
    assert [c.kind for c in next(cycles)] == [ChangeKind.FINISHED]
    assert list(cycles) == [] and watcher.done and len(waits) == 4  # done: no wait after the last cycle

    reg.record(service="farm", job_id="b", profile="local")
    svc.set("b", JobState.RUNNING, 5)
    stop = {"now": False}
    follow = Watcher(reg, factory({("farm", "local"): svc}), fast=2, cap=8)
    gen = follow.follow(cancelled=lambda: stop["now"], clock=Clock(sleep=lambda s: stop.update(now=True)))
    assert len(list(gen)) == 1 and not follow.done  # cancelled during the wait: no second ask

# --- `tether jobs` -----------------------------------------------------------------------------------------
def _seed(data_dir: Path) -> None:
    with JobRegistry() as reg:
        reg.record(service="farm", job_id="101", profile="local", title="Shot 010", source="/shots/010.blend",
                   output_dir=str(data_dir / "out101"), extra={"frames": "1-24x2"})
        reg.update_from(job("101", JobState.RUNNING, 50, tasks=12, completed=6), "local")
        reg.record(service="farm", job_id="102", profile="local", title="Shot 020", source="/shots/020.blend")
        reg.update_from(job("102", JobState.COMPLETED, 100), "local")
        reg.record(service="autopilot", job_id="102", profile="local", title="Roto", source="Read1")


def test_cli_list_plain_and_json(data_dir: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for whole cells whatever the runner's terminal is
    assert cli_main(["jobs"]) == 0
    assert "no jobs recorded in" in capsys.readouterr().out
    _seed(data_dir)
    assert cli_main(["jobs"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["SERVICE", "ID", "TITLE", "STATE", "PROGRESS", "SOURCE", "OUTPUT", "AGE"]
    assert len(lines) == 4
    row = next(line for line in lines if "/shots/010.blend" in line)
    assert "running" in row and "50% (6/12 tasks)" in row and "/shots/010.blend" in row and "out101" in row

    assert cli_main(["jobs", "list", "--json", "--service", "farm"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(d["job_id"] for d in data) == ["101", "102"]
    by_id = {d["job_id"]: d for d in data}
    assert by_id["101"]["state"] == "running" and by_id["101"]["extra"]["frames"] == "1-24x2"
    assert by_id["102"]["finished_at"] is not None

    assert cli_main(["jobs", "--limit", "0"]) == 0  # unfinished ones are always shown
    out = capsys.readouterr().out
    assert "/shots/010.blend" in out and "/shots/020.blend" not in out and "--all shows every one" in out
    assert cli_main(["jobs", "--all", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_cli_unknown_and_ambiguous_ids(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(data_dir)
    assert cli_main(["jobs", "cancel", "999"]) == 1
    err = capsys.readouterr().err
    assert "999 is not in the job registry" in err and str(data_dir / "jobs.sqlite") in err
    assert cli_main(["jobs", "forget", "102"]) == 1
    err = capsys.readouterr().err
    assert "several services (autopilot, farm)" in err and "--service" in err
    assert cli_main(["jobs", "forget", "102", "--service", "autopilot"]) == 0
    assert "forgot autopilot job 102" in capsys.readouterr().out
    with JobRegistry() as reg:
        assert reg.get("autopilot", "102") is None and reg.get("farm", "102") is not None


def test_cli_watch_cancel_fetch_with_in_process_service(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(data_dir)
    svc = FakeService()
    svc.set("101", JobState.RUNNING, 50)
    script = iter([(JobState.RUNNING, 80), (JobState.COMPLETED, 100)])
    real = svc.jobs_by_id

    def advancing(ids: Iterable[str]) -> Dict[str, Job]:
        result = real(ids)
        state, progress = next(script, (JobState.COMPLETED, 100))
        svc.set("101", state, progress)
        return result

    svc.jobs_by_id = advancing  # type: ignore[method-assign]
    monkeypatch.setattr(jobs_cmd, "make_client", lambda service, profile: svc)
    code = cli_main(["jobs", "watch", "101", "--service", "farm", "--interval", "0.01", "--max-interval", "0.02"])
    out = capsys.readouterr().out
    assert code == 0
    assert "80%" in out and "running -> completed" in out

    out_dir = data_dir / "fetched"
    assert cli_main(["jobs", "fetch", "101", "--service", "farm", "--out", str(out_dir)]) == 0
    assert (out_dir / "101.0001.png").read_bytes() == b"frame"
    with JobRegistry() as reg:
        assert reg.get("farm", "101").fetched_at is not None  # type: ignore[union-attr]

    # A failing job makes `watch` exit non-zero; cancel goes to the service and is recorded.
    with JobRegistry() as reg:
        reg.record(service="farm", job_id="103", profile="local", title="bad")
        reg.record(service="farm", job_id="104", profile="local", title="cancel me")
    svc.jobs_by_id = real  # type: ignore[method-assign]
    svc.set("103", JobState.FAILED, 10, error="out of memory")
    svc.set("104", JobState.RUNNING, 10)
    assert cli_main(["jobs", "cancel", "104"]) == 0
    assert svc.cancelled == ["104"] and "cancelled" in capsys.readouterr().out
    assert cli_main(["jobs", "watch", "--interval", "0.01", "--max-interval", "0.02"]) == 1
    captured = capsys.readouterr()
    assert "103" in captured.err and "out of memory" in captured.err

    # Fetching a job that is not completed says so instead of downloading nothing.
    assert cli_main(["jobs", "fetch", "103", "--out", str(out_dir)]) == 1
    assert "failed, not completed" in capsys.readouterr().err


def test_watcher_leaves_skipped_jobs_to_their_follower(reg: JobRegistry) -> None:
    svc = FakeService()
    for job_id in ("mine", "theirs"):
        reg.record(service="farm", job_id=job_id, profile="local")
        svc.set(job_id, JobState.RUNNING, 10)
    followed = {("farm", "theirs")}
    watcher = Watcher(reg, factory({("farm", "local"): svc}), skip=followed.__contains__)
    assert {c.job_id for c in watcher.poll_once()} == {"mine"}
    assert [sorted(call) for call in svc.calls] == [["mine"]]  # the followed job is not asked about
    svc.set("mine", JobState.COMPLETED, 100)
    watcher.poll_once()
    assert watcher.done  # nothing left for this watcher, though "theirs" still runs
    followed.clear()  # its follower let go: the watcher takes it over
    assert {c.job_id for c in watcher.poll_once()} == {"theirs"} and sorted(svc.calls[-1]) == ["theirs"]
