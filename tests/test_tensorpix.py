"""TensorPix: the client against the local service over real HTTP (contract, unknown integer statuses, pagination,
expired presigned URLs, quota, auth, faults), a real enhancement round trip, and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest
from tether.errors import AuthError, BadRequest, InputError, RateLimited, ServiceError
from tether.http import RetryPolicy
from tether.jobs import JobState
from tether.registry import JobRegistry
from tether.tensorpix.client import LOCAL_API_KEY, TensorPixClient, to_job
from tether.tensorpix.models import JobOptions, MLModel, TensorPixJob
from tether.tensorpix.submit import build_options, enhance_clip
from waiting import eventually

av = pytest.importorskip("av")

W, H, N = 64, 48, 10


def make_clip(path: Path, frames: int = N) -> Path:
    """A tiny real movie: a white bar moving right, one step per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            rgb = np.full((H, W, 3), 30, np.uint8)
            rgb[:, i * 6:i * 6 + 6] = 240
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def movie(path: Path) -> Any:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("tp") / "tiny.mp4")


@pytest.fixture
def service(local_services: Any) -> Iterator[Any]:
    svc = local_services.service("tensorpix")
    yield svc
    svc.resume()
    svc.expire_next_urls(0)
    svc.storage_limit = 2 * 1024 ** 3


@pytest.fixture
def client(local_services: Any, service: Any) -> Iterator[TensorPixClient]:
    with TensorPixClient(local_services.url("tensorpix"), token=LOCAL_API_KEY,
                         retry=RetryPolicy(attempts=4, backoff=0.01, max_retry_after=0.2)) as c:
        yield c


def wait_done(client: TensorPixClient, job_id: str, timeout: float = 60.0) -> Any:
    return eventually(lambda: client.get_job(job_id), lambda job: job.state.finished, timeout=timeout,
                      message=f"TensorPix job {job_id} to finish")


# --- round trip ---------------------------------------------------------------------------------------------------
def test_enhance_round_trip_upscales_a_real_clip(client: TensorPixClient, clip: Path, tmp_path: Path,
                                                 local_services: Any) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    before = local_services.requests.count("GET", r"/tensorpix/api/videos/\d+/$")
    done = enhance_clip(client, str(clip), {"ml_models": [1], "sharpen_strength": 10}, registry=registry)
    assert done.video.ready and done.video.n_frames == N and (done.video.width, done.video.height) == (W, H)
    # the upload was not ready at once: the client polled the video until its file appeared
    assert local_services.requests.count("GET", r"/tensorpix/api/videos/\d+/$") - before >= 2
    job = wait_done(client, str(done.job.id))
    assert job.state is JobState.COMPLETED and job.progress == 100.0 and job.outputs[0].kind == "video"
    files = client.fetch_outputs(job.id, tmp_path / "out")
    frames = movie(files[0])
    assert len(frames) == N and frames[0].shape == (2 * H, 2 * W, 3)
    # the bar moved one step per frame in the source: it still does, at twice the size
    source = movie(clip)
    for k in (0, N - 1):
        bright = np.where(frames[k][:, :, 0].mean(axis=0) > 128)[0]
        src = np.where(source[k][:, :, 0].mean(axis=0) > 128)[0]
        assert abs(bright.mean() / 2 - src.mean()) < 2
    record = registry.get("tensorpix", str(done.job.id))
    assert record is not None and record.extra["frame_count"] == N and record.extra["video_id"] == done.video.id


def test_frame_range_preview_resolution_and_from_url(client: TensorPixClient, clip: Path, tmp_path: Path) -> None:
    video = client.wait_ready(client.upload_video(clip).id)
    ranged = client.create_job(build_options({"ml_models": [2], "start_frame": 2, "end_frame": 7,
                                              "output_resolution": 96, "container": "mov"}, video.id))
    preview = client.create_job(build_options({"ml_models": [1], "preview": True}, video.id))
    assert video.file is not None
    from tether.tensorpix.models import JobFromUrl

    remote = client.create_job_from_url(JobFromUrl(url=video.file, ml_models=[3]))
    for tj, count, size in ((ranged, 6, (96, 128)), (preview, 5, (2 * H, 2 * W)), (remote, 2 * N - 1, (H, W))):
        assert wait_done(client, str(tj.id)).state is JobState.COMPLETED
        path = client.download_output(str(tj.id), tmp_path / str(tj.id))
        frames = movie(path)
        assert len(frames) == count and frames[0].shape[:2] == size, path
    assert client.get_tensorpix_job(str(remote.id)).input_video.external_url == video.file  # type: ignore[union-attr]


# --- states are never guessed -------------------------------------------------------------------------------------
def test_an_unknown_integer_status_is_shown_as_itself(client: TensorPixClient, service: Any, clip: Path,
                                                      local_services: Any) -> None:
    video = client.wait_ready(client.upload_video(clip).id)
    service.pause()
    tj = client.create_job(build_options({"ml_models": [1]}, video.id))
    raw = httpx.get(f"{local_services.url('tensorpix')}/api/jobs/{tj.id}/",
                    headers={"Authorization": f"Token {LOCAL_API_KEY}"}).json()
    job = client.get_job(str(tj.id))
    assert isinstance(raw["status"], int) and raw["output_video"] is None
    assert job.state is JobState.UNKNOWN and job.state_label == f"unknown ({raw['status']})"
    service.set_status(tj.id, 7)
    assert client.get_job(str(tj.id)).state_label == "unknown (7)"
    service.set_status(tj.id, "IN_QUEUE")
    assert client.get_job(str(tj.id)).state is JobState.QUEUED
    service.set_status(tj.id, 0)
    service.resume()
    assert wait_done(client, str(tj.id)).state is JobState.COMPLETED


def test_state_mapping_reads_output_and_finished_not_the_integer() -> None:
    base = {"id": 9, "status": 3}
    assert to_job(TensorPixJob.model_validate(base)).state is JobState.UNKNOWN
    done = to_job(TensorPixJob.model_validate({**base, "status": 42, "output_video": {"id": 1, "name": "o.mp4"}}))
    assert done.state is JobState.COMPLETED and done.raw_state == "42"
    failed = to_job(TensorPixJob.model_validate({**base, "finished": "2026-01-01T00:00:00Z",
                                                 "description": "bad input"}))
    assert failed.state is JobState.FAILED and "status 3" in (failed.error or "") and "bad input" in failed.error


# --- pagination ---------------------------------------------------------------------------------------------------
def test_drf_pages_are_followed_to_the_end(client: TensorPixClient, local_services: Any, clip: Path) -> None:
    local_services.requests.clear()
    models = list(client.iter_pages("/api/ml-models/", MLModel, limit=2))
    assert local_services.requests.count("GET", r"/tensorpix/api/ml-models/$") == 3  # 2 + 2 + 1
    assert [m.id for m in models] == [m.id for m in client.models()] and len(models) == 5
    video = client.wait_ready(client.upload_video(clip).id)
    made = [str(client.create_job(build_options({"ml_models": [1], "preview": True}, video.id)).id)
            for _ in range(3)]
    listed = [str(tj.id) for tj in client.iter_jobs(limit=1)]
    assert set(made) <= set(listed) and len(listed) == len(set(listed))
    assert set(client.jobs_by_id(made)) == set(made)
    for job_id in made:
        wait_done(client, job_id)


# --- presigned URLs expire ----------------------------------------------------------------------------------------
def test_an_expired_output_url_is_refreshed(client: TensorPixClient, service: Any, clip: Path, tmp_path: Path,
                                            local_services: Any) -> None:
    video = client.wait_ready(client.upload_video(clip).id)
    tj = client.create_job(build_options({"ml_models": [2], "preview": True}, video.id))
    wait_done(client, str(tj.id))
    local_services.requests.clear()
    service.expire_next_urls(2)  # the job's next reply carries expired URLs (input and output)
    path = client.download_output(str(tj.id), tmp_path / "dl")
    assert len(movie(path)) == 5
    assert local_services.requests.count("GET", r"/tensorpix/_store/outputs/", status=403) == 1
    assert local_services.requests.count("GET", rf"/tensorpix/api/jobs/{tj.id}/$") == 2


# --- errors -------------------------------------------------------------------------------------------------------
def test_storage_quota_is_a_clear_400(client: TensorPixClient, service: Any, clip: Path) -> None:
    service.storage_limit = 1
    with pytest.raises(BadRequest) as err:
        client.upload_video(clip)
    assert err.value.status == 400 and "storage quota is full" in str(err.value)
    assert "Storage quota exceeded" in err.value.server_message


def test_auth_errors_say_what_to_do(local_services: Any) -> None:
    url = local_services.url("tensorpix")
    for token in ("wrong-token", None):
        with TensorPixClient(url, token=token, profile="studio") as bad, pytest.raises(AuthError) as err:
            bad.balance()
        assert err.value.status == 401 and "tether login tensorpix --profile studio" in str(err.value)
        assert "wrong-token" not in str(err.value)


def test_options_are_refused_before_anything_is_sent(client: TensorPixClient, clip: Path,
                                                     local_services: Any) -> None:
    local_services.requests.clear()
    for options, words in (({"ml_models": [1], "start_frame": 5, "end_frame": 2}, "end_frame (2) is before"),
                           ({"ml_models": [1], "output_resolution": 0}, "output_resolution is -1"),
                           ({"ml_models": []}, "ml_models"), ({"ml_models": [1], "codec": "h263"}, "codec"),
                           ({"ml_models": [1], "grain": 101}, "grain"), ({"ml_models": [1], "bogus": 1}, "bogus"),
                           ({"ml_models": [99]}, "no model 99")):
        with pytest.raises(InputError, match=re.escape(words)):
            enhance_clip(client, str(clip), options)
    assert local_services.requests.count("POST") == 0
    assert JobOptions(ml_models=[1, 2], fps_interpolation_factor=2).payload() == {
        "ml_models": [1, 2], "fps_interpolation_factor": 2, "preview": False}


def test_numbers_the_seed_shows_as_integers_are_sent_as_integers(client: TensorPixClient, clip: Path) -> None:
    """grain, sharpen_strength and stabilization_smoothing are integers in the seed: a dialog's 12.0 goes as 12 (the
    local TensorPix refuses a JSON float there), and 12.5 is refused here, before the upload."""
    sent = enhance_clip(client, str(clip), {"ml_models": [1], "grain": 12.0, "sharpen_strength": 30.0,
                                            "stabilization_smoothing": 5.0})
    vendor = client.get_tensorpix_job(str(sent.job.id))
    assert (vendor.grain, vendor.sharpen_strength) == (12, 30)
    payload = JobOptions(ml_models=[1], grain=12.0, sharpen_strength=30.0).payload()
    assert type(payload["grain"]) is int and type(payload["sharpen_strength"]) is int
    with pytest.raises(InputError, match="grain"):
        enhance_clip(client, str(clip), {"ml_models": [1], "grain": 12.5})


def test_faults_429_and_5xx(client: TensorPixClient, faults: Any, local_services: Any) -> None:
    faults.add("status", status=429, retry_after=0.05, service="tensorpix", path="/balance/$", times=2)
    assert client.balance().amount is not None
    faults.add("status", status=503, service="tensorpix", method="GET", path="/ml-models/", times=1)
    assert len(client.models()) == 5
    faults.add("status", status=429, service="tensorpix", path="/balance/$", times=0)
    with pytest.raises(RateLimited, match="rate limited"):
        client.balance()
    faults.clear()
    # a POST that may have been acted on is not repeated: the 503 is reported
    local_services.requests.clear()
    faults.add("status", status=503, service="tensorpix", method="POST", path="/api/jobs/$", times=1)
    with pytest.raises(ServiceError, match="HTTP 503"):
        client.create_job(build_options({"ml_models": [1]}, 1))
    assert local_services.requests.count("POST", r"/tensorpix/api/jobs/$") == 1


# --- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_models_balance_enhance_jobs(local_services: Any, clip: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import main

    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TETHER_TENSORPIX_URL", local_services.url("tensorpix"))
    assert main(["--profile", "local", "tensorpix", "models", "--json"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == [1, 2, 3, 4, 5]
    assert main(["tensorpix", "balance", "--json"]) == 0
    assert float(json.loads(capsys.readouterr().out)["balance_usd"]) >= 0
    out = tmp_path / "out"
    assert main(["tensorpix", "enhance", str(clip), "--model", "1", "--preview", "--out", str(out)]) == 0
    capsys.readouterr()
    assert [len(movie(p)) for p in out.glob("*.mp4")] == [5]
    assert main(["tensorpix", "jobs", "--json", "--limit", "1"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["state"] == "completed" and listed[0]["label"] == "completed"
    assert main(["tensorpix", "enhance", str(clip), "--model", "1", "--resolution", "3"]) == 1
    assert "output_resolution" in capsys.readouterr().err
