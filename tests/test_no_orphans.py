"""No orphan, no duplicate (tether.creation) over real HTTP: a create whose reply the local services drop or garble
after acting is found by its client marker in the service's own list (one job, the create sent once); one that
cannot be found is recorded as unconfirmed and adopted later through the command."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from test_tensorpix import make_clip
from tether.autopilot.client import LOCAL_API_KEY as AUTOPILOT_KEY
from tether.autopilot.client import AutopilotClient
from tether.autopilot.submit import ServiceChoice, build_payload
from tether.clipzy.client import ClipzyClient
from tether.creation import UnconfirmedJob
from tether.errors import CancelledByUser
from tether.farm.client import FarmClient
from tether.farm.models import JobCreate
from tether.http import RetryPolicy
from tether.registry import JobRegistry
from tether.tensorpix.client import LOCAL_API_KEY as TENSORPIX_KEY
from tether.tensorpix.client import TensorPixClient
from tether.tensorpix.models import JobCreate as TensorPixCreate
from tether.tensorpix.submit import submit as tensorpix_submit
from tether_services.farm.engine import EMAIL, PASSWORD
from tether_services.faults import Faults
from waiting import eventually

FAULTS = [pytest.param({"kind": "drop", "when": "after"}, id="dropped"), pytest.param({"kind": "malformed"},
                                                                                       id="unreadable")]
POLICY = RetryPolicy(attempts=3, backoff=0.01)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("orphans") / "tiny.mp4", frames=4)


def _quiet(client: Any) -> Any:
    client.sleep = lambda _seconds: None
    return client


# Each service: a create through its client, and the jobs on the service that this create made.
def _farm(services: Any, clip: Path, tiny_blend: Path) -> Tuple[Callable[[], str], Callable[[], List[str]], str]:
    from tether.transfer import upload_files

    client = _quiet(FarmClient(services.url("farm"), email=EMAIL, password=PASSWORD, retry=POLICY))
    upload_files([(tiny_blend, tiny_blend.as_posix())], client)
    title = f"orphan {uuid.uuid4().hex[:8]}"
    payload = JobCreate(job_title=title, project="default", instance_type="cpu-standard-8", frame_range="1",
                        blender_version="blender-5-0", output_path="renders/orphan",
                        upload_paths=[tiny_blend.as_posix()])

    # one tiny frame, left to render (a cancel waits for the worker, longer than the render)
    return (lambda: client.create_job(payload).id, lambda: [j.id for j in client.iter_jobs() if j.job_title == title],
            "/api/jobs$")


def _autopilot(services: Any, clip: Path, tiny_blend: Path) -> Tuple[Callable[[], str], Callable[[], List[str]], str]:
    client = _quiet(AutopilotClient(services.url("autopilot"), api_key=AUTOPILOT_KEY, retry=POLICY))
    case = uuid.uuid4().hex
    payload = build_payload(client.upload(clip), ServiceChoice(roto=True), output_path="o", job_metadata={"case": case})
    return (lambda: client.create_job(payload).id,
            lambda: [j.id for j in client.list_jobs(metadata={"case": case}).items], "/api/jobs$")


def _tensorpix(services: Any, clip: Path, tiny_blend: Path) -> Tuple[Callable[[], str], Callable[[], List[str]], str]:
    client = _quiet(TensorPixClient(services.url("tensorpix"), token=TENSORPIX_KEY, retry=POLICY))
    video = client.wait_ready(client.upload_video(clip).id)
    return (lambda: str(client.create_job(TensorPixCreate(input_video=video.id, ml_models=[1])).id),
            lambda: [str(j.id) for j in client.iter_jobs() if j.input_video and j.input_video.id == video.id],
            "/api/jobs/$")


def _clipzy(services: Any, clip: Path, tiny_blend: Path) -> Tuple[Callable[[], str], Callable[[], List[str]], str]:
    client = _quiet(ClipzyClient(services.url("clipzy"), retry=POLICY))
    template = client.upload(clip).video_id
    video = client.upload(clip).video_id
    return (lambda: client.create_job(video, template).job_id,
            lambda: [j.job_id for j in client.iter_jobs() if j.video_id == video], "/jobs$")


SERVICES: Dict[str, Any] = {"farm": _farm, "autopilot": _autopilot, "tensorpix": _tensorpix, "clipzy": _clipzy}


@pytest.fixture
def tiny_blend_if_farm(request: pytest.FixtureRequest) -> Path:
    service = request.node.callspec.params["service"]
    return request.getfixturevalue("tiny_blend") if service == "farm" else Path("unused")


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("service", list(SERVICES))
def test_a_lost_create_reply_finds_the_one_job_it_made(service: str, fault: Dict[str, Any], local_services: Any,
                                                      faults: Faults, clip: Path, tiny_blend_if_farm: Path) -> None:
    create, made, route = SERVICES[service](local_services, clip, tiny_blend_if_farm)
    local_services.requests.clear()
    faults.add(**fault, service=service, method="POST", path=route, times=1)
    job_id = create()
    assert made() == [job_id]  # found, not made twice
    assert local_services.requests.count(method="POST", path=route, service=service) == 1


def test_an_unfound_create_is_unconfirmed_then_adopted(local_services: Any, faults: Faults, clip: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import main

    client = _quiet(TensorPixClient(local_services.url("tensorpix"), token=TENSORPIX_KEY, retry=POLICY))
    registry = JobRegistry()
    faults.add("malformed", service="tensorpix", method="POST", path="/api/jobs/$", times=1)
    faults.add("status", status=500, service="tensorpix", method="GET", path="/api/jobs/$", times=0)
    with pytest.raises(UnconfirmedJob) as caught:
        tensorpix_submit(client, str(clip), {"ml_models": [1]}, registry=registry, out_dir=clip.parent / "out")
    faults.clear()
    text = str(caught.value)
    assert "unconfirmed" in text and "`tether tensorpix jobs --remote`" in text and "tether jobs adopt" in text
    stand_in = registry.get("tensorpix", caught.value.record_id)
    assert stand_in is not None and stand_in.unconfirmed and stand_in.missing  # kept, and never polled
    assert stand_in.state_label.startswith("unconfirmed")

    monkeypatch.setenv("TETHER_TENSORPIX_URL", local_services.url("tensorpix"))
    capsys.readouterr()
    assert main(["tensorpix", "jobs", "--remote", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    video = str(caught.value.marker)
    job_id = next(str(j.id) for j in client.iter_jobs() if j.input_video and str(j.input_video.id) == video)
    assert job_id in [j["id"] for j in listed if not j["recorded"]]  # the one the lost reply would have named
    assert main(["jobs", "adopt", "tensorpix", "--marker", "0"]) != 0  # no job carries it: nothing recorded
    assert "0 jobs carry the marker 0" in capsys.readouterr().err
    assert main(["jobs", "adopt", "tensorpix", "--marker", video]) == 0  # the one job carrying its marker
    assert f"in place of the unconfirmed {stand_in.job_id}" in capsys.readouterr().out
    adopted = registry.get("tensorpix", job_id)
    assert adopted is not None and adopted.output_dir == stand_in.output_dir and adopted.source == stand_in.source
    assert registry.get("tensorpix", stand_in.job_id) is None
    assert main(["tensorpix", "jobs", "--remote", "--json"]) == 0
    assert next(j for j in json.loads(capsys.readouterr().out) if j["id"] == job_id)["recorded"] is True


@pytest.fixture
def deduplicating(local_services: Any, request: pytest.FixtureRequest) -> Any:
    service = local_services.service(request.node.callspec.params["service"])
    service.dedup_uploads = True
    yield service
    service.dedup_uploads = False


def _upload_and_create(service: str, services: Any, clip: Path, template: Path) -> Tuple[Any, str, Callable[[], Any]]:
    """A fresh client's upload of ``clip`` and the create of a job on it (not yet sent)."""
    if service == "tensorpix":
        tp = _quiet(TensorPixClient(services.url("tensorpix"), token=TENSORPIX_KEY, retry=POLICY))
        video = str(tp.wait_ready(tp.upload_video(clip).id).id)
        return tp, video, lambda: str(tp.create_job(TensorPixCreate(input_video=int(video), ml_models=[1])).id)
    cz = _quiet(ClipzyClient(services.url("clipzy"), retry=POLICY))
    template_id = cz.upload(template).video_id
    video = cz.upload(clip).video_id
    return cz, video, lambda: cz.create_job(video, template_id).job_id


@pytest.mark.parametrize("service", ["tensorpix", "clipzy"])
def test_a_lost_create_on_a_video_uploaded_before_does_not_adopt_the_older_job(
        service: str, local_services: Any, faults: Faults, deduplicating: Any, tmp_path: Path) -> None:
    """A server that deduplicates uploads hands back the earlier upload of the same bytes: its older job is not
    this create's, so a lost reply is unconfirmed rather than answered with that job."""
    clip, template = make_clip(tmp_path / "same.mp4", frames=3), make_clip(tmp_path / "template.mp4", frames=5)
    client, video, create = _upload_and_create(service, local_services, clip, template)
    older = create()
    eventually(lambda: client.get_job(older), lambda j: j.state.finished)  # Clipzy refuses a 2nd job while one runs
    # that upload was an earlier session's: its video an hour old on the server's clock
    hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    if service == "tensorpix":
        deduplicating.video(int(video)).created_at = hour_ago
    else:
        deduplicating.video(video).uploaded_at = hour_ago

    _client, again, create_again = _upload_and_create(service, local_services, clip, template)
    assert again == video  # the server handed the earlier video back
    faults.add("drop", when="before", service=service, method="POST", path="/jobs/?$", times=1)
    with pytest.raises(UnconfirmedJob) as caught:
        create_again()
    assert caught.value.marker == video and older not in str(caught.value)


def test_a_cancel_while_a_create_waits_to_be_sent_again_sends_nothing_more(local_services: Any, faults: Faults,
                                                                          clip: Path) -> None:
    """The create's reply was lost and the list shows no job: the create waits (the client's policy) before it
    sends again. A Cancel in that wait ends it: CancelledByUser, the create sent once, no job."""
    client = AutopilotClient(local_services.url("autopilot"), api_key=AUTOPILOT_KEY, retry=POLICY)
    client.sleep = lambda _seconds: client.abort()  # the Cancel comes in the wait
    case = uuid.uuid4().hex
    payload = build_payload(client.upload(clip), ServiceChoice(roto=True), output_path="o", job_metadata={"case": case})
    local_services.requests.clear()
    faults.add("drop", when="before", service="autopilot", method="POST", path="/api/jobs$", times=1)
    with client:
        with pytest.raises(CancelledByUser, match="none was made"):
            client.create_job(payload)
        assert client.list_jobs(metadata={"case": case}).items == []
    assert local_services.requests.count(method="POST", path="/api/jobs$", service="autopilot") == 1
