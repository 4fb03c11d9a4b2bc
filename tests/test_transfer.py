"""tether.transfer against a real HTTP server on 127.0.0.1: hash cache, dedupe uploads, cancel, resumable downloads.

The blob server below is this module's own small FastAPI app (md5 check, streamed raw PUT that verifies the md5,
and a file route served by starlette's FileResponse, which honours Range), run by uvicorn in a thread. It records
every request and can fail an upload, hold uploads until several overlap or until released, drop a download after
N bytes once, or ignore Range. One test also runs the uploads against the local farm itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Set, Tuple

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from tether import transfer
from tether.errors import CancelledByUser, InputError, ServiceError, TransferError
from tether.http import BaseClient, RetryPolicy
from tether.transfer import (
    HashCache,
    TransferProgress,
    UploadItem,
    default_cache_path,
    download,
    upload_files,
)
from waiting import PATIENCE, eventually


# --- the blob server ---------------------------------------------------------------------------------------------
class _Dropped(Exception):
    """Raised after a response started so uvicorn closes the socket mid-body."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _Dropped)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class _DropAfter(Response):
    """Announces the whole length, sends ``n`` bytes, then breaks the connection."""

    def __init__(self, data: bytes, n: int) -> None:
        super().__init__()
        self.data = data
        self.n = n

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(self.data)).encode()),
                                (b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": self.data[: self.n], "more_body": True})
        raise _Dropped()


class BlobServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.files = root / "files"
        self.tmp = root / "tmp"
        for d in (self.blobs, self.files, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.url = ""
        self.reset()

    def reset(self) -> None:
        self.log: List[Tuple[str, str, Optional[str]]] = []  # (method, path, Range header)
        self.puts = 0
        self.active = 0
        self.max_active = 0
        self.overlap = 0  # hold each upload until this many run at once
        self.held = 0  # uploads received whole and not answered: held while ``release`` is not set
        self.release = threading.Event()
        self.release.set()
        self.fail: Dict[str, int] = {}  # md5 -> status to answer
        self.drop_after: Dict[str, int] = {}  # file name -> bytes to send before dropping, once
        self.short_drop: Set[str] = set()  # announce a 64-byte body and drop before it, once (a cut reply)
        self.ignore_range: Set[str] = set()
        self.chunked: Set[str] = set()  # sent without Content-Length
        self.limited: Dict[str, int] = {}  # file name -> how many GETs to refuse with 429 first
        for blob in self.blobs.iterdir():
            blob.unlink()

    def stored(self) -> Set[str]:
        return {p.name for p in self.blobs.iterdir()}

    def gets(self, name: str) -> List[Optional[str]]:
        return [rng for method, path, rng in self.log if method == "GET" and path == name]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/check")
        async def check(request: Request) -> Dict[str, Any]:
            body = await request.json()
            self.log.append(("POST", "/check", None))
            return {"exists": (self.blobs / body["md5"]).exists()}

        @app.put("/blobs/{md5}")
        async def put(md5: str, request: Request) -> Response:
            self.log.append(("PUT", md5, None))
            self.puts += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            tmp = self.tmp / f"{md5}.{self.puts}"
            try:
                digest = hashlib.md5()
                with open(tmp, "wb") as fh:
                    async for chunk in request.stream():
                        digest.update(chunk)
                        fh.write(chunk)
                if md5 in self.fail:
                    return JSONResponse({"message": "the blob store is full"}, status_code=self.fail[md5])
                deadline = time.monotonic() + PATIENCE
                while self.overlap and self.max_active < self.overlap and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                if not self.release.is_set():
                    self.held += 1
                    while not self.release.is_set() and time.monotonic() < deadline:
                        await asyncio.sleep(0.01)
                if digest.hexdigest() != md5:
                    return JSONResponse({"message": f"md5 mismatch: got {digest.hexdigest()}"}, status_code=400)
                os.replace(tmp, self.blobs / md5)
                return JSONResponse({"md5": md5}, status_code=201)
            finally:
                self.active -= 1
                if tmp.exists():
                    tmp.unlink()

        @app.get("/files/{name:path}")
        async def get_file(name: str, request: Request) -> Response:
            self.log.append(("GET", name, request.headers.get("range")))
            path = self.files / name
            if self.limited.get(name):
                self.limited[name] -= 1
                return JSONResponse({"message": "slow down"}, status_code=429)
            if name in self.drop_after:
                return _DropAfter(path.read_bytes(), self.drop_after.pop(name))
            if name in self.short_drop:
                self.short_drop.discard(name)
                return _DropAfter(b"x" * 64, 0)
            if name in self.chunked:
                body = path.read_bytes()
                return StreamingResponse(iter([body[i:i + 65536] for i in range(0, len(body), 65536)]))
            if name in self.ignore_range:
                return Response(path.read_bytes(), media_type="application/octet-stream")
            return FileResponse(path)

        return app


@pytest.fixture(scope="module")
def blob_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlobServer]:
    server = BlobServer(tmp_path_factory.mktemp("blob-server"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(server.app(), log_level="warning", lifespan="off", access_log=False)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    eventually(lambda: uv.started or not thread.is_alive(), message="the test blob server to start")
    assert uv.started, "the test blob server did not start"
    server.url = f"http://127.0.0.1:{port}"
    yield server
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def server(blob_server: BlobServer) -> Iterator[BlobServer]:
    blob_server.reset()
    yield blob_server
    blob_server.release.set()


class BlobTarget(BaseClient):
    """The smallest real UploadTarget: ask by md5, PUT the raw bytes."""

    def __init__(self, base_url: str) -> None:
        super().__init__(service="blobs", base_url=base_url, retry=RetryPolicy(attempts=1))

    def exists(self, item: UploadItem) -> bool:
        return bool(self.json("POST", "/check", idempotent=True, json={"md5": item.md5})["exists"])

    def send(self, item: UploadItem, reader: BinaryIO) -> None:
        self.request("PUT", f"/blobs/{item.md5}", content=reader)


@pytest.fixture
def target(server: BlobServer) -> Iterator[BlobTarget]:
    client = BlobTarget(server.url)
    yield client
    client.close()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[HashCache]:
    with HashCache(tmp_path / "cache" / "hashes.sqlite") as c:
        yield c


def _write(path: Path, size: int, seed: int) -> Path:
    """``size`` bytes, different for every seed (so no two test files dedupe into one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha512(seed.to_bytes(8, "little")).digest() * 16  # 1 KiB
    body = (block * (size // len(block) + 1))[:size]
    path.write_bytes(body)
    past = time.time_ns() - 3600 * 10**9 + seed * 1000 + 123  # an hour old, not a whole second
    os.utime(path, ns=(past, past))
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- hash cache --------------------------------------------------------------------------------------------------
@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Every real hashing of a file, by path."""
    calls: List[str] = []
    real = transfer.md5_file

    def counting(path: Any, **kwargs: Any) -> Tuple[str, int]:
        calls.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(transfer, "md5_file", counting)
    return calls


def test_hash_cache_hit_miss_touch_change_replace(tmp_path: Path, cache: HashCache, counted: List[str]) -> None:
    f = _write(tmp_path / "a.bin", 3 * transfer.BLOCK + 17, seed=1)  # several blocks and a ragged end
    first = cache.md5(f)
    assert first == _md5(f) and len(counted) == 1
    assert cache.md5(f) == first and len(counted) == 1  # unchanged: from the cache
    assert cache.lookup(f) == first

    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000))  # touched: same bytes, hashed again
    assert cache.md5(f) == first and len(counted) == 2
    assert cache.md5(f) == first and len(counted) == 2

    _write(f, f.stat().st_size, seed=2)  # same size, new content
    changed = cache.md5(f)
    assert changed == _md5(f) != first and len(counted) == 3

    # replaced by a rename (new inode) with the same size and mtime: still noticed
    st = f.stat()
    other = _write(tmp_path / "b.tmp", st.st_size, seed=3)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)
    assert cache.md5(f) == _md5(f) != changed and len(counted) == 4

    # persisted: a new cache on the same database reads nothing
    assert cache.path is not None
    with HashCache(cache.path) as again:
        assert again.md5(f) == _md5(f) and len(counted) == 4
        assert again.hits == 1 and again.misses == 0


def test_hash_cache_recent_whole_second_mtime_not_trusted(tmp_path: Path, cache: HashCache,
                                                          counted: List[str]) -> None:
    f = _write(tmp_path / "coarse.bin", 1000, seed=4)
    now = (time.time_ns() // 10**9) * 10**9  # what a FAT or SMB share reports for a file written just now
    os.utime(f, ns=(now, now))
    cache.md5(f)
    cache.md5(f)
    assert len(counted) == 2
    old = now - 3600 * 10**9
    os.utime(f, ns=(old, old))
    cache.md5(f)
    cache.md5(f)
    assert len(counted) == 3


def test_hash_cache_rehashes_a_file_written_while_read(tmp_path: Path, cache: HashCache) -> None:
    f = _write(tmp_path / "growing.bin", 2 * transfer.BLOCK, seed=6)
    writes = [0]

    def append_once(_n: int) -> None:
        if not writes[0]:
            writes[0] += 1
            with open(f, "ab") as fh:
                fh.write(b"more")

    got = cache.hash(f, progress=append_once)
    assert got.md5 == _md5(f) and got.size == 2 * transfer.BLOCK + 4
    assert cache.misses == 2

    def append_always(_n: int) -> None:
        with open(f, "ab") as fh:
            fh.write(b"x")

    cache.forget(f)
    with pytest.raises(TransferError, match="kept changing"):
        cache.hash(f, progress=append_always)


def test_hash_cache_threads_hash_each_file_once(tmp_path: Path, cache: HashCache, counted: List[str]) -> None:
    files = [_write(tmp_path / f"f{i}.bin", 200_000 + i, seed=10 + i) for i in range(12)]
    expected = {str(f): _md5(f) for f in files}
    results: List[Tuple[str, str]] = []
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            for f in files:
                results.append((str(f), cache.md5(f)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 72 and all(expected[p] == md5 for p, md5 in results)
    assert sorted(counted) == sorted(expected)  # each file read exactly once
    assert cache.misses == 12 and cache.hits == 60


def test_default_cache_lives_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    assert default_cache_path().parent == tmp_path / "data"
    with HashCache() as c:
        f = _write(tmp_path / "x.bin", 10, seed=5)
        assert c.md5(f) == _md5(f)
    assert (tmp_path / "data" / "hash-cache.sqlite").is_file()


# --- uploads -----------------------------------------------------------------------------------------------------
def _files(root: Path, sizes: List[int], seed: int) -> List[Tuple[Path, str]]:
    return [(_write(root / f"f{i}.bin", size, seed + i), f"scene/f{i}.bin") for i, size in enumerate(sizes)]


def test_upload_then_dedupe_sends_nothing(tmp_path: Path, server: BlobServer, target: BlobTarget,
                                          cache: HashCache) -> None:
    sizes = [3 * transfer.BLOCK + 5, 700_000, 65_536, 1, 0]
    files = _files(tmp_path, sizes, seed=100)
    events: List[TransferProgress] = []
    report = upload_files(files, target, cache=cache, workers=3, progress=events.append)
    total = sum(sizes)
    assert (report.files, report.files_sent, report.files_skipped) == (5, 5, 0)
    assert report.bytes_total == report.bytes_sent == total
    assert server.stored() == {_md5(p) for p, _ in files}
    for p, _ in files:
        assert (server.blobs / _md5(p)).read_bytes() == p.read_bytes()
    assert {i.remote_path: i.md5 for i in report.items} == {r: _md5(p) for p, r in files}
    for phase in ("hash", "upload"):
        mine = [e for e in events if e.phase == phase]
        assert [e.bytes_done for e in mine] == sorted(e.bytes_done for e in mine)  # never goes backwards
        assert mine[-1].bytes_done == mine[-1].bytes_total == total
        assert mine[-1].files_done == mine[-1].files_total == 5

    puts = server.puts
    again = upload_files(files, target, cache=cache, workers=3)
    assert again.bytes_sent == 0 and again.files_sent == 0
    assert again.files_skipped == 5 and again.bytes_skipped == total
    assert again.cache_hits == 5  # nothing re-read
    assert server.puts == puts


def test_upload_runs_files_in_parallel(tmp_path: Path, server: BlobServer, target: BlobTarget,
                                       cache: HashCache) -> None:
    server.overlap = 3  # each upload waits until three are in flight at once
    files = _files(tmp_path, [300_000] * 4, seed=200)
    report = upload_files(files, target, cache=cache, workers=4)
    assert server.max_active >= 3
    assert report.files_sent == 4 and server.stored() == {_md5(p) for p, _ in files}


def test_upload_cancel_from_progress_stops_sending(tmp_path: Path, server: BlobServer, target: BlobTarget,
                                                   cache: HashCache) -> None:
    files = _files(tmp_path, [2 * transfer.BLOCK] * 6, seed=300)
    calls_after_cancel: List[TransferProgress] = []
    cancelled = threading.Event()

    def progress(event: TransferProgress) -> Optional[bool]:
        if cancelled.is_set():
            calls_after_cancel.append(event)
        if event.phase == "upload":
            cancelled.set()
            return False
        return None

    with pytest.raises(CancelledByUser):
        upload_files(files, target, cache=cache, workers=2, progress=progress)
    assert cancelled.is_set() and not calls_after_cancel
    assert server.puts <= 2  # only what was in flight when the callback said stop
    assert len(server.stored()) < 6
    # the aborted uploads did not leave anything half-stored, and a later run sends the rest
    report = upload_files(files, target, cache=cache, workers=2)
    assert report.files_sent + report.files_skipped == 6 and report.files_sent >= 4
    assert server.stored() == {_md5(p) for p, _ in files}


def test_upload_cancel_ends_a_request_the_server_holds(tmp_path: Path, server: BlobServer, target: BlobTarget,
                                                      cache: HashCache) -> None:
    """The body is sent and the server has not answered: no byte moves, yet the cancel is seen and the request
    ended (before, it waited for the reply, up to the 600 s read timeout)."""
    files = _files(tmp_path, [200_000, 100_000], seed=370)
    server.release.clear()
    stop = threading.Event()
    outcome: List[BaseException] = []

    def run() -> None:
        try:
            upload_files(files, target, cache=cache, workers=2, progress=lambda event: not stop.is_set())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    eventually(lambda: server.held == 2, message="both uploads held by the server")
    stop.set()
    worker.join(timeout=10.0)  # the deadline: the server holds them for a minute
    assert not worker.is_alive(), "the upload did not end on cancel while the server held it"
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledByUser)
    server.release.set()
    # the client is usable again: the same files go now
    report = upload_files(files, target, cache=cache, workers=2)
    assert report.files_sent + report.files_skipped == 2 and server.stored() == {_md5(p) for p, _ in files}


def test_abort_ends_a_download_in_flight_and_keeps_the_part(tmp_path: Path, server: BlobServer,
                                                           client: BaseClient) -> None:
    data, md5 = _serve(server, "held.bin", 3_000_000, seed=380)
    got: List[int] = []
    outcome: List[BaseException] = []

    def progress(done: int, total: int) -> None:
        got.append(done)
        if len(got) == 1:
            client.abort()  # as another thread would: the next read fails on the shut socket

    def run() -> None:
        try:
            download(client, "/files/held.bin", tmp_path / "out", "held.bin", size=len(data), md5=md5,
                     progress=progress)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=PATIENCE)
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledByUser), outcome
    kept = (tmp_path / "out" / ".held.bin.part").stat().st_size
    assert 0 < kept < len(data)
    out = download(client, "/files/held.bin", tmp_path / "out", "held.bin", size=len(data), md5=md5)
    assert out.read_bytes() == data and server.gets("held.bin") == [None, f"bytes={kept}-"]


class ChunkedTarget(BlobTarget):
    """Streams the body as ``ProgressReader.iter_chunks`` (1 MiB blocks) with an explicit Content-Length."""

    def send(self, item: UploadItem, reader: BinaryIO) -> None:
        chunks = reader.iter_chunks()  # type: ignore[attr-defined]
        self.request("PUT", f"/blobs/{item.md5}", content=chunks, headers={"Content-Length": str(item.size)})


def test_upload_in_big_chunks_counts_once_and_cancels(tmp_path: Path, server: BlobServer, cache: HashCache) -> None:
    chunked = ChunkedTarget(server.url)
    try:
        sizes = [3 * transfer.BLOCK + 5, 70_000, 1, 0]
        files = _files(tmp_path / "a", sizes, seed=350)
        events: List[TransferProgress] = []
        report = upload_files(files, chunked, cache=cache, workers=2, progress=events.append)
        assert report.bytes_sent == sum(sizes) and server.stored() == {_md5(p) for p, _ in files}
        ups = [e.bytes_done for e in events if e.phase == "upload"]
        assert ups == sorted(ups) and ups[-1] == sum(sizes)
        for p, _ in files:
            assert (server.blobs / _md5(p)).read_bytes() == p.read_bytes()

        # a cancel during the body stops the request at the next block; nothing of that file is stored
        big = _files(tmp_path / "b", [4 * transfer.BLOCK], seed=360)

        def stop_midway(event: TransferProgress) -> Optional[bool]:
            return not (event.phase == "upload" and event.bytes_done >= transfer.BLOCK)

        with pytest.raises(CancelledByUser):
            upload_files(big, chunked, cache=cache, workers=1, progress=stop_midway)
        assert _md5(big[0][0]) not in server.stored()
    finally:
        chunked.close()


def test_upload_target_error_propagates_and_stops_the_rest(tmp_path: Path, server: BlobServer,
                                                           target: BlobTarget, cache: HashCache) -> None:
    files = _files(tmp_path, [900_000, 10_000, 20_000, 30_000], seed=400)
    server.fail[_md5(files[0][0])] = 507  # the biggest goes first
    with pytest.raises(ServiceError) as info:
        upload_files(files, target, cache=cache, workers=1, small_workers=0)  # one at a time
    assert info.value.status == 507 and "blob store is full" in str(info.value)
    assert server.puts == 1 and not server.stored()


def test_upload_refuses_missing_files_before_sending(tmp_path: Path, server: BlobServer, target: BlobTarget,
                                                     cache: HashCache) -> None:
    files = [*_files(tmp_path, [100], seed=500), (tmp_path / "nope.png", "tex/nope.png")]
    with pytest.raises(InputError, match=r"nope\.png"):
        upload_files(files, target, cache=cache)
    assert server.log == []


def test_before_send_overlaps_hashing_and_a_refusal_sends_nothing(tmp_path: Path, server: BlobServer,
                                                                   target: BlobTarget, cache: HashCache) -> None:
    files = _files(tmp_path, [200_000, 10_000, 20_000], seed=600)
    calls: List[int] = []

    big = [path for path, _ in files if path.stat().st_size == 200_000]

    def refuse() -> None:
        calls.append(1)
        # the proof runs while the files are hashed: the hash arrives though the proof has not ended yet
        eventually(lambda: all(cache.lookup(path) for path in big), message="the files hashed during the proof")
        raise InputError("the proof failed")

    with pytest.raises(InputError, match="the proof failed"):
        upload_files(files, target, cache=cache, workers=3, before_send=refuse)
    assert server.log == [] and calls  # the server was asked nothing
    report = upload_files(files, target, cache=cache, before_send=lambda: calls.append(2))
    assert calls.count(2) == 1 and report.files_sent == 3


def test_upload_to_the_local_farm(tmp_path: Path, farm_url: str, cache: HashCache) -> None:
    from tether.farm.client import FarmClient
    from tether_services.farm.engine import EMAIL, PASSWORD

    salt = int.from_bytes(os.urandom(4), "little")  # the session's farm store outlives this test
    files = _files(tmp_path, [2 * transfer.BLOCK + 3, 4096, 10], seed=salt)
    farm = FarmClient(farm_url, email=EMAIL, password=PASSWORD)
    try:
        first = upload_files(files, farm, cache=cache)
        assert first.files_sent == 3 and first.bytes_sent == first.bytes_total
        for path, remote in files:
            assert farm.check_md5(_md5(path), path.stat().st_size, remote).exists
        again = upload_files(files, farm, cache=cache)
    finally:
        farm.close()
    assert again.files_skipped == 3 and again.bytes_sent == 0


# --- downloads ---------------------------------------------------------------------------------------------------
@pytest.fixture
def client(server: BlobServer) -> Iterator[BaseClient]:
    with BaseClient(service="blobs", base_url=server.url, sleep=lambda s: None) as c:
        yield c


def _serve(server: BlobServer, name: str, size: int, seed: int) -> Tuple[bytes, str]:
    data = _write(server.files / name, size, seed).read_bytes()
    return data, hashlib.md5(data).hexdigest()


def test_download_nested_name_verifies_and_renames(tmp_path: Path, server: BlobServer, client: BaseClient) -> None:
    data, md5 = _serve(server, "render/frame_0001.png", 1_500_000, seed=600)
    seen: List[Tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))

    out = download(client, "/files/render/frame_0001.png", tmp_path / "out", "render/frame_0001.png",
                   size=len(data), md5=md5, progress=progress)
    assert out == tmp_path / "out" / "render" / "frame_0001.png"
    assert out.read_bytes() == data
    assert not list(out.parent.glob(".*.part"))
    assert seen[-1] == (len(data), len(data))
    # already there and matching: no second request
    assert download(client, "/files/render/frame_0001.png", tmp_path / "out", "render/frame_0001.png",
                    size=len(data), md5=md5) == out
    assert len(server.gets("render/frame_0001.png")) == 1


def test_download_resumes_a_partial_file_with_range(tmp_path: Path, server: BlobServer, client: BaseClient) -> None:
    data, md5 = _serve(server, "big.exr", 2_000_000, seed=700)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / ".big.exr.part").write_bytes(data[:700_000])
    out = download(client, "/files/big.exr", dest, "big.exr", size=len(data), md5=md5)
    assert out.read_bytes() == data
    assert server.gets("big.exr") == ["bytes=700000-"]
    assert not (dest / ".big.exr.part").exists()


def test_download_restarts_when_the_server_ignores_range(tmp_path: Path, server: BlobServer,
                                                         client: BaseClient) -> None:
    data, md5 = _serve(server, "norange.bin", 500_000, seed=800)
    server.ignore_range.add("norange.bin")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / ".norange.bin.part").write_bytes(b"x" * 100_000)  # wrong bytes: appending would corrupt the file
    out = download(client, "/files/norange.bin", dest, "norange.bin", md5=md5)
    assert out.read_bytes() == data
    assert server.gets("norange.bin") == ["bytes=100000-"]


def test_download_recovers_from_a_dropped_connection(tmp_path: Path, server: BlobServer, client: BaseClient) -> None:
    data, md5 = _serve(server, "drop.mov", 1_000_000, seed=900)
    server.drop_after["drop.mov"] = 300_000
    out = download(client, "/files/drop.mov", tmp_path / "out", "drop.mov", size=len(data), md5=md5)
    assert out.read_bytes() == data
    assert server.gets("drop.mov") == [None, "bytes=300000-"]


def test_download_without_size_or_md5_still_resumes_after_a_drop(tmp_path: Path, server: BlobServer,
                                                                  client: BaseClient) -> None:
    data, _ = _serve(server, "plain.bin", 400_000, seed=950)
    server.drop_after["plain.bin"] = 123_456
    out = download(client, "/files/plain.bin", tmp_path / "out", "plain.bin")
    assert out.read_bytes() == data
    assert server.gets("plain.bin") == [None, "bytes=123456-"]


@pytest.mark.parametrize("wrong", ["size", "size-unannounced", "md5"])
def test_download_mismatch_leaves_no_file(tmp_path: Path, server: BlobServer, client: BaseClient,
                                          wrong: str) -> None:
    data, _ = _serve(server, "m.bin", 300_000, seed=1000)
    if wrong == "size-unannounced":  # no Content-Length: caught after the body, not before
        server.chunked.add("m.bin")
    kwargs: Dict[str, Any] = {"md5": "0" * 32, "size": len(data)} if wrong == "md5" else {"size": len(data) + 1}
    dest = tmp_path / "out"
    with pytest.raises(TransferError, match="md5" if wrong == "md5" else "300001"):
        download(client, "/files/m.bin", dest, "m.bin", **kwargs)
    assert list(dest.iterdir()) == []
    assert len(server.gets("m.bin")) == 1


def test_download_cancel_keeps_the_part_for_a_resume(tmp_path: Path, server: BlobServer, client: BaseClient) -> None:
    data, md5 = _serve(server, "c.bin", 3 * transfer.BLOCK, seed=1100)
    dest = tmp_path / "out"
    with pytest.raises(CancelledByUser):
        download(client, "/files/c.bin", dest, "c.bin", size=len(data), md5=md5,
                 progress=lambda done, total: done < transfer.BLOCK)
    assert not (dest / "c.bin").exists()
    kept = (dest / ".c.bin.part").stat().st_size
    assert 0 < kept < len(data)
    out = download(client, "/files/c.bin", dest, "c.bin", size=len(data), md5=md5)
    assert out.read_bytes() == data
    assert server.gets("c.bin") == [None, f"bytes={kept}-"]


def test_download_waits_out_429s_within_the_rate_budget(tmp_path: Path, server: BlobServer,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A download's 429s take the rate path every request takes: more of them than the policy's attempts are
    waited out (each at least half its step: a limited client never hammers) while the budget lasts."""
    data, md5 = _serve(server, "r.bin", 1000, seed=1150)
    server.limited["r.bin"] = 4
    slept: List[float] = []
    policy = RetryPolicy(attempts=2, rate_budget=50.0, rate_wait=8.0)
    with BaseClient(service="blobs", base_url=server.url, retry=policy, sleep=slept.append) as client, \
            caplog.at_level(logging.WARNING, logger="tether.http"):
        out = download(client, "/files/r.bin", tmp_path / "out", "r.bin", size=len(data), md5=md5)
    assert out.read_bytes() == data and len(server.gets("r.bin")) == 5
    steps = [min(policy.rate_wait, policy.backoff * 2 ** i) for i in range(4)]
    assert len(slept) == 4 and all(step / 2 <= wait <= step for wait, step in zip(slept, steps))
    assert caplog.text.count("rate limited by blobs, waiting") == 4


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "C:\\x", "..\\x", "C:x", "", "a/..",
                                  "sub\\..\\..\\x", "ok/\x00x"])
def test_download_refuses_names_that_escape(tmp_path: Path, server: BlobServer, client: BaseClient,
                                            name: str) -> None:
    dest = tmp_path / "inside" / "out"
    dest.mkdir(parents=True)
    _serve(server, "evil.bin", 10, seed=1200)
    with pytest.raises(TransferError, match="refusing"):
        download(client, "/files/evil.bin", dest, name)
    assert server.log == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [Path("inside"), Path("inside/out")]


def test_download_refuses_a_symlinked_parent(tmp_path: Path, server: BlobServer, client: BaseClient) -> None:
    dest = tmp_path / "out"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "render").symlink_to(outside, target_is_directory=True)
    _serve(server, "s.bin", 10, seed=1300)
    with pytest.raises(TransferError, match="symbolic link"):
        download(client, "/files/s.bin", dest, "render/s.bin")
    assert list(outside.iterdir()) == [] and server.log == []


@pytest.mark.parametrize("name", [".bashrc", ".git/hooks/post-checkout", "render/.hidden/frame_0001.png"])
def test_download_refuses_hidden_names(tmp_path: Path, server: BlobServer, client: BaseClient, name: str) -> None:
    _serve(server, "h.bin", 10, seed=1400)
    with pytest.raises(TransferError, match="hidden"):
        download(client, "/files/h.bin", tmp_path / "out", name)
    assert server.log == [] and not list((tmp_path / "out").rglob("*"))


def test_download_retries_a_reply_cut_short_before_its_body(tmp_path: Path, server: BlobServer,
                                                           client: BaseClient) -> None:
    data, md5 = _serve(server, "cut.bin", 1062, seed=1500)
    server.short_drop.add("cut.bin")
    out = download(client, "/files/cut.bin", tmp_path / "out", "cut.bin", size=len(data), md5=md5)
    assert out.read_bytes() == data and len(server.gets("cut.bin")) == 2


def test_download_refuses_before_fetching_what_the_disk_cannot_hold(tmp_path: Path, server: BlobServer,
                                                                    client: BaseClient) -> None:
    _serve(server, "huge.bin", 10, seed=1600)
    with pytest.raises(TransferError, match="free some space"):
        download(client, "/files/huge.bin", tmp_path / "out", "huge.bin", size=1 << 60)
    assert server.log == [] and not list((tmp_path / "out").iterdir())


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from tether.errors import TransferError
from tether.http import BaseClient
from tether.transfer import download

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as a full disk fails them
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
with BaseClient(service="blobs", base_url=sys.argv[1], sleep=lambda s: None) as client:
    try:
        download(client, "/files/full.bin", Path(sys.argv[2]), "full.bin", size=int(sys.argv[4]))
    except TransferError as exc:
        print(exc)
        sys.exit(3)
"""


@pytest.mark.parametrize("limit", [0, 700_000])
def test_a_full_disk_stops_a_download_in_words_and_it_resumes(tmp_path: Path, server: BlobServer,
                                                              client: BaseClient, limit: int) -> None:
    """The disk fills up mid-download (a file size limit makes writes fail like ENOSPC, in a child process): a clear
    error, no empty .part left, and the next fetch resumes from what was written."""
    import subprocess
    import sys

    data, md5 = _serve(server, "full.bin", 2_000_000, seed=1700)
    dest = tmp_path / "out"
    dest.mkdir()
    run = subprocess.run([sys.executable, "-c", _FULL_DISK, server.url, str(dest), str(limit), str(len(data))],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    assert "full.bin: the disk holding" in run.stdout and "is full" in run.stdout and "free some space" in run.stdout
    part = dest / ".full.bin.part"
    if limit:
        assert part.stat().st_size == limit and "resumes from there" in run.stdout
    else:
        assert not part.exists() and "nothing of it was kept" in run.stdout
    out = download(client, "/files/full.bin", dest, "full.bin", size=len(data), md5=md5)
    assert out.read_bytes() == data and list(dest.iterdir()) == [out]
    assert server.gets("full.bin")[-1] == (f"bytes={limit}-" if limit else None)
