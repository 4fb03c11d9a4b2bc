"""Bad input refused in words before anything is sent: output folders, damaged scene files, broken plate frames."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Tuple

import pytest
from tether.autopilot.clip import inspect_clip
from tether.blend import scene_facts, trace_usages
from tether.errors import InputError
from tether.fileio import check_output_dir, output_dir_problem
from tether_cli import main
from tether_services.server import LocalServices
from waiting import eventually


def test_a_usable_output_folder_passes_and_nothing_is_made(tmp_path: Path) -> None:
    assert output_dir_problem(tmp_path / "new" / "deeper") is None
    assert output_dir_problem(tmp_path) is None
    assert sorted(tmp_path.iterdir()) == []  # neither the folder nor the probe is left


@pytest.mark.parametrize("case, words", [
    ("under-a-file", "is a file, not a folder"),
    ("long-name", "bytes long; this file system takes 255 at most"),
    ("read-only", "is not writable"),
    ("no-space", "free some space"),
])
def test_output_folder_problems_are_named(tmp_path: Path, case: str, words: str) -> None:
    needed = None
    if case == "under-a-file":
        (tmp_path / "shot.exr").write_bytes(b"x")
        folder = tmp_path / "shot.exr" / "renders"
    elif case == "long-name":
        folder = tmp_path / ("r" * 270)
    elif case == "read-only":
        folder = Path("/proc/tether-renders")  # a read-only file system: refused even to root
    else:
        folder, needed = tmp_path / "renders", 1 << 60
    with pytest.raises(InputError, match=words):
        check_output_dir(folder, needed=needed)


def test_farm_dry_run_refuses_an_output_folder_under_a_file(tiny_blend: Path, local_services: LocalServices,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    blocker = tiny_blend.parent / "notes.txt"
    blocker.write_text("a file")
    local_services.requests.clear()
    assert main(["farm", "submit", str(tiny_blend), "--frames", "1", "--out", str(blocker / "frames"),
                 "--dry-run", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert any("notes.txt is a file, not a folder" in e for e in doc["errors"])
    assert local_services.requests.count(path=r"/api/uploads|/api/jobs$") == 0


def _damaged(folder: Path, good: bytes) -> dict:
    import zstandard

    plain = zstandard.ZstdDecompressor().decompressobj().decompress(good) if good[:4] == b"\x28\xb5\x2f\xfd" else good
    return {
        "truncated": plain[: len(plain) // 2],
        "garbled": plain[:12] + os.urandom(4000),
        "zstd": good[:4] + os.urandom(3000),
        "zstd-truncated": zstandard.ZstdCompressor().compress(plain)[:3000],
        "gzip": b"\x1f\x8b" + os.urandom(3000),
        "gzip-truncated": gzip.compress(plain)[:4000],
    }


def test_damaged_blend_files_are_refused_in_words(tiny_blend: Path) -> None:
    for kind, data in _damaged(tiny_blend.parent, tiny_blend.read_bytes()).items():
        broken = tiny_blend.with_name(f"{kind}.blend")
        broken.write_bytes(data)
        for read in (scene_facts, lambda path: list(trace_usages(path))):
            with pytest.raises(InputError, match=f"{kind}.blend is damaged or incomplete"):
                read(broken)


def test_empty_and_unreadable_plate_frames_are_refused(tmp_path: Path) -> None:
    for frame in range(1001, 1011):
        (tmp_path / f"plate.{frame}.png").write_bytes(b"\x89PNG frame")
    assert inspect_clip(str(tmp_path / "plate.####.png")).frame_count == 10
    (tmp_path / "plate.1004.png").write_bytes(b"")
    (tmp_path / "plate.1005.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"frames 1004-1005 are empty \(0 bytes\)"):
        inspect_clip(str(tmp_path / "plate.####.png"))
    (tmp_path / "plate.1004.png").write_bytes(b"\x89PNG frame")
    (tmp_path / "plate.1005.png").unlink()
    # a frame that fails to read with an I/O error, as on a failing disk or share (a permission test would not
    # hold as root): this process's memory file, whose first page is never mapped
    (tmp_path / "plate.1005.png").symlink_to("/proc/self/mem")
    with pytest.raises(InputError, match=r"frame 1005 cannot be read \(plate.1005.png: Input/output error\)"):
        inspect_clip(str(tmp_path / "plate.####.png"))


def test_the_data_folder_and_its_databases_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.registry import JobRegistry
    from tether.settings import data_dir
    from tether.transfer import HashCache

    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    os.umask(0o022)  # the usual one: files 0644 and folders 0755 unless Tether says otherwise
    folder = data_dir()
    registry = JobRegistry(folder / "jobs.sqlite")
    registry.record(service="farm", job_id="j1", profile="local", title="shot", source="/shots/a.blend")
    with HashCache(folder / "hash-cache.sqlite") as cache:
        cache.md5(folder / "jobs.sqlite")
    registry.close()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir()}
    assert modes and set(modes.values()) == {"0o600"}, modes


def test_the_local_farm_clears_uploads_a_killed_server_left(tmp_path: Path) -> None:
    from tether_services.farm.store import BlobStore

    store = BlobStore(tmp_path / "store")
    (store.tmp / "upload-abc").write_bytes(b"x" * 1000)  # a half-received upload
    assert list(BlobStore(tmp_path / "store").tmp.iterdir()) == []


def _submit_in_flight(tmp_path: Path, local_services: LocalServices, faults: Any) -> Tuple[Any, Path]:
    """`tether autopilot submit` in a child process, held by a slow upload once its staging copy is made."""
    import subprocess
    import sys

    from test_autopilot_client import moving_square

    plate = moving_square(tmp_path / "plate", n=3)
    temp = tmp_path / "tmp"
    temp.mkdir()
    faults.add("slow", delay=1.0, service="autopilot", method="PUT", times=0)
    env = {**os.environ, "TMPDIR": str(temp), "TETHER_LOCAL_PORT": str(local_services.port)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("tether")), "autopilot", "submit", plate, "--roto"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def in_flight() -> bool:
        assert proc.poll() is None, proc.communicate()  # it must still be uploading, not ended
        return bool(faults.list()[0].hits and list(temp.glob("tether-autopilot-*")))

    eventually(in_flight, timeout=30, message="the submit's upload in flight with its staging copy made")
    return proc, temp


def test_a_stopped_submit_leaves_no_copies(tmp_path: Path, local_services: LocalServices, faults: Any) -> None:
    import signal

    proc, temp = _submit_in_flight(tmp_path, local_services, faults)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err
    assert list(temp.iterdir()) == []


def test_ctrl_c_ends_a_farm_upload_the_server_holds(tiny_blend: Path, tmp_path: Path, local_services: LocalServices,
                                                    faults: Any, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while the farm holds an upload (its workers wait for the reply) ends the submit at once, in words,
    with no staging copy or partial file left; before, it waited for the reply, up to the 600 s read timeout."""
    import signal
    import tempfile
    import threading

    from waiting import PATIENCE

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    fresh = tmp_path / "cache.bin"  # new to the farm's store, so it is uploaded (the scene may be there already)
    fresh.write_bytes(os.urandom(4096))
    held = faults.add("slow", delay=PATIENCE, service="farm", method="POST", path=r"/api/uploads/file$", times=0)
    returned = threading.Event()
    in_time: list = []

    def ctrl_c() -> None:
        eventually(lambda: held.hits or returned.is_set(), message="an upload held by the farm")
        if not returned.is_set():
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            in_time.append(returned.wait(10.0))  # the deadline: the farm holds the upload for a minute

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a test runner may have it ignored
    helper = threading.Thread(target=ctrl_c, daemon=True)
    helper.start()
    try:
        code = main(["farm", "submit", str(tiny_blend), "--frames", "1", "--extra", str(fresh),
                     "--out", str(tmp_path / "frames")])
    finally:
        returned.set()
        signal.signal(signal.SIGINT, before)
    helper.join(PATIENCE)
    err = capsys.readouterr().err
    assert held.hits and in_time == [True], err
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert list(temp.iterdir()) == [] and not list(tmp_path.rglob("*.part"))


def test_copies_a_killed_submit_left_are_removed_by_the_next(tmp_path: Path, local_services: LocalServices,
                                                             faults: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import tempfile

    from tether.fileio import staging

    proc, temp = _submit_in_flight(tmp_path, local_services, faults)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [left] = list(temp.glob("tether-autopilot-*"))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with staging("tether-autopilot-") as mine:
        assert not left.exists() and mine.exists()
    assert list(temp.iterdir()) == []


def test_a_long_list_is_summarised_and_written_in_full(tmp_path: Path) -> None:
    from tether.fileio import summarise

    names = [f"textures/t{n:05d}.png" for n in range(10_000)]
    listing = tmp_path / "renders.shot.missing-files.txt"
    text = summarise(names, "missing file(s)", listing)
    assert text == ("10000 missing file(s): textures/t00000.png, textures/t00001.png, textures/t00002.png, "
                    f"textures/t00003.png, textures/t00004.png and 9995 more (all 10000 listed in {listing})")
    assert listing.read_text().splitlines() == names
    assert summarise(names[:2], "missing file(s)", tmp_path / "unused.txt") == (
        "2 missing file(s): textures/t00000.png, textures/t00001.png")
    assert not (tmp_path / "unused.txt").exists()
