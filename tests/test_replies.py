"""Replies of another shape than the local services' own: tolerated where the vendor's documents leave the shape
open, a typed ProtocolError naming the endpoint and the field where they do not, never a traceback or a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Tuple, Type

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from tether.autopilot import models as am
from tether.autopilot.client import AutopilotClient
from tether.autopilot.client import to_job as autopilot_job
from tether.clipzy import models as cm
from tether.clipzy.client import to_job as clipzy_job
from tether.errors import ProtocolError
from tether.farm import models as fm
from tether.farm.client import FarmClient
from tether.farm.client import to_job as farm_job
from tether.http import BaseClient, RetryPolicy
from tether.move import models as mm
from tether.tensorpix import models as tm
from tether.tensorpix.client import to_job as tensorpix_job
from tether_services.farm.engine import EMAIL, PASSWORD
from tether_services.faults import Faults
from tether_services.server import LocalServices

SECRET = "Bearer sk-live-0123456789abcdef"

# Every reply model, with the conversion to the one job view where there is one.
REPLIES: List[Tuple[Type[BaseModel], Any]] = [
    (fm.LoginReply, None), (fm.FarmJob, farm_job), (fm.FarmOutput, None), (fm.Project, None), (fm.Instance, None),
    (fm.Package, None), (fm.Md5Reply, None), (fm.UploadReply, None), (fm.BillingPeriod, None),
    (fm.Transaction, None), (am.AutopilotJob, autopilot_job), (am.Inference, None), (am.Quota, None),
    (am.UploadTicket, None), (am.ResultLink, None), (am.JobPage, None), (tm.TensorPixJob, tensorpix_job),
    (tm.InputVideo, None), (tm.MLModel, None), (tm.Balance, None), (cm.ClipzyJob, clipzy_job), (cm.Video, None),
    (cm.JobPage, None), (mm.MoveJob, None), (mm.MoveFile, None), (mm.MoveTake, None), (mm.JobList, None),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.just(SECRET),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["id", "status", "items", "job_id", "created_at", "authorization", "progress", "metadata",
                         "inferences", "output_video", "file", "total", "page", "next", "results", "count",
                         "error", "name", "md5", "exists", "access_token", "outputs"]) | st.text(max_size=5),
        children, max_size=6),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(REPLIES))), json_values)
def test_any_reply_parses_or_is_a_named_protocol_error(which: int, body: Any) -> None:
    model, to_job = REPLIES[which]
    client = BaseClient(service="svc", base_url="http://127.0.0.1:9")
    try:
        parsed = client.parse(model, body, "GET /api/thing")
    except ProtocolError as exc:
        text = str(exc)
        assert "GET /api/thing" in text and "sk-live" not in text
        return
    if to_job is not None:
        to_job(parsed).state_label  # the job view of any accepted reply  # noqa: B018


def test_shape_error_names_the_field_and_hides_what_the_server_echoed() -> None:
    client = BaseClient(service="farm", base_url="http://127.0.0.1:9")
    with pytest.raises(ProtocolError) as caught:
        client.parse(fm.FarmJob, {"job_title": "x", "authorization": SECRET, "token": "abc"}, "POST /api/jobs")
    text = str(caught.value)
    assert "POST /api/jobs" in text and "id: field required" in text
    assert "sk-live" not in text and "abc" not in text


def test_ids_of_either_type_and_the_vendor_spellings() -> None:
    assert fm.FarmJob.model_validate({"id": 42, "project": 7}).id == "42"
    assert fm.Project.model_validate({"id": 3, "name": "p"}).id == "3"
    assert am.Inference.model_validate({"inference_id": 9, "service": "roto"}).id == "9"
    assert am.AutopilotJob.model_validate({"job_id": "j1"}).id == "j1"


def test_billing_in_another_shape_says_so() -> None:
    assert "None" not in fm.BillingPeriod.model_validate({"cost": 3, "ccy": "EUR"}).describe()
    assert "cost=3" in fm.BillingPeriod.model_validate({"cost": 3}).describe()
    assert fm.BillingPeriod.model_validate({"total_cost": 2.5, "currency": "EUR"}).describe() == "2.50 EUR"


# --- over real HTTP, the local services answering in another vendor's shape ---------------------------------------
@pytest.fixture
def farm(farm_url: str) -> Any:
    client = FarmClient(farm_url, email=EMAIL, password=PASSWORD, retry=RetryPolicy(attempts=3, backoff=0.01))
    yield client
    client.close()


def test_create_reply_without_status_and_with_a_numeric_project(farm: FarmClient, faults: Faults,
                                                                tiny_blend: Path) -> None:
    from tether.farm.models import JobCreate
    from tether.transfer import upload_files

    upload_files([(tiny_blend, tiny_blend.as_posix())], farm)
    faults.add("reshape", service="farm", method="POST", path="/api/jobs$", drop=["status"], merge={"project": 7})
    job = farm.create_job(JobCreate(job_title="reshaped", project="default", instance_type="cpu-standard-8",
                                    frame_range="1", blender_version="blender-5-0", output_path="r/x",
                                    upload_paths=[tiny_blend.as_posix()], scout_frames="1"))
    assert job.project == "7" and farm_job(job).state_label == "unknown"
    farm.cancel_job(job.id)
    farm.delete_job(job.id)


def test_minimal_upload_reply_is_enough(farm: FarmClient, faults: Faults, tmp_path: Path) -> None:
    import hashlib

    data = b"minimal upload reply"
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    faults.add("reshape", service="farm", method="POST", path="/api/uploads/file$", drop=["file_id", "md5", "size"])
    with open(path, "rb") as fh:
        farm.upload_file(fh, md5=md5, path="/minimal/f.bin", size=len(data))
    assert farm.check_md5(md5, len(data), "/minimal/f.bin").exists


def test_a_reply_echoing_a_credential_is_an_error_without_it(autopilot_services: LocalServices) -> None:
    from tether.autopilot.client import LOCAL_API_KEY

    faults = autopilot_services.faults
    faults.add("reshape", service="autopilot", method="GET", path="/api/user/limit$",
               drop=["is_above_limit", "frames_inferenced", "subscription_tier"],
               merge={"is_above_limit": {"x-api-key": LOCAL_API_KEY}, "echo": f"authorization: {SECRET}"})
    client = AutopilotClient(autopilot_services.url("autopilot"), api_key=LOCAL_API_KEY)
    try:
        with pytest.raises(ProtocolError) as caught:
            client.quota()
    finally:
        client.close()
    text = str(caught.value)
    assert "GET /api/user/limit" in text and "is_above_limit" in text
    assert LOCAL_API_KEY not in text and "sk-live" not in text
    json.dumps(text)  # a plain message, printable as is


def test_a_redirect_to_another_origin_carries_no_api_key(autopilot_services: LocalServices) -> None:
    """httpx strips Authorization on a cross-origin redirect, not a vendor's own key header (``x-api-key``)."""
    import http.server
    import threading

    from tether.autopilot.client import LOCAL_API_KEY

    seen: List[dict] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = json.dumps({"is_above_limit": False, "subscription_tier": "free", "frames_inferenced": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        autopilot_services.faults.add("redirect", service="autopilot", path="/api/user/limit$",
                                      location=f"http://127.0.0.1:{server.server_address[1]}/limit")
        with AutopilotClient(autopilot_services.url("autopilot"), api_key=LOCAL_API_KEY) as client:
            assert client.quota().is_above_limit is False
    finally:
        server.shutdown()
        server.server_close()
    assert len(seen) == 1 and "x-api-key" not in seen[0] and LOCAL_API_KEY not in json.dumps(seen[0])
