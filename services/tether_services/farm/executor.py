"""The one seam between the local farm and whatever renders its chunks.

The farm hands a :class:`ChunkSpec` (scene path, explicit frame list, output folder, environment) to a
:class:`ChunkExecutor` and gets a :class:`ChunkHandle` back (done callback, cancel). It submits no more chunks than
``executor.slots`` at a time and keeps ordering (priority, hold, scout frames) to itself, so a distributed engine can
take over by implementing this protocol.

:class:`LocalProcessExecutor` runs N long-lived worker processes. Each imports Blender once (``import bpy`` costs
~1.2 s) and then renders many chunks: ``python render_worker.py`` with the ``bpy`` wheel, or
``blender -b --factory-startup -P render_worker.py`` when a ``blender`` binary is on PATH (or named by
``TETHER_FARM_BLENDER``). Workers are processes, not threads: bpy is not thread safe. Commands go to the worker's
stdin as JSON lines; replies come back on its stdout as lines starting with ``@@TETHER `` (anything else Blender
prints is ignored). Cancelling a running chunk kills its worker; a fresh one starts for the next chunk.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Protocol, Tuple

WORKER_SCRIPT = Path(__file__).with_name("render_worker.py")
PREFIX = "@@TETHER "


@dataclass
class ChunkSpec:
    blend: Path
    frames: List[int]
    output_dir: Path
    workspace: Path
    log_path: Path
    env: Dict[str, str] = field(default_factory=dict)
    threads: int = 0  # 0: the executor decides


@dataclass
class ChunkResult:
    ok: bool
    frames: List[int] = field(default_factory=list)  # frames written
    files: List[str] = field(default_factory=list)  # names in output_dir
    error: Optional[str] = None
    cancelled: bool = False
    seconds: float = 0.0


class ChunkHandle(Protocol):
    def cancel(self) -> None: ...

    def add_done_callback(self, fn: Callable[[ChunkResult], None]) -> None: ...

    def result(self, timeout: Optional[float] = None) -> ChunkResult: ...


class ChunkExecutor(Protocol):
    slots: int

    def submit(self, chunk: ChunkSpec, on_frame: Optional[Callable[[int, str], None]] = None) -> ChunkHandle: ...

    def shutdown(self) -> None: ...


def render_command() -> List[str]:
    """How to start one worker: a Blender binary when there is one, else this Python with the bpy wheel."""
    blender = os.environ.get("TETHER_FARM_BLENDER") or shutil.which("blender")
    if blender:
        return [blender, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1", "-P", str(WORKER_SCRIPT)]
    return [sys.executable, "-u", str(WORKER_SCRIPT)]


class _Job:
    """One submitted chunk: a handle the farm holds, completed by a worker thread."""

    def __init__(self, spec: ChunkSpec, on_frame: Optional[Callable[[int, str], None]]) -> None:
        self.spec = spec
        self.on_frame = on_frame
        self.future: Future[ChunkResult] = Future()
        self.cancelled = threading.Event()
        self.worker: Optional[_Worker] = None

    def cancel(self) -> None:
        self.cancelled.set()
        worker = self.worker
        if worker is not None:
            worker.kill(only_if_running=self)
        elif not self.future.done():
            self.future.set_result(ChunkResult(ok=False, cancelled=True, error="cancelled"))

    def add_done_callback(self, fn: Callable[[ChunkResult], None]) -> None:
        self.future.add_done_callback(lambda f: fn(f.result()))

    def result(self, timeout: Optional[float] = None) -> ChunkResult:
        return self.future.result(timeout)


class _Worker:
    """One Blender process and the thread that feeds it chunks."""

    def __init__(self, index: int, executor: LocalProcessExecutor) -> None:
        self.index = index
        self.executor = executor
        self.proc: Optional[subprocess.Popen[str]] = None
        self.lock = threading.Lock()
        self.current: Optional[_Job] = None  # the chunk this worker renders now
        self.thread = threading.Thread(target=self._loop, name=f"tether-farm-worker-{index}", daemon=True)
        self.thread.start()

    def _spawn(self) -> subprocess.Popen[str]:
        log_dir = self.executor.state_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("BLENDER_USER_RESOURCES", str(log_dir / "blender-user"))  # no user prefs or add-ons
        env["PYTHONUNBUFFERED"] = "1"
        with (log_dir / f"worker-{self.index}.log").open("ab") as stderr:
            proc = subprocess.Popen(
                render_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                encoding="utf-8", errors="replace", env=env, bufsize=1,
            )
        ready = self._read(proc)
        if ready is None or ready.get("type") != "ready":
            with contextlib.suppress(OSError):
                proc.kill()
            raise RuntimeError(f"the render worker did not start; see {log_dir / f'worker-{self.index}.log'}")
        return proc

    @staticmethod
    def _read(proc: subprocess.Popen[str]) -> Optional[Dict[str, Any]]:
        out: IO[str] = proc.stdout  # type: ignore[assignment]
        for line in out:
            if line.startswith(PREFIX):
                message: Dict[str, Any] = json.loads(line[len(PREFIX):])
                return message
        return None

    def kill(self, only_if_running: Optional[_Job] = None) -> None:
        """Kill the process; with ``only_if_running``, only while it still renders that chunk (a cancel that
        arrives as the chunk ends must not kill the next chunk, of another job, in the same worker)."""
        with self.lock:
            if only_if_running is not None and self.current is not only_if_running:
                return
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.proc.kill()
                # Reaped here, not later: until the kill lands poll() still says "alive", and the next chunk
                # would be written to a dying process and fail with -9 instead of getting a fresh worker.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
                self.proc = None

    def warm(self) -> None:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self._spawn()

    def _loop(self) -> None:
        while True:
            job = self.executor._queue.get()
            if job is None:
                return
            if job.cancelled.is_set():
                if not job.future.done():
                    job.future.set_result(ChunkResult(ok=False, cancelled=True, error="cancelled"))
                continue
            with self.lock:
                self.current = job
            job.worker = self
            try:
                result = self._run(job)
            except Exception as exc:  # a broken worker must not take the farm down
                result = ChunkResult(ok=False, error=f"render worker failed: {exc}")
            with self.lock:
                self.current = None
            job.worker = None
            if job.cancelled.is_set():
                result.cancelled, result.ok = True, False
                result.error = result.error or "cancelled"
            if not job.future.done():
                job.future.set_result(result)

    def _run(self, job: _Job) -> ChunkResult:
        started = time.monotonic()
        self.warm()
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        spec = job.spec
        command = {
            "type": "render", "blend": str(spec.blend), "frames": spec.frames, "output_dir": str(spec.output_dir),
            "workspace": str(spec.workspace), "log": str(spec.log_path), "env": spec.env,
            "threads": spec.threads or self.executor.threads,
        }
        if job.cancelled.is_set():
            return ChunkResult(ok=False, cancelled=True, error="cancelled")
        try:
            proc.stdin.write(json.dumps(command) + "\n")
            proc.stdin.flush()
        except OSError:
            return ChunkResult(ok=False, error="the render worker exited before the chunk started", cancelled=False)
        result = ChunkResult(ok=False)
        while True:
            message = self._read(proc)
            if message is None:  # the process ended: killed by cancel, or crashed
                with self.lock:
                    code = proc.wait()
                    self.proc = None
                result.error = result.error or _crash_text(spec.log_path, code)
                break
            kind = message.get("type")
            if kind == "frame":
                result.frames.append(int(message["frame"]))
                result.files.append(str(message["name"]))
                if job.on_frame is not None:
                    job.on_frame(int(message["frame"]), str(message["name"]))
                self.executor._maybe_stall(job, len(result.frames))
            elif kind == "done":
                result.ok = True
                break
            elif kind == "error":
                result.error = str(message.get("message") or "render failed")
                break
        result.seconds = time.monotonic() - started
        return result


def _crash_text(log_path: Path, code: int) -> str:
    tail = ""
    with contextlib.suppress(OSError):
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1][:300]
    return f"Blender exited with code {code}" + (f": {tail}" if tail else "")


class LocalProcessExecutor:
    """N Blender worker processes on this machine; each renders one chunk at a time."""

    def __init__(self, workers: int = 2, *, state_dir: Optional[Path] = None, threads: int = 0) -> None:
        if workers < 1:
            raise ValueError("the farm needs at least 1 worker")
        self.slots = workers
        cpus = os.cpu_count() or 1
        # Cycles uses every core by default; N workers that each did would fight over them.
        self.threads = threads or max(1, cpus // workers)
        self.state_dir = Path(state_dir) if state_dir else Path.cwd() / ".tether-workers"
        self._queue: queue.Queue[Optional[_Job]] = queue.Queue()
        self._workers = [_Worker(i, self) for i in range(workers)]
        self._stall: Optional[Tuple[int, threading.Event]] = None
        self._stalled: List[_Job] = []

    def stall_after(self, frames: int) -> threading.Event:
        """Test handle: from now on a chunk stops reporting after its ``frames``-th frame, as a hung worker's would
        (the process renders on, unheard), until the chunk is cancelled or the executor shuts down. The event is set
        when a chunk stalls, so a test can stop or cancel the farm at a known frame count, however fast Blender is."""
        self._stall = (frames, threading.Event())
        return self._stall[1]

    def _maybe_stall(self, job: _Job, reported: int) -> None:
        stall = self._stall
        if stall is None or reported != stall[0]:
            return
        self._stalled.append(job)
        stall[1].set()
        job.cancelled.wait()  # set by cancel(), which the farm's close() calls, or by shutdown()

    def warm(self) -> None:
        """Start every worker now (each imports Blender once) instead of on its first chunk."""
        threads = [threading.Thread(target=w.warm) for w in self._workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def worker_pids(self) -> List[int]:
        """Process ids of the live Blender workers (tests check that cancel really kills)."""
        return [w.proc.pid for w in self._workers if w.proc is not None and w.proc.poll() is None]

    def submit(self, chunk: ChunkSpec, on_frame: Optional[Callable[[int, str], None]] = None) -> ChunkHandle:
        job = _Job(chunk, on_frame)
        self._queue.put(job)
        return job

    def shutdown(self) -> None:
        for job in self._stalled:
            job.cancelled.set()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            proc = worker.proc
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    if proc.stdin is not None:
                        proc.stdin.close()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    worker.kill()
