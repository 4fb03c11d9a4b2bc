"""The farm client, the shared HTTP layer and the headless submitter, over real HTTP against the local farm."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import List

import pytest
from tether.errors import AuthError, BadRequest, Conflict, InputError, ProtocolError, ServiceError, ServiceUnavailable
from tether.farm.client import FarmClient, to_job
from tether.farm.models import JobCreate
from tether.farm.submit import FarmOptions, FarmSubmitter
from tether.http import RetryPolicy
from tether.jobs import JobState
from tether.registry import JobRegistry
from tether_cli import main
from tether_services.faults import Faults
from tether_services.server import LocalServices

PASSWORD = "tether-local"
EMAIL = "artist@tether.local"


class Sleeps:
    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def client(farm_url: str) -> FarmClient:
    c = FarmClient(farm_url, email=EMAIL, password=PASSWORD, retry=RetryPolicy(attempts=4, backoff=0.01))
    c.sleep = Sleeps()
    yield c
    c.close()


def _payload(**extra: object) -> JobCreate:
    base = dict(job_title="client test", project="default", instance_type="cpu-standard-8", frame_range="1-4",
                blender_version="blender-5-0", output_path="renders/client-test", upload_paths=["/x/scene.blend"])
    base.update(extra)
    return JobCreate.model_validate(base)


def test_retry_after_is_honoured_for_get(client: FarmClient, faults: Faults, local_services: LocalServices) -> None:
    faults.add("status", status=429, retry_after=3, service="farm", path="/api/packages$", times=2)
    packages = client.packages()
    assert any(p.id.startswith("blender-") for p in packages)
    assert client.sleep.calls[:2] == [3.0, 3.0]  # type: ignore[attr-defined]


def test_5xx_get_retried_then_typed_error_with_request_id(client: FarmClient, faults: Faults) -> None:
    faults.add("status", status=503, service="farm", path="/api/projects$", times=0, message="maintenance")
    with pytest.raises(ServiceError) as err:
        client.projects()
    assert err.value.status == 503 and err.value.request_id and "maintenance" in str(err.value)
    assert len(client.sleep.calls) == 3  # type: ignore[attr-defined]  # 4 attempts


def test_post_is_not_repeated_on_5xx(client: FarmClient, faults: Faults, local_services: LocalServices) -> None:
    faults.add("status", status=503, service="farm", method="POST", path="/api/projects$", times=1)
    local_services.requests.clear()
    with pytest.raises(ServiceError):
        client.create_project("never-twice")
    assert local_services.requests.count("POST", r"/farm/api/projects$") == 1


def test_post_429_is_retried_because_the_server_refused_it(client: FarmClient, faults: Faults) -> None:
    faults.add("status", status=429, retry_after=1, service="farm", method="POST", path="/api/projects$", times=1)
    project = client.create_project("after-429")
    assert project.name == "after-429" and client.sleep.calls == [1.0]  # type: ignore[attr-defined]


def test_dropped_create_finds_the_job_instead_of_duplicating(
    client: FarmClient, faults: Faults, local_services: LocalServices, tiny_blend: Path
) -> None:
    # the upload path must exist on the farm: upload the scene first through the real client path
    from tether.transfer import upload_files

    upload_files([(tiny_blend, tiny_blend.as_posix())], client)
    payload = _payload(job_title="dropped-create", upload_paths=[tiny_blend.as_posix()])
    client.hold  # noqa: B018  (the client exists before the fault)
    faults.add("drop", service="farm", method="POST", path="/api/jobs$", when="after", times=1)
    before = [j.id for j in client.iter_jobs() if j.job_title == "dropped-create"]
    job = client.create_job(payload)
    after = [j for j in client.iter_jobs() if j.job_title == "dropped-create"]
    assert before == [] and [j.id for j in after] == [job.id]
    client.cancel_job(job.id)


@pytest.mark.parametrize("fault", [{"kind": "drop", "when": "before"}, {"kind": "status", "status": 503},
                                   {"kind": "status", "status": 502}])
def test_a_create_the_farm_did_not_make_is_sent_again_once(client: FarmClient, faults: Faults, tiny_blend: Path,
                                                           fault: dict) -> None:
    """No reply, or a gateway's 5xx: the job list shows no such job, so the create is sent again; one job results."""
    from tether.transfer import upload_files

    upload_files([(tiny_blend, tiny_blend.as_posix())], client)
    title = f"not-made-{fault['kind']}-{fault.get('status', '')}"
    faults.add(**fault, service="farm", method="POST", path="/api/jobs$", times=1)
    job = client.create_job(_payload(job_title=title, upload_paths=[tiny_blend.as_posix()]))
    assert [j.id for j in client.iter_jobs() if j.job_title == title] == [job.id]
    client.cancel_job(job.id)


def test_expired_token_is_renewed_once(client: FarmClient, local_services: LocalServices) -> None:
    client.projects()
    local_services.farm.expire_tokens()
    local_services.requests.clear()
    client.projects()
    assert local_services.requests.count("POST", r"/farm/api/auth/login$") == 1
    assert local_services.requests.count("GET", r"/farm/api/projects$") == 2  # the 401, then the repeat


def test_wrong_credentials_name_the_profile_and_hide_the_password(farm_url: str) -> None:
    secret = "hunter2-not-the-password"
    bad = FarmClient(farm_url, email=EMAIL, password=secret, profile="studio")
    with pytest.raises(AuthError) as err:
        bad.projects()
    assert err.value.status == 401 and secret not in str(err.value)
    token_only = FarmClient(farm_url, token="stale-token-value-123", profile="studio")
    with pytest.raises(AuthError, match=r"tether login farm --profile studio"):
        token_only.projects()
    assert "stale-token-value-123" not in str(err.value)
    no_email = FarmClient(farm_url, password=secret, profile="studio")
    with pytest.raises(AuthError, match=r"a password is set but no e-mail: set TETHER_FARM_EMAIL") as err:
        no_email.projects()
    assert secret not in str(err.value)


def test_server_down_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = FarmClient(f"http://127.0.0.1:{port}/farm", token="t" * 20, retry=RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(ServiceUnavailable, match=rf"cannot reach http://127.0.0.1:{port}/farm"):
        down.packages()


def test_malformed_reply_is_a_protocol_error(client: FarmClient, faults: Faults) -> None:
    faults.add("malformed", service="farm", path="/api/enterprise/instances$")
    with pytest.raises(ProtocolError, match="not JSON"):
        client.instances()


def _held_jobs(client: FarmClient, tiny_blend: Path, title: str, count: int) -> List[str]:
    """``count`` jobs of the tiny scene, held so none of them renders while a test reads the list."""
    from tether.transfer import upload_files

    upload_files([(tiny_blend, tiny_blend.as_posix())], client)
    ids = []
    for i in range(count):
        job = client.create_job(_payload(job_title=f"{title} {i}", scout_frames="1",
                                         upload_paths=[tiny_blend.as_posix()]))
        client.hold(job.id)
        ids.append(job.id)
    return ids


def test_pages_not_jobs_when_watching(client: FarmClient, local_services: LocalServices, tiny_blend: Path) -> None:
    ids = _held_jobs(client, tiny_blend, "paged", 5)
    local_services.requests.clear()
    page = client.list_jobs(per_page=2)
    assert len(page.items) == 2 and page.has_more
    found = client.jobs_by_id(ids)
    assert set(found) == set(ids)
    assert local_services.requests.count("GET", r"/farm/api/jobs/[^/]+$") == 0  # no GET per job
    for job_id in ids:
        client.cancel_job(job_id)
        client.delete_job(job_id)


def test_a_farm_that_ignores_paging_is_read_once(client: FarmClient, local_services: LocalServices,
                                                tiny_blend: Path) -> None:
    """The seed documents no paging: a farm may send its whole job list for every page asked. Walking it ends when a
    page brings nothing new, and a job deleted on the farm costs one direct GET, not an endless walk."""
    ids = _held_jobs(client, tiny_blend, "whole list", 3)
    client.cancel_job(ids[0])
    client.delete_job(ids[0])
    local_services.farm.list_form = "whole"
    try:
        local_services.requests.clear()
        found = client.jobs_by_id(ids)
        assert set(found) == set(ids[1:])
        assert local_services.requests.count("GET", r"/farm/api/jobs$") <= 2
        assert local_services.requests.count("GET", rf"/farm/api/jobs/{ids[0]}$") == 1
        listed = [job.id for job in client.iter_jobs(per_page=1)]
        assert len(listed) == len(set(listed)) and set(ids[1:]) <= set(listed)
    finally:
        local_services.farm.list_form = "paged"
        for job_id in ids[1:]:
            client.cancel_job(job_id)
            client.delete_job(job_id)


# --- the headless submitter -------------------------------------------------------------------------------------
@pytest.fixture
def submitter(client: FarmClient) -> FarmSubmitter:
    return FarmSubmitter(client, registry=JobRegistry())


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"frames": "10-1x0"}, "10-1x0"),
        ({"frames": "abc"}, "abc"),
        ({"chunk_size": 0}, "chunk"),
        ({"instance_type": "quantum-9000"}, "unknown instance type 'quantum-9000'"),
        ({"blender_version": "blender-2-79"}, "unknown Blender version 'blender-2-79'"),
        ({"environment": {"1BAD": "x"}}, "1BAD"),
    ],
)
def test_bad_input_is_refused_before_anything_is_uploaded(
    submitter: FarmSubmitter, tiny_blend: Path, local_services: LocalServices, options: dict, needle: str
) -> None:
    local_services.requests.clear()
    with pytest.raises(InputError) as err:
        submitter.submit(FarmOptions(scene=tiny_blend, **options))  # type: ignore[arg-type]
    assert needle in str(err.value)
    assert local_services.requests.count(path=r"/api/uploads|/api/jobs$") == 0


def test_missing_file_and_output_inside_uploads(submitter: FarmSubmitter, tiny_blend: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="scene file not found"):
        submitter.preflight(FarmOptions(scene=tmp_path / "nope.blend"))
    not_blend = tmp_path / "notes.blend"
    not_blend.write_text("hello")
    with pytest.raises(InputError, match="not a Blender file"):
        submitter.preflight(FarmOptions(scene=not_blend))
    check = submitter.preflight(FarmOptions(scene=tiny_blend, out_dir=tiny_blend.parent / "textures"))
    assert any("would be uploaded" in e and "checker.png" in e for e in check.errors)
    (tiny_blend.parent / "textures" / "checker.png").unlink()
    check = submitter.preflight(FarmOptions(scene=tiny_blend))
    assert any("missing file(s)" in e and "checker.png" in e for e in check.errors)
    assert submitter.preflight(FarmOptions(scene=tiny_blend, allow_missing=True)).ok


def test_cli_submit_renders_with_step_and_fetches(
    tiny_blend: Path, tmp_path: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], faults: Faults,
) -> None:
    """The whole path a TD uses: settings (local profile on this port) -> submit -> render -> watch -> fetch; the
    fetch meets a connection dropped before the reply (it announces 64 bytes: a broken reply, not a changed file),
    a 503 and a 429, and retries each through the client's policy."""
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    frame = r"/api/jobs/[^/]+/outputs/frame_000{}\.png$"
    faults.add("drop", when="before", service="farm", method="GET", path=frame.format(1))
    faults.add("status", status=503, service="farm", method="GET", path=frame.format(3))
    faults.add("status", status=429, retry_after=0, service="farm", method="GET", path=frame.format(5))
    out = tmp_path / "frames"
    code = main(["farm", "submit", str(tiny_blend), "--frames", "1-7x2", "--chunk-size", "2", "--out", str(out),
                 "--json"])
    assert code == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame_0001.png", "frame_0003.png", "frame_0005.png", "frame_0007.png"]
    assert all((out / n).read_bytes()[:4] == b"\x89PNG" for n in names)
    assert not list(out.glob(".*.part"))
    assert [f.hits for f in faults.list()] == [1, 1, 1]
    with JobRegistry() as registry:
        [record] = registry.list(service="farm")
    assert record.state == JobState.COMPLETED.value and record.fetched_at is not None
    assert main(["jobs", "--json"]) == 0
    assert record.job_id in capsys.readouterr().out


def test_dry_run_sends_nothing(tiny_blend: Path, local_services: LocalServices, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    local_services.requests.clear()
    assert main(["farm", "submit", str(tiny_blend), "--frames", "1-8x2", "--chunk-size", "3", "--scout", "fml:2",
                 "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ready"] is True and doc["errors"] == []
    assert doc["payload"]["frame_range"] == "1-7x2" and doc["payload"]["scout_frames"] == "fml:2"
    sizes = {u["remote"]: u["size"] for u in doc["uploads"]}
    assert sizes[tiny_blend.resolve().as_posix()] == tiny_blend.stat().st_size  # the scene and its texture
    assert len(sizes) == 2 and all(Path(r).stat().st_size == n for r, n in sizes.items())
    assert local_services.requests.count(path=r"/api/uploads|/api/jobs$") == 0
    assert main(["farm", "submit", str(tiny_blend), "--frames", "10-1x0", "--dry-run"]) == 1


def test_bad_request_from_the_farm_is_typed(client: FarmClient) -> None:
    with pytest.raises(BadRequest) as err:
        client.create_job(_payload(upload_paths=["/never/uploaded.blend"]))
    assert "never/uploaded.blend" in str(err.value)


def test_resubmit_asks_nothing_and_recovers_when_the_farm_lost_files(
    submitter: FarmSubmitter, tiny_blend: Path, local_services: LocalServices
) -> None:
    from tether.transfer import HashCache

    submitter.hash_cache = HashCache()
    opts = FarmOptions(scene=tiny_blend, frames="1", title="resubmit")
    first = submitter.submit(opts)
    assert first.upload.files_sent + first.upload.files_skipped == 2  # the scene and its texture
    local_services.requests.clear()
    second = submitter.submit(opts)
    assert second.upload.files_skipped == 2 and second.upload.bytes_sent == 0
    assert local_services.requests.count(path=r"/api/uploads/") == 0  # confirmed earlier: nothing asked
    with local_services.farm.lock:  # the farm forgets every upload (a wiped store)
        local_services.farm._bindings.clear()
    third = submitter.submit(opts)
    assert third.upload.files_sent + third.upload.files_skipped == 2
    assert local_services.requests.count("POST", r"/api/uploads/md5$") == 2  # asked again after the 400
    for result in (first, second, third):
        job = submitter.client.get_farm_job(result.job.id)
        assert job.status != "failed", job.error
        if not JobState(to_job(job).state).finished:
            with contextlib.suppress(Conflict):  # clean-up only: it may have finished since
                submitter.client.cancel_job(result.job.id)


def test_streamed_multipart_upload(client: FarmClient, tmp_path: Path) -> None:
    import hashlib
    import os

    from tether.errors import TransferError

    data = os.urandom(2 * 1024 * 1024 + 12345)  # more than one 1 MiB chunk, not a multiple of it
    md5 = hashlib.md5(data).hexdigest()
    odd = tmp_path / 'plate "v2" déjà\\vu.exr'  # a quote, a backslash and non-ASCII in the part's filename
    odd.write_bytes(data)
    remote = "/shots/sh 010/" + odd.name
    assert not client.check_md5(md5, len(data), remote).exists
    with open(odd, "rb") as fh:
        reply = client.upload_file(fh, md5=md5, path=remote, size=len(data))
    assert reply.md5 == md5  # the farm hashed exactly these bytes
    assert client.check_md5(md5, len(data), remote).exists
    # a file that shrank after it was hashed is refused here, with words, and nothing is stored
    short = tmp_path / "short.bin"
    short.write_bytes(data[:1000])
    with open(short, "rb") as fh, pytest.raises(TransferError, match="changed while it was being sent"):
        client.upload_file(fh, md5=hashlib.md5(data[:5000]).hexdigest(), path="/shots/short.bin", size=5000)
    assert not client.check_md5(hashlib.md5(data[:5000]).hexdigest(), 5000, "/shots/short.bin").exists
    assert not client.check_md5(hashlib.md5(data[:1000]).hexdigest(), 1000, "/shots/short.bin").exists


@pytest.mark.parametrize("fault", ["expired", "429", "503", "drop-before", "drop-after"])
def test_upload_is_sent_whole_again_after_any_retry(client: FarmClient, faults: Faults, local_services: LocalServices,
                                                    tmp_path: Path, fault: str) -> None:
    """A file upload is keyed by md5, so every retry path (a new login after a 401, 429, 5xx, a dropped connection)
    sends the whole file again; the first try must not have used up the streamed body."""
    import hashlib
    import os

    data = os.urandom(1024 * 1024 + 4321)
    md5 = hashlib.md5(data).hexdigest()
    path = tmp_path / "plate.exr"
    path.write_bytes(data)
    remote = f"/shots/{fault}/plate.exr"
    client.projects()  # logged in
    if fault == "expired":
        local_services.farm.expire_tokens()
    elif fault in ("429", "503"):
        faults.add("status", status=int(fault), service="farm", method="POST", path="/api/uploads/file$")
    else:
        faults.add("drop", when=fault.split("-")[1], service="farm", method="POST", path="/api/uploads/file$")
    local_services.requests.clear()
    with open(path, "rb") as fh:
        reply = client.upload_file(fh, md5=md5, path=remote, size=len(data))
    assert reply.md5 == md5
    assert local_services.requests.count("POST", r"/farm/api/uploads/file$") == 2
    assert client.check_md5(md5, len(data), remote).exists


def test_the_local_password_is_never_offered_to_a_farm_elsewhere(monkeypatch: pytest.MonkeyPatch,
                                                                  farm_url: str) -> None:
    from tether.errors import ConfigError

    monkeypatch.setenv("TETHER_FARM_URL", "https://farm.studio.example")
    with pytest.raises(ConfigError, match="not this machine"):
        FarmClient.from_profile("local")
    monkeypatch.setenv("TETHER_FARM_PASSWORD", "their-own")
    assert FarmClient.from_profile("local")._password == "their-own"
    monkeypatch.delenv("TETHER_FARM_PASSWORD")
    monkeypatch.setenv("TETHER_FARM_URL", farm_url)  # 127.0.0.1: the built-in account of the local farm
    with FarmClient.from_profile("local") as local:
        assert local.projects() is not None
