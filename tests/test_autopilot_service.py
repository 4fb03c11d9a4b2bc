"""The local Autopilot's contract, spoken to with plain httpx over loopback: what a vendor client would see."""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from typing import Any, Dict, Iterator

import httpx
import numpy as np
import pytest
from PIL import Image
from tether_services.autopilot.api import API_KEY
from tether_services.autopilot.processing import exr_bytes, otsu
from waiting import eventually

KEY = {"x-api-key": API_KEY}


@pytest.fixture
def services(autopilot_services: Any) -> Any:
    return autopilot_services


@pytest.fixture
def http(services: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=services.url("autopilot"), timeout=10) as client:
        yield client


def clip_zip(n: int = 4) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(n):
            img = np.full((24, 32, 3), 30, np.uint8)
            img[4:10, 2 + 3 * i: 8 + 3 * i] = 250
            png = io.BytesIO()
            Image.fromarray(img).save(png, format="PNG")
            z.writestr(f"c.{i + 1:04d}.png", png.getvalue())
    return buf.getvalue()


def upload(http: httpx.Client, data: bytes, name: str = "clip.zip") -> str:
    ticket = http.get("/api/comfyui/assets/upload", headers=KEY,
                      params={"upload_id": str(uuid.uuid4()), "asset_type": "video", "file_name": name}).json()
    put = httpx.put(ticket["upload_url"], content=data)  # no API key on the presigned URL
    assert put.status_code == 200, put.text
    return str(ticket["s3_key"])


def create(http: httpx.Client, key: str, services: Any) -> httpx.Response:
    return http.post("/api/jobs", headers=KEY, json={"assets": [{"source_path": key, "services": services}]})


def test_auth_required_everywhere(http: httpx.Client) -> None:
    for method, path in (("GET", "/api/jobs"), ("GET", "/api/user/limit"), ("POST", "/api/jobs"),
                         ("GET", "/api/inferences"), ("GET", "/api/comfyui/assets/upload")):
        missing = http.request(method, path)
        assert missing.status_code == 401 and missing.json() == {"message": "missing x-api-key header"}
        wrong = http.request(method, path, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["message"] == "invalid API key"


def test_presigned_upload_rules(http: httpx.Client, services: Any) -> None:
    params: Dict[str, str] = {"upload_id": "not-a-uuid", "asset_type": "video", "file_name": "a.mov"}
    assert http.get("/api/comfyui/assets/upload", headers=KEY, params=params).status_code == 400
    params.update(upload_id=str(uuid.uuid4()), asset_type="audio")
    assert "video or mask" in http.get("/api/comfyui/assets/upload", headers=KEY, params=params).json()["message"]
    params.update(asset_type="mask", file_name="../../etc/passwd")
    ticket = http.get("/api/comfyui/assets/upload", headers=KEY, params=params).json()
    assert ticket["s3_key"].startswith("uploads/mask/") and ".." not in ticket["s3_key"]
    url = ticket["upload_url"]
    assert url.startswith(services.url("autopilot") + "/_store/uploads/mask/")

    def chunks() -> Iterator[bytes]:
        yield b"abc"

    no_length = httpx.put(url, content=chunks())  # chunked: no Content-Length
    assert no_length.status_code == 411
    forged = httpx.put(url.replace("signature=", "signature=0"), content=b"abc")
    assert forged.status_code == 403 and "SignatureDoesNotMatch" in forged.json()["message"]
    past = int(time.time()) - 5  # correctly signed, but out of date
    signature = services.service("autopilot").presigner._sign("PUT", ticket["s3_key"], past)
    expired = httpx.put(f"{url.split('?')[0]}?expires={past}&signature={signature}", content=b"abc")
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    assert httpx.put(url.replace("/uploads/mask/", "/uploads/video/"), content=b"abc").status_code == 403
    assert httpx.put(url, content=b"abcdef").status_code == 200
    stored = services.service("autopilot").store / ticket["s3_key"]
    assert stored.read_bytes() == b"abcdef"


def test_create_validates_the_seed_rules(http: httpx.Client) -> None:
    key = upload(http, clip_zip(2))
    cases = [
        ([{"type": "tracking", "output_path": "o", "metadata": {"fix_focal_length": True}}],
         'must be the string "True" or "False"'),
        ([{"type": "tracking", "output_path": "o", "metadata": {"sensor_width": 24.0}}], "given together"),
        ([{"type": "depth_map", "output_path": "o", "export_type": "JPG"}], 'must be "jpg" or "mov"'),
        ([{"type": "rotoscope", "output_path": "o"}], "type must be one of"),
        ([], "at least one of the roto, tracking or depth_map"),
        ([{"type": "roto", "output_path": "o"}, {"type": "roto", "output_path": "o"}], "listed twice"),
    ]
    for spec, message in cases:
        reply = create(http, key, spec)
        assert reply.status_code == 400 and message in reply.json()["message"], (spec, reply.text)
    never = create(http, "uploads/video/x/none.mov", [{"type": "roto", "output_path": "o"}])
    assert never.status_code == 400 and "never uploaded" in never.json()["message"]


def test_inference_state_machine_and_results(http: httpx.Client, services: Any) -> None:
    ap = services.service("autopilot")
    key = upload(http, clip_zip(4))
    ap.pause()
    job = create(http, key, [{"type": "roto", "output_path": "o"},
                             {"type": "smart_vectors", "output_path": "o"}]).json()
    assert (job["total"], job["total_pending"], job["percent_complete"]) == (2, 2, 0.0)
    early = http.get(f"/api/comfyui/{job['id']}/result", headers=KEY, params={"export_type": "hard_mattes"})
    assert early.status_code == 409 and "not ready" in early.json()["message"]
    ap.resume()
    job = eventually(lambda: http.get(f"/api/jobs/{job['id']}", headers=KEY).json(),
                     lambda seen: seen["total_completed"] + seen["total_failed"] >= 2, message="both tasks to end")
    assert job["total_completed"] == 2 and job["percent_complete"] == 100.0
    assert http.get(f"/api/comfyui/{job['id']}/result", headers=KEY,
                    params={"export_type": "tracking"}).status_code == 404
    assert http.get(f"/api/comfyui/{job['id']}/result", headers=KEY,
                    params={"export_type": "gif"}).status_code == 400
    link = http.get(f"/api/comfyui/{job['id']}/result", headers=KEY, params={"export_type": "exr"}).json()
    body = httpx.get(link["download_url"]).content
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        names = sorted(z.namelist())
        exr = z.read(names[0])
    assert names == [f"vectors/{i:05d}.exr" for i in range(1, 5)]
    assert exr[:4] == b"\x76\x2f\x31\x01"  # OpenEXR magic
    # uncompressed scanlines at the end: per line (y, size, u row, v row); the square moves 3 px right a frame
    h, w = 24, 32
    lines = exr[len(exr) - h * (8 + 8 * w):]
    rows = [np.frombuffer(lines[y * (8 + 8 * w) + 8: (y + 1) * (8 + 8 * w)], "<f4") for y in range(h)]
    u = np.stack([r[:w] for r in rows])
    v = np.stack([r[w:] for r in rows])
    # the 8x8 block holding the square moved (3, 0); far-off background blocks did not move
    assert (u[:8, :8] == 3).all() and not v[:8, :8].any() and not u[16:, 16:].any() and not v[16:, 16:].any()
    quota = http.get("/api/user/limit", headers=KEY).json()
    assert quota == {"is_above_limit": False, "subscription_tier": "free", "frames_inferenced": 8,
                     "frame_limit": 1000}
    ap.frames_inferenced = 1000
    refused = create(http, key, [{"type": "roto", "output_path": "o"}])
    assert refused.status_code == 402 and "frame limit reached" in refused.json()["message"]


def test_list_filters_reject_bad_input(http: httpx.Client) -> None:
    assert http.get("/api/jobs", headers=KEY, params={"metadata": "{not json"}).status_code == 400
    assert http.get("/api/jobs", headers=KEY, params={"status": "done"}).status_code == 400
    assert http.get("/api/inferences", headers=KEY, params={"page": "0"}).status_code == 400
    assert http.get("/api/jobs/unknown", headers=KEY).status_code == 404
    assert http.delete("/api/jobs/unknown", headers=KEY).status_code == 404
    page = http.get("/api/jobs", headers=KEY, params={"metadata": json.dumps({"nobody": 1})}).json()
    assert page["items"] == [] and page["page"] == 1 and page["pages"] == 1


def test_fault_injection_reaches_autopilot(http: httpx.Client, services: Any) -> None:
    services.faults.add("status", status=429, retry_after=3, service="autopilot", path="/api/jobs$")
    reply = http.get("/api/jobs", headers=KEY)
    assert reply.status_code == 429 and reply.headers["retry-after"] == "3"
    assert http.get("/api/jobs", headers=KEY).status_code == 200


def test_helpers_are_sound() -> None:
    values = np.concatenate([np.full(100, 0.1), np.full(100, 0.9)])
    assert 0.1 < otsu(values) < 0.9
    data = exr_bytes({"v": np.zeros((2, 3), np.float32), "u": np.ones((2, 3), np.float32)})
    # header, 2 offsets, 2 lines of (y, size, 2 channels x 3 floats)
    assert len(data) > 8 * 2 + 2 * (8 + 24)
    assert data.endswith(np.zeros(3, "<f4").tobytes())  # last line: u then v (sorted), v = 0
