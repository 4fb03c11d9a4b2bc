"""Move: the GraphQL client against the local Move over real HTTP (flow, errors[], loose states, cursor pagination,
faults), Svix webhook verification, and the `tether move` command."""

from __future__ import annotations

import io
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from tether.errors import AuthError, BadRequest, InputError, NotFound, ProtocolError
from tether.jobs import JobState
from tether.move.client import LOCAL_API_KEY, MoveClient, graphql_error, output_file_name, split_endpoint, to_job
from tether.move.models import MoveJob, parse_state
from tether.move.submit import MoveRequest, submit_video, wait_for
from tether.move.webhooks import WebhookVerificationError, sign, verify
from tether.registry import JobRegistry
from waiting import eventually

av = pytest.importorskip("av")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1.5 s, 24 fps MP4 (36 frames)."""
    return _video(tmp_path_factory.mktemp("move-clip") / "walk.mp4", 36)


@pytest.fixture
def move_svc(local_services: Any) -> Iterator[Any]:
    svc = local_services.service("move")
    yield svc
    svc.resume()
    svc.spell = {"NOT_STARTED": "NOT STARTED"}
    svc.output_field = "format"


@pytest.fixture
def client(local_services: Any) -> Iterator[MoveClient]:
    with MoveClient(local_services.url("move"), api_key=LOCAL_API_KEY) as c:
        c.sleep = lambda _s: None  # retries without waiting: the tests count requests, not seconds
        yield c


def _take(client: MoveClient, path: Path) -> str:
    file = client.upload(path)
    return client.create_take(file.id, source_format="MP4", name=path.stem).id


def test_endpoint_is_split_from_the_profile_url() -> None:
    assert split_endpoint("https://api.move.ai/ugc/graphql") == ("https://api.move.ai", "/ugc/graphql")
    assert split_endpoint("http://127.0.0.1:8765/move") == ("http://127.0.0.1:8765", "/move/ugc/graphql")


def test_flow_end_to_end_returns_a_real_fbx(client: MoveClient, clip: Path, tmp_path: Path,
                                            local_services: Any) -> None:
    registry = JobRegistry(tmp_path / "jobs.db")
    local_services.requests.clear()
    sub = submit_video(client, MoveRequest(video=clip, outputs=["MAIN_FBX", "ALL_FBX", "MOTION_DATA"]),
                       registry=registry)
    assert sub.job.id.startswith("job-") and sub.take_id.startswith("take-")
    assert sub.facts.frames == 36 and sub.facts.fps == pytest.approx(24.0)
    # the bytes went to the presigned URL, the key only to the GraphQL endpoint
    assert local_services.requests.count("PUT", r"^/move/_store/uploads/") == 1
    assert local_services.requests.count("POST", r"^/move/ugc/graphql$") == 3
    seen = []
    job = wait_for(client, sub.job.id, interval=0.2, on_update=lambda j: seen.append(j.raw_state))
    assert job.state is JobState.COMPLETED, job.error
    assert job.raw_state == "FINISHED" and job.progress == 100.0
    assert {o.name for o in job.outputs} == {"MAIN_FBX", "ALL_FBX", "MOTION_DATA"}
    files = client.fetch_outputs(sub.job.id, tmp_path / "out")
    by_name = {p.name: p for p in files}
    assert by_name["MAIN_FBX.fbx"].read_bytes().startswith(b"Kaydara FBX Binary")
    import zipfile

    with zipfile.ZipFile(by_name["ALL_FBX.zip"]) as archive:
        assert [n for n in archive.namelist() if n.endswith(".fbx")]
    motion = json.loads(by_name["MOTION_DATA.json"].read_text())
    assert motion["frames"] == 36 and len(motion["bones"]["LeftLeg"]) == 36
    record = registry.get("move", sub.job.id)
    assert record is not None and record.extra["take_id"] == sub.take_id and record.extra["frames"] == 36


def test_clip_window_cuts_the_take(client: MoveClient, clip: Path, tmp_path: Path) -> None:
    sub = submit_video(client, MoveRequest(video=clip, start=0.5, end=1.0, outputs=["MOTION_DATA"]))
    assert sub.frames == 12 and sub.window is not None  # the window's frames, not the video's 36
    job = wait_for(client, sub.job.id, interval=0.2)
    assert job.state is JobState.COMPLETED, job.error
    (path,) = client.fetch_outputs(sub.job.id, tmp_path)
    assert json.loads(path.read_text())["frames"] == 12  # 0.5 s at 24 fps
    with pytest.raises(InputError, match="lasts"):
        submit_video(client, MoveRequest(video=clip, start=0.0, end=9.0))


def test_bad_input_is_refused_before_anything_is_sent(client: MoveClient, tmp_path: Path,
                                                      local_services: Any, clip: Path) -> None:
    local_services.requests.clear()
    gif = tmp_path / "clip.gif"
    gif.write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="convert it"):
        submit_video(client, MoveRequest(video=gif))
    with pytest.raises(InputError, match="output types are words like MAIN_FBX"):
        submit_video(client, MoveRequest(video=clip, outputs=["main fbx!"]))
    with pytest.raises(InputError, match="before it starts"):
        submit_video(client, MoveRequest(video=clip, start=1.0, end=0.5))
    assert local_services.requests.count(service="move") == 0


def test_take_limits_are_checked_on_the_clip_first(client: MoveClient, tmp_path: Path, local_services: Any,
                                                   clip: Path) -> None:
    from tether.move.submit import LIMITS, VideoFacts, check_limits

    local_services.requests.clear()
    blink = _video(tmp_path / "blink.mp4", 1)
    with pytest.raises(InputError, match="1 frame; Move needs at least"):
        submit_video(client, MoveRequest(video=blink))
    with pytest.raises(InputError, match="the clip window holds 2 frames"):
        submit_video(client, MoveRequest(video=clip, start=0.0, end=0.1))
    assert local_services.requests.count(service="move") == 0
    long = VideoFacts(path=tmp_path / "long.mp4", format="MP4", size=1, fps=60.0, duration=61.7, frames=3700)
    with pytest.raises(InputError, match=r"3700 frames, over the 3600-frame limit \(60 s at 60 fps\): trim it"):
        check_limits(long, 3700, None)
    with pytest.raises(InputError, match="5 fps; Move takes"):
        check_limits(VideoFacts(path=long.path, format="MP4", size=1, fps=5.0), 50, None)
    check_limits(long, LIMITS.max_frames, None)


def test_stand_in_motion_follows_the_picture(tmp_path: Path) -> None:
    from tether_services.move.api import probe

    still = probe(_video(tmp_path / "still.mp4", 12, step=0))
    moving = probe(_video(tmp_path / "moving.mp4", 12, step=20), {"startTime": 0.125, "endTime": 0.5})
    assert (still.frames, len(still.energy)) == (12, 12) and max(still.energy) == 0.0
    assert (moving.frames, len(moving.energy)) == (9, 9) and min(moving.energy) > 0.2
    assert probe(tmp_path / "moving.mp4", {"startTime": 0.125, "endTime": 0.5}).energy == moving.energy


def _video(path: Path, frames: int, step: int = 6) -> Path:
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * step) % 250, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_raw_key_auth_and_refusals_say_what_to_do(local_services: Any) -> None:
    url = local_services.url("move")
    with MoveClient(url, api_key="wrong-key", profile="studio") as bad, pytest.raises(AuthError) as info:
        bad.list_jobs(first=1)
    assert "tether login move --profile studio" in str(info.value)
    assert "wrong-key" not in str(info.value)
    # the vendor wants the key itself: a Bearer prefix is refused
    with MoveClient(url) as bearer:
        from tether.http import HeaderAuth

        bearer.auth = HeaderAuth("authorization", LOCAL_API_KEY, prefix="Bearer")
        with pytest.raises(AuthError, match="without 'Bearer'"):
            bearer.list_jobs(first=1)


def test_graphql_errors_are_typed(client: MoveClient, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="job-nope") as info:
        client.get_job("job-nope")
    assert info.value.error_type == "NotFoundException"  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match="take"):
        client.create_job("take-nope")
    with pytest.raises(BadRequest, match="mkv"):
        client.create_file("x.mkv", "mkv")
    # a take needs the bytes first
    empty = client.create_file("later.mp4")
    with pytest.raises(BadRequest, match="PUT the video"):
        client.create_take(empty.id)
    take = _take(client, clip)
    with pytest.raises(BadRequest, match="MAIN_FBX"):
        client.create_job(take, outputs=["MAIN_USDC"])
    # a document that does not fit the schema: errorType ValidationError, refused with HTTP 400
    with pytest.raises(BadRequest, match="ValidationError") as info:
        client.graphql("query Broken($jobId: String!) { job: getJob(jobId: $jobId) { id colour } }",
                       {"jobId": "job-x"})
    assert "colour" in str(info.value)
    # an authorisation error inside a 200 answer is an AuthError too, with the hint
    exc = graphql_error([{"errorType": "UnauthorizedException", "message": "Not Authorized"}], "GetJob",
                        "run `tether login move`")
    assert isinstance(exc, AuthError) and "tether login move" in str(exc)
    assert type(graphql_error([{"message": "boom"}], "GetJob")).__name__ == "ServiceError"


def test_a_state_spelled_three_ways_is_one_state(client: MoveClient, move_svc: Any, clip: Path) -> None:
    move_svc.pause()
    take = _take(client, clip)
    job = client.create_job(take, outputs=["MOTION_DATA"])
    for spelling in ("NOT STARTED", "NOT_STARTED", "not-started"):
        move_svc.spell = {"NOT_STARTED": spelling}
        view = client.get_job(job.id)
        assert view.state is JobState.QUEUED
        assert view.raw_state == spelling
    move_svc.spell = {"NOT_STARTED": "WAITING_FOR_GPU"}
    view = client.get_job(job.id)
    assert view.state is JobState.UNKNOWN and view.state_label == "unknown (WAITING_FOR_GPU)"
    assert [parse_state(s) for s in ("STARTED", "RUNNING", "FINISHED", "FAILED", "CANCELLED")] == [
        JobState.RUNNING, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED]
    move_svc.spell = {"NOT_STARTED": "NOT STARTED"}
    move_svc.resume()
    assert wait_for(client, job.id, interval=0.2).state is JobState.COMPLETED


def test_cursor_pagination_walks_every_page(client: MoveClient, tmp_path: Path, local_services: Any) -> None:
    # not a video: each job fails at once in the service, so no Blender runs for this test
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    take = _take(client, junk)
    made = [client.create_job(take, name=f"page-{i}", outputs=["MOTION_DATA"]).id for i in range(5)]
    local_services.requests.clear()
    walked = [j.id for j in client.iter_jobs(first=2, take_id=take)]
    assert walked == list(reversed(made))  # newest first, each once
    assert local_services.requests.count("POST", r"/move/ugc/graphql$") == 3  # 2 + 2 + 1
    oldest_first = [j.id for j in client.iter_jobs(first=3, take_id=take, sort_direction="ASC")]
    assert oldest_first == made
    page = client.list_jobs(first=2, take_id=take)
    assert page.first == 2 and page.after and len(page.items) == 2
    with pytest.raises(BadRequest, match="cursor"):
        client.list_jobs(after="not-a-cursor")
    failed = wait_for(client, made[0], interval=0.1)
    # the reason is asked for apart from the job (a schema without the field would refuse the whole document)
    assert failed.state is JobState.FAILED and "not a readable video" in (failed.error or "")


def test_faults_retry_queries_and_never_duplicate_a_job(client: MoveClient, clip: Path, faults: Any,
                                                        local_services: Any, move_svc: Any) -> None:
    move_svc.pause()
    take = _take(client, clip)
    # a query is retried through 503s and a 429 with Retry-After
    faults.add("status", status=503, service="move", path="/ugc/graphql$", times=2)
    faults.add("status", status=429, retry_after=0, service="move", path="/ugc/graphql$", times=1)
    local_services.requests.clear()
    assert client.list_jobs(first=1, take_id=take).items == []
    assert local_services.requests.count("POST", r"/move/ugc/graphql$") == 4
    faults.clear()
    # the job mutation reached the service, then the connection dropped: found again, not made twice
    faults.add("drop", when="after", service="move", method="POST", path="/ugc/graphql$", times=1)
    job = client.create_job(take, outputs=["MOTION_DATA"])
    faults.clear()
    assert [j.id for j in client.iter_jobs(take_id=take)] == [job.id]
    # a body that is not JSON is a ProtocolError, not a crash
    faults.add("malformed", service="move", path="/ugc/graphql$", times=1)
    with pytest.raises(ProtocolError):
        client.get_job(job.id)


# --- the SDK's forms (move-ugc-python 4.x) ------------------------------------------------------------------------
def test_get_file_asks_by_file_id(client: MoveClient, clip: Path) -> None:
    file = client.upload(clip)
    assert client.get_file(file.id).id == file.id  # getFile(fileId: ID!): the local schema refuses getFile(id:)


def test_an_output_type_this_tether_does_not_know_is_sent_and_read(client: MoveClient, clip: Path,
                                                                   local_services: Any) -> None:
    local_services.requests.clear()
    with pytest.raises(BadRequest, match="cannot make MAIN_GLB"):  # Move's answer, not ours
        submit_video(client, MoveRequest(video=clip, outputs=["MAIN_GLB"]))
    with pytest.raises(BadRequest, match=r"ValidationError.*'MAIN_OBJ' does not exist in 'OutputType'"):
        submit_video(client, MoveRequest(video=clip, outputs=["MAIN_OBJ"]))  # the schema's answer, not ours
    assert local_services.requests.count(service="move") > 0
    job = MoveJob.model_validate({"id": "job-1", "state": "FINISHED", "outputs": [
        {"format": "MAIN_GLB", "file": {"id": "f1", "presignedUrl": "https://s/x.glb"}},
        {"format": "MAIN_OBJ", "file": {"id": "f2", "presignedUrl": "https://s/x"}}]})
    assert [(o.name, o.kind) for o in to_job(job).outputs] == [("MAIN_GLB", "glb"), ("MAIN_OBJ", None)]
    assert output_file_name("MAIN_OBJ", "https://s/x?sig=1") == "MAIN_OBJ.bin"


@pytest.mark.parametrize("age", ["format", "key"])
def test_outputs_of_either_schema_age_are_read(age: str, client: MoveClient, move_svc: Any, clip: Path,
                                               local_services: Any) -> None:
    move_svc.output_field = age
    job = client.create_job(_take(client, clip), outputs=["MOTION_DATA"])
    done = eventually(lambda: client.get_job(job.id), lambda j: j.state.finished, timeout=60,
                      message=f"Move job {job.id} to finish")
    assert [o.name for o in done.outputs] == ["MOTION_DATA"] and done.outputs[0].url
    local_services.requests.clear()
    client.get_job(job.id)  # the schema's age is learnt once: one request from now on
    assert local_services.requests.count("POST", r"/move/ugc/graphql$") == 1


# --- webhooks ---------------------------------------------------------------------------------------------------
def _delivery(body: bytes, at: float, secret: str = SECRET) -> dict:
    stamp = str(int(at))
    msg_id = f"msg_{uuid.uuid4().hex}"
    return {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": sign(secret, msg_id, stamp, body)}


def test_svix_signature_is_accepted() -> None:
    body = b'{"type":"job.finished","data":{"jobId":"job-1","state":"FINISHED"}}'
    now = time.time()
    headers = _delivery(body, now)
    assert verify(SECRET, headers, body, now=now)["data"]["jobId"] == "job-1"
    # several signatures while the secret rotates: one match is enough
    other = sign("whsec_" + "QUJDREVGR0hJSktMTU5PUA==", headers["svix-id"], headers["svix-timestamp"], body)
    rotated = {**headers, "svix-signature": f"{other} {headers['svix-signature']}"}
    assert verify(SECRET, rotated, body, now=now)["type"] == "job.finished"


def test_svix_tampered_body_and_wrong_secret_are_refused() -> None:
    body = b'{"type":"job.finished","data":{"jobId":"job-1"}}'
    now = time.time()
    headers = _delivery(body, now)
    with pytest.raises(WebhookVerificationError, match="changed on the way"):
        verify(SECRET, headers, body.replace(b"job-1", b"job-2"), now=now)
    with pytest.raises(WebhookVerificationError, match="changed on the way"):
        verify("whsec_QUJDREVGR0hJSktMTU5PUA==", headers, body, now=now)
    with pytest.raises(WebhookVerificationError, match="svix-signature"):
        verify(SECRET, {k: v for k, v in headers.items() if k != "svix-signature"}, body, now=now)


def test_svix_old_timestamp_is_refused() -> None:
    body = b'{"type":"job.finished"}'
    now = time.time()
    old = _delivery(body, now - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, old, body, now=now)
    assert verify(SECRET, _delivery(body, now - 299), body, now=now) == {"type": "job.finished"}
    with pytest.raises(WebhookVerificationError, match="future"):
        verify(SECRET, _delivery(body, now + 600), body, now=now)


# --- CLI --------------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(local_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TETHER_MOVE_URL", local_services.url("move"))
    for name in ("TETHER_PROFILE", "TETHER_MOVE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_cli_submit_wait_out_then_jobs_and_status(cli_env: Path, clip: Path, move_svc: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import main

    # the state words spelled as Move has not been seen to, yet as loosely as it has (SERVICES.md: parse loosely)
    move_svc.spell = {"NOT_STARTED": "not started", "RUNNING": "Running", "FINISHED": "finished"}
    out = cli_env / "rig"
    assert main(["move", "submit", str(clip), "--start", "0.25", "--end", "1.0", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out / "MAIN_FBX.fbx").read_bytes().startswith(b"Kaydara FBX Binary")
    assert result["frames"] == 18 and (result["start"], result["end"]) == (0.25, 1.0)  # the window sent
    assert main(["move", "status", result["job_id"], "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "completed" and status["raw_state"] == "finished"
    assert main(["move", "jobs", "--first", "1", "--limit", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == min(2, len(move_svc._jobs))  # alone, this job is the only one
    assert main(["move", "jobs", "--remote", "--json"]) == 0
    assert result["job_id"] in [j["id"] for j in json.loads(capsys.readouterr().out)]


def test_cli_verify_webhook(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import main

    body = b'{"type":"job.finished","data":{"jobId":"job-9"}}'
    headers = _delivery(body, time.time())
    argv = ["move", "verify-webhook", "--id", headers["svix-id"], "--timestamp", headers["svix-timestamp"],
            "--signature", headers["svix-signature"]]
    monkeypatch.setenv("TETHER_MOVE_WEBHOOK_SECRET", SECRET)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["data"]["jobId"] == "job-9"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body + b" ")))
    assert main(argv) == 1
    assert "refused" in capsys.readouterr().err


def test_an_empty_secret_and_a_replayed_delivery_are_refused(tmp_path: Path) -> None:
    import base64
    import hashlib
    import hmac

    from tether.move.webhooks import DeliveryLog

    body = b'{"type":"job.finished"}'
    stamp = str(int(time.time()))
    # what anyone can compute when the key is empty
    digest = hmac.new(b"", f"msg_1.{stamp}.".encode() + body, hashlib.sha256).digest()
    forged = {"svix-id": "msg_1", "svix-timestamp": stamp, "svix-signature": "v1," + base64.b64encode(digest).decode()}
    with pytest.raises(WebhookVerificationError, match="empty"):
        verify("whsec_", forged, body)
    log = DeliveryLog(tmp_path / "data" / "deliveries.sqlite")
    fresh = _delivery(body, time.time())
    assert verify(SECRET, fresh, body, log=log) == {"type": "job.finished"}
    with pytest.raises(WebhookVerificationError, match="accepted before: refused as a replay"):
        verify(SECRET, fresh, body, log=DeliveryLog(log.path))  # another process, the same file
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"
    # ids older than the window are forgotten: the log stays small
    assert DeliveryLog(log.path).remember("other", now=time.time() + 2 * 3600)
    assert DeliveryLog(log.path).remember(fresh["svix-id"], now=time.time() + 2 * 3600)


def test_cli_webhook_secret_never_on_the_command_line(cli_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], memkeyring: Any) -> None:
    from tether.settings import set_secret
    from tether_cli import main

    monkeypatch.delenv("TETHER_MOVE_WEBHOOK_SECRET", raising=False)
    body = b'{"type":"job.finished"}'

    def run(*extra: str) -> int:
        headers = _delivery(body, time.time())
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
        return main(["move", "verify-webhook", "--id", headers["svix-id"], "--timestamp", headers["svix-timestamp"],
                     "--signature", headers["svix-signature"], *extra])

    assert run("--secret", SECRET) != 0
    assert "ps" in capsys.readouterr().err
    secret_file = cli_env / "secret"
    secret_file.write_text(SECRET + "\n")
    assert run("--secret-file", str(secret_file)) == 0
    assert run() != 0 and "no webhook secret" in capsys.readouterr().err
    set_secret("local", "move", SECRET, kind="webhook_secret")
    assert run() == 0
