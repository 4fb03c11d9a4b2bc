"""Encoding a 100-frame 2K EXR plate for a video service: Tether vs ``oiiotool`` + ``ffmpeg``, side by side.

    .venv/bin/python benchmarks/bench_encode.py [--frames 100] [--size 2048x1080] [--repeat 3] [--json]

The plate: half-float, ZIP-compressed ACEScg EXR frames (a graded gradient with film-like noise and a moving disc,
so the encoder has real work), written once with OpenImageIO into a temporary folder.

  (a) the baseline, the same conversion with the command-line tools: ``oiiotool`` reads each EXR, converts ACEScg to
      sRGB-encoded Rec.709 through OCIO and writes 8-bit uncompressed TIFFs (one ``--frames`` loop, one process),
      then ``ffmpeg`` encodes them with the same libx264 settings (CRF 14, preset medium, yuv420p, BT.709 matrix,
      limited range through ``scale=out_color_matrix=bt709``, accurate rounding). The system ``oiiotool`` links
      OCIO 2.1, which cannot open
      ``ocio://studio-config-latest``: it is given a config file with the studio config's two colour spaces copied
      in (the same transforms);
  (b) Tether: :func:`tether.encode.encode_movie` with :func:`tether.colour.send_transform` of the plate (the studio
      config), reading, converting and encoding in one process with the next frame read on a worker thread.

Without ``oiiotool``/``ffmpeg`` (``apt-get install -y ffmpeg openimageio-tools``) the baseline cannot run and the
script says so. The sides alternate; medians are compared. Target: b / a <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "core")]

from tether.colour import BUILTIN_CONFIG, load_config, send_transform  # noqa: E402
from tether.encode import CRF, PRESET, encode_movie  # noqa: E402

SOURCE, TARGET = "ACEScg", "sRGB Encoded Rec.709 (sRGB)"


def make_plate(folder: Path, frames: int, width: int, height: int) -> List[Path]:
    import numpy as np
    import OpenImageIO as oiio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 0.8, y / height * 0.5 + 0.05, (1 - x / width) * 0.3 + 0.02], axis=-1)
    paths = []
    for k in range(frames):
        pixels = base * (1 + 0.1 * np.sin(k / 7.0)) + rng.normal(0, 0.01, base.shape).astype(np.float32)
        cx, cy = width * (0.2 + 0.6 * k / max(frames - 1, 1)), height / 2
        pixels[(x - cx) ** 2 + (y - cy) ** 2 < (height / 8) ** 2] = (1.5, 1.2, 0.9)
        path = folder / f"plate.{1001 + k:04d}.exr"
        spec = oiio.ImageSpec(width, height, 3, oiio.HALF)
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(path))
        out.open(str(path), spec)
        out.write_image(pixels)
        out.close()
        paths.append(path)
    return paths


def mini_config(path: Path) -> Path:
    """The studio config's two colour spaces in a config OCIO 2.1 (the system oiiotool's) can read."""
    import PyOpenColorIO as ocio

    studio = load_config(BUILTIN_CONFIG)
    config = ocio.Config.CreateRaw()
    config.setMajorVersion(2)
    config.setMinorVersion(1)
    for name in (SOURCE, TARGET):
        original = studio.getColorSpace(name)
        copy = ocio.ColorSpace(name=name)
        for direction in (ocio.COLORSPACE_DIR_TO_REFERENCE, ocio.COLORSPACE_DIR_FROM_REFERENCE):
            transform = original.getTransform(direction)
            if transform is not None:
                copy.setTransform(transform, direction)
        config.addColorSpace(copy)
    config.setRole("scene_linear", SOURCE)
    config.setRole("default", SOURCE)
    path.write_text(config.serialize())
    return path


def baseline(files: List[Path], config: Path, work: Path, width: int, height: int) -> float:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    first, last = 1001, 1001 + len(files) - 1
    pattern = str(files[0].parent / "plate.#.exr")
    start = time.perf_counter()
    subprocess.run(["oiiotool", "--colorconfig", str(config), "--frames", f"{first}-{last}", pattern,
                    "--colorconvert", SOURCE, TARGET, "-d", "uint8", "--compression", "none",
                    "-o", str(work / "display.#.tif")], check=True, capture_output=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-framerate", "24", "-start_number", str(first),
                    "-i", str(work / "display.%04d.tif"), "-c:v", "libx264", "-crf", str(CRF), "-preset", PRESET,
                    "-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int",
                    "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_range", "tv", str(work / "baseline.mp4")],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def tether(files: List[Path], work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    encode_movie(files, work / "tether.mp4", send_transform(str(files[0]), SOURCE, BUILTIN_CONFIG), fps=24,
                 first_frame=1001)
    return time.perf_counter() - start


def same_pictures(a: Path, b: Path) -> float:
    """The mean absolute difference of the two movies' decoded frames, in 8-bit code values: both sides did the
    same conversion (x264 builds differ, so not bit for bit)."""
    import av
    import numpy as np
    from tether.encode import frame_rgb

    def frames(path: Path) -> List[np.ndarray]:
        with av.open(str(path)) as container:
            return [frame_rgb(f).astype(np.float32) for f in container.decode(video=0)]

    pairs = list(zip(frames(a), frames(b)))
    return round(float(np.mean([np.abs(x - y).mean() for x, y in pairs])), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="2048x1080")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = [tool for tool in ("oiiotool", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        print(f"{', '.join(missing)} not installed: apt-get install -y ffmpeg openimageio-tools", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="tether-bench-encode-") as tmp:
        root = Path(tmp)
        files = make_plate(root / "plate", args.frames, width, height)
        config = mini_config(root / "studio-mini.ocio")
        times: Dict[str, List[float]] = {"baseline": [], "tether": []}
        for _ in range(args.repeat):
            times["baseline"].append(baseline(files, config, root / "a", width, height))
            times["tether"].append(tether(files, root / "b"))
        sizes = {"baseline": (root / "a" / "baseline.mp4").stat().st_size,
                 "tether": (root / "b" / "tether.mp4").stat().st_size}
        agree = same_pictures(root / "a" / "baseline.mp4", root / "b" / "tether.mp4")
    medians = {side: statistics.median(values) for side, values in times.items()}
    report = {"frames": args.frames, "size": args.size, "repeat": args.repeat,
              "seconds": {side: [round(v, 2) for v in values] for side, values in times.items()},
              "median_s": {side: round(v, 2) for side, v in medians.items()}, "movie_bytes": sizes,
              "mean_abs_difference_8bit": agree,
              "ratio_tether_to_baseline": round(medians["tether"] / medians["baseline"], 3), "target": 1.5}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.frames} frames {args.size}: oiiotool+ffmpeg {medians['baseline']:.2f} s, "
              f"tether {medians['tether']:.2f} s -> ratio {report['ratio_tether_to_baseline']} (target <= 1.5); "
              f"movies {sizes['baseline']} / {sizes['tether']} bytes, differing by {agree} of 255 on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
