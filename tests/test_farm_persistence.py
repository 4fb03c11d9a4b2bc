"""The local farm keeps its jobs across a restart of the services (same state_dir), over real HTTP and real renders."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any, Dict, List

import httpx
import pytest
from test_farm_service import finished, job_body, upload_scene, wait_for
from tether_cli import main
from tether_services.farm.engine import EMAIL, PASSWORD, LocalFarm
from tether_services.farm.executor import LocalProcessExecutor
from tether_services.farm.persist import FILENAME, FarmStateError
from tether_services.server import LocalServices


def _client(services: LocalServices, token: str) -> httpx.Client:
    return httpx.Client(base_url=services.url("farm"), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _login(services: LocalServices) -> str:
    reply = httpx.post(f"{services.url('farm')}/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def _outputs(api: httpx.Client, job_id: str) -> Dict[str, Dict[str, Any]]:
    return {o["name"]: o for o in api.get(f"/api/jobs/{job_id}/outputs").json()["items"]}


def _chunks_logged(log: Path) -> List[List[int]]:
    """The frame lists the render worker was handed for this task, in order (one line per chunk it started)."""
    found = re.finditer(r"tether: chunk \[([\d, ]+)\]", log.read_text())
    return [[int(f) for f in m.group(1).split(",")] for m in found]


@pytest.mark.render
def test_restart_keeps_finished_held_cancelled_and_resumes_the_interrupted_job(tiny_blend: Path,
                                                                               tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = LocalServices(port=0, state_dir=state, workers=1, services=["farm"]).start()
    try:
        token = _login(first)
        with _client(first, token) as api:
            paths = upload_scene(api, tiny_blend)
            project = api.post("/api/projects", json={"name": "restart"}).json()
            executor = first.farm.executor
            assert isinstance(executor, LocalProcessExecutor)
            stalled = executor.stall_after(3)  # only the 12-frame chunk has 3 frames: it stops reporting there
            done_id = api.post("/api/jobs", json=job_body(paths, frame_range="1-2", project="restart")).json()["id"]
            held_id = api.post("/api/jobs", json=job_body(paths, frame_range="1-4", chunk_size=1)).json()["id"]
            assert api.patch(f"/api/jobs/{held_id}", json={"action": "hold"}).json()["status"] == "held"
            gone_id = api.post("/api/jobs", json=job_body(paths, frame_range="1-2")).json()["id"]
            assert api.patch(f"/api/jobs/{gone_id}", json={"action": "cancel"}).json()["status"] == "cancelled"
            # one chunk of 12 frames; one worker, so it starts after the first job and is cut short by the stop
            # while it is held after its third frame (however fast it renders)
            cut_id = api.post("/api/jobs", json=job_body(paths, frame_range="1-12", chunk_size=12)).json()["id"]

            done = wait_for(api, done_id, finished)
            assert done["status"] == "completed", done["error"]
            done_outputs = _outputs(api, done_id)
            assert stalled.wait(60), "the 12-frame chunk never reported its third frame"
            farm = first.farm
            farm.close()  # what stop() does, but now: rendering must not get further than this
    finally:
        first.stop()

    cut_before = farm.job_view(farm.jobs[cut_id], tasks=True)
    assert cut_before["status"] == "rendering" and cut_before["frames_done"] == 3, cut_before
    held_before = farm.job_view(farm.jobs[held_id], tasks=True)
    out_dir = farm.jobs[cut_id].output_dir
    # What the farm recorded as delivered (a frame the killed worker wrote but never reported is rendered again).
    delivered = {name: (out_dir / name).stat().st_mtime_ns for name in farm.jobs[cut_id].delivered.values()}
    assert len(delivered) == cut_before["frames_done"]
    old_ids = set(farm.jobs)
    billed = [t["id"] for t in farm.list_transactions()]

    with LocalServices(port=0, state_dir=state, workers=1, services=["farm"]) as second, _client(second, token) as api:
        # the token issued before the restart still works, and every job is still there
        listed = {j["id"]: j for j in api.get("/api/jobs").json()["items"]}
        assert set(listed) == old_ids
        assert listed[done_id]["status"] == "completed" and listed[gone_id]["status"] == "cancelled"
        assert listed[done_id]["created_at"] == done["created_at"]
        assert listed[done_id]["frames_done"] == 2 and listed[done_id]["project"] == "restart"
        assert _outputs(api, done_id) == done_outputs
        for name, meta in done_outputs.items():
            data = api.get(f"/api/jobs/{done_id}/outputs/{name}").content
            assert hashlib.md5(data).hexdigest() == meta["md5"]

        cut = wait_for(api, cut_id, finished)
        assert cut["status"] == "completed", cut["error"]
        assert cut["frames_done"] == 12 and cut["progress"] == 100.0
        assert sorted(_outputs(api, cut_id)) == [f"frame_{f:04d}.png" for f in range(1, 13)]
        assert cut["tasks"][0]["attempts"] == 2
        # frames delivered before the stop were not rendered again; the rest were rendered once, after it
        assert {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir() if p.name in delivered} == delivered
        chunks = _chunks_logged(out_dir.parent / "logs" / "task-0000.log")
        assert sorted(delivered) == [f"frame_{f:04d}.png" for f in (1, 2, 3)]
        assert chunks == [list(range(1, 13)), list(range(4, 13))]

        # the held job stayed held through the restart and while the other job rendered
        held = api.get(f"/api/jobs/{held_id}").json()
        assert held["status"] == "held"
        assert [t["status"] for t in held["tasks"]] == [t["status"] for t in held_before["tasks"]]
        assert held["frames_done"] == held_before["frames_done"]
        assert api.patch(f"/api/jobs/{held_id}", json={"action": "unhold"}).status_code == 200
        assert wait_for(api, held_id, finished)["status"] == "completed"

        # projects, upload bindings and billing survived; new jobs get new ids
        projects = api.get("/api/projects").json()["items"]
        assert {"id": project["id"], "name": "restart"} in [{"id": p["id"], "name": p["name"]} for p in projects]
        assert api.post("/api/projects", json={"name": "restart"}).status_code == 409
        assert billed == [t["id"] for t in api.get("/api/billing/transactions").json()["items"]][-len(billed):]
        fresh = api.post("/api/jobs", json=job_body(paths, frame_range="1"))  # paths bound before the restart
        assert fresh.status_code == 201 and fresh.json()["id"] not in old_ids
        assert api.get("/api/jobs").json()["items"][0]["id"] == fresh.json()["id"]  # newest first still
        # waited for, not cancelled: a one-frame job can finish before a cancel reaches it (409 on a finished job)
        assert wait_for(api, fresh.json()["id"], finished)["status"] == "completed"
        assert api.delete(f"/api/jobs/{done_id}").status_code == 204

    with LocalServices(port=0, state_dir=state, workers=1, services=["farm"]) as third, _client(third, token) as api:
        ids = {j["id"] for j in api.get("/api/jobs").json()["items"]}
        assert done_id not in ids and {cut_id, held_id, gone_id, fresh.json()["id"]} <= ids
        assert api.get(f"/api/jobs/{done_id}").status_code == 404


def test_unreadable_state_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    state_file = store / "farm" / FILENAME
    state_file.parent.mkdir(parents=True)
    state_file.write_bytes(b"this is not a database\n" * 200)
    with pytest.raises(FarmStateError) as err:
        LocalServices(port=0, state_dir=store, services=["farm"]).start()
    assert str(state_file) in str(err.value) and "move that file aside" in str(err.value)

    assert main(["serve", "--store", str(store), "--port", "0"]) == 1
    printed = capsys.readouterr().err
    assert printed.startswith("tether: error: ") and str(state_file) in printed and "Traceback" not in printed


def test_a_damaged_job_row_names_the_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalServices(port=0, state_dir=state, services=["farm"]) as services:
        services.farm.create_project("kept")
    state_file = state / "farm" / FILENAME
    with sqlite3.connect(state_file) as conn:
        conn.execute("INSERT INTO jobs VALUES ('job-x', 99, '{\"job_title\": 1}', '{}', 50, 'active', 0, "
                     "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', NULL, NULL, 'a.blend', 0, 0)")
    conn.close()
    with pytest.raises(FarmStateError, match=re.escape(str(state_file))):
        LocalServices(port=0, state_dir=state, services=["farm"]).start()


def test_without_persistence_nothing_is_written(tmp_path: Path) -> None:
    farm = LocalFarm(tmp_path / "mem", persist=False)
    try:
        farm.create_project("only-in-memory")
        assert {p["name"] for p in farm.list_projects()} == {"default", "only-in-memory"}
    finally:
        farm.close()
    assert not (tmp_path / "mem" / FILENAME).exists()
    again = LocalFarm(tmp_path / "mem", persist=False)
    try:
        assert {p["name"] for p in again.list_projects()} == {"default"}
    finally:
        again.close()


def test_tether_serve_keeps_its_store_between_runs_by_default(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "TETHER_DATA_DIR": str(tmp_path / "data"), "TETHER_CONFIG_DIR": str(tmp_path / "config")}

    def first_line(*extra: str) -> str:
        tether = str(Path(sys.executable).parent / "tether")
        # SIGINT back to its default in the child: a shell's background job inherits it ignored, and Python then
        # never turns it into KeyboardInterrupt, so the server would not stop
        proc = subprocess.Popen([tether, "serve", "--port", "0", "--workers", "1", *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            assert proc.stdout is not None
            return proc.stdout.readline()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)

    kept = first_line()
    store = tmp_path / "data" / "local-services"
    assert f"store: {store}, kept between runs" in kept
    assert (store / "farm" / "farm.sqlite3").is_file()  # still there after the server stopped
    throwaway = first_line("--temporary")
    assert "deleted on exit" in throwaway and str(store) not in throwaway
