"""A plate's frames as one H.264 movie for a video service, and a returned movie read back onto the plate.

What the vendors' own clients send is a movie (Slapshot's ComfyUI node: only .mp4/.mov; TensorPix and Clipzy take
video files), so a sequence is sent as one: every frame of the sent range (handles included) read through
OpenImageIO (EXR, DPX, PNG, TIFF, JPEG), converted to a display space through OpenColorIO
(:class:`tether.colour.SendTransform`), and encoded with PyAV: H.264 High, 8-bit 4:2:0, BT.709 matrix, limited
range (what any decoder assumes for HD), CRF :data:`CRF`. Movie frame 1 is the first sent file frame
(:func:`frame_map`, recorded with the job). An odd width or height is padded by one edge pixel (4:2:0
needs even sizes); the padding is recorded.

The next frame is read and converted on a worker thread while the current one is encoded (OpenImageIO and OCIO
release the GIL). ``progress(done, total)`` is called per frame; returning False stops and removes the partial file
(:class:`~tether.errors.CancelledByUser`).

OpenImageIO, OpenColorIO, PyAV and numpy are the ``media`` extra: :func:`missing_media` says which is absent, so a
caller can fall back (Autopilot takes the frames as a zip) or say what to install.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from .colour import ColourChoice, SendTransform
from .errors import CancelledByUser, InputError
from .progress import Progress

if TYPE_CHECKING:
    from .nukeimport.plate import PlateFacts

CRF = 14  # visually lossless for 8-bit H.264: the service sees the plate, not the encoder
PRESET = "medium"
# (module, name, distribution): the ``media`` extra, as imported, as named to people, as pip and wheels name it
MEDIA_MODULES = (("av", "PyAV", "av"), ("numpy", "numpy", "numpy"), ("OpenImageIO", "OpenImageIO", "OpenImageIO"),
                 ("PyOpenColorIO", "OpenColorIO", "opencolorio"))
INSTALL_HINT = "pip install 'tether[media]' into it; for Nuke, `tether install nuke` deploys them"
# what a Python without them cannot do (the installer and doctor say it too)
MEDIA_LOSS = ("Autopilot is sent an image sequence as a zip of its frames, in their own colour space, and TensorPix "
              "and Clipzy refuse a sequence (movies are sent as before)")


def missing_media() -> Optional[str]:
    """None when a sequence can be encoded here; else which libraries this Python lacks, and how to get them."""
    missing = []
    for module, name, _ in MEDIA_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    return f"this Python has no {', '.join(missing)} ({INSTALL_HINT})"


def frame_map(first_frame: int, count: int) -> Dict[str, int]:
    """Movie frame k (1-based, as Nuke numbers a movie's frames) is file frame ``file_first + k - 1``."""
    return {"movie_first": 1, "file_first": first_frame, "count": count}


@dataclass
class EncodedMovie:
    """The movie made from a plate's frames, and how its frames map back."""

    path: Path
    frames: int
    first_frame: int  # the file frame of movie frame 1
    width: int  # the plate's; the movie is ``padded`` wider/taller where that was odd
    height: int
    fps: float
    transform: SendTransform
    padded: Tuple[int, int] = (0, 0)
    sources: List[str] = field(default_factory=list)

    def record(self) -> Dict[str, Any]:
        """What a job records about what was sent: the colour transform and the frame mapping."""
        return {"colour": self.transform.to_dict(), "frame_map": frame_map(self.first_frame, self.frames),
                "sent_as": "mp4",
                **({"padded": list(self.padded)} if any(self.padded) else {})}


# --- reading and converting one frame --------------------------------------------------------------------------------
class _Converter:
    """Reads a frame through OpenImageIO and converts it to 8-bit display RGB through OCIO (one per encode)."""

    def __init__(self, transform: SendTransform) -> None:
        import numpy as np
        import OpenImageIO as oiio
        import PyOpenColorIO as ocio

        self.np, self.oiio, self.ocio = np, oiio, ocio
        self.transform = transform
        self._processor: Any = None if transform.identity else transform.processor()
        self._cpu: Dict[Any, Any] = {}

    def _cpu_for(self, depth: Any) -> Any:
        cpu = self._cpu.get(depth)
        if cpu is None:
            cpu = self._cpu[depth] = self._processor.getOptimizedCPUProcessor(
                depth, self.ocio.BIT_DEPTH_UINT8, self.ocio.OPTIMIZATION_DEFAULT)
        return cpu

    def __call__(self, path: str) -> Any:
        np, oiio, ocio = self.np, self.oiio, self.ocio
        inp = oiio.ImageInput.open(path)
        if inp is None:
            raise InputError(f"{path} cannot be read as an image ({oiio.geterror() or 'unknown format'}): render or "
                             "copy that frame again")
        try:
            spec = inp.spec()
            channels = min(spec.nchannels, 3)
            if self._processor is None and spec.format == oiio.UINT8:
                kind, depth, size = oiio.UINT8, None, 1
            elif spec.format == oiio.HALF:
                kind, depth, size = oiio.HALF, ocio.BIT_DEPTH_F16, 2
            else:
                kind, depth, size = oiio.FLOAT, ocio.BIT_DEPTH_F32, 4
            pixels = inp.read_image(0, 0, 0, channels, kind)
            if pixels is None or not hasattr(pixels, "shape"):
                raise InputError(f"{path} cannot be read ({inp.geterror() or 'no pixels'}): render or copy that "
                                 "frame again")
        finally:
            inp.close()
        pixels = pixels.reshape(spec.height, spec.width, channels)
        if channels < 3:  # grey (and grey + alpha): the first channel on all three
            pixels = np.repeat(pixels[:, :, :1], 3, axis=2)
        if depth is None:  # display-referred 8-bit in, no conversion
            return np.ascontiguousarray(pixels)
        if self._processor is None:  # display-referred but deeper than 8 bits
            return (np.clip(pixels.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        pixels = np.ascontiguousarray(pixels)
        out = np.empty((spec.height, spec.width, 3), np.uint8)
        width, height = spec.width, spec.height
        src = ocio.PackedImageDesc(pixels, width, height, 3, depth, size, 3 * size, 3 * size * width)
        dst = ocio.PackedImageDesc(out, width, height, 3, ocio.BIT_DEPTH_UINT8, 1, 3, 3 * width)
        self._cpu_for(depth).apply(src, dst)
        return out


# --- RGB <-> video frames, the same way everywhere (the local services too) ----------------------------------------
def _accurate() -> Any:
    from av.video.reformatter import Interpolation

    # swscale's fast path truncates: without these flags every decode loses about one code value of 255
    return Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def video_frame(rgb: Any, pix_fmt: str = "yuv420p") -> Any:
    """An 8-bit RGB array as a BT.709, limited-range frame (4:2:0 unless ``pix_fmt``), rounded (not truncated)."""
    import av

    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG", interpolation=_accurate())


def tag_stream(stream: Any) -> None:
    """Say in the stream what :func:`video_frame` made (BT.709 matrix, limited range), so decoders agree."""
    from av.video.reformatter import ColorRange, Colorspace

    stream.codec_context.colorspace = Colorspace.ITU709
    stream.codec_context.color_range = ColorRange.MPEG


def frame_rgb(frame: Any) -> Any:
    """A decoded frame as 8-bit RGB (HxWx3), rounded: an untouched 8-bit value survives encode and decode."""
    return frame.reformat(format="rgb24", interpolation=_accurate()).to_ndarray()


# --- the movie -----------------------------------------------------------------------------------------------------
def encode_movie(files: Sequence[Union[str, Path]], out: Path, transform: SendTransform, *,
                 fps: Optional[float] = None, first_frame: int = 1, progress: Optional[Progress] = None,
                 crf: int = CRF, preset: str = PRESET) -> EncodedMovie:
    """Encode ``files`` (one frame each, in order) to ``out`` (.mp4), converted by ``transform``.

    Raises :class:`InputError` for a frame that cannot be read or whose size differs from the first, and
    :class:`CancelledByUser` when ``progress`` returns False; nothing is left at ``out`` either way.
    """
    import av
    import numpy as np

    names = [os.fspath(f) for f in files]
    if not names:
        raise InputError("no frames to encode")
    convert = _Converter(transform)
    rate = Fraction(fps or 24).limit_denominator(1001)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tether-encode")
    try:
        ahead: Future[Any] = pool.submit(convert, names[0])
        first = ahead.result()
        height, width = first.shape[:2]
        pad = (width % 2, height % 2)
        with av.open(str(tmp), "w", format="mp4") as container:
            stream: Any = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width + pad[0], height + pad[1], "yuv420p"
            stream.options = {"crf": str(crf), "preset": preset}
            tag_stream(stream)
            for index, name in enumerate(names):
                rgb = ahead.result()
                if index + 1 < len(names):
                    ahead = pool.submit(convert, names[index + 1])
                if rgb.shape[:2] != (height, width):
                    raise InputError(f"{name} is {rgb.shape[1]}x{rgb.shape[0]} but the clip's first frame is "
                                     f"{width}x{height}: a movie has one size; fix or drop that frame")
                if any(pad):
                    rgb = np.pad(rgb, ((0, pad[1]), (0, pad[0]), (0, 0)), mode="edge")
                frame = video_frame(rgb)
                frame.pts = index  # in the codec's time base, 1/rate: movie frame index + 1 is this frame
                for packet in stream.encode(frame):
                    container.mux(packet)
                if progress is not None and progress(index + 1, len(names)) is False:
                    raise CancelledByUser("the encode was cancelled")
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return EncodedMovie(path=out, frames=len(names), first_frame=first_frame, width=width, height=height,
                        fps=float(rate), transform=transform, padded=pad, sources=names)


def movie_for_upload(plate: PlateFacts, folder: Path, progress: Optional[Progress] = None,
                     colour: Optional[ColourChoice] = None) -> Union[Path, EncodedMovie]:
    """What a movie-only service (TensorPix, Clipzy) is sent of a plate, from the Nuke panel and the command line
    alike: a movie plate as it is (a Path); a sequence's sent frames encoded to H.264 in ``folder``, in a display
    space from ``colour`` (default: the plate's own, its Read's), as an :class:`EncodedMovie` whose
    :meth:`~EncodedMovie.record` the job keeps so the result reads back on the plate."""
    if plate.is_movie:
        return Path(plate.file)
    lacking = missing_media()
    if lacking is not None:
        raise InputError(f"{plate.node} ({Path(plate.file).name}) is an image sequence and the service takes a "
                         f"movie, but {lacking}; or render the plate to a .mov/.mp4 and send that")
    missing = plate.missing_frames()
    if missing:
        raise InputError(f"{plate.node}: frames {missing[:5]} are missing from {plate.pattern.path}")
    transform = (colour or plate.colour).resolve(plate.file)
    return encode_movie(plate.files_to_send(), folder / f"{plate.node}.mp4", transform, fps=plate.fps,
                        first_frame=plate.sent_range[0], progress=progress)


def read_movie(path: Path, transform: Optional[SendTransform] = None) -> Iterator[Any]:
    """Each frame of a movie as float32 HxWx3 RGB, put back through ``transform`` (a sent movie's
    :meth:`~tether.colour.SendTransform.inverse`: the plate's colour space again; None: display values 0..1)."""
    import av
    import numpy as np

    cpu = transform.processor().getDefaultCPUProcessor() if transform is not None and not transform.identity \
        else None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            rgb = frame_rgb(frame).astype(np.float32) / 255.0
            if cpu is not None:
                cpu.applyRGB(rgb)
            yield rgb


__all__ = ["CRF", "INSTALL_HINT", "MEDIA_LOSS", "MEDIA_MODULES", "PRESET", "EncodedMovie", "encode_movie", "frame_map",
           "frame_rgb", "missing_media", "movie_for_upload", "read_movie", "tag_stream", "video_frame"]
