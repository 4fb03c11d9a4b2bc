"""Contract tests of the local render farm over real HTTP (plain httpx), plus one real render of a tiny scene."""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Dict, List

import httpx
import pytest
from tether_services.farm.engine import EMAIL, PASSWORD
from tether_services.faults import Faults
from tether_services.server import LocalServices
from waiting import eventually


@pytest.fixture
def api(farm_url: str, farm_headers: Dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=farm_url, headers=farm_headers, timeout=30) as client:
        yield client


def upload(api: httpx.Client, path: Path, md5: str = "") -> httpx.Response:
    data = path.read_bytes()
    return api.post("/api/uploads/file", files={"file": (path.name, data)},
                    data={"md5": md5 or hashlib.md5(data).hexdigest(), "path": str(path)})


def upload_scene(api: httpx.Client, blend: Path) -> List[str]:
    paths = [blend, blend.parent / "textures" / "checker.png"]
    for path in paths:
        assert upload(api, path).status_code == 201
    return [str(p) for p in paths]


def job_body(paths: List[str], **over: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {
        "job_title": "test", "project": "default", "instance_type": "cpu-standard-8", "chunk_size": 2,
        "frame_range": "1-4", "scout_frames": "", "blender_version": "blender-5-0", "render_software": "cycles",
        "output_path": "gs://bucket/out", "upload_paths": paths,
    }
    body.update(over)
    return body


def wait_for(api: httpx.Client, job_id: str, done: Callable[[Dict[str, Any]], bool],
             timeout: float = 60.0) -> Dict[str, Any]:
    job: Dict[str, Any] = eventually(lambda: api.get(f"/api/jobs/{job_id}").json(), done, timeout=timeout,
                                     message=f"job {job_id} to reach the expected state")
    return job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def finished(job: Dict[str, Any]) -> bool:
    return job["status"] in ("completed", "failed", "cancelled")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- frame, auth ----------------------------------------------------------------------------------------------
def test_health_and_request_ids(local_services: LocalServices, farm_url: str) -> None:
    health = httpx.get(f"{local_services.base_url}/health")
    assert health.status_code == 200 and "farm" in health.json()["services"]
    mine = httpx.get(f"{farm_url}/api/jobs", headers={"x-request-id": "abc123"})
    assert mine.status_code == 401 and mine.headers["x-request-id"] == "abc123"
    other = httpx.get(f"{farm_url}/api/packages")
    assert len(other.headers["x-request-id"]) >= 16 and other.headers["x-request-id"] != "abc123"


def test_login_and_auth_refusals(local_services: LocalServices, farm_url: str) -> None:
    wrong = httpx.post(f"{farm_url}/api/auth/login", json={"email": EMAIL, "password": "nope"})
    assert wrong.status_code == 401 and "wrong e-mail or password" in wrong.json()["message"]
    assert httpx.get(f"{farm_url}/api/jobs").status_code == 401
    bogus = httpx.get(f"{farm_url}/api/jobs", headers={"Authorization": "Bearer not-a-token"})
    assert bogus.status_code == 401 and bogus.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{farm_url}/api/jobs", headers={"Authorization": "Basic abc"}).status_code == 401

    farm = local_services.farm
    old_ttl = farm.token_ttl
    farm.token_ttl = -1.0  # issued already expired: the client's refresh-on-401 path
    try:
        login = httpx.post(f"{farm_url}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
    finally:
        farm.token_ttl = old_ttl
    stale = httpx.get(f"{farm_url}/api/jobs", headers={"Authorization": f"Bearer {login['access_token']}"})
    assert stale.status_code == 401 and "expired" in stale.json()["message"]
    fresh = httpx.post(f"{farm_url}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
    assert fresh["access_token"] != login["access_token"] and fresh["expires_in"] > 0
    ok = httpx.get(f"{farm_url}/api/jobs", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert ok.status_code == 200


# --- catalogue, projects, billing ----------------------------------------------------------------------------
def test_instances_packages_projects_billing(api: httpx.Client) -> None:
    instances = api.get("/api/enterprise/instances").json()["items"]
    assert instances and all(i["enabled"] for i in instances)
    assert "gpu-a100" not in {i["id"] for i in instances}  # disabled: hidden from a non-admin
    packages = {p["id"]: p for p in api.get("/api/packages").json()["items"]}
    assert {"blender-4-2", "blender-4-5", "blender-5-0"} <= set(packages)
    assert "cycles" in packages["blender-5-0"]["render_software"]

    name = f"proj-{uuid.uuid4().hex[:8]}"
    project = api.post("/api/projects", json={"name": name})
    assert project.status_code == 201
    assert api.post("/api/projects", json={"name": name}).status_code == 409
    pid = project.json()["id"]
    assert api.patch(f"/api/projects/{pid}", json={"archived": True}).json()["archived"] is True
    assert name not in {p["name"] for p in api.get("/api/projects").json()["items"]}
    assert name in {p["name"] for p in api.get("/api/projects", params={"include_archived": "true"}).json()["items"]}
    api.patch(f"/api/projects/{pid}", json={"archived": False})
    assert name in {p["name"] for p in api.get("/api/projects").json()["items"]}
    assert api.patch("/api/projects/prj-missing", json={"archived": True}).status_code == 404

    period = api.get("/api/billing/current-period").json()
    assert period["currency"] == "USD" and period["period_start"] < period["period_end"]
    assert api.get("/api/billing/transactions").json()["items"][-1]["amount"] > 0  # the starting credit


# --- uploads and validation ----------------------------------------------------------------------------------
def test_upload_md5_mismatch_then_dedupe(api: httpx.Client, tmp_path: Path, local_services: LocalServices) -> None:
    path = tmp_path / "asset.bin"
    path.write_bytes(os.urandom(300_000))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    bad = upload(api, path, md5="0" * 32)
    assert bad.status_code == 400 and md5 in bad.json()["message"]
    assert api.post("/api/uploads/md5", json={"md5": md5, "path": str(path)}).json()["exists"] is False
    store_tmp = local_services.farm.store.tmp
    assert list(store_tmp.iterdir()) == []  # the rejected bytes were not kept

    good = upload(api, path)
    assert good.status_code == 201 and good.json()["md5"] == md5 and good.json()["size"] == 300_000
    elsewhere = "/other/machine/asset.bin"
    again = api.post("/api/uploads/md5", json={"md5": md5, "size": 300_000, "path": elsewhere}).json()
    assert again == {"exists": True, "file_id": md5, "size": 300_000}
    assert api.post("/api/uploads/md5", json={"md5": md5, "size": 1}).json()["exists"] is False
    assert api.post("/api/uploads/md5", json={"md5": "xyz"}).status_code == 400
    missing = api.post("/api/uploads/file", data={"md5": md5, "path": "/a"}, files={"other": ("x", b"1")})
    assert missing.status_code == 400 and "path" not in missing.json()["message"].split(":")[0]


def test_create_job_validation(api: httpx.Client, tiny_blend: Path) -> None:
    paths = upload_scene(api, tiny_blend)

    def refused(**over: Any) -> str:
        reply = api.post("/api/jobs", json=job_body(paths, **over))
        assert reply.status_code == 400, reply.text
        return str(reply.json()["message"])

    assert "cpu-standard-8" in refused(instance_type="quantum-1")
    assert "not enabled" in refused(instance_type="gpu-a100")
    assert "blender-5-0" in refused(blender_version="blender-4-1")
    assert "render_software" in refused(render_software="arnold")
    assert "chunk_size" in refused(chunk_size=0)
    assert "10-1" in refused(frame_range="10-1x0")
    assert "abc" in refused(frame_range="abc")
    assert "scout" in refused(scout_frames="500")
    assert "/never/sent.png" in refused(upload_paths=[*paths, "/never/sent.png"])
    assert ".blend" in refused(upload_paths=paths[1:])
    assert "unknown project" in refused(project="nope-" + uuid.uuid4().hex)
    assert "surprise" in refused(surprise=1)


# --- listing ------------------------------------------------------------------------------------------------
def test_list_pagination_and_filters(api: httpx.Client, tiny_blend: Path) -> None:
    paths = upload_scene(api, tiny_blend)
    project = f"list-{uuid.uuid4().hex[:8]}"
    api.post("/api/projects", json={"name": project})
    ids = [api.post("/api/jobs", json=job_body(paths, project=project, frame_range="1", job_title=f"j{i}")).json()["id"]
           for i in range(5)]
    for job_id in ids:
        wait_for(api, job_id, finished)
    first = api.get("/api/jobs", params={"project": project, "per_page": 2}).json()
    assert (first["total"], first["pages"], first["page"]) == (5, 3, 1)
    assert [j["id"] for j in first["items"]] == ids[::-1][:2]  # newest first
    last = api.get("/api/jobs", params={"project": project, "per_page": 2, "page": 3}).json()
    assert [j["id"] for j in last["items"]] == [ids[0]]
    done = api.get("/api/jobs", params={"project": project, "status": "completed,failed"}).json()
    assert done["total"] == 5
    assert api.get("/api/jobs", params={"project": project, "status": "held"}).json()["total"] == 0
    assert api.get("/api/jobs", params={"status": "bogus"}).status_code == 400
    assert api.get("/api/jobs", params={"per_page": 0}).status_code == 400


# --- state machine ------------------------------------------------------------------------------------------
def test_scout_hold_unhold_priority_delete(api: httpx.Client, tiny_blend: Path) -> None:
    paths = upload_scene(api, tiny_blend)
    job = api.post("/api/jobs", json=job_body(paths, frame_range="1-6", chunk_size=2, scout_frames="1")).json()
    job_id = job["id"]
    waiting = wait_for(api, job_id, lambda j: j["status"] == "waiting")
    assert [(t["frames"], t["status"], t["scout"]) for t in waiting["tasks"]] == [
        ([1, 2], "completed", True), ([3, 4], "waiting", False), ([5, 6], "waiting", False)]
    assert sorted(o["name"] for o in api.get(f"/api/jobs/{job_id}/outputs").json()["items"]) == [
        "frame_0001.png", "frame_0002.png"]

    assert api.delete(f"/api/jobs/{job_id}").status_code == 409  # not finished
    assert api.patch(f"/api/jobs/{job_id}", json={"action": "hold"}).json()["status"] == "held"
    assert api.patch(f"/api/jobs/{job_id}", json={"action": "hold"}).json()["status"] == "held"  # idempotent
    assert api.patch(f"/api/jobs/{job_id}", json={"priority": 80}).json()["priority"] == 80
    assert api.patch(f"/api/jobs/{job_id}", json={"priority": 80, "action": "hold"}).status_code == 400
    assert api.patch(f"/api/jobs/{job_id}", json={"action": "pause"}).status_code == 400
    assert api.patch(f"/api/jobs/{job_id}", json={"priority": 101}).status_code == 400

    api.patch(f"/api/jobs/{job_id}", json={"action": "unhold"})
    done = wait_for(api, job_id, finished)
    assert done["status"] == "completed" and done["frames_done"] == 6 and done["progress"] == 100.0
    assert api.patch(f"/api/jobs/{job_id}", json={"action": "hold"}).status_code == 409
    assert api.patch(f"/api/jobs/{job_id}", json={"action": "cancel"}).status_code == 409
    assert api.delete(f"/api/jobs/{job_id}").status_code == 204
    assert api.get(f"/api/jobs/{job_id}").status_code == 404


def test_cancel_kills_the_running_chunk(api: httpx.Client, tiny_blend: Path, local_services: LocalServices) -> None:
    paths = upload_scene(api, tiny_blend)
    # one task of 3000 frames: it runs far longer than this test
    job_id = api.post("/api/jobs", json=job_body(paths, frame_range="1-3000", chunk_size=3000)).json()["id"]
    wait_for(api, job_id, lambda j: j["frames_done"] >= 2)
    pids = local_services.farm.executor.worker_pids()
    reply = api.patch(f"/api/jobs/{job_id}", json={"action": "cancel"})
    assert reply.status_code == 200 and reply.json()["status"] == "cancelled"
    job = wait_for(api, job_id, lambda j: j["tasks"][0]["status"] == "cancelled")
    assert job["status"] == "cancelled"
    eventually(lambda: not set(pids) <= set(local_services.farm.executor.worker_pids()), timeout=20,
               message="a worker to be killed")
    # the killed worker is reaped, not merely signalled: nothing can write another frame after this point
    killed = [pid for pid in pids if pid not in local_services.farm.executor.worker_pids()]
    assert killed and not any(_alive(pid) for pid in killed)
    count = len(api.get(f"/api/jobs/{job_id}/outputs").json()["items"])
    assert len(api.get(f"/api/jobs/{job_id}/outputs").json()["items"]) == count < 3000
    assert api.patch(f"/api/jobs/{job_id}", json={"action": "cancel"}).status_code == 200  # idempotent
    assert api.delete(f"/api/jobs/{job_id}").status_code == 204


def test_failing_task_is_retried_then_fails_the_job(api: httpx.Client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v500" + os.urandom(2000))
    assert upload(api, broken).status_code == 201
    job_id = api.post("/api/jobs", json=job_body([str(broken)], frame_range="1-4", preemptible_retries=1)).json()["id"]
    job = wait_for(api, job_id, finished)
    assert job["status"] == "failed"
    assert "failed after 2 attempt(s)" in job["error"]
    # Two workers take tasks at once, so which task used up its retries first is a race; what must hold is that
    # one did, with its error kept, and that nothing of the job is left queued or rendering.
    exhausted = [t for t in job["tasks"] if t["status"] == "failed" and t["attempts"] == 2]
    assert exhausted and all(t["error"] for t in exhausted)
    assert all(t["status"] in ("failed", "cancelled") for t in job["tasks"])
    assert any(t["status"] == "cancelled" for t in job["tasks"])


# --- the real render ----------------------------------------------------------------------------------------
@pytest.mark.render
def test_real_render_with_step_and_chunks(api: httpx.Client, tiny_blend: Path, tmp_path: Path) -> None:
    paths = upload_scene(api, tiny_blend)
    job_id = api.post("/api/jobs", json=job_body(paths, frame_range="1-7x2", chunk_size=2)).json()["id"]
    job = wait_for(api, job_id, finished, timeout=90)
    assert job["status"] == "completed", job["error"]
    assert [t["frames"] for t in job["tasks"]] == [[1, 3], [5, 7]]
    outputs = {o["name"]: o for o in api.get(f"/api/jobs/{job_id}/outputs").json()["items"]}
    assert sorted(outputs) == ["frame_0001.png", "frame_0003.png", "frame_0005.png", "frame_0007.png"]
    bodies = {}
    for name, meta in outputs.items():
        data = api.get(f"/api/jobs/{job_id}/outputs/{name}").content
        assert png_size(data) == (32, 32)
        assert (len(data), hashlib.md5(data).hexdigest()) == (meta["size"], meta["md5"])
        bodies[name] = data
    assert len(set(bodies.values())) == 4  # the cube turns: every frame differs
    part = api.get(f"/api/jobs/{job_id}/outputs/frame_0003.png", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == bodies["frame_0003.png"][100:200]
    assert api.get(f"/api/jobs/{job_id}/outputs/frame_0002.png").status_code == 404
    assert api.get(f"/api/jobs/{job_id}/outputs/..%2Fworkspace").status_code == 404


# --- faults -------------------------------------------------------------------------------------------------
def test_status_slow_and_malformed_faults(api: httpx.Client, faults: Faults, local_services: LocalServices) -> None:
    control = f"{local_services.base_url}/_faults"
    added = httpx.post(control, json={"kind": "status", "status": 429, "retry_after": 2, "service": "farm",
                                      "method": "GET", "path": "/api/packages$", "times": 2})
    assert added.status_code == 201
    first, second, third = (api.get("/api/packages") for _ in range(3))
    assert first.status_code == second.status_code == 429 and first.headers["retry-after"] == "2"
    assert third.status_code == 200 and first.headers["x-request-id"]
    assert httpx.get(control).json()["items"][0]["hits"] == 2

    faults.add("malformed", path="/api/projects$")
    broken = api.get("/api/projects")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    faults.add("slow", delay=0.2, path="/api/enterprise/instances$")
    assert api.get("/api/enterprise/instances").status_code == 200
    assert httpx.delete(control).status_code == 204 and not faults.list()
    assert httpx.post(control, json={"kind": "explode"}).status_code == 400

    local_services.requests.clear()
    for _ in range(3):
        api.get("/api/jobs", params={"per_page": 1})
    assert local_services.requests.count("GET", r"/farm/api/jobs$") == 3


def test_drop_after_acting_creates_the_job_drop_before_does_not(api: httpx.Client, faults: Faults,
                                                                tiny_blend: Path) -> None:
    paths = upload_scene(api, tiny_blend)
    project = f"drop-{uuid.uuid4().hex[:8]}"
    api.post("/api/projects", json={"name": project})

    faults.add("drop", method="POST", path="/api/jobs$", when="after")
    with pytest.raises(httpx.HTTPError):
        api.post("/api/jobs", json=job_body(paths, project=project, frame_range="1"))
    assert api.get("/api/jobs", params={"project": project}).json()["total"] == 1  # it did take effect

    faults.add("drop", method="POST", path="/api/jobs$", when="before")
    with pytest.raises(httpx.HTTPError):
        api.post("/api/jobs", json=job_body(paths, project=project, frame_range="1"))
    assert api.get("/api/jobs", params={"project": project}).json()["total"] == 1

    faults.add("drop", method="POST", path="/api/uploads/file$", when="before")
    with pytest.raises(httpx.HTTPError):
        upload(api, tiny_blend)
    for job in api.get("/api/jobs", params={"project": project}).json()["items"]:
        wait_for(api, job["id"], finished)
