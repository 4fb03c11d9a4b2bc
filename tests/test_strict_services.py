"""The local services refuse what the seeds do not allow, so a client that misreads a vendor's contract fails here
first: each service's key in another vendor's auth scheme is a 401 that names the scheme the seed wants, and a
create with a field the seed does not have, or one of the wrong type, is refused naming it."""

from __future__ import annotations

from typing import Any, Dict

import httpx
import pytest
from tether.spec import SPECS

# service -> (a route that wants auth, headers in a wrong scheme, words the refusal must hold)
WRONG_SCHEMES: Dict[str, Any] = {
    "farm": ("/api/jobs", {"Authorization": "Token not-a-login"}, "must be Bearer"),
    "autopilot": ("/api/jobs", {"Authorization": f"Bearer {SPECS['autopilot'].local_key}"},
                  "goes in x-api-key, not Authorization"),
    "tensorpix": ("/api/jobs/", {"Authorization": f"Bearer {SPECS['tensorpix'].local_key}"},
                  "Authorization: Token <key>"),
    "tensorpix-bare": ("/api/jobs/", {"Authorization": str(SPECS["tensorpix"].local_key)}, "Token <key>"),
}


@pytest.mark.parametrize("case", list(WRONG_SCHEMES))
def test_a_key_in_another_scheme_is_refused_saying_which(case: str, local_services: Any) -> None:
    service = case.split("-")[0]
    route, headers, words = WRONG_SCHEMES[case]
    reply = httpx.get(local_services.url(service) + route, headers=headers, timeout=10)
    assert reply.status_code == 401 and words in reply.text, reply.text


def _headers(service: str, local_services: Any) -> Dict[str, str]:
    key = str(SPECS[service].local_key)
    if service == "farm":
        from tether_services.farm.engine import EMAIL, PASSWORD

        login = httpx.post(local_services.url("farm") + "/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
        return {"Authorization": f"Bearer {login.json()['access_token']}"}
    if service == "clipzy":
        return {}  # the engine has no auth of its own on loopback (seed 001)
    return {"x-api-key": key} if service == "autopilot" else {"Authorization": f"Token {key}"}


# service -> (create route, a body with a field the seed does not have, a body with a field of the wrong type)
CREATES: Dict[str, Any] = {
    "farm": ("/api/jobs", {"job_title": "t", "project": "default", "instance_type": "cpu-standard-8",
                           "frame_range": "1", "blender_version": "blender-5-0", "output_path": "o",
                           "upload_paths": ["/x.blend"], "colour": "red"},
             {"job_title": "t", "project": "default", "instance_type": "cpu-standard-8", "frame_range": "1",
              "blender_version": "blender-5-0", "output_path": "o", "upload_paths": "/x.blend"}),
    "autopilot": ("/api/jobs", {"assets": [{"source_path": "k", "services": [{"type": "roto", "output_path": "o"}]}],
                                "colour": "red"},
                  {"assets": [{"source_path": "k", "services": "roto"}]}),
    "tensorpix": ("/api/jobs/", {"input_video": 1, "ml_models": [1], "colour": "red"},
                  {"input_video": "first", "ml_models": [1]}),
    "clipzy": ("/api/v1/jobs", {"video_id": "v", "colour": "red"}, {"video_id": 5}),
}


@pytest.mark.parametrize("service", list(CREATES))
@pytest.mark.parametrize("which", ["unknown field", "mistyped field"])
def test_a_create_off_the_seed_is_refused(service: str, which: str, local_services: Any) -> None:
    route, unknown, mistyped = CREATES[service]
    body = unknown if which == "unknown field" else mistyped
    reply = httpx.post(local_services.url(service) + route, json=body, headers=_headers(service, local_services),
                       timeout=10)
    assert reply.status_code in (400, 422), (reply.status_code, reply.text)
    assert ("colour" if which == "unknown field" else "") in reply.text


@pytest.mark.parametrize("document, words", [
    ("mutation T($sources: [SourceIn!]!) { createSingleCamTake(sources: $sources) { id } }", "Unknown type 'SourceIn'"),
    ("query J($jobId: String!) { getJob(jobId: $jobId) { id } }", "String!"),  # getJob(jobId: ID!)
    ("query F($id: ID!) { getFile(id: $id) { id } }", "getFile"),  # getFile(fileId:)
    ("query J($jobId: ID!) { getJob(jobId: $jobId) { outputs { kind } } }", "kind"),
])
def test_move_refuses_a_document_off_its_schema(document: str, words: str, local_services: Any) -> None:
    reply = httpx.post(local_services.url("move") + "/ugc/graphql", timeout=10,
                       headers={"authorization": str(SPECS["move"].local_key)},
                       json={"query": document, "variables": {"sources": [], "jobId": "j", "id": "f"}})
    errors = reply.json()["errors"]
    assert reply.status_code == 400 and errors[0]["errorType"] == "ValidationError", errors
    assert any(words in e["message"] for e in errors), errors


# createSingleCamTake's sources, off the SDK's SourceInput: a field it does not have, and one of the wrong type
MOVE_TAKE = "mutation T($sources: [SourceInput!]!) { createSingleCamTake(sources: $sources) { id } }"


@pytest.mark.parametrize("source, words", [
    ({"deviceLabel": "cam", "fileId": "f", "format": "MP4", "colour": "red"}, "colour"),
    ({"deviceLabel": "cam", "fileId": 5, "format": "MP4"}, "fileId"),
    ({"deviceLabel": "cam", "fileId": "f", "format": "mp4"}, "format"),
], ids=["unknown field", "mistyped field", "unknown enum value"])
def test_move_refuses_a_create_input_off_its_schema(source: Dict[str, Any], words: str, local_services: Any) -> None:
    reply = httpx.post(local_services.url("move") + "/ugc/graphql", timeout=10,
                       headers={"authorization": str(SPECS["move"].local_key)},
                       json={"query": MOVE_TAKE, "variables": {"sources": [source]}})
    errors = reply.json()["errors"]
    assert reply.status_code == 400 and any(words in e["message"] for e in errors), errors


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from test_tensorpix import make_clip

    return make_clip(tmp_path_factory.mktemp("strict") / "tiny.mp4", frames=4)


def test_tethers_own_clipzy_and_move_creates_pass_the_strict_services(local_services: Any, clip: Any) -> None:
    from tether.clipzy.client import ClipzyClient
    from tether.move.client import LOCAL_API_KEY, MoveClient

    clipzy = ClipzyClient(local_services.url("clipzy"))
    template = clipzy.upload(clip).video_id
    job = clipzy.create_job(clipzy.upload(clip).video_id, template, config={"strength": 0.5},
                            webhook_url="http://127.0.0.1:9/hook")
    assert job.job_id and job.template_video_id == template
    with MoveClient(local_services.url("move"), api_key=LOCAL_API_KEY) as move:
        take = move.create_take(move.upload(clip).id, name="strict")
        assert take.id
