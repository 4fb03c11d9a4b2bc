"""Forms the vendors leave open, one client against each (SERVICES.md "unknown"): the local services are switched
between the list shapes (and, where a seed does not fix them, status spellings), and each client submits, follows
its job to done, lists the service's jobs with `tether SERVICE jobs --remote` and fetches the output, over real
HTTP (Move's, whose list shape the SDK fixes, in tests/test_move.py's CLI test, with its states spelled otherwise).
The list tests cap the service's page size at 1, so a client that stops after one page, or pages forever on a
server that ignores paging, fails here."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_tensorpix import make_clip
from tether.clipzy.client import ClipzyClient
from tether.jobs import JobState
from waiting import eventually

PAGE_FORMS = ["paged", "drf", "bare", "whole"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("forms") / "tiny.mp4", frames=3)


def _remote_ids(service: str, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    from tether_cli import main

    monkeypatch.setenv(f"TETHER_{service.upper()}_URL", url)
    capsys.readouterr()
    assert main([service, "jobs", "--remote", "--json"]) == 0
    listed = [j["id"] for j in json.loads(capsys.readouterr().out)]
    assert len(listed) == len(set(listed)), listed  # read once, not once per page the server ignored
    return listed


@pytest.fixture
def clipzy_engine(local_services: Any) -> Iterator[Any]:
    engine = local_services.service("clipzy")
    yield engine
    engine.list_form, engine.max_page_size = "paged", 100


@pytest.mark.parametrize("form", PAGE_FORMS)
def test_clipzy_client_in_every_list_form(form: str, clipzy_engine: Any, local_services: Any, clip: Path,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    clipzy_engine.list_form, clipzy_engine.max_page_size = form, 1
    client = ClipzyClient(local_services.url("clipzy"))
    job = client.style(clip, clip)
    client.style(clip, clip)  # a second job: the list is two pages of one at least
    done = eventually(lambda: client.get_job(job.job_id), lambda j: j.state.finished)
    assert done.state is JobState.COMPLETED, done
    listed = _remote_ids("clipzy", local_services.url("clipzy"), monkeypatch, capsys)
    newest = sorted(clipzy_engine.jobs.values(), key=lambda j: j.created_at, reverse=True)[:100]  # what it shows
    assert sorted(listed) == sorted(j.job_id for j in newest)  # every job, past the first page of 1
    paths = client.fetch_outputs(job.job_id, tmp_path)
    assert paths and all(p.stat().st_size > 0 for p in paths)


@pytest.fixture
def tensorpix_service(local_services: Any) -> Iterator[Any]:
    service = local_services.service("tensorpix")
    yield service
    service.list_form, service.max_limit, service.status_form = "drf", 100, "integer"


@pytest.mark.parametrize("form, status_form", [(form, "integer") for form in PAGE_FORMS] + [("drf", "words")])
def test_tensorpix_client_in_every_list_and_status_form(form: str, status_form: str, tensorpix_service: Any,
                                                        local_services: Any, clip: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tether.tensorpix.client import LOCAL_API_KEY, TensorPixClient
    from tether.tensorpix.models import JobCreate

    tensorpix_service.list_form, tensorpix_service.max_limit, tensorpix_service.status_form = form, 1, status_form
    client = TensorPixClient(local_services.url("tensorpix"), token=LOCAL_API_KEY)
    client.sleep = lambda _seconds: None
    video = client.wait_ready(client.upload_video(clip).id, interval=0.05)
    jobs = [client.create_job(JobCreate(input_video=video.id, ml_models=[2])) for _ in range(2)]  # two pages
    done = eventually(lambda: client.get_job(str(jobs[0].id)), lambda j: j.state.finished)
    assert done.state is JobState.COMPLETED, done
    listed = _remote_ids("tensorpix", local_services.url("tensorpix"), monkeypatch, capsys)
    with tensorpix_service._lock:
        newest = sorted(tensorpix_service._jobs, reverse=True)[:100]  # what --remote shows
    assert sorted(listed) == sorted(str(i) for i in newest)  # every job, past the first page of 1
    assert [m.id for m in client.models()] == [1, 2, 3, 4, 5]
    paths = client.fetch_outputs(str(jobs[0].id), tmp_path)
    assert paths and all(p.stat().st_size > 0 for p in paths)


# The farm's id type (jobs, projects, uploaded files) and status words are unpublished (SERVICES.md; its paging too,
# tested in test_farm_client.py's whole-list form); the spellings are those job APIs commonly send
# (upper case; "succeeded"/"running"/"pending", as e.g. Adobe's Photoshop API status reply). One render each.
FARM_FORMS = {
    "integer ids, upper case": ("integer", {s: s.upper() for s in ("syncing", "queued", "rendering", "completed")}),
    "string ids, succeeded": ("string", {"completed": "succeeded", "rendering": "running", "queued": "pending"}),
}


@pytest.fixture
def farm_engine(local_services: Any) -> Iterator[Any]:
    yield local_services.farm
    local_services.farm.id_form, local_services.farm.spell = "string", {}


@pytest.mark.parametrize("case", list(FARM_FORMS))
def test_farm_client_in_every_id_and_status_form(case: str, farm_engine: Any, local_services: Any, tiny_blend: Path,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tether.farm.client import FarmClient
    from tether.farm.models import JobCreate
    from tether.transfer import upload_files
    from tether_services.farm.engine import EMAIL, PASSWORD

    farm_engine.id_form, farm_engine.spell = FARM_FORMS[case]
    integer = farm_engine.id_form == "integer"
    client = FarmClient(local_services.url("farm"), email=EMAIL, password=PASSWORD)
    upload_files([(tiny_blend, tiny_blend.as_posix())], client)
    # project and uploaded-file ids in the same form: read, and a project archived and restored by the id it has
    md5 = hashlib.md5(tiny_blend.read_bytes()).hexdigest()
    file_id = client.check_md5(md5, path=tiny_blend.as_posix()).file_id
    assert file_id is not None and (file_id.isdigit() if integer else file_id == md5)
    made = client.create_project(f"forms {case} {uuid.uuid4().hex[:6]}")
    assert made.id.isdigit() == integer and made.id in [p.id for p in client.projects()]
    assert client.archive_project(made.id).archived and made.id not in [p.id for p in client.projects()]
    assert not client.archive_project(made.id, archived=False).archived
    job = client.create_job(JobCreate(job_title=f"forms {case}", project="default", instance_type="cpu-standard-8",
                                      frame_range="1", blender_version="blender-5-0", output_path="renders/forms",
                                      upload_paths=[tiny_blend.as_posix()]))
    if farm_engine.id_form == "integer":
        assert job.id.isdigit()
    done = eventually(lambda: client.get_job(job.id), lambda j: j.state.finished)
    assert done.state is JobState.COMPLETED, done
    monkeypatch.setenv("TETHER_FARM_PASSWORD", PASSWORD)
    monkeypatch.setenv("TETHER_FARM_EMAIL", EMAIL)
    assert job.id in _remote_ids("farm", local_services.url("farm"), monkeypatch, capsys)
    paths = client.fetch_outputs(job.id, tmp_path)
    assert paths and all(p.stat().st_size > 0 for p in paths)


@pytest.mark.parametrize("form, id_form", [(form, "string") for form in PAGE_FORMS] + [("paged", "integer")])
def test_autopilot_client_in_every_list_and_id_form(form: str, id_form: str, autopilot_services: Any, clip: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
    from tether.autopilot.submit import ServiceChoice, build_payload

    service = autopilot_services.service("autopilot")
    client = AutopilotClient(autopilot_services.url("autopilot"), api_key=LOCAL_API_KEY)
    # more jobs than the service's page of 20, so the list has a second page in every form but "whole"
    while len(service._order) <= 20:
        filler = service.create({"assets": [{"source_path": client.upload(clip), "services": [
            {"type": "roto", "output_path": "filler"}]}]})
        for inference in filler.inferences:  # listed all the same; this test's job need not wait behind them
            service.cancel_inference(inference)
    service.list_form, service.id_form = form, id_form
    job = client.create_job(build_payload(client.upload(clip), ServiceChoice(roto=True), output_path="o"))
    if id_form == "integer":
        assert job.id == str(len(service._order))
    done = eventually(lambda: client.get_job(job.id), lambda j: j.state.finished)
    assert done.state is JobState.COMPLETED, done
    monkeypatch.setenv("TETHER_AUTOPILOT_API_KEY", LOCAL_API_KEY)
    listed = _remote_ids("autopilot", autopilot_services.url("autopilot"), monkeypatch, capsys)
    assert job.id in listed and len(listed) == min(100, len(service._order))
    paths = client.fetch_outputs(job.id, tmp_path)
    assert paths and all(p.stat().st_size > 0 for p in paths)

