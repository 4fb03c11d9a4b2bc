"""Small test clips the Nuke tests send to the local video services (made here, never downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import av
import numpy as np


def bar_movie(path: Path, frames: int = 8, rgb: Tuple[int, int, int] = (20, 20, 20), size: Tuple[int, int] = (64, 48),
              rate: int = 24) -> Path:
    """An H.264 .mp4 of ``frames`` flat ``rgb`` frames with a bright bar one step right per frame, so a frame's
    number can be read back from its pixels."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            pixels = np.empty((height, width, 3), np.uint8)
            pixels[:] = rgb
            pixels[:, i * 6:i * 6 + 6] = 235
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
