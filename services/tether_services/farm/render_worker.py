"""A render worker of the local farm: imports Blender once, then renders chunk after chunk.

Run as ``python render_worker.py`` (bpy wheel) or ``blender -b --factory-startup -P render_worker.py``. It imports
nothing from Tether, so it runs in any Blender's own Python. Protocol (see executor.py): one JSON command per stdin
line; replies on the original stdout as ``@@TETHER {json}`` lines: ``ready``, then per chunk ``frame`` for each frame
written and ``done`` or ``error``. Everything Blender prints while rendering a chunk goes to that task's log file.

Per chunk: open the .blend from the job's workspace as it was uploaded (uploads keep their layout below the
workspace, drive/root stripped) and change none of its paths: like a remote farm, which runs none of our code, it
renders only what the submitter's bundle points at (see tether.farm.models). Render each listed frame exactly (so a
frame step is honoured), named by the basename of the scene's ``render.filepath`` with its ``#`` padding and the
scene's file format, into a private temp folder, then move each frame into the job's output folder (a cancelled
chunk never leaves a half-written frame there).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sys
import traceback
from typing import Any, Dict, Iterator, List, Optional, TextIO

PREFIX = "@@TETHER "
_DRIVE = re.compile(r"^[A-Za-z]:")
_out: Optional[TextIO] = None
_loaded: Dict[str, Any] = {}  # the .blend open in this worker: key (path, mtime_ns, size) and its output path


def workspace_relpath(path: str) -> str:
    """Where an uploaded local path lives below a job's workspace: the root or drive stripped, layout kept.

    ``/home/ann/shot/a.blend`` -> ``home/ann/shot/a.blend``; ``C:\\shot\\a.blend`` -> ``shot/a.blend``;
    ``\\\\server\\share\\shot\\a.blend`` -> ``shot/a.blend``. Raises ValueError for a path that climbs with ``..``.
    """
    text = path.replace("\\", "/")
    if _DRIVE.match(text):
        text = text[2:]
    elif text.startswith("//"):  # UNC: //server/share/...
        text = "/".join(text.lstrip("/").split("/")[2:])
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"upload path {path!r} cannot be placed in a workspace; give a plain absolute file path")
    return "/".join(parts)


class FarmError(Exception):
    """A problem with the scene the artist can fix; the message says what."""


def send(message: Dict[str, Any]) -> None:
    assert _out is not None
    _out.write(PREFIX + json.dumps(message) + "\n")
    _out.flush()


@contextlib.contextmanager
def redirected(log_path: str) -> Iterator[None]:
    """Blender prints from C: only moving file descriptors 1 and 2 catches that."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = os.dup(1), os.dup(2)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


@contextlib.contextmanager
def environment(env: Dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _error_lines(log_path: str) -> str:
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "error" in ln.lower() and not ln.startswith("Traceback")]
    return " | ".join(errors[-3:])[:600]


def render_chunk(bpy: Any, cmd: Dict[str, Any]) -> None:
    blend, output_dir = cmd["blend"], cmd["output_dir"]
    frames: List[int] = [int(f) for f in cmd["frames"]]
    tmp_dir = os.path.join(os.path.dirname(output_dir.rstrip("/\\")), "tmp", f"w{os.getpid()}")
    os.makedirs(tmp_dir, exist_ok=True)
    os.makedirs(output_dir, exist_ok=True)
    with environment(cmd.get("env") or {}), redirected(cmd["log"]):
        print(f"tether: chunk {frames} of {blend}", flush=True)
        st = os.stat(blend)
        key = (blend, st.st_mtime_ns, st.st_size)
        if _loaded.get("key") != key:
            # Loading costs ~0.1 s per chunk; the next chunk of the same unchanged file reuses the open scene
            # (only the frame range and output path below are changed, and they are set again every chunk).
            _loaded.clear()
            bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
            _loaded.update(key=key, filepath=bpy.context.scene.render.filepath)
        else:
            print("tether: scene already open, reused", flush=True)
        scene = bpy.context.scene
        render = scene.render
        render.filepath = _loaded["filepath"]
        if render.is_movie_format:
            raise FarmError(f"the scene writes a movie ({render.image_settings.file_format}); "
                            "set an image format such as PNG or OpenEXR in Output Properties for farm rendering")
        pattern = os.path.basename(render.filepath.replace("\\", "/"))
        if "#" not in pattern:
            pattern += "####"  # what Blender does for an animation without '#'
        render.filepath = os.path.join(tmp_dir, pattern)
        if cmd.get("threads"):
            render.threads_mode = "FIXED"
            render.threads = int(cmd["threads"])
        scene.frame_step = 1
        for frame in frames:
            # A one-frame animation render names the file exactly as Blender's own animation render would.
            scene.frame_start = scene.frame_end = frame
            bpy.ops.render.render(animation=True, scene=scene.name)
            for written in _written(render, frame):
                if not os.path.exists(written):
                    raise FarmError(f"Blender wrote no file for frame {frame} (expected {os.path.basename(written)})")
                name = os.path.basename(written)
                os.replace(written, os.path.join(output_dir, name))
                send({"type": "frame", "frame": frame, "name": name})


def _written(render: Any, frame: int) -> List[str]:
    """The files Blender writes for a frame: one, or one per view for multiview written view by view (_L, _R)."""
    if render.use_multiview and render.image_settings.views_format == "INDIVIDUAL":
        views = [v.name for v in render.views if v.use]
        if views:
            return [render.frame_path(frame=frame, view=v) for v in views]
    return [render.frame_path(frame=frame)]


def main() -> int:
    global _out
    # Keep the real stdout for replies only; from here on anything printed goes to stderr (the worker log).
    _out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    bpy = importlib.import_module("bpy")  # dynamic: mypy must not parse the fake-bpy-module stubs here

    send({"type": "ready", "blender": bpy.app.version_string, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("type") != "render":
            continue
        try:
            render_chunk(bpy, cmd)
        except FarmError as exc:
            _loaded.clear()  # reload next time: the failed chunk may have left the scene half-changed
            send({"type": "error", "message": str(exc)})
        except Exception as exc:
            _loaded.clear()
            with contextlib.suppress(OSError), open(cmd["log"], "a", encoding="utf-8") as log:
                traceback.print_exc(file=log)
            detail = _error_lines(cmd["log"])
            text = str(exc).strip() or type(exc).__name__
            send({"type": "error", "message": text if not detail or detail in text else f"{text} ({detail})"})
        else:
            send({"type": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
