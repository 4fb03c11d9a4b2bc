"""The Autopilot client against the local Autopilot over real HTTP: round trips, faults, quota, auth, results."""

from __future__ import annotations

import math
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator, List

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
from tether.autopilot.clip import inspect_clip, movie_facts
from tether.autopilot.models import DepthMapService, JobCreate, TrackingMetadata
from tether.autopilot.results import classify_folder, unpack_zip
from tether.autopilot.submit import ServiceChoice, build_payload, submit_clip
from tether.errors import AuthError, CancelledByUser, InputError, ServiceError, TransferError
from tether.http import RetryPolicy
from tether.jobs import JobState
from waiting import eventually

W, H, N = 64, 48, 12
SQUARE = 10


# --- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture
def services(autopilot_services: Any) -> Any:
    return autopilot_services


@pytest.fixture
def client(services: Any) -> Iterator[AutopilotClient]:
    c = AutopilotClient(services.url("autopilot"), api_key=LOCAL_API_KEY, retry=RetryPolicy(attempts=4, backoff=0.01))
    yield c
    c.close()


# --- clips --------------------------------------------------------------------------------------------------------
def square_box(i: int) -> tuple[int, int]:
    return 8 + i, 4 + 4 * i  # (y, x) of the square's top-left corner in frame i


def moving_square(folder: Path, first: int = 1001, n: int = N) -> str:
    """A grey textured static background with a yellow square moving right 4 px a frame."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    bg = (rng.integers(30, 60, size=(H, W, 1)) * np.ones((1, 1, 3))).astype(np.uint8)
    for i in range(n):
        frame = bg.copy()
        y, x = square_box(i)
        frame[y:y + SQUARE, x:x + SQUARE] = (240, 210, 20)
        Image.fromarray(frame).save(folder / f"shot.{first + i:04d}.png")
    return str(folder / "shot.####.png")


def panning(folder: Path, dx: int = 2, dy: int = 1, n: int = N) -> str:
    """Noise texture translating (dx, dy) px a frame, wrapping: an exact pan/tilt for phase correlation."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    tex = rng.integers(0, 255, size=(H, W, 3)).astype(np.uint8)
    for i in range(n):
        Image.fromarray(np.roll(tex, (dy * i, dx * i), axis=(0, 1))).save(folder / f"pan.{i + 1:04d}.png")
    return str(folder / "pan.%04d.png")


def wait_finished(client: AutopilotClient, job_id: str, timeout: float = 60.0) -> Any:
    return eventually(lambda: client.get_job(job_id), lambda job: job.state.finished, timeout=timeout,
                      message=f"Autopilot job {job_id} to finish")


# --- models -------------------------------------------------------------------------------------------------------
def test_tracking_metadata_rules() -> None:
    meta = TrackingMetadata(calculate_distortion=True, fix_focal_length="false", lens=30)
    assert meta.calculate_distortion == "True" and meta.fix_focal_length == "False"
    with pytest.raises(ValidationError, match="sensor_width was given without sensor_height"):
        TrackingMetadata(sensor_width=24.0)
    with pytest.raises(ValidationError, match="sensor_height was given without sensor_width"):
        TrackingMetadata(sensor_height=24.0)
    with pytest.raises(ValidationError):
        TrackingMetadata(fix_sensor_size="yes")
    with pytest.raises(ValidationError, match="nearer"):
        TrackingMetadata(estimated_closest_point=20, estimated_farthest_point=1)
    assert DepthMapService(output_path="o", export_type="JPG").export_type == "jpg"
    with pytest.raises(ValidationError):
        DepthMapService(output_path="o", export_type="png")


def test_payload_shape_and_input_errors() -> None:
    choice = ServiceChoice(roto=True, tracking=True, depth=True, depth_export="mov", roto_references=["m/00001.png"],
                           tracking_metadata={"lens": 30.0, "fix_sensor_size": False})
    body = build_payload("uploads/a.mov", choice, output_path="out/1", job_metadata={"project_id": 123}).payload()
    assert body["job_source"] == "tether" and body["metadata"] == {"project_id": 123}
    services = body["assets"][0]["services"]
    assert services[0] == {"type": "roto", "output_path": "out/1", "references_path": ["m/00001.png"]}
    assert services[1] == {"type": "tracking", "output_path": "out/1",
                           "metadata": {"lens": 30.0, "fix_sensor_size": "False"}}
    assert services[2] == {"type": "depth_map", "output_path": "out/1", "export_type": "mov"}
    bad = ServiceChoice(tracking=True, tracking_metadata={"sensor_width": 36.0})
    with pytest.raises(InputError, match="sensor_width was given without sensor_height"):
        build_payload("k", bad, output_path="o")
    with pytest.raises(InputError, match="at least one"):
        build_payload("k", ServiceChoice(), output_path="o")
    with pytest.raises(ValidationError, match="unknown service type 'rotoscope'"):
        JobCreate.model_validate({"assets": [{"source_path": "k", "services": [{"type": "rotoscope",
                                                                                 "output_path": "o"}]}]})


def test_clip_checks(tmp_path: Path) -> None:
    pattern = moving_square(tmp_path / "seq", first=1001, n=5)
    clip = inspect_clip(pattern)
    assert (clip.first_frame, clip.last_frame, clip.frame_count) == (1001, 1005, 5)
    assert inspect_clip(str(tmp_path / "seq" / "shot.%04d.png")).frame_count == 5
    (tmp_path / "seq" / "shot.1003.png").unlink()
    with pytest.raises(InputError, match="missing frames 1003"):
        inspect_clip(pattern)
    with pytest.raises(InputError, match=r"still image.*shot\.####\.png"):
        inspect_clip(str(tmp_path / "seq" / "shot.1001.png"))
    with pytest.raises(InputError, match="not found"):
        inspect_clip(str(tmp_path / "nothing.mov"))
    from tether.autopilot.clip import Clip
    from tether.autopilot.submit import check_frames

    # the frame limit is the clip's count as inspect_clip found it (no 3501 files written to say so)
    choice = ServiceChoice(roto=True)
    check_frames(Clip(source="b.####.png", kind="sequence", frame_count=3500), choice, None)  # at the limit: sent
    with pytest.raises(InputError, match="3501 frames; Autopilot takes at most 3500"):
        check_frames(Clip(source="b.####.png", kind="sequence", frame_count=3501), choice, None)


# --- round trips --------------------------------------------------------------------------------------------------
def test_roto_tracking_depth_round_trip(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    from tether.registry import JobRegistry

    registry = JobRegistry(tmp_path / "jobs.sqlite")
    pattern = moving_square(tmp_path / "plate")
    sub = submit_clip(client, pattern, ServiceChoice(roto=True, tracking=True, depth=True), registry=registry,
                      metadata={"shot": "sq010"})
    record = registry.get("autopilot", sub.job.id)
    assert record is not None and record.extra["first_frame"] == 1001 and record.title == "shot.####.png"
    job = wait_finished(client, sub.job.id)
    assert job.state is JobState.COMPLETED, job.error
    assert job.counts["completed"] == 3 and job.progress == 100.0 and job.title == "sq010"
    result = client.fetch_results(sub.job.id, tmp_path / "out")
    assert result.first_frame == 1001 and not result.unknown
    hard = next(s for s in result.mattes if s.folder.name == "hard_mattes")
    assert hard.frames == list(range(1, N + 1))
    for i, path in enumerate(hard.files):  # each matte covers the square where the test drew it
        matte = np.asarray(Image.open(path)) > 127
        truth = np.zeros((H, W), bool)
        y, x = square_box(i)
        truth[y:y + SQUARE, x:x + SQUARE] = True
        iou = (matte & truth).sum() / (matte | truth).sum()
        assert iou > 0.9, (i, iou)
    assert {p.suffix for p in result.cameras} == {".chan", ".json"}
    depth = result.depth[0]
    assert not isinstance(depth, Path) and len(depth.files) == N
    assert Image.open(depth.files[0]).size == (W, H)
    # quota counts the frames each inference processed
    assert client.quota().frames_inferenced == 3 * N


def test_tracking_camera_matches_the_pan(client: AutopilotClient, tmp_path: Path) -> None:
    dx, dy = 2, 1
    choice = ServiceChoice(tracking=True, tracking_metadata={"lens": 35.0, "sensor_width": 36.0,
                                                             "sensor_height": 27.0})
    sub = submit_clip(client, panning(tmp_path / "pan", dx, dy), choice)
    assert wait_finished(client, sub.job.id).state is JobState.COMPLETED
    result = client.fetch_results(sub.job.id, tmp_path / "out", export_types=["tracking"])
    chan = next(p for p in result.cameras if p.suffix == ".chan")
    rows = [list(map(float, line.split())) for line in chan.read_text().splitlines()]
    focal_px = 35.0 / 36.0 * W
    vfov = math.degrees(2 * math.atan(13.5 / 35.0))
    assert [r[0] for r in rows] == list(range(1, N + 1))
    for k, (frame, tx, ty, tz, rx, ry, rz, fov) in enumerate(rows):
        assert (tx, ty, tz, rz) == (0, 0, 0, 0) and frame == k + 1
        assert rx == pytest.approx(k * math.degrees(math.atan(dy / focal_px)), abs=1e-4)
        assert ry == pytest.approx(k * math.degrees(math.atan(dx / focal_px)), abs=1e-4)
        assert fov == pytest.approx(vfov, abs=1e-4)


@pytest.mark.parametrize("echo", [True, False], ids=["exports-echoed", "exports-not-echoed"])
def test_movie_in_depth_mov_out(client: AutopilotClient, services: Any, tmp_path: Path, echo: bool) -> None:
    """A depth ``mov`` is fetched whether or not the reply names each inference's export types (the seed shows
    none): the job records what was asked for."""
    av = pytest.importorskip("av")
    services.service("autopilot").echo_exports = echo
    movie = tmp_path / "plate.mp4"
    with av.open(str(movie), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            img = np.full((H, W, 3), 50, np.uint8)
            img[10:20, 4 * i: 4 * i + 10] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = inspect_clip(str(movie))  # counted from the sample table, in pure Python
    assert (clip.kind, clip.frame_count, clip.width, clip.height) == ("movie", N, W, H)
    assert clip.fps == pytest.approx(24.0)
    sub = submit_clip(client, str(movie), ServiceChoice(depth=True, depth_export="mov"))
    assert wait_finished(client, sub.job.id).state is JobState.COMPLETED
    result = client.fetch_results(sub.job.id, tmp_path / "out")
    mov = result.depth[0]
    assert isinstance(mov, Path) and mov.suffix == ".mov"  # a loose file, not a zip
    assert movie_facts(mov).frames == N


# --- faults -------------------------------------------------------------------------------------------------------
def test_429_honours_retry_after(client: AutopilotClient, services: Any) -> None:
    slept: List[float] = []
    client.sleep = slept.append
    services.faults.add("status", status=429, retry_after=7, service="autopilot", path="/api/user/limit$", times=2)
    assert client.quota().subscription_tier == "free"
    assert slept == [7.0, 7.0]
    # the service's own rate limit answers 429 with Retry-After too. Its bucket refills on the service's clock, which
    # only the client's waits move: two calls at one instant meet the 429, and only a full Retry-After refills it
    autopilot = services.service("autopilot")
    now = [time.monotonic()]
    autopilot.clock = lambda: now[0]
    autopilot.rate_limit = 1.0
    slept.clear()

    def wait(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client.sleep = wait
    client.quota()  # the bucket's one token
    assert slept == []
    assert client.quota().subscription_tier == "free"
    assert slept == [1.0]  # it said Retry-After: 1, the client waited that long, and then the call went through


def test_5xx_and_dropped_create_make_no_duplicate(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    slept: List[float] = []
    client.sleep = slept.append
    key = client.upload(Path(moving_square(tmp_path / "p", n=3).replace("####", "1001")))
    payload = build_payload(key, ServiceChoice(roto=True), output_path="o", job_metadata={"case": "5xx"})
    services.faults.add("status", status=500, service="autopilot", method="POST", path="/api/jobs$")
    with pytest.raises(ServiceError) as info:
        client.create_job(payload)
    assert info.value.status == 500 and "the service failed (HTTP 500)" in str(info.value)
    assert client.list_jobs(metadata={"case": "5xx"}).items == []  # a 500 POST is not repeated
    services.faults.add("status", status=503, service="autopilot", method="GET", path="/api/jobs/", times=2)
    services.faults.add("drop", when="after", service="autopilot", method="POST", path="/api/jobs$")
    job = client.create_job(payload)  # the POST took effect, the reply was cut: found by its submission marker
    assert len(client.list_jobs(metadata={"case": "5xx"}).items) == 1
    assert client.get_job(job.id).id == job.id  # two 503s, then through
    assert len(slept) == 2


def test_upload_survives_a_dropped_put(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    slept: List[float] = []
    client.sleep = slept.append
    source = tmp_path / "clip.bin"
    source.write_bytes(bytes(range(256)) * 5000)  # > one chunk, so the retry must re-read the file
    services.faults.add("drop", when="before", service="autopilot", method="PUT")
    services.faults.add("status", status=503, service="autopilot", method="PUT")
    key = client.upload(source)
    stored = services.service("autopilot").store / key
    assert stored.read_bytes() == source.read_bytes() and len(slept) == 2
    assert services.requests.count(method="PUT", path=key) == 3


def test_partial_failure_is_reported(client: AutopilotClient, tmp_path: Path) -> None:
    good = inspect_clip(moving_square(tmp_path / "p", n=4))
    from tether.autopilot.clip import pack_sequence

    good_key = client.upload(pack_sequence(good, tmp_path / "good.zip"))
    junk = tmp_path / "junk.mov"
    junk.write_bytes(b"this is not a movie at all" * 10)
    junk_key = client.upload(junk)
    spec = [{"type": "roto", "output_path": "o"}, {"type": "depth_map", "output_path": "o"}]
    payload = JobCreate.model_validate({"assets": [{"source_path": good_key, "services": spec},
                                                   {"source_path": junk_key, "services": spec}]})
    created = client.create_job(payload)
    job = wait_finished(client, created.id)
    assert job.state is JobState.FAILED
    assert job.counts["partial"] == 1 and job.counts["completed"] == 2 and job.counts["failed"] == 2
    assert job.error is not None and job.error.startswith("2 of 4 inferences failed: ")
    assert "cannot decode" in job.error  # the junk clip's own reason, with or without PyAV installed
    result = client.fetch_results(created.id, tmp_path / "out")  # what completed still comes back
    assert len(result.mattes) == 2 and result.mattes[0].frames == [1, 2, 3, 4]


def test_cancel_and_already_gone(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    services.service("autopilot").pause()
    sub = submit_clip(client, moving_square(tmp_path / "p", n=3), ServiceChoice(roto=True, depth=True))
    assert client.get_job(sub.job.id).state is JobState.QUEUED
    assert client.cancel(sub.job.id) is True
    job = client.get_job(sub.job.id)
    assert job.state is JobState.CANCELLED and job.counts["cancelled"] == 2
    assert client.cancel("00000000-0000-0000-0000-000000000000") is False  # 404: already gone, not an error
    client.cancel_job("00000000-0000-0000-0000-000000000000")


def test_cli_cancel_updates_the_registry(client: AutopilotClient, services: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.registry import JobRegistry
    from tether_cli import main

    monkeypatch.setenv("TETHER_AUTOPILOT_URL", services.url("autopilot"))
    services.service("autopilot").pause()
    with JobRegistry() as registry:
        sub = submit_clip(client, moving_square(tmp_path / "p", n=3), ServiceChoice(roto=True), registry=registry)
        assert registry.get("autopilot", sub.job.id).state == "queued"
    assert main(["autopilot", "cancel", sub.job.id]) == 0
    with JobRegistry() as registry:
        assert registry.get("autopilot", sub.job.id).state == "cancelled"


def test_quota_exceeded_is_refused_before_upload(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    ap = services.service("autopilot")
    pattern = moving_square(tmp_path / "p", n=N)
    services.requests.clear()
    ap.frames_inferenced = 990
    with pytest.raises(InputError, match=r"needs 24 frames of quota .* has 10 left of 1000"):
        submit_clip(client, pattern, ServiceChoice(roto=True, depth=True))
    ap.frames_inferenced = 1000
    with pytest.raises(InputError, match="above its frame limit"):
        submit_clip(client, pattern, ServiceChoice(roto=True))
    assert services.requests.count(path="assets/upload") == 0 and services.requests.count(method="PUT") == 0
    assert services.requests.count(method="POST") == 0


def test_auth_errors_say_how_to_log_in(services: Any) -> None:
    url = services.url("autopilot")
    for key in (None, "wrong-key-123456"):
        with AutopilotClient(url, api_key=key, profile="studio") as c, pytest.raises(AuthError) as info:
            c.list_jobs()
        text = str(info.value)
        assert "tether login autopilot --profile studio" in text and info.value.status == 401
        assert "wrong-key-123456" not in text


# --- results ------------------------------------------------------------------------------------------------------
def _evil_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hard_mattes/00001.png", b"fine")
        z.writestr("../../escaped.txt", b"gotcha")
    return path


def test_zip_escape_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(TransferError, match="would write outside"):
        unpack_zip(_evil_zip(tmp_path / "evil.zip"), dest)
    assert not (tmp_path / "escaped.txt").exists() and not list(dest.rglob("*.png"))  # nothing written at all
    with zipfile.ZipFile(tmp_path / "abs.zip", "w") as z:
        z.writestr("/tmp/abs-escape.txt", b"x")
    with pytest.raises(TransferError, match="would write outside"):
        unpack_zip(tmp_path / "abs.zip", dest)


def test_result_zip_escaping_over_http_is_refused(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    sub = submit_clip(client, moving_square(tmp_path / "p", n=3), ServiceChoice(roto=True))
    assert wait_finished(client, sub.job.id).state is JobState.COMPLETED
    ap = services.service("autopilot")
    inf = ap.job(sub.job.id).inferences[0]
    _evil_zip(inf.outputs["hard_mattes"])  # the service now hands out a hostile archive
    out = tmp_path / "deep" / "out"
    with pytest.raises(TransferError, match="would write outside"):
        client.fetch_results(sub.job.id, out, export_types=["hard_mattes"])
    assert not list(tmp_path.rglob("escaped.txt"))


def test_classify_tolerates_other_forms(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "mattes").mkdir(parents=True)
    for f in range(1, 4):
        (root / "mattes" / f"alpha.{f:04d}.exr").write_bytes(b"x")
    (root / "cam.fbx").write_bytes(b"fbx")
    (root / "cam.nk").write_text("Camera3 {\n translate {0 0 0}\n}\n")
    (root / "notes.json").write_text('{"hello": 1}')
    (root / "depth.mov").write_bytes(b"m")
    (root / "thing.xyz").write_bytes(b"?")
    result = classify_folder(root)
    assert [s.hashes for s in result.mattes] == [str(root / "mattes" / "alpha.####.exr")]
    assert sorted(p.name for p in result.cameras) == ["cam.fbx", "cam.nk"]
    assert [Path(str(d)).name for d in result.depth] == ["depth.mov"]
    assert sorted(p.name for p, _ in result.unknown) == ["notes.json", "thing.xyz"]
    assert "thing.xyz (unrecognised file type '.xyz')" in result.summary()
    vectors = classify_folder(root / "mattes", export_type="exr")
    assert len(vectors.vectors) == 1 and not vectors.mattes


def test_lists_filters_and_pages(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    services.service("autopilot").pause()
    key = client.upload(Path(moving_square(tmp_path / "p", n=2).replace("####", "1001")))
    tag = tmp_path.name
    ids = []
    for n in range(22):
        choice = ServiceChoice(roto=True, tracking=n == 0)
        ids.append(client.create_job(build_payload(key, choice, output_path="o",
                                                   job_metadata={"batch": tag, "n": n})).id)
    page1 = client.list_jobs(metadata={"batch": tag})
    assert len(page1.items) == 20 and page1.has_more(20)
    page2 = client.list_jobs(metadata={"batch": tag}, page=2)
    assert len(page2.items) == 2 and not page2.has_more(2)
    assert {j.id for j in page1.items + page2.items} == set(ids)
    assert [j.id for j in client.list_jobs(metadata={"batch": tag}, service="tracking").items] == [ids[0]]
    assert client.list_jobs(metadata={"batch": tag}, status="completed").items == []
    infs = client.list_inferences(metadata={"batch": tag, "n": 0}, status="pending")
    assert sorted(i.type for i in infs.items) == ["roto", "tracking"]
    assert client.get_inference(infs.items[0].id).status == "pending"
    assert client.cancel_inference(infs.items[0].id) is True
    assert client.get_inference(infs.items[0].id).status == "cancelled"
    assert set(client.jobs_by_id([*ids[:3], "missing-id"])) == set(ids[:3])
    # every list shape the vendor's silence allows is walked to the end, each job once (the fixture puts it back)
    for form in ("paged", "drf", "bare", "whole"):
        services.service("autopilot").list_form = form
        walked = [j.id for j in client.iter_jobs(metadata={"batch": tag})]
        assert sorted(walked) == sorted(ids), form
    for job_id in ids:
        client.cancel(job_id)


# --- CLI ----------------------------------------------------------------------------------------------------------
def test_cli_submit_wait_out_quota_jobs(services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tether.registry import JobRegistry
    from tether_cli import main

    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TETHER_AUTOPILOT_URL", services.url("autopilot"))
    monkeypatch.setenv("TETHER_AUTOPILOT_API_KEY", LOCAL_API_KEY)
    pattern = moving_square(tmp_path / "plate", first=1001, n=6).replace("####", "%04d")
    # the dry run shows the body a send posts, metadata included, and sends nothing
    services.requests.clear()
    assert main(["--profile", "local", "autopilot", "submit", pattern, "--roto", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["upload"]["frames"] == 6 and dry["upload"]["first_frame"] == 1001
    assert dry["payload"]["metadata"]["first_frame"] == 1001
    assert [s["type"] for s in dry["payload"]["assets"][0]["services"]] == ["roto"]
    assert services.requests.count(method="POST") == 0 and services.requests.count(method="PUT") == 0
    out = tmp_path / "out"
    code = main(["--profile", "local", "autopilot", "submit", pattern, "--roto", "--tracking", "--depth",
                 "--wait", "--out", str(out), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["first_frame"] == 1001 and data["frames"] == 6
    assert len(data["results"]["mattes"]) == 2 and data["results"]["depth"] and data["results"]["cameras"]
    record = JobRegistry().get("autopilot", data["job_id"])
    assert record is not None and record.state is JobState.COMPLETED and record.fetched_at is not None
    assert main(["autopilot", "quota", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_inferenced"] == 18
    marker = record.extra["tether_submission"]
    assert main(["autopilot", "jobs", "--json", "--meta", f"tether_submission={marker}"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["id"] for j in listed] == [data["job_id"]] and listed[0]["state"] == "completed"
    # bad input is refused before anything is sent, with words that say what to change
    code = main(["autopilot", "submit", pattern, "--depth", "--lens", "35"])
    assert code == 1 and "without --tracking" in capsys.readouterr().err


def test_result_download_resumes_after_a_dropped_connection(client: AutopilotClient, services: Any,
                                                             tmp_path: Path) -> None:
    choice = ServiceChoice(tracking=True, tracking_metadata={"lens": 35.0, "sensor_width": 36.0,
                                                             "sensor_height": 27.0})
    sub = submit_clip(client, panning(tmp_path / "pan", 2, 1), choice)
    assert wait_finished(client, sub.job.id).state is JobState.COMPLETED
    whole = client.fetch_results(sub.job.id, tmp_path / "first", export_types=["tracking"])
    services.requests.clear()
    services.faults.add("drop", when="after", service="autopilot", method="GET", path=r"/_store/")
    again = client.fetch_results(sub.job.id, tmp_path / "again", export_types=["tracking"])
    first = {p.name: p.read_bytes() for p in whole.cameras}
    assert first and first == {p.name: p.read_bytes() for p in again.cameras}
    assert services.faults.list()[0].hits == 1  # the connection did drop mid-body, and the download recovered
    assert not list((tmp_path / "again").rglob("*.part"))


def test_refetch_swaps_the_result_folder_whole(client: AutopilotClient, services: Any, tmp_path: Path) -> None:
    sub = submit_clip(client, moving_square(tmp_path / "p", n=4), ServiceChoice(roto=True))
    assert wait_finished(client, sub.job.id).state is JobState.COMPLETED
    dest = tmp_path / "out"
    first = client.fetch_results(sub.job.id, dest, export_types=["hard_mattes"])
    frames = first.mattes[0].files
    assert len(frames) == 4
    before = {p: p.read_bytes() for p in frames}
    stale = dest / "hard_mattes" / "stale.txt"
    stale.write_text("from an earlier fetch")
    again = client.fetch_results(sub.job.id, dest, export_types=["hard_mattes"])
    assert {p: p.read_bytes() for p in again.mattes[0].files} == before
    assert not stale.exists()  # the folder is the new result, not a mix of old and new
    # a hostile archive on a later fetch leaves the earlier result whole, and no staging folder behind
    _evil_zip(services.service("autopilot").job(sub.job.id).inferences[0].outputs["hard_mattes"])
    with pytest.raises(TransferError, match="would write outside"):
        client.fetch_results(sub.job.id, dest, export_types=["hard_mattes"])
    assert {p: p.read_bytes() for p in frames} == before
    assert sorted(p.name for p in dest.iterdir()) == ["hard_mattes"]


def test_cancelled_result_download_resumes_on_the_next_fetch(client: AutopilotClient, services: Any,
                                                             tmp_path: Path) -> None:
    sub = submit_clip(client, moving_square(tmp_path / "p", n=6), ServiceChoice(roto=True))
    assert wait_finished(client, sub.job.id).state is JobState.COMPLETED
    dest = tmp_path / "out"

    def stop(done: int, total: int) -> bool:
        return False  # the artist cancels as the first bytes arrive

    with pytest.raises(CancelledByUser):
        client.fetch_results(sub.job.id, dest, export_types=["hard_mattes"], progress=stop)
    parts = list(dest.rglob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size > 1 and not (dest / "hard_mattes").exists()
    # the small zip came in one chunk: keep half of it, as a connection lost mid-body would have
    with open(parts[0], "r+b") as fh:
        fh.truncate(parts[0].stat().st_size // 2)
    services.requests.clear()
    result = client.fetch_results(sub.job.id, dest, export_types=["hard_mattes"])
    assert len(result.mattes[0].files) == 6
    assert services.requests.count(method="GET", path=r"/_store/", status=206) == 1  # resumed, not restarted
    assert sorted(p.name for p in dest.iterdir()) == ["hard_mattes"]
