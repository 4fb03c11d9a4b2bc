"""What the local Clipzy engine computes: probing a video, and a real (classical) style transfer.

The method is Reinhard et al., "Color Transfer between Images" (2001): every pixel is taken to Ruderman's
decorrelated l-alpha-beta space (RGB -> LMS -> log10 -> l-alpha-beta), and each of its three channels in the source
clip is shifted and scaled so that its mean and standard deviation match those of the template clip's frames; then
back to RGB. The statistics are taken over the whole clip (not per frame) so the look does not flicker; they are
what ``style_json`` reports. The output is an H.264 MP4 (yuv420p) written with PyAV.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import av
import numpy as np
from tether.encode import frame_rgb, tag_stream, video_frame

_RGB2LMS = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
_LMS2RGB = np.linalg.inv(_RGB2LMS)
_LMS2LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array(
    [[1, 1, 1], [1, 1, -2], [1, -1, 0]], dtype=np.float64)
_LAB2LMS = np.linalg.inv(_LMS2LAB)
_EPS = 1.0 / 255.0
MAX_TEMPLATE_FRAMES = 48


class VideoError(Exception):
    """The file is not a video this engine can read."""


def probe(path: Path) -> Dict[str, Any]:
    """duration, fps, resolution, frame count and codec of the first video stream."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            frames = int(stream.frames or 0)
            if not frames:
                frames = sum(1 for _ in container.decode(stream))
            duration: Optional[float] = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            if (duration is None or duration <= 0) and fps:
                duration = frames / fps
            width, height = stream.codec_context.width, stream.codec_context.height
            return {"duration_seconds": round(duration, 4) if duration else None,
                    "fps": round(fps, 4) if fps else None, "width": width, "height": height,
                    "resolution": f"{width}x{height}", "frame_count": frames,
                    "codec": stream.codec_context.name, "has_audio": bool(container.streams.audio)}
    except VideoError:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError(f"cannot read it as a video ({exc})") from None


def read_frames(path: Path, limit: Optional[int] = None) -> Tuple[List[np.ndarray], Optional[Fraction]]:
    out: List[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        for frame in container.decode(stream):
            out.append(frame_rgb(frame))
            if limit is not None and len(out) >= limit:
                break
    return out, Fraction(rate) if rate else None


def to_lab(rgb: np.ndarray) -> np.ndarray:
    lms = np.clip(rgb.reshape(-1, 3).astype(np.float64) / 255.0, _EPS, None) @ _RGB2LMS.T
    return np.log10(np.clip(lms, _EPS, None)) @ _LMS2LAB.T


def from_lab(lab: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    lms = np.power(10.0, lab @ _LAB2LMS.T)
    rgb = lms @ _LMS2RGB.T
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(shape)


def statistics(frames: List[np.ndarray]) -> Dict[str, List[float]]:
    lab = np.concatenate([to_lab(f) for f in frames])
    rgb = np.concatenate([f.reshape(-1, 3) for f in frames]).astype(np.float64)
    return {"lab_mean": lab.mean(axis=0).round(6).tolist(), "lab_std": lab.std(axis=0).round(6).tolist(),
            "rgb_mean": rgb.mean(axis=0).round(3).tolist(), "rgb_std": rgb.std(axis=0).round(3).tolist()}


def transfer(frame: np.ndarray, source: Dict[str, List[float]], template: Dict[str, List[float]]) -> np.ndarray:
    mu_s, sd_s = np.array(source["lab_mean"]), np.array(source["lab_std"])
    mu_t, sd_t = np.array(template["lab_mean"]), np.array(template["lab_std"])
    scale = sd_t / np.where(sd_s > 1e-6, sd_s, 1.0)  # a flat source channel is only shifted, never blown up
    lab = (to_lab(frame) - mu_s) * scale + mu_t
    return from_lab(lab, frame.shape)


def write_h264(frames: List[np.ndarray], rate: Fraction, dest: Path) -> None:
    height, width = frames[0].shape[:2]
    even_h, even_w = height - height % 2, width - width % 2  # yuv420p needs even sizes
    tmp = dest.with_name(dest.name + ".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        tag_stream(stream)
        for pixels in frames:
            frame = video_frame(np.ascontiguousarray(pixels[:even_h, :even_w]))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(dest)


Stage = Callable[[str, int], None]


def style_clip(source: Path, template: Path, dest: Path, stage: Stage) -> Dict[str, Any]:
    """Style ``source`` like ``template`` into ``dest`` (H.264 MP4); return the style_json.

    ``stage(name, percent)`` is called as the work moves on; it may block (the tests hold a job at a stage).
    """
    stage("video_analysis", 5)
    frames, rate = read_frames(source)
    if not frames:
        raise VideoError("the source video has no frames")
    stage("style_extraction", 25)
    template_frames, _ = read_frames(template, MAX_TEMPLATE_FRAMES)
    if not template_frames:
        raise VideoError("the template video has no frames")
    target = statistics(template_frames)
    own = statistics(frames)
    stage("style_application", 50)
    styled = [transfer(f, own, target) for f in frames]
    stage("rendering", 80)
    write_h264(styled, rate or Fraction(24), dest)
    return {"method": "reinhard_color_transfer",
            "description": "per-channel mean/std matching in Ruderman l-alpha-beta space (Reinhard et al. 2001)",
            "color_space": "lab", "template": target, "source": own,
            "template_frames_sampled": len(template_frames), "frames": len(frames)}
