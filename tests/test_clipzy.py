"""Clipzy (seed 001): the client against the local engine over real HTTP, on tiny clips made here with PyAV."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, List, Tuple

import av
import numpy as np
import pytest
from tether.clipzy.client import (
    CancelNotSupported,
    ClipzyClient,
    FileTooLarge,
    JobAlreadyProcessing,
    JobNotFound,
    OutputOnEngineHost,
    Unauthorized,
    UnsupportedFormat,
    VideoNotFound,
    parse_job,
    parse_webhook,
    stage_text,
)
from tether.clipzy.models import ClipzyJob
from tether.errors import InputError, ServiceError
from tether.http import RetryPolicy
from tether.jobs import Job, JobState
from waiting import eventually

W, H, N = 64, 48, 8
BLUE = (40, 110, 200)
ORANGE = (210, 120, 40)


def make_clip(path: Path, rgb: Tuple[int, int, int], n: int = N) -> Path:
    """A moving bright bar over a flat colour, H.264 at 24 fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            pixels = np.empty((H, W, 3), np.uint8)
            pixels[:] = rgb
            pixels[:, 4 * i: 4 * i + 12] = [min(255, c + 50) for c in rgb]
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def mean_rgb(path: Path) -> Tuple[np.ndarray, int, str, Tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        codec = stream.codec_context.name
    mean = np.stack(frames).astype(np.float64).mean(axis=(0, 1, 2))
    return mean, len(frames), codec, (frames[0].shape[1], frames[0].shape[0])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clipzy-clips")
    return make_clip(folder / "shot.mp4", BLUE), make_clip(folder / "look.mp4", ORANGE)


@pytest.fixture
def engine(local_services: Any) -> Iterator[Any]:
    service = local_services.service("clipzy")
    yield service
    service.release()
    service.token = None
    service.output_urls = "http"
    service.webhook_form = "envelope"
    service.list_key = "items"
    service.max_upload_bytes = 500 * 1024 * 1024
    service.job_timeout = 600.0


@pytest.fixture
def client(local_services: Any, engine: Any) -> Iterator[ClipzyClient]:
    with ClipzyClient(local_services.url("clipzy"), retry=RetryPolicy(attempts=3, backoff=0.01)) as c:
        c.sleep = lambda seconds: None
        yield c


def wait_done(client: ClipzyClient, job_id: str, limit: float = 60.0) -> Job:
    return eventually(lambda: client.get_job(job_id), lambda job: job.state.finished, timeout=limit,
                      message=f"Clipzy job {job_id} to finish")


# --- round trip -------------------------------------------------------------------------------------------------
def test_round_trip_progress_stage_style_json(client: ClipzyClient, engine: Any, clips: Tuple[Path, Path],
                                               tmp_path: Path) -> None:
    shot, look = clips
    assert client.health()["status"] == "healthy"
    video = client.upload(shot)
    meta = video.metadata
    assert (meta.width, meta.height, meta.frame_count, meta.resolution) == (W, H, N, f"{W}x{H}")
    assert meta.fps == pytest.approx(24.0)
    assert meta.duration_seconds == pytest.approx(N / 24, abs=0.05)
    assert video.file_size_bytes == shot.stat().st_size

    template_id = client.upload(look).video_id
    engine.hold("style_application")
    cj = client.create_job(video.video_id, template_id)
    assert cj.status in ("queued", "processing") and cj.template_video_id == template_id
    assert engine.wait_held(30)
    job = client.get_job(cj.job_id)
    assert job.state is JobState.RUNNING and job.raw_state == "processing"
    assert 0 < job.progress < 100
    assert isinstance(job.vendor, ClipzyJob) and job.vendor.current_stage == "style_application"
    assert stage_text(job) == f"processing: applying the style ({job.progress:.0f}%)"
    # a second job on the same video while the first runs: the engine's JOB_ALREADY_PROCESSING, explained
    with pytest.raises(JobAlreadyProcessing, match="already has a job queued or processing"):
        client.create_job(video.video_id, template_id)
    # no result yet: fetching says to wait rather than failing obscurely
    with pytest.raises(InputError, match="wait for it to finish"):
        client.fetch_result(cj.job_id, tmp_path / "early")
    engine.release()

    job = wait_done(client, cj.job_id)
    assert job.state is JobState.COMPLETED and job.progress == 100.0
    assert not job.outputs  # GET /jobs/{id} is a JobResponse: the output URL is only in the result
    detail = client.result(cj.job_id)
    assert detail.output_video_url and detail.output_video_url.startswith("http://")
    result = client.fetch_result(cj.job_id, tmp_path / "out")
    assert result.video.parent == tmp_path / "out" and result.video.suffix == ".mp4"
    out_mean, frames, codec, size = mean_rgb(result.video)
    assert (frames, codec, size) == (N, "h264", (W, H))
    in_mean, look_mean = mean_rgb(shot)[0], mean_rgb(look)[0]
    # the colour moved to the template's: nearer to it than to where it started, on every channel
    assert np.all(np.abs(out_mean - look_mean) < np.abs(out_mean - in_mean))
    assert result.style_json == result.video.with_name(f"{result.video.stem}.style.json")
    style = json.loads(result.style_json.read_text())
    assert style == result.job.style_json
    assert style["method"] == "reinhard_color_transfer" and style["frames"] == N
    assert style["template"]["rgb_mean"] == pytest.approx(list(look_mean), abs=3)
    assert style["source"]["rgb_mean"] == pytest.approx(list(in_mean), abs=3)
    assert result.job.processing_time_seconds is not None and result.job.processing_time_seconds >= 0
    listed = client.jobs_by_id([cj.job_id, "no-such-job"])
    assert set(listed) == {cj.job_id} and listed[cj.job_id].state is JobState.COMPLETED


# --- envelope errors ----------------------------------------------------------------------------------------------
def test_envelope_errors_are_typed_and_say_what_to_do(client: ClipzyClient, engine: Any, tmp_path: Path,
                                                       clips: Tuple[Path, Path]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(UnsupportedFormat, match=r"convert it to an H\.264") as exc:
        client.upload(text)
    assert exc.value.status == 415 and "UNSUPPORTED_FORMAT" in str(exc.value)
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"\x00" * 2048)
    with pytest.raises(UnsupportedFormat, match="cannot read it as a video"):
        client.upload(fake)
    with pytest.raises(JobNotFound, match="tether clipzy jobs") as missing:
        client.get_job("no-such-job")
    assert missing.value.status == 404 and "JOB_NOT_FOUND" in str(missing.value)
    with pytest.raises(JobNotFound):
        client.result("no-such-job")
    with pytest.raises(VideoNotFound, match="upload the clip"):
        client.create_job("no-such-video", "no-such-template")
    engine.max_upload_bytes = 100
    with pytest.raises(FileTooLarge, match="trim the clip"):
        client.upload(clips[0])


def test_job_timeout_is_a_failed_job_with_advice(client: ClipzyClient, engine: Any, clips: Tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    engine.job_timeout = -1.0  # every job is over its time at the first stage
    job = wait_done(client, client.style(clips[0], clips[1]).job_id)
    assert job.state is JobState.FAILED and job.error and "JOB_TIMEOUT" in job.error
    with pytest.raises(InputError, match=r"is failed and has no output.*JOB_TIMEOUT.*try a shorter clip"):
        client.fetch_result(job.id, tmp_path / "none")


def test_optional_bearer_token(local_services: Any, client: ClipzyClient, engine: Any) -> None:
    engine.token = "clipzy-proxy-secret-1234"
    with pytest.raises(Unauthorized, match="tether login clipzy") as exc:
        client.health()
    assert "clipzy-proxy-secret-1234" not in str(exc.value)
    with ClipzyClient(local_services.url("clipzy") + "/api/v1", token="clipzy-proxy-secret-1234") as authed:
        assert authed.health()["status"] == "healthy"


def test_cancel_is_refused_honestly_without_a_request(local_services: Any, client: ClipzyClient, engine: Any,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    local_services.requests.clear()
    with pytest.raises(CancelNotSupported, match="no cancel route"):
        client.cancel_job("some-job")
    from tether_cli import main

    monkeypatch.setenv("TETHER_CLIPZY_URL", local_services.url("clipzy"))
    assert main(["clipzy", "cancel", "some-job"]) == 1
    assert "Clipzy has no cancel route" in capsys.readouterr().err
    assert local_services.requests.count(service="clipzy") == 0


# --- file:// output URLs ------------------------------------------------------------------------------------------
def test_file_url_output_copied_when_readable_explained_when_not(client: ClipzyClient, engine: Any,
                                                                  clips: Tuple[Path, Path], tmp_path: Path) -> None:
    engine.output_urls = "file"
    cj = client.style(clips[0], clips[1])
    job = wait_done(client, cj.job_id)
    assert job.state is JobState.COMPLETED
    url = client.result(cj.job_id).output_video_url
    assert url and url.startswith("file://")
    # the engine runs on this machine here, so the path is readable: the file is copied
    result = client.fetch_result(cj.job_id, tmp_path / "copied")
    assert mean_rgb(result.video)[1] == N and result.style_json and result.style_json.is_file()
    # as seen from a machine that does not have the engine's disk: the path is named, with what to do
    engine.jobs[cj.job_id].output.rename(tmp_path / "moved-away.mp4")
    with pytest.raises(OutputOnEngineHost, match="mount the engine's output folder") as exc:
        client.fetch_result(cj.job_id, tmp_path / "remote")
    assert exc.value.path in str(exc.value) and exc.value.path.endswith("_styled.mp4")


def test_root_relative_output_url_is_fetched_from_the_engine_host(client: ClipzyClient, engine: Any,
                                                                  clips: Tuple[Path, Path], tmp_path: Path) -> None:
    """An engine serving its outputs as static files answers ``/static/...``: that is the host's root, not a path
    under the API's ``/api/v1``."""
    engine.output_urls = "root"
    cj = client.style(clips[0], clips[1])
    assert wait_done(client, cj.job_id).state is JobState.COMPLETED
    url = client.result(cj.job_id).output_video_url
    assert url and url.startswith("/") and "/api/v1/" not in url
    result = client.fetch_result(cj.job_id, tmp_path / "out")
    assert mean_rgb(result.video)[1] == N


# --- webhooks -----------------------------------------------------------------------------------------------------
class _Receiver:
    def __init__(self) -> None:
        self.bodies: List[bytes] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
                self.send_response(204)
                self.end_headers()
                outer.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/clipzy"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    rec = _Receiver()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.mark.parametrize("form", ["envelope", "flat"])
def test_webhook_bodies_in_both_forms(form: str, client: ClipzyClient, engine: Any, receiver: _Receiver,
                                      clips: Tuple[Path, Path]) -> None:
    engine.webhook_form = form
    cj = client.style(clips[0], clips[1], webhook_url=receiver.url)
    assert receiver.got.wait(60)
    body = json.loads(receiver.bodies[0])
    assert ("success" in body) is (form == "envelope")
    job = parse_webhook(receiver.bodies[0])
    assert job.id == cj.job_id and job.state is JobState.COMPLETED and job.progress == 100.0
    assert job.outputs[0].url == client.result(cj.job_id).output_video_url
    assert isinstance(job.vendor, ClipzyJob) and job.vendor.processing_time_seconds is not None


def test_states_loose_and_unknown_kept() -> None:
    assert parse_job({"job_id": 7, "status": "Pending"}).job_id == "7"
    for raw, state in (("pending", JobState.QUEUED), ("QUEUED", JobState.QUEUED), ("processing", JobState.RUNNING),
                       ("completed", JobState.COMPLETED), ("failed", JobState.FAILED),
                       ("cancelled", JobState.CANCELLED), ("paused_for_review", JobState.UNKNOWN)):
        job = parse_webhook({"job_id": "j", "status": raw, "progress_percent": 10})
        assert job.state is state and job.raw_state == raw
    odd = parse_webhook({"job_id": "j", "status": "paused_for_review"})
    assert odd.state_label == "unknown (paused_for_review)" and stage_text(odd) == odd.state_label
    failed = parse_webhook({"success": False, "message": "failed", "data": {"job_id": "j", "status": "failed"},
                            "error": {"detail": "too long", "code": "JOB_TIMEOUT"}})
    assert failed.error == "too long (JOB_TIMEOUT)"


@pytest.mark.parametrize("key", ["jobs", "results", None])
def test_job_list_items_key_tolerated(key: Any, client: ClipzyClient, engine: Any,
                                      clips: Tuple[Path, Path]) -> None:
    cj = client.style(clips[0], clips[1])
    engine.list_key = key
    ids = [j.job_id for j in client.iter_jobs(page_size=2)]
    assert cj.job_id in ids and len(ids) == len(set(ids)) == len(engine.jobs)
    wait_done(client, cj.job_id)


# --- faults ---------------------------------------------------------------------------------------------------------
def test_faults_429_retried_5xx_reported_post_not_repeated(local_services: Any, client: ClipzyClient, engine: Any,
                                                           faults: Any, clips: Tuple[Path, Path]) -> None:
    cj = client.style(clips[0], clips[1])
    local_services.requests.clear()
    faults.add("status", service="clipzy", method="GET", path=f"/jobs/{cj.job_id}$", status=429, retry_after=0,
               times=2)
    assert client.get_job(cj.job_id).id == cj.job_id
    assert local_services.requests.count(method="GET", path=f"/jobs/{cj.job_id}$") == 3
    faults.clear()
    faults.add("status", service="clipzy", method="GET", path="/health", status=503, times=0)
    with pytest.raises(ServiceError, match="the service failed \\(HTTP 503\\)"):
        client.health()
    faults.clear()
    local_services.requests.clear()
    faults.add("status", service="clipzy", method="POST", path="/api/v1/jobs$", status=502, times=1)
    with pytest.raises(ServiceError, match="HTTP 502"):
        client.create_job(str(cj.video_id), cj.template_video_id)
    assert local_services.requests.count(method="POST", path="/api/v1/jobs$") == 1
    wait_done(client, cj.job_id)


# --- CLI ------------------------------------------------------------------------------------------------------------
def test_cli_style_wait_out_status_jobs(local_services: Any, engine: Any, clips: Tuple[Path, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tether.registry import JobRegistry
    from tether_cli import main

    monkeypatch.setenv("TETHER_CLIPZY_URL", local_services.url("clipzy"))
    assert main(["clipzy", "health"]) == 0
    capsys.readouterr()
    out = tmp_path / "styled"
    code = main(["clipzy", "style", str(clips[0]), "--template", str(clips[1]), "--out", str(out), "--json",
                 "--interval", "0.05"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert Path(data["video"]).is_file() and Path(data["style_json"]).is_file()
    assert "completed" in captured.err
    record = JobRegistry().get("clipzy", data["job_id"])
    assert record is not None and record.state is JobState.COMPLETED
    assert main(["clipzy", "status", data["job_id"]]) == 0
    assert capsys.readouterr().out.strip() == f"{data['job_id']}: completed"
    assert main(["clipzy", "jobs", "--json"]) == 0
    assert data["job_id"] in [j["job_id"] for j in json.loads(capsys.readouterr().out)["items"]]
    assert main(["clipzy", "status", "no-such-job"]) == 1
    assert "tether clipzy jobs" in capsys.readouterr().err


# --- the Nuke seam's adapter (DCC-free; the Nuke round trip is tests/nuke/test_nuke_clipzy.py) -------------------
def test_nuke_adapter_submit_stage_fetch(local_services: Any, client: ClipzyClient, engine: Any,
                                         clips: Tuple[Path, Path], tmp_path: Path) -> None:
    from tether.clipzy.nuke_adapter import ClipzyAdapter
    from tether.registry import JobRegistry

    adapter = ClipzyAdapter()
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    assert adapter.check(tmp_path / "nope.mov", {})[0].startswith("the clip")
    with pytest.raises(InputError, match="choose a template clip"):
        adapter.submit(client, clips[0], {}, registry, "Plate1", {})
    local_services.requests.clear()
    engine.hold("rendering")
    sent = adapter.submit(client, clips[0], {"template": str(clips[1])}, registry, "Plate1", {"script": "s.nk"})
    assert sent.first_index == 0 and sent.extra["video_id"]
    record = registry.get("clipzy", sent.job_id)
    assert record is not None and record.extra["script"] == "s.nk"
    assert engine.wait_held(30)
    job = client.get_job(sent.job_id)
    assert adapter.stage_text(job) == f"processing: encoding the output ({job.progress:.0f}%)"
    with pytest.raises(CancelNotSupported):
        adapter.cancel(client, sent.job_id)
    engine.release()
    assert adapter.stage_text(wait_done(client, sent.job_id)) == "completed"
    video = adapter.fetch(client, sent.job_id, tmp_path / "nuke")
    assert mean_rgb(video)[1:3] == (N, "h264") and video.with_name(f"{video.stem}.style.json").is_file()
    # the same template file is uploaded once: a second clip only uploads itself
    second = make_clip(tmp_path / "shot2.mp4", (90, 160, 60))
    wait_done(client, adapter.submit(client, second, {"template": str(clips[1])}, registry, "Plate2", {}).job_id)
    assert local_services.requests.count(method="POST", path="/videos/upload$") == 3


def test_close_stops_a_job_in_flight_and_a_restart_runs_it(clips: Tuple[Path, Path], tmp_path: Path) -> None:
    """close() returns once no job thread is left (before, a held or running job went on writing into the state
    folder after close); the stopped job stays unfinished in the journal, and the next engine runs it to the end."""
    from tether_services.server import LocalServices

    shot, look = clips
    state = tmp_path / "state"
    others = set(threading.enumerate())  # the session's own engine has clipzy threads too
    with LocalServices(port=0, state_dir=state, services=["clipzy"], workers=1) as services:
        engine = services.service("clipzy")
        with ClipzyClient(services.url("clipzy")) as c:
            engine.hold("style_extraction")
            job_id = c.style(shot, look).job_id
            assert engine.wait_held(30)
        engine.close()
        assert not [t for t in set(threading.enumerate()) - others if t.name.startswith("clipzy")]
        saved = json.loads((state / "clipzy" / "journal.json").read_text())
        assert [j["status"] for j in saved["jobs"] if j["job_id"] == job_id] == ["processing"]
        assert not list((state / "clipzy" / "outputs").rglob("*.mp4"))
    with LocalServices(port=0, state_dir=state, services=["clipzy"], workers=1) as again, \
            ClipzyClient(again.url("clipzy")) as c:
        assert wait_done(c, job_id).state is JobState.COMPLETED
