"""What the local TensorPix computes: classical stand-ins for its models, on real frames, into a real video.

Upscale = Lanczos resampling, denoise = a 3x3 median, sharpen = unsharp mask, grain = seeded noise, fps
interpolation = blended in-between frames, playback speed = the output frame rate, stabilisation = recorded only.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from tether.encode import frame_rgb, tag_stream, video_frame

PREVIEW_FRAMES = 5


class ClipError(Exception):
    pass


def probe(path: Path) -> Dict[str, Any]:
    """Width, height, frame count and rate of a movie, or ClipError."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipError("the file has no video track")
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            rate = float(stream.average_rate or stream.guessed_rate or 24)
            return {"width": stream.codec_context.width, "height": stream.codec_context.height, "n_frames": frames,
                    "framerate": round(rate, 3), "codec_id": stream.codec_context.name}
    except (av.FFmpegError, ValueError, IndexError) as exc:  # type: ignore[attr-defined,unused-ignore]
        raise ClipError(f"not a video this service can read ({type(exc).__name__})") from None


def read_frames(path: Path) -> Tuple[List[np.ndarray], float]:
    import av

    frames: List[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 24)
        for frame in container.decode(stream):
            frames.append(frame_rgb(frame))
    if not frames:
        raise ClipError("the video has no frames")
    return frames, rate


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def _filtered(rgb: np.ndarray, median: bool, sharpen: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    img = Image.fromarray(rgb)
    if median:
        img = img.filter(ImageFilter.MedianFilter(3))
    if sharpen > 0:
        img = img.filter(ImageFilter.UnsharpMask(radius=2, percent=int(50 + 3 * sharpen), threshold=2))
    return np.asarray(img)


def enhance(source: Path, dest: Path, options: Dict[str, Any], models: List[Dict[str, Any]],
            progress: Callable[[float], None], check: Callable[[], None]) -> Dict[str, Any]:
    """Write the enhanced video to ``dest``; return its facts (width, height, n_frames, framerate, codec_id)."""
    import av

    frames, rate = read_frames(source)
    start = int(options.get("start_frame") or 0)
    end = options.get("end_frame")
    end = len(frames) - 1 if end is None else min(int(end), len(frames) - 1)
    if start > end:
        raise ClipError(f"start_frame {start} is past the video's last frame {len(frames) - 1}")
    frames = frames[start:end + 1]
    if options.get("preview"):
        frames = frames[:PREVIEW_FRAMES]
    height, width = frames[0].shape[:2]
    factor = 1.0
    for model in models:
        factor *= float(model.get("upscale_factor") or 1)
    resolution = options.get("output_resolution")
    if resolution and resolution != -1:
        out_h = int(resolution)
        out_w = round(width * out_h / height)
    else:
        out_w, out_h = round(width * factor), round(height * factor)
    out_w += out_w % 2
    out_h += out_h % 2
    median = any((m.get("task") == 2) for m in models)
    sharpen = float(options.get("sharpen_strength") or 0)
    grain = float(options.get("grain") or 0)
    fps_factor = round(float(options.get("fps_interpolation_factor") or 1))
    for model in models:
        fps_factor *= round(float(model.get("fps_boost_factor") or 1))
    out_rate = Fraction(rate * fps_factor * float(options.get("playback_speed") or 1)).limit_denominator(1001)
    rng = np.random.default_rng(7)
    container_name = options.get("container") or "mp4"
    codec = options.get("codec") or "libx264"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    written = 0
    with av.open(str(tmp), mode="w", format="matroska" if container_name == "mkv" else container_name) as out:
        stream: Any = out.add_stream(codec, rate=out_rate)  # a codec chosen at run time: typed as any stream
        stream.width, stream.height = out_w, out_h
        stream.pix_fmt = "yuv422p10le" if codec == "prores_ks" else "yuv420p"
        tag_stream(stream)
        previous: Optional[np.ndarray] = None
        for index, rgb in enumerate(frames):
            check()
            big = _resize(rgb, out_w, out_h).astype(np.float32)
            big = _filtered(big.clip(0, 255).astype(np.uint8), median, sharpen).astype(np.float32)
            if grain > 0:
                big += rng.normal(0, grain * 0.2, big.shape)
            current = big.clip(0, 255)
            steps: List[np.ndarray] = []
            if previous is not None and fps_factor > 1:
                steps += [previous + (current - previous) * k / fps_factor for k in range(1, fps_factor)]
            steps.append(current)
            for image in steps:
                frame = video_frame(image.astype(np.uint8), stream.pix_fmt)
                for packet in stream.encode(frame):
                    out.mux(packet)
                written += 1
            previous = current
            progress(100.0 * (index + 1) / len(frames))
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(dest)
    return {"width": out_w, "height": out_h, "n_frames": written, "framerate": float(out_rate),
            "codec_id": codec, "bitrate": None}


__all__ = ["PREVIEW_FRAMES", "ClipError", "enhance", "probe", "read_frames"]
