"""What the local Autopilot computes from an uploaded clip's pixels. Simple classical methods, named plainly; they
stand in for Slapshot's models so that every output has the right kind, shape and frame count, and tests can check
it against expectations computed independently. None of this is, or pretends to be, the vendor's processing.

- **clip decoding**: a zip of PNG/JPG/TIFF frames (ordered by the frame number in their names) or a movie
  (.mov/.mp4 via PyAV, when installed). Frames become float RGB arrays in 0..1.
- **roto** (``hard_mattes``, ``mb_mattes``): background subtraction. The background is the per-pixel temporal
  median; a pixel is foreground where its RGB distance from the background exceeds a threshold chosen by Otsu's
  method over the whole clip (floor 0.05). ``hard_mattes`` are those binary mattes as 8-bit PNGs (255 = foreground);
  ``mb_mattes`` average each hard matte with its neighbours in time (a 3-frame box), a stand-in for motion blur.
- **tracking** (``tracking``): a nodal pan/tilt camera from global phase correlation (FFT cross-power spectrum) of
  successive frames' luminance. An image shift of (dx, dy) pixels is a rotation of atan(dx/f) about Y and
  atan(dy/f) about X, f being the focal length in pixels (lens/sensor width x image width; defaults 35 mm on a
  36 mm sensor). Written as a Nuke ``.chan`` (``frame tx ty tz rx ry rz vfov``, degrees, vertical FOV) and as JSON
  with focal, apertures and rot_order ZXY, zipped together. Fewer than 2 frames fails the inference.
- **depth_map** (``jpg``, ``mov``): pseudo depth from a height prior (lower in frame = nearer) blended with local
  sharpness (box-blurred gradient magnitude: textured = nearer), normalised per clip, near = bright.
  ``jpg``: a zip of JPEG frames; ``mov``: an MPEG-4 .mov through PyAV (refused with 400 when PyAV is missing).
- **smart_vectors** (``exr``): forward motion vectors by 8x8 block matching (sum of absolute differences over
  +/-4 pixels) to the next frame, written as uncompressed float EXR frames with channels ``u`` and ``v``.

Outputs are numbered 1..N (``00001.png``), like the vendor's reference masks; the client maps them back onto the
plate's frame numbers.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from tether.encode import frame_rgb
from tether.media import WEB_MOVIE_EXTS

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MAX_FRAMES = 3500
Check = Callable[[], None]  # raises when the inference was cancelled


class ClipError(Exception):
    """The uploaded file is not a clip the local service can read."""


def have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


# --- decoding -------------------------------------------------------------------------------------------------------
def _frame_key(name: str) -> Tuple[int, str]:
    m = re.search(r"(-?\d+)(?=\.[^.]+$)", name)
    return (int(m.group(1)) if m else 0, name)


def read_clip(path: Path, max_frames: int = MAX_FRAMES) -> List[np.ndarray]:
    """The clip's frames as float32 HxWx3 arrays in 0..1."""
    from PIL import Image

    frames: List[np.ndarray] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted((n for n in archive.namelist() if n.lower().endswith(IMAGE_EXTS)
                            and not n.startswith("__MACOSX")), key=_frame_key)
            if not names:
                raise ClipError("the zip holds no PNG/JPG/TIFF frames")
            if len(names) > max_frames:
                raise ClipError(f"{len(names)} frames is over the {max_frames}-frame limit")
            for name in names:
                with archive.open(name) as fh:
                    img = Image.open(io.BytesIO(fh.read())).convert("RGB")
                frames.append(np.asarray(img, dtype=np.float32) / 255.0)
    elif path.suffix.lower() in WEB_MOVIE_EXTS or _is_movie(path):
        if not have_pyav():
            raise ClipError("this local service cannot decode movies (PyAV is not installed): send a zip of frames")
        import av

        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    frames.append(frame_rgb(frame).astype(np.float32) / 255.0)
                    if len(frames) > max_frames:
                        raise ClipError(f"over the {max_frames}-frame limit")
        except (av.FFmpegError, ValueError) as exc:  # type: ignore[attr-defined,unused-ignore]
            raise ClipError(f"cannot decode the movie ({exc})") from None
    else:
        try:
            img = Image.open(path).convert("RGB")
        except Exception as exc:
            raise ClipError(f"not a movie, a zip of frames or an image ({type(exc).__name__})") from None
        frames.append(np.asarray(img, dtype=np.float32) / 255.0)
    if not frames:
        raise ClipError("the clip has no frames")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise ClipError("the frames do not all have the same size")
    return frames


def _is_movie(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")


def count_frames(path: Path) -> int:
    return len(read_clip(path))


# --- helpers ------------------------------------------------------------------------------------------------------
def luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] * 0.2126 + rgb[..., 1] * 0.7152 + rgb[..., 2] * 0.0722).astype(np.float32)


def box_blur(img: np.ndarray, radius: int) -> np.ndarray:
    """Separable box filter through cumulative sums (edges clamped)."""
    if radius <= 0:
        return img
    out = img.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        padded = np.pad(out, pad, mode="edge")
        csum = np.cumsum(padded, axis=axis)
        size = out.shape[axis]
        hi = np.take(csum, np.arange(2 * radius + 1, 2 * radius + 1 + size), axis=axis)
        lo = np.take(csum, np.arange(0, size), axis=axis)
        out = (hi - lo) / (2 * radius + 1)
    return out.astype(np.float32)


def otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins, range=(0.0, float(values.max()) or 1.0))
    hist = hist.astype(np.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mu1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between))])


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _write_zip(dest: Path, entries: List[Tuple[str, bytes]]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    tmp.replace(dest)
    return dest


# --- roto ---------------------------------------------------------------------------------------------------------
def hard_mattes(frames: List[np.ndarray], check: Check) -> List[np.ndarray]:
    stack = np.stack(frames)
    background = np.median(stack, axis=0)
    distance = np.sqrt(((stack - background) ** 2).sum(axis=-1))
    threshold = max(0.05, otsu(distance)) if distance.max() > 0 else 1.0
    mattes = []
    for d in distance:
        check()
        mattes.append(np.where(d > threshold, 255, 0).astype(np.uint8))
    return mattes


def run_roto(frames: List[np.ndarray], out_dir: Path, check: Check) -> Dict[str, Path]:
    hard = hard_mattes(frames, check)
    soft = []
    for i in range(len(hard)):
        window = hard[max(0, i - 1): i + 2]
        soft.append(np.mean(np.stack(window).astype(np.float32), axis=0).round().astype(np.uint8))
    return {
        "hard_mattes": _write_zip(out_dir / "hard_mattes.zip",
                                  [(f"hard_mattes/{i + 1:05d}.png", _png(m)) for i, m in enumerate(hard)]),
        "mb_mattes": _write_zip(out_dir / "mb_mattes.zip",
                                [(f"mb_mattes/{i + 1:05d}.png", _png(m)) for i, m in enumerate(soft)]),
    }


# --- tracking -----------------------------------------------------------------------------------------------------
def phase_shift(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    """The (dx, dy) in pixels by which image ``b`` is ``a`` moved (content moving right gives dx > 0)."""
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1])).astype(np.float32)
    fa = np.fft.fft2((a - a.mean()) * window)
    fb = np.fft.fft2((b - b.mean()) * window)
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-9)
    corr = np.abs(np.fft.ifft2(cross))
    py, px = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    dy = py - h if py > h // 2 else py
    dx = px - w if px > w // 2 else px
    return float(dx), float(dy)


def solve_camera(frames: List[np.ndarray], metadata: Dict[str, Any], check: Check) -> Dict[str, Any]:
    if len(frames) < 2:
        raise ClipError("tracking needs at least 2 frames to solve a camera")
    height, width = frames[0].shape[:2]
    lens = float(metadata.get("lens") or 35.0)
    sensor_w = float(metadata.get("sensor_width") or 36.0)
    sensor_h = float(metadata.get("sensor_height") or sensor_w * height / width)
    focal_px = lens / sensor_w * width
    vfov = math.degrees(2 * math.atan((sensor_h / 2) / lens))
    lum = [luminance(f) for f in frames]
    rx = ry = 0.0
    rows = []
    for i in range(len(frames)):
        check()
        if i:
            dx, dy = phase_shift(lum[i - 1], lum[i])
            ry += math.degrees(math.atan(dx / focal_px))
            rx += math.degrees(math.atan(dy / focal_px))
        rows.append({"frame": i + 1, "translate": [0.0, 0.0, 0.0], "rotate": [round(rx, 6), round(ry, 6), 0.0],
                     "focal": lens, "vfov": round(vfov, 6)})
    return {
        "method": "nodal pan/tilt from phase correlation (local Autopilot stand-in)",
        "rot_order": "ZXY", "units": {"rotate": "degrees", "focal": "mm", "aperture": "mm"},
        "width": width, "height": height, "focal": lens, "haperture": sensor_w, "vaperture": sensor_h,
        "fps": metadata.get("working_fps"), "frames": rows,
    }


def run_tracking(frames: List[np.ndarray], metadata: Dict[str, Any], out_dir: Path, check: Check) -> Dict[str, Path]:
    camera = solve_camera(frames, metadata, check)
    chan = "".join(
        f"{r['frame']} {r['translate'][0]:.6f} {r['translate'][1]:.6f} {r['translate'][2]:.6f} "
        f"{r['rotate'][0]:.6f} {r['rotate'][1]:.6f} {r['rotate'][2]:.6f} {r['vfov']:.6f}\n"
        for r in camera["frames"]
    )
    return {"tracking": _write_zip(out_dir / "tracking.zip", [
        ("tracking/camera.chan", chan.encode()),
        ("tracking/camera.json", json.dumps(camera, indent=1).encode()),
    ])}


# --- depth --------------------------------------------------------------------------------------------------------
def pseudo_depth(frames: List[np.ndarray], check: Check) -> List[np.ndarray]:
    height, width = frames[0].shape[:2]
    prior = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    raw = []
    for f in frames:
        check()
        lum = luminance(f)
        gy, gx = np.gradient(lum)
        sharp = box_blur(np.hypot(gx, gy), max(1, min(height, width) // 16))
        raw.append((sharp, prior))
    peak = max(float(s.max()) for s, _ in raw) or 1.0
    out = []
    for sharp, prior in raw:
        near = 0.6 * prior + 0.4 * (sharp / peak)
        out.append(np.clip(near * 255.0, 0, 255).astype(np.uint8))
    return out


def run_depth(frames: List[np.ndarray], export_type: str, out_dir: Path, check: Check) -> Dict[str, Path]:
    depth = pseudo_depth(frames, check)
    if export_type == "mov":
        return {"mov": write_mov(out_dir / "depth.mov", depth)}
    return {"jpg": _write_zip(out_dir / "depth.zip",
                              [(f"depth/{i + 1:05d}.jpg", _jpg(d)) for i, d in enumerate(depth)])}


def write_mov(dest: Path, gray: List[np.ndarray], fps: int = 24) -> Path:
    import av

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    height, width = gray[0].shape
    with av.open(str(tmp), mode="w", format="mov") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = "yuv420p"
        for g in gray:
            rgb = np.repeat(np.pad(g, ((0, height % 2), (0, width % 2)), mode="edge")[..., None], 3, axis=2)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(dest)
    return dest


# --- smart vectors ------------------------------------------------------------------------------------------------
def block_vectors(a: np.ndarray, b: np.ndarray, block: int = 8, search: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """Per-pixel forward motion (u right, v down) of ``a`` to ``b`` by block matching."""
    h, w = a.shape
    u = np.zeros((h, w), np.float32)
    v = np.zeros((h, w), np.float32)
    padded = np.pad(b, search, mode="edge")
    for y in range(0, h, block):
        for x in range(0, w, block):
            ref = a[y:y + block, x:x + block]
            bh, bw = ref.shape
            best, best_d = (0, 0), float("inf")
            for dy in range(-search, search + 1):
                for dx in range(-search, search + 1):
                    cand = padded[y + search + dy: y + search + dy + bh, x + search + dx: x + search + dx + bw]
                    d = float(np.abs(cand - ref).sum()) + 1e-6 * (abs(dx) + abs(dy))
                    if d < best_d:
                        best, best_d = (dx, dy), d
            u[y:y + bh, x:x + bw] = best[0]
            v[y:y + bh, x:x + bw] = best[1]
    return u, v


def exr_bytes(channels: Dict[str, np.ndarray]) -> bytes:
    """A minimal uncompressed scanline OpenEXR file of FLOAT channels (names sorted, as the format requires)."""
    names = sorted(channels)
    height, width = channels[names[0]].shape

    def attr(name: str, kind: str, data: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(data)) + data

    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = (struct.pack("<ii", 20000630, 2) + attr("channels", "chlist", chlist)
              + attr("compression", "compression", b"\0") + attr("dataWindow", "box2i", box)
              + attr("displayWindow", "box2i", box) + attr("lineOrder", "lineOrder", b"\0")
              + attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")
    line_bytes = 4 * width * len(names)
    start = len(header) + 8 * height
    offsets = b"".join(struct.pack("<Q", start + y * (8 + line_bytes)) for y in range(height))
    lines = []
    for y in range(height):
        row = b"".join(np.ascontiguousarray(channels[n][y], dtype="<f4").tobytes() for n in names)
        lines.append(struct.pack("<ii", y, line_bytes) + row)
    return header + offsets + b"".join(lines)


def run_vectors(frames: List[np.ndarray], out_dir: Path, check: Check) -> Dict[str, Path]:
    lum = [luminance(f) for f in frames]
    entries = []
    for i in range(len(lum)):
        check()
        nxt = lum[i + 1] if i + 1 < len(lum) else lum[i]
        u, v = block_vectors(lum[i], nxt)
        entries.append((f"vectors/{i + 1:05d}.exr", exr_bytes({"u": u, "v": v})))
    return {"exr": _write_zip(out_dir / "vectors.zip", entries)}


def run(service: str, frames: List[np.ndarray], spec: Dict[str, Any], out_dir: Path,
        check: Optional[Check] = None) -> Dict[str, Path]:
    """Run one inference; returns export_type -> file."""
    check = check or (lambda: None)
    if service == "roto":
        return run_roto(frames, out_dir, check)
    if service == "tracking":
        return run_tracking(frames, spec.get("metadata") or {}, out_dir, check)
    if service == "depth_map":
        return run_depth(frames, spec.get("export_type") or "jpg", out_dir, check)
    if service == "smart_vectors":
        return run_vectors(frames, out_dir, check)
    raise ClipError(f"unknown service {service!r}")
