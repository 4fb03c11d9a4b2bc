"""Uploads and downloads: hashing with a persistent cache, server-side dedupe, parallel streaming, resume.

Uploads (:func:`upload_files`) run one small pipeline per file on a pool of threads, biggest files first:
hash (through :class:`HashCache`) -> ask the target whether it already holds that md5 -> stream the file through a
:class:`ProgressReader`. Hashing one file overlaps with sending another, so the wall time is close to the slower of
the two rather than their sum. Memory stays flat: files are read in fixed blocks, never whole.

Downloads (:func:`download`) write ``.<name>.part`` next to the final file, resume it with ``Range``, verify size and
md5 when known, and only then rename it into place, so a final name never holds a partial file. The name comes from
the server and is checked so it can never write outside the destination folder.

Service clients implement :class:`UploadTarget` (``exists`` / ``send`` / ``abort``); progress callbacks may return
``False`` to cancel, which raises :class:`~tether.errors.CancelledByUser`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import os
import re
import shutil
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Tuple, Union, cast

import httpx

from .errors import CancelledByUser, InputError, ServiceError, TransferError
from .fileio import DISK_FULL, human_bytes, private_file
from .http import RETRY_STATUSES, BaseClient
from .progress import Progress

BLOCK = 1 << 20  # 1 MiB: big enough that per-call overhead vanishes, small enough to keep memory flat
HEARTBEAT = 0.2  # seconds between asks of an upload's progress callback while no bytes move
# Files up to SMALL_FILE are "small": at a cloud round trip (~50 ms) and ~20 MB/s, their bytes cost less than the two
# requests' latency, so they go SMALL_WORKERS at a time. The farm's seed (004) has one md5 per POST /api/uploads/md5
# and one file per POST /api/uploads/file, and no batch route; its own add-on's API is undocumented (SERVICES.md):
# so what can be grouped is the waiting (concurrency over kept-alive connections; httpx keeps 20 per client, which
# SMALL_WORKERS plus the big files' workers stay within), plus the md5s a store already confirmed, not asked again.
SMALL_FILE = 1 << 20
SMALL_WORKERS = 16

PathLike = Union[str, "os.PathLike[str]"]


# --- hashing -------------------------------------------------------------------------------------------------------
def md5_file(
    path: PathLike,
    *,
    progress: Optional[Callable[[int], None]] = None,
    cancel: Optional[threading.Event] = None,
    block_size: int = BLOCK,
    limit: Optional[int] = None,
) -> Tuple[str, int]:
    """The md5 (hex) and byte count of ``path``, read in ``block_size`` blocks into one reused buffer.

    One loop for every Python (``hashlib.file_digest`` is 3.11+ and has no progress or cancel hook). hashlib
    releases the GIL for large updates, so several threads hash in parallel. ``progress`` gets each block's size.
    ``limit`` stops after that many bytes, so a file that keeps growing cannot keep the loop going forever.
    """
    digest = hashlib.md5(usedforsecurity=False)
    buf = bytearray(block_size)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while True:
            if cancel is not None and cancel.is_set():
                raise CancelledByUser(f"hashing {os.fspath(path)} was cancelled")
            n = fh.readinto(buf if limit is None else view[: min(block_size, limit - total)])
            if not n:
                break
            digest.update(view[:n])
            total += n
            if progress is not None:
                progress(n)
    return digest.hexdigest(), total


@dataclass(frozen=True)
class FileHash:
    md5: str
    size: int
    mtime_ns: int
    inode: int
    cached: bool  # True when it came from the cache without reading the file


def _key(path: PathLike) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def default_cache_path() -> Path:
    """``<user data dir>/hash-cache.sqlite`` (``TETHER_DATA_DIR`` overrides the folder)."""
    try:
        from .settings import data_dir

        folder = data_dir()
    except ImportError:  # pragma: no cover - settings is part of the package; kept for partial installs
        from platformdirs import user_data_dir

        folder = Path(user_data_dir("tether", appauthor=False))
        folder.mkdir(parents=True, exist_ok=True)
    return folder / "hash-cache.sqlite"


# What a store (a farm account) confirmed it holds, by remote name and md5: a re-submit of unchanged files then
# asks nothing (AWS Deadline Cloud keeps a similar record). A store that lost files is caught at job creation.
_REMOTE_TABLE = (
    "CREATE TABLE IF NOT EXISTS remote (store TEXT NOT NULL, remote_path TEXT NOT NULL, md5 TEXT NOT NULL, "
    "confirmed_at REAL NOT NULL, PRIMARY KEY (store, remote_path))"
)
CONFIRMED_FOR = 24 * 3600.0


class HashCache:
    """md5 of files, remembered in sqlite by (absolute path, size, mtime_ns, inode); thread-safe.

    A file whose size, mtime or inode changed (edited, touched, replaced by a rename) is hashed again. A file with a
    whole-second mtime from the last two seconds is hashed but not remembered: on file systems with coarse
    timestamps it could still change within the same second without its mtime moving.
    """

    def __init__(self, path: Optional[PathLike] = None, *, block_size: int = BLOCK) -> None:
        self.block_size = block_size
        self.path: Optional[Path] = Path(path) if path is not None else None
        self.hits = 0  # answered from the cache
        self.misses = 0  # files actually read and hashed
        self._lock = threading.Lock()
        self._inflight: Dict[str, threading.Lock] = {}
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        target = self.path if self.path is not None else default_cache_path()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            private_file(target)
            db = sqlite3.connect(str(target), timeout=30, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")  # the CLI and a DCC may share the cache at once
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, md5 TEXT NOT NULL, hashed_at REAL NOT NULL)"
            )
            db.execute(_REMOTE_TABLE)
            self.path = target
            return db
        except (sqlite3.Error, OSError):
            # A cache we cannot write (read-only home, locked file) must not stop an upload: hash every time.
            self.path = None
            db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            db.execute(
                "CREATE TABLE hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
                "inode INTEGER NOT NULL, md5 TEXT NOT NULL, hashed_at REAL NOT NULL)"
            )
            db.execute(_REMOTE_TABLE)
            return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, path: PathLike) -> Optional[str]:
        """The cached md5 if the file is unchanged since it was hashed, else None (never reads the file)."""
        st = os.stat(path)
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, inode, md5 FROM hashes WHERE path = ?",
                                   (_key(path),)).fetchone()
        if row and (row[0], row[1], row[2]) == (st.st_size, st.st_mtime_ns, st.st_ino):
            return str(row[3])
        return None

    def confirmed(self, store: str, remote_path: str, md5: str, max_age: float = CONFIRMED_FOR) -> bool:
        """True if ``store`` said it held ``md5`` as ``remote_path`` less than ``max_age`` seconds ago."""
        with self._lock:
            row = self._db.execute("SELECT md5, confirmed_at FROM remote WHERE store = ? AND remote_path = ?",
                                   (store, remote_path)).fetchone()
        return bool(row) and row[0] == md5 and time.time() - float(row[1]) < max_age

    def confirm(self, store: str, remote_path: str, md5: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO remote (store, remote_path, md5, confirmed_at) VALUES (?,?,?,?)",
                             (store, remote_path, md5, time.time()))

    def forget_store(self, store: str) -> None:
        """The store lost what it had (a job creation named files it never got): ask it again next time."""
        with self._lock:
            self._db.execute("DELETE FROM remote WHERE store = ?", (store,))

    def hash(
        self,
        path: PathLike,
        *,
        progress: Optional[Callable[[int], None]] = None,
        cancel: Optional[threading.Event] = None,
    ) -> FileHash:
        """md5 of ``path`` from the cache when unchanged, else read it (``progress`` gets each block's size)."""
        key = _key(path)
        with self._lock:
            key_lock = self._inflight.setdefault(key, threading.Lock())
        with key_lock:  # two threads asking for the same file: one reads it, the other gets the cached answer
            return self._hash(path, key, progress, cancel)

    def _hash(
        self,
        path: PathLike,
        key: str,
        progress: Optional[Callable[[int], None]],
        cancel: Optional[threading.Event],
    ) -> FileHash:
        for _ in range(3):
            before = os.stat(path)
            with self._lock:
                row = self._db.execute("SELECT size, mtime_ns, inode, md5 FROM hashes WHERE path = ?",
                                       (key,)).fetchone()
            if row and (row[0], row[1], row[2]) == (before.st_size, before.st_mtime_ns, before.st_ino):
                with self._lock:
                    self.hits += 1
                return FileHash(str(row[3]), before.st_size, before.st_mtime_ns, before.st_ino, cached=True)
            md5, size = md5_file(path, progress=progress, cancel=cancel, block_size=self.block_size,
                                 limit=before.st_size)
            after = os.stat(path)
            with self._lock:
                self.misses += 1
            stamp = (after.st_size, after.st_mtime_ns, after.st_ino)
            if stamp != (before.st_size, before.st_mtime_ns, before.st_ino) or size != after.st_size:
                continue  # written to while we read it: that hash describes no version of the file
            if not (after.st_mtime_ns % 1_000_000_000 == 0 and time.time() - after.st_mtime_ns / 1e9 < 2.0):
                with self._lock:
                    self._db.execute(
                        "INSERT OR REPLACE INTO hashes (path, size, mtime_ns, inode, md5, hashed_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (key, *stamp, md5, time.time()))
            return FileHash(md5, size, after.st_mtime_ns, after.st_ino, cached=False)
        raise TransferError(f"{os.fspath(path)} kept changing while it was read; wait until whatever is writing it "
                            "has finished, then submit again")

    def md5(self, path: PathLike, **kwargs: Any) -> str:
        return self.hash(path, **kwargs).md5

    def forget(self, path: PathLike) -> None:
        with self._lock:
            self._db.execute("DELETE FROM hashes WHERE path = ?", (_key(path),))

    def prune(self, older_than_days: float = 90.0) -> int:
        """Drop entries hashed longer ago than ``older_than_days``; returns how many went."""
        cutoff = time.time() - older_than_days * 86400
        with self._lock:
            return self._db.execute("DELETE FROM hashes WHERE hashed_at < ?", (cutoff,)).rowcount


# --- uploads -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadItem:
    path: Path
    remote_path: str
    size: int
    md5: str


@dataclass(frozen=True)
class TransferProgress:
    """One progress event. ``bytes_done``/``bytes_total`` are over all files of the phase; skipped (deduplicated)
    files count as done in the ``upload`` phase so its bar reaches the end."""

    phase: str  # "hash" | "upload"
    file: str
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int


ProgressCallback = Callable[[TransferProgress], Optional[bool]]


@dataclass
class UploadReport:
    files: int
    bytes_total: int
    bytes_sent: int
    files_sent: int
    files_skipped: int  # the target already had them (dedupe)
    bytes_skipped: int
    cache_hits: int  # files whose md5 came from the hash cache
    seconds: float
    items: List[UploadItem] = field(default_factory=list)


class UploadTarget(Protocol):
    """What a service client implements to receive files. ``send`` must read ``reader`` to the end (or until it
    raises) and may ``seek(0)`` to send again; a failure should raise a :class:`~tether.errors.ServiceError`.
    ``reader`` is a :class:`ProgressReader`: a raw body streams cheaper as ``reader.iter_chunks()``."""

    def exists(self, item: UploadItem) -> bool: ...
    # Optional: ``store_key`` (str) names the store; files it confirmed are then not asked about again for a day.

    def send(self, item: UploadItem, reader: BinaryIO) -> None: ...

    def abort(self) -> None:
        """End the requests in flight now (a cancel, a failed file): :meth:`tether.http.BaseClient.abort`."""
        ...


class ProgressReader(io.RawIOBase):
    """A read-only file wrapper that reports bytes read and raises :class:`CancelledByUser` when told to stop.

    ``on_bytes(n)`` gets the bytes read beyond the furthest point reached so far (a re-read after ``seek(0)`` for a
    retry is not counted twice); when it returns False the read raises, which aborts the request in flight.
    No ``fileno()``: every byte must pass through ``read`` to be counted.
    """

    def __init__(self, raw: BinaryIO, on_bytes: Optional[Callable[[int], Optional[bool]]] = None,
                 name: str = "") -> None:
        super().__init__()
        self._raw = raw
        self._on_bytes = on_bytes
        self._pos = raw.tell()
        self._high = self._pos
        self._name = name or str(getattr(raw, "name", ""))

    @property
    def name(self) -> str:
        return self._name

    @property
    def bytes_read(self) -> int:
        """The furthest byte reached."""
        return self._high

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _advance(self, n: int) -> None:
        self._pos += n
        if self._pos > self._high:
            delta = self._pos - self._high
            self._high = self._pos
            if self._on_bytes is not None and self._on_bytes(delta) is False:
                raise CancelledByUser(f"the upload of {self._name} was cancelled")

    def read(self, size: Optional[int] = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        self._advance(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._advance(n or 0)
        return n or 0

    def iter_chunks(self, size: int = BLOCK) -> Iterator[bytes]:
        """The rest of the file in ``size`` blocks, counted and cancellable like ``read``: a request body for targets
        that stream an iterable (pass the length as Content-Length). httpx reads a file-like body 64 KiB at a time,
        and its per-chunk work then costs the client ~0.3 s of CPU per GB, about as much as the copy itself."""
        while True:
            data = self.read(size)
            if not data:
                return
            yield data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._raw.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()



def counted(fh: BinaryIO, path: Path, progress: Optional[Progress]) -> BinaryIO:
    """``fh`` reporting ``progress(done, size of path)`` as it is read, for a client's ``files=`` upload; returning
    False stops it (:class:`CancelledByUser`). ``fh`` itself when nobody listens."""
    if progress is None:
        return fh
    size = path.stat().st_size
    done = 0

    def on_bytes(n: int) -> Optional[bool]:
        nonlocal done
        done += n
        return progress(done, size)

    return cast(BinaryIO, ProgressReader(fh, on_bytes, name=path.name))


def _form_quote(text: str) -> str:
    # RFC 7578 / the HTML form encoding browsers use: UTF-8, with the three characters a header cannot hold escaped
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartFile:
    """A ``multipart/form-data`` body of some text fields and one file part, streamed from ``reader`` in 1 MiB
    chunks with a known length. httpx's own multipart reads the file 64 KiB at a time (see
    :meth:`ProgressReader.iter_chunks` for what that costs); this is the same body, built once per send.

    ``headers`` carries the Content-Type (with the boundary) and Content-Length; iterate for the body. Each
    iteration starts the file part again from where the reader stood when the body was made, so a re-send (a 401 and
    a new login, a 429, a 5xx, a dropped connection) sends the whole file, not what the first try left unread.
    """

    def __init__(self, fields: Dict[str, str], file_field: str, filename: str, reader: BinaryIO, size: int,
                 content_type: str = "application/octet-stream") -> None:
        boundary = os.urandom(16).hex()
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_form_quote(k)}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{_form_quote(file_field)}"; '
                 f'filename="{_form_quote(filename)}"\r\nContent-Type: {content_type}\r\n\r\n').encode()
        self._head, self._tail = head, f"\r\n--{boundary}--\r\n".encode()
        self._reader, self._size = reader, size
        self._start = reader.tell() if reader.seekable() else None
        self._sends = 0
        self.headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                        "Content-Length": str(len(head) + size + len(self._tail))}

    def __iter__(self) -> Iterator[bytes]:
        self._sends += 1
        if self._sends > 1:
            if self._start is None:
                raise TransferError(f"{getattr(self._reader, 'name', 'the file')} cannot be sent again: its reader "
                                    "cannot seek back to the start")
            self._reader.seek(self._start)
        yield self._head
        sent = 0
        while sent < self._size:
            data = self._reader.read(min(BLOCK, self._size - sent))
            if not data:
                raise TransferError(f"{getattr(self._reader, 'name', 'the file')} ended after {sent} of "
                                    f"{self._size} bytes: it changed while it was being sent")
            sent += len(data)
            yield data
        yield self._tail


UPLOAD_TIMEOUT = 600.0  # the least time a one-file upload may take to write (or wait for a presigned PUT's reply)


def upload_source(path: Union[str, Path]) -> Path:
    """The file a client is asked to upload, or :class:`InputError` before anything is asked of the service."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cannot upload {path}: no such file")
    return path


def post_file(client: BaseClient, route: str, path: Path, progress: Optional[Progress] = None,
              **kwargs: Any) -> httpx.Response:
    """POST ``path`` to ``route`` as the multipart field ``file``, streamed from disk (httpx rewinds it for each
    retry), with a write timeout a large movie fits in; ``kwargs`` go to the request (``data=`` form fields).
    ``progress(done, total)`` returning False stops it (:class:`CancelledByUser`)."""
    path = upload_source(path)
    with open(path, "rb") as fh:
        return client.request("POST", route, files={"file": (path.name, counted(fh, path, progress),
                                                             "application/octet-stream")},
                              timeout=httpx.Timeout(client.timeout, write=max(client.timeout, UPLOAD_TIMEOUT)),
                              **kwargs)


def put_file(storage: BaseClient, url: str, path: Path, progress: Optional[Progress] = None,
             chunk: int = 1024 * 1024) -> None:
    """PUT ``path``'s bytes to a presigned ``url`` through ``storage`` (a client that sends no credentials), streamed
    from disk with Content-Length; each retry reads the file again (:class:`FileChunks`)."""
    chunks = FileChunks(path, progress, chunk)
    long = max(storage.timeout, UPLOAD_TIMEOUT)
    storage.request("PUT", url, content=chunks,
                    headers={"Content-Length": str(chunks.size), "Content-Type": "application/octet-stream"},
                    timeout=httpx.Timeout(storage.timeout, read=long, write=long))


class FileChunks:
    """A file's bytes as a re-iterable request body: each retry of a PUT reads the file again from the start.
    ``progress(done, total)`` returning False stops the upload with :class:`CancelledByUser`."""

    def __init__(self, path: Path, progress: Optional[Progress] = None,
                 chunk: int = 1024 * 1024) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.progress = progress
        self.chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        done = 0
        with open(self.path, "rb") as fh:
            while True:
                data = fh.read(self.chunk)
                if not data:
                    return
                done += len(data)
                if self.progress is not None and self.progress(done, self.size) is False:
                    raise CancelledByUser(f"upload of {self.path.name} stopped at {done} of {self.size} bytes")
                yield data

class _Pipeline:
    """Shared counters and the one progress callback, serialised so a UI callback need not be thread-safe."""

    def __init__(self, files_total: int, bytes_total: int, progress: Optional[ProgressCallback]) -> None:
        self.lock = threading.Lock()
        self.cancel = threading.Event()
        self.progress = progress
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.done = {"hash": 0, "upload": 0}
        self.files_done = {"hash": 0, "upload": 0}
        self.sent = 0
        self.last = ("hash", "")  # the phase and file of the latest event, which a heartbeat repeats
        self.errors: List[BaseException] = []  # in the order they happened; the first is the cause

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)
        self.cancel.set()

    def heartbeat(self) -> bool:
        """Ask the progress callback again with nothing new, so that a cancel is seen while no bytes move; False
        when the transfer is (now) cancelled."""
        return self.add(*self.last, 0)

    def add(self, phase: str, file: str, nbytes: int, files: int = 0) -> bool:
        """Count progress; False when the transfer is (now) cancelled."""
        with self.lock:
            self.last = (phase, file)
            self.done[phase] += nbytes
            self.files_done[phase] += files
            if phase == "upload" and not files:
                self.sent += nbytes
            if self.progress is not None and not self.cancel.is_set():
                event = TransferProgress(phase, file, self.done[phase], self.bytes_total, self.files_done[phase],
                                         self.files_total)
                if self.progress(event) is False:
                    self.errors.append(CancelledByUser("the transfer was cancelled; nothing further was sent"))
                    self.cancel.set()
        return not self.cancel.is_set()


class Overtaken(CancelledByUser):
    """A transfer that matters more is waiting: this one stopped between files (none was cut off mid-file); what
    was sent stays sent, and a later run skips it."""


# Asked before each file starts: True stops the upload between files (:class:`Overtaken`). A context variable, so
# the agent sets it around a whole hand-off and every service's submit path honours it without a parameter of its
# own through each layer (as ``throttle`` needs).
_YIELD_TO: contextvars.ContextVar[Optional[Callable[[], bool]]] = contextvars.ContextVar("tether_yield_to",
                                                                                          default=None)


@contextlib.contextmanager
def yielding(check: Callable[[], bool]) -> Iterator[None]:
    """Within this block, :func:`upload_files` asks ``check()`` before each file and, when it is True, finishes the
    files in flight, starts no other and raises :class:`Overtaken`."""
    token = _YIELD_TO.set(check)
    try:
        yield
    finally:
        _YIELD_TO.reset(token)


class Throttle:
    """A bandwidth cap shared by every upload thread: :meth:`take` waits until ``n`` more bytes fit under ``rate``
    bytes per second (a token bucket holding at most ``burst`` bytes; a block that overdraws it is paid back by
    waiting, so the long-run rate is the cap)."""

    def __init__(self, rate: float, *, burst: Optional[float] = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise InputError(f"a bandwidth cap must be more than 0 bytes per second, not {rate:g}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate / 4, BLOCK))
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._allowance = self.burst
        self._last = clock()

    def take(self, n: int) -> None:
        with self._lock:
            now = self.clock()
            self._allowance = min(self.burst, self._allowance + (now - self._last) * self.rate) - n
            self._last = now
            wait = -self._allowance / self.rate if self._allowance < 0 else 0.0
        if wait > 0:
            self.sleep(wait)


def upload_files(
    files: Iterable[Tuple[PathLike, str]],
    target: UploadTarget,
    *,
    cache: Optional[HashCache] = None,
    workers: int = 4,
    small_workers: int = SMALL_WORKERS,
    progress: Optional[ProgressCallback] = None,
    before_send: Optional[Callable[[], None]] = None,
    throttle: Optional[Throttle] = None,
) -> UploadReport:
    """Hash ``(local path, remote name)`` pairs, send the ones ``target`` lacks, several at once.

    ``before_send`` runs once, after a file is hashed and before the target is asked about any: hashing overlaps
    it, and if it raises nothing is asked or sent and its error is raised. ``throttle`` caps the bytes sent per
    second over all workers. Inside :func:`yielding`, it stops between files when told (:class:`Overtaken`).

    Small files (up to :data:`SMALL_FILE`) go on a pool of ``small_workers`` of their own (0: on the ``workers``
    pool with the rest, as before): a thousand textures cost a thousand round trips' latency, not bandwidth, so
    they are overlapped many at a time over the client's kept-alive connections while the big files keep their few
    streams. No vendor route takes several files or md5s in one request (see :data:`SMALL_FILE`).

    Every path is checked before anything is sent. The first error (a :class:`ServiceError` from the target, or
    :class:`CancelledByUser` when ``progress`` returned False) stops new work, aborts sends in flight, and is
    raised once all workers have stopped.
    """
    started = time.monotonic()
    entries: List[Tuple[Path, str, int]] = []
    seen: Dict[str, Path] = {}
    missing: List[str] = []
    for local, remote in files:
        path = Path(local)
        if not path.is_file():
            missing.append(str(path))
            continue
        other = seen.get(remote)
        if other is not None:
            if os.path.samefile(other, path):
                continue
            raise InputError(f"two files would be uploaded as {remote!r}: {other} and {path}; rename one of them")
        seen[remote] = path
        entries.append((path, remote, path.stat().st_size))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputError(f"cannot upload files that do not exist or are not regular files: "
                         f"{', '.join(missing[:3])}{more}; fix the paths and try again")
    entries.sort(key=lambda e: e[2], reverse=True)  # biggest first: the long poles start early

    own_cache = cache is None
    hash_cache = cache if cache is not None else HashCache()
    hits_before = hash_cache.hits
    run = _Pipeline(len(entries), sum(e[2] for e in entries), progress)
    items: List[Optional[UploadItem]] = [None] * len(entries)
    skipped = [0, 0]  # files, bytes
    store: Optional[str] = getattr(target, "store_key", None)

    gate_lock, gate_passed = threading.Lock(), threading.Event()
    yield_to = _YIELD_TO.get()
    overtaken = threading.Event()  # no new file starts; those in flight finish

    def give_way() -> bool:
        if not overtaken.is_set() and yield_to is not None and yield_to():
            overtaken.set()
        return overtaken.is_set()

    def one(index: int, path: Path, remote: str, size: int) -> None:
        if run.cancel.is_set() or give_way():
            return
        name = str(path)

        def hashed(n: int) -> None:
            if not run.add("hash", name, n):
                raise CancelledByUser(f"hashing {name} was cancelled")

        result = hash_cache.hash(path, progress=hashed, cancel=run.cancel)
        if result.size != size:  # it changed since we listed it; keep the totals honest
            with run.lock:
                run.bytes_total += result.size - size
            size = result.size
        if result.cached:
            run.add("hash", name, size, files=1)
        else:
            run.add("hash", name, 0, files=1)
        item = UploadItem(path=path, remote_path=remote, size=size, md5=result.md5)
        items[index] = item
        if run.cancel.is_set():
            return
        if before_send is not None and not gate_passed.is_set():
            with gate_lock:
                if run.cancel.is_set():
                    return
                if not gate_passed.is_set():
                    before_send()
                    gate_passed.set()
        if (store and hash_cache.confirmed(store, remote, result.md5)) or target.exists(item):
            if store:
                hash_cache.confirm(store, remote, result.md5)
            with run.lock:
                skipped[0] += 1
                skipped[1] += size
            run.add("upload", name, size, files=1)
            return
        if run.cancel.is_set() or give_way():
            return
        with open(path, "rb") as fh:
            def sent(n: int) -> bool:
                if throttle is not None:
                    throttle.take(n)
                return run.add("upload", name, n)

            reader = ProgressReader(cast(BinaryIO, fh), sent, name=name)
            target.send(item, cast(BinaryIO, reader))
            rest = size - reader.bytes_read  # a target that did not read through (e.g. an empty file)
        run.add("upload", name, max(rest, 0), files=0)
        run.add("upload", name, 0, files=1)
        if store:
            hash_cache.confirm(store, remote, result.md5)

    def guarded(index: int, entry: Tuple[Path, str, int]) -> None:
        try:
            one(index, *entry)
        except BaseException as exc:  # recorded here, raised in the caller's thread
            run.fail(exc)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tether-upload")
    small_pool = (ThreadPoolExecutor(max_workers=small_workers, thread_name_prefix="tether-upload-small")
                  if small_workers > 0 else pool)
    try:
        futures: List[Future[None]] = [(small_pool if e[2] <= SMALL_FILE else pool).submit(guarded, i, e)
                                       for i, e in enumerate(entries)]
        # Waited in short steps: Ctrl-C lands here at once, and a cancel asked for while no byte moves (a server
        # holding a request) is seen through run.heartbeat(); either ends the requests in flight with abort().
        while wait(futures, timeout=HEARTBEAT).not_done:
            if not run.heartbeat():
                target.abort()
                break
    except BaseException as exc:  # Ctrl-C in the caller
        run.fail(exc)
        target.abort()
        raise
    finally:
        for each in {pool, small_pool}:
            each.shutdown(wait=True, cancel_futures=True)
        if own_cache:
            hash_cache.close()
    if run.errors:
        # the cause, not the CancelledByUser that our own abort raised in the other workers
        first = run.errors[0]
        raise first
    if overtaken.is_set():
        raise Overtaken("the upload stopped between files for a transfer that comes first; the files sent stay sent")
    done_items = [i for i in items if i is not None]
    return UploadReport(
        files=len(entries), bytes_total=run.bytes_total, bytes_sent=run.sent, files_sent=len(entries) - skipped[0],
        files_skipped=skipped[0], bytes_skipped=skipped[1], cache_hits=hash_cache.hits - hits_before,
        seconds=time.monotonic() - started, items=done_items,
    )


# --- downloads -----------------------------------------------------------------------------------------------------
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def safe_destination(dest_dir: PathLike, name: str, *, create: bool = True) -> Path:
    """The path for server-supplied ``name`` inside ``dest_dir``, or :class:`TransferError` if it could escape.

    Nested relative names (``render/frame_0001.png``) are fine. Refused: empty names, absolute paths, ``..``,
    backslashes, drive letters and other colons, control characters, hidden names (``.bashrc``, ``.git/hooks/x``:
    no result is one, and they are where a shell or a tool looks for code), and any existing symlink on the way
    down.
    With ``create`` the parent folders are made, one level at a time, checking each.
    """
    def refuse(why: str) -> TransferError:
        return TransferError(f"refusing the server-supplied file name {name!r}: {why}; nothing was written")

    if not name or not name.strip():
        raise refuse("it is empty")
    if "\\" in name:
        raise refuse("it contains a backslash, which Windows reads as a folder separator")
    if ":" in name:
        raise refuse("it contains a colon (a drive letter or a stream name on Windows)")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name):
        raise refuse("it contains control characters")
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise refuse("it is an absolute path")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if not parts:
        raise refuse("it names no file")
    if ".." in parts:
        raise refuse("it climbs out of the destination folder with '..'")
    if any(p.startswith(".") for p in parts):
        raise refuse("it names a hidden file or folder")
    if os.name == "nt" and any(_WINDOWS_RESERVED.match(p) or p.endswith((".", " ")) for p in parts):
        raise refuse("it uses a name Windows reserves")
    root = Path(dest_dir)
    if create:
        root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise refuse(f"{current} is a symbolic link, which could lead outside {root}")
        if create and not current.exists():
            with contextlib.suppress(FileExistsError):  # another download made it meanwhile
                current.mkdir()
        if current.exists() and not current.is_dir():
            raise refuse(f"{current} exists and is not a folder")
    final = current / parts[-1]
    if final.is_symlink():
        raise refuse(f"{final} is a symbolic link")
    if final.is_dir():
        raise refuse(f"{final} is a folder")
    if create:
        resolved_root = root.resolve()
        try:
            final.parent.resolve().relative_to(resolved_root)
        except ValueError:
            raise refuse(f"it resolves outside {resolved_root}") from None
    return final


def _range_start(value: Optional[str]) -> Optional[int]:
    match = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _range_total(value: Optional[str]) -> Optional[int]:
    match = re.match(r"\s*bytes\s+\d+-\d+/(\d+)", value or "")
    return int(match.group(1)) if match else None


def _md5_prefix(path: Path, nbytes: int) -> Any:
    digest = hashlib.md5(usedforsecurity=False)
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    left = nbytes
    with open(path, "rb", buffering=0) as fh:
        while left > 0:
            n = fh.readinto(view[: min(BLOCK, left)])
            if not n:
                break
            digest.update(view[:n])
            left -= n
    return digest


def download(
    client: BaseClient,
    path: str,
    dest_dir: PathLike,
    name: str,
    *,
    size: Optional[int] = None,
    md5: Optional[str] = None,
    progress: Optional[Progress] = None,
    params: Optional[Dict[str, Any]] = None,
) -> Path:
    """GET ``path`` from ``client`` (a :class:`tether.http.BaseClient`) into ``dest_dir/name``; return the file.

    Resumes an existing ``.<name>.part`` with ``Range`` (a 200 answer restarts from zero), resumes again after a
    dropped connection or a 502/503/504 as the client's :class:`~tether.http.RetryPolicy` says (as many failures
    in a row as its attempts, waiting its delay, Retry-After honoured), waits a 429 out within the service's rate
    budget as every request does (:meth:`~tether.http.BaseClient.wait_out_rate_limit`), verifies ``size`` and
    ``md5`` when given and renames into place. A final file that already matches ``md5`` is kept without a request.
    ``progress(done, total)`` (``total`` 0 when unknown) may return False to stop: the ``.part`` is kept for a
    later resume and :class:`CancelledByUser` is raised. A full disk (known beforehand from ``size``, or met while
    writing) stops it with a :class:`TransferError` that says so; what was written is kept for the resume, and an
    empty ``.part`` is not left behind. ``client.abort()`` from another thread stops it as a cancel does.
    """
    final = safe_destination(dest_dir, name)
    part = final.with_name(f".{final.name}.part")
    policy = client.retry
    mark = client.aborts
    if md5 is not None:
        md5 = md5.lower()
        if final.is_file() and (size is None or final.stat().st_size == size) and md5_file(final)[0] == md5:
            return final
    if part.is_symlink():
        part.unlink()
    kept = f"{part.name} is kept and the next download resumes from it"
    digest: Any = None
    digested = 0  # bytes of .part that ``digest`` covers
    failures = 0
    limits, limited = 0, 0.0  # 429s met and seconds waited on them, against the rate budget
    restarted = False
    retry_after: Optional[float] = None
    while True:
        client.cancelled(mark, f"the download of {name}", kept)
        offset = part.stat().st_size if part.exists() else 0
        if size is not None and offset > size:
            part.unlink()
            offset = 0
        if size is not None and offset == size and size > 0:
            break  # complete from an earlier run: verify below
        if size is not None:
            free = shutil.disk_usage(final.parent).free
            if free < size - offset:
                raise TransferError(f"{name} needs {human_bytes(size - offset)} more but the disk holding "
                                    f"{final.parent} has {human_bytes(free)} free: free some space, then fetch "
                                    "again")
        headers = {"Accept-Encoding": "identity"}  # Range offsets are in stored bytes, not gzip bytes
        if offset:
            headers["Range"] = f"bytes={offset}-"
        written = 0
        try:
            with client.stream("GET", path, params=params, headers=headers) as response:
                if offset and response.status_code == 206 and _range_start(response.headers.get("content-range")) \
                        in (offset, None):
                    mode = "ab"
                    total = _range_total(response.headers.get("content-range"))
                else:  # 200 (Range ignored) or a range we did not ask for: start again from zero
                    mode, offset = "wb", 0
                    length = response.headers.get("content-length")
                    total = int(length) if length and length.isdigit() else None
                if size is not None and total is not None and total != size:
                    # a reply cut short (a proxy, a dropped connection) announces a wrong length too: only a whole
                    # body of the wrong length means the file changed; a broken one is retried below
                    for _ in response.iter_raw():
                        pass
                    _discard(part)
                    raise TransferError(f"{name}: the server offers {total} bytes but {size} were expected; the "
                                        "file on the server may have changed; fetch the listing again")
                if md5 is not None and (mode == "wb" or digest is None or digested != offset):
                    digest = _md5_prefix(part, offset) if mode == "ab" else hashlib.md5(usedforsecurity=False)
                    digested = offset
                expected = size if size is not None else (total or 0)
                try:
                    with open(part, mode) as fh:
                        # chunks as they arrive: a sized chunker would lose what it buffered when the connection drops
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                            written += len(chunk)
                            if digest is not None:
                                digest.update(chunk)
                                digested += len(chunk)
                            if progress is not None and progress(offset + written, expected) is False:
                                raise CancelledByUser(f"the download of {name} was cancelled; {kept}")
                        fh.flush()
                        os.fsync(fh.fileno())
                except OSError as exc:
                    if exc.errno not in DISK_FULL:
                        raise
                    raise _disk_full(name, part, exc) from None
            break
        except ServiceError as exc:
            if exc.status == 416 and offset and not restarted:
                _discard(part)  # our part is longer than the file: the file changed; start over once
                restarted = True
                continue
            if exc.status not in RETRY_STATUSES:  # a certificate error (no status) included: no retry fixes it
                raise
            if exc.status == 429 and policy.rate_budget > 0:
                limits += 1
                limited += client.wait_out_rate_limit(exc, limits, limited, mark)
                continue
            failures = 1 if written else failures + 1
            if failures >= policy.attempts:
                raise
            retry_after = exc.retry_after
        except httpx.TransportError as exc:
            client.cancelled(mark, f"the download of {name}", kept)
            failures = 1 if written else failures + 1
            if failures >= policy.attempts:
                raise TransferError(f"{name}: the download from {path} kept failing ({type(exc).__name__}: {exc}); "
                                    f"{kept}") from None
            retry_after = None
        client.pause(policy.delay(failures, retry_after), mark)

    actual = part.stat().st_size
    if size is not None and actual != size:
        _discard(part)
        raise TransferError(f"{name}: received {actual} bytes but {size} were expected; the partial file was "
                            "deleted; try again")
    if md5 is not None:
        got = digest.hexdigest() if digest is not None and digested == actual else md5_file(part)[0]
        if got != md5:
            _discard(part)
            raise TransferError(f"{name}: the downloaded file's md5 is {got} but the server said {md5}; it was "
                                "deleted; try again")
    os.replace(part, final)
    return final


def _disk_full(name: str, part: Path, exc: OSError) -> TransferError:
    kept = part.stat().st_size if part.exists() else 0
    if not kept:
        _discard(part)
    resume = (f"{human_bytes(kept)} of it are kept in {part.name} and the next fetch resumes from there" if kept else
              "nothing of it was kept")
    return TransferError(f"{name}: the disk holding {part.parent} is full ({exc.strerror}): free some space, then "
                         f"fetch again; {resume}")


def _discard(part: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        part.unlink()


__all__ = [
    "BLOCK", "UPLOAD_TIMEOUT", "FileHash", "HashCache", "MultipartFile", "Overtaken", "ProgressReader", "Throttle",
    "TransferProgress", "UploadItem", "UploadReport", "UploadTarget", "counted", "default_cache_path", "download",
    "md5_file", "post_file", "put_file", "safe_destination", "upload_files", "upload_source", "yielding",
]
