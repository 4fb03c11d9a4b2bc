"""Downloading and importing a 1000-frame matte sequence vs a raw loopback copy of the same sequence, side by side.

    .venv/bin/python benchmarks/bench_matte_import.py [--frames 1000] [--small 250] [--repeat 7] [--json]

The local Autopilot runs in its own process (so its memory and CPU are not counted as ours). A real roto job is
submitted to it over HTTP (a synthetic plate: a moving disc on a textured ground, 256x144 by default), and the
service's own ``hard_mattes`` result (a zip of 8-bit PNG mattes, 0/255) is what both sides fetch through the same
presigned GET URL:

  (a) the baseline, a raw loopback copy of the sequence: a plain ``httpx`` stream of the zip into one file, then a
      bare ``zipfile.ZipFile.extractall``: the same bytes over loopback, ending as the 1000 frame files a Read
      needs, with no checks, no atomicity and no import;
  (b) Tether: ``AutopilotClient.fetch_results`` (job lookup, result link, streamed download with its size check
      and fsync, every zip entry checked before one is written, unpacked into a fresh folder swapped in whole,
      classification into a matte sequence) and ``tether.nukeimport.import_to_nk`` (describe the import, write the
      .nk);
  (z) informative: the zip alone streamed into one file. No import can come near it: it creates one file where the
      sequence is 1000, and on ext4 creating the files is most of the cost.

The sides alternate, with ``os.sync()`` before each so one side's writeback does not land in the other's time;
``--repeat`` times each; medians are compared. Target: b / a <= 1.3.

Memory, in a fresh child process per frame count (after one warm-up import, so lazy imports and connection pools
are not counted): peak RSS growth during (b) from Linux's ``/proc/self/status`` (``VmHWM`` reset through
``/proc/self/clear_refs``; falls back to ``resource.getrusage`` ``ru_maxrss``, which cannot be reset), and the
Python heap peak from ``tracemalloc`` in a separate pass. "Flat": from the ``--small`` to the ``--frames`` run, each
added frame raises the heap peak by less than half of its own bytes (the payload streams through; only per-frame
bookkeeping such as the zip's entry list and the sequence's file list grows).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import httpx
from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
from tether.autopilot.submit import ServiceChoice, build_payload
from tether.nukeimport import PlateFacts, import_to_nk

MiB = 1 << 20
FIRST = 1001  # plate frame of the service's output frame 1


# --- the service, in its own process -------------------------------------------------------------------------------
def serve(state_dir: Path) -> None:
    """``--serve``: the local Autopilot on a free port; prints the port, stops when stdin closes."""
    from tether_services.server import LocalServices

    with LocalServices(port=0, state_dir=state_dir, services=["autopilot"]) as services:
        services.service("autopilot").frame_limit = 10 ** 9  # the benchmark submits more than the free tier
        print(services.port, flush=True)
        sys.stdin.read()


def start_service(state_dir: Path) -> Tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(state_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise SystemExit("the local Autopilot did not start (see the error above)")
    return proc, f"http://127.0.0.1:{int(line)}/autopilot"


# --- data ----------------------------------------------------------------------------------------------------------
def make_plate(dest: Path, frames: int, width: int, height: int) -> Path:
    """A zip of PNG frames: a static noisy ground and a bright speckled disc crossing it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    ground = (rng.random((height, width, 3)) * 0.4 * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    radius = height // 5
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(frames):
            cx = radius + (i * 3) % max(1, width - 2 * radius)
            cy = height // 2 + int(height / 4 * np.sin(i / 15.0))
            img = ground.copy()
            # the disc, plus bright specks over the whole frame: the matte is mostly 1-bit noise that PNG cannot
            # squeeze (~4 KiB a frame at 256x144), so buffering the payload would show in the memory figures
            speck = ((xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2) | (rng.random((height, width)) < 0.3)
            img[speck] = (240, 230, 220)
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG", compress_level=1)
            archive.writestr(f"plate/plate.{FIRST + i:04d}.png", buf.getvalue())
    return dest


def submit_roto(client: AutopilotClient, plate_zip: Path, frames: int, timeout: float = 600.0) -> str:
    key = client.upload(plate_zip, asset_type="video")
    payload = build_payload(key, ServiceChoice(roto=True), output_path="bench",
                            job_metadata={"first_frame": FIRST, "shot": f"bench{frames}"})
    job_id = client.create_job(payload).id
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        if job.state.finished:
            if job.error or job.counts.get("completed") != job.counts.get("tasks"):
                raise SystemExit(f"the roto job {job_id} did not complete: {job.error or job.raw_state}")
            return job_id
        if time.monotonic() > deadline:
            raise SystemExit(f"the roto job {job_id} is still {job.raw_state} after {timeout:.0f} s")
        time.sleep(0.2)


def plate_facts(root: Path, frames: int, width: int, height: int) -> PlateFacts:
    last = FIRST + frames - 1
    return PlateFacts(node="Plate1", file=str(root / "plate" / "plate.####.png"), first=FIRST, last=last,
                      origfirst=FIRST, origlast=last, width=width, height=height, sent=(FIRST, last))


# --- (a) raw and (b) Tether ----------------------------------------------------------------------------------------
def raw_copy(client: AutopilotClient, job_id: str, dest: Path) -> Tuple[float, int]:
    """(z) the same presigned GET, streamed into one file with a plain httpx client; the link is asked for untimed
    (Tether's time includes its own job lookup and link request)."""
    link = client.result_link(job_id, "hard_mattes")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "hard_mattes.zip"
    with httpx.Client(timeout=60.0) as plain:
        started = time.perf_counter()
        with plain.stream("GET", link) as response, open(target, "wb") as out:
            response.raise_for_status()
            for chunk in response.iter_raw(MiB):
                out.write(chunk)
        elapsed = time.perf_counter() - started
    return elapsed, target.stat().st_size


def raw_copy_extract(client: AutopilotClient, job_id: str, dest: Path) -> Tuple[float, int]:
    """(a) the baseline: the raw copy, then a plain ``ZipFile.extractall`` (no checks, no classifying)."""
    elapsed, _ = raw_copy(client, job_id, dest)
    started = time.perf_counter()
    with zipfile.ZipFile(dest / "hard_mattes.zip") as archive:
        archive.extractall(dest / "out")
        count = len(archive.namelist())
    return elapsed + time.perf_counter() - started, count


def tether_import(client: AutopilotClient, job_id: str, dest: Path, plate: PlateFacts) -> Tuple[int, Path]:
    results = client.fetch_results(job_id, dest, ["hard_mattes"])
    nk, description = import_to_nk(plate, results, dest / "import.nk", job_id=job_id)
    frames = sum(len(seq.frames) for seq in results.mattes)
    if not results.mattes or not nk.is_file() or not description.nodes:
        raise SystemExit(f"the import found no matte sequence: {results.summary()}")
    return frames, nk


def timed_tether(client: AutopilotClient, job_id: str, dest: Path, plate: PlateFacts) -> Tuple[float, int]:
    started = time.perf_counter()
    frames, _ = tether_import(client, job_id, dest, plate)
    return time.perf_counter() - started, frames


def flush() -> None:
    if hasattr(os, "sync"):
        os.sync()


def compare(client: AutopilotClient, job_id: str, work: Path, plate: PlateFacts, repeat: int,
            frames: int) -> Dict[str, Any]:
    times: Dict[str, List[float]] = {"raw": [], "zip": [], "tether": []}
    size = 0
    for n in range(repeat):
        order = ("raw", "zip", "tether") if n % 2 == 0 else ("tether", "zip", "raw")
        for side in order:
            dest = work / f"{side}{n}"
            flush()
            if side == "raw":
                elapsed, got = raw_copy_extract(client, job_id, dest)
                if got != frames:
                    raise SystemExit(f"the raw copy unpacked {got} entries, expected {frames}")
            elif side == "zip":
                elapsed, size = raw_copy(client, job_id, dest)
            else:
                elapsed, got = timed_tether(client, job_id, dest, plate)
                if got != frames:
                    raise SystemExit(f"Tether imported {got} matte frames, expected {frames}")
            times[side].append(elapsed)
            shutil.rmtree(dest, ignore_errors=True)
    a, b, z = (statistics.median(times[k]) for k in ("raw", "tether", "zip"))
    return {"frames": frames, "zip_bytes": size, "raw_s": times["raw"], "tether_s": times["tether"],
            "zip_s": times["zip"], "raw_median_s": a, "tether_median_s": b, "zip_median_s": z, "ratio": b / a,
            "ratio_to_zip": b / z,
            # each round's Tether time over the same round's raw time: ext4's cost of creating files drifts from
            # round to round (journal, directory size), and a pair shares one state of the disk
            "paired_ratio": statistics.median(t / r for t, r in zip(times["tether"], times["raw"]))}


# --- memory, in a child process -------------------------------------------------------------------------------------
def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure_memory(url: str, job_id: str, frames: int, width: int, height: int, work: Path) -> Dict[str, Any]:
    """``--memory``: peak RSS growth and tracemalloc peak of one Tether import, after a warm-up import."""
    import gc
    import resource

    with AutopilotClient(url, api_key=LOCAL_API_KEY) as client:
        plate = plate_facts(work, frames, width, height)
        tether_import(client, job_id, work / "warm", plate)
        shutil.rmtree(work / "warm", ignore_errors=True)
        gc.collect()
        method = "VmHWM after clear_refs" if _reset_peak() else "ru_maxrss (not resettable)"
        if method.startswith("VmHWM"):
            before = _status("VmRSS")
            tether_import(client, job_id, work / "rss", plate)
            growth = _status("VmHWM") - before
        else:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            tether_import(client, job_id, work / "rss", plate)
            growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        shutil.rmtree(work / "rss", ignore_errors=True)
        gc.collect()
        tracemalloc.start()
        tether_import(client, job_id, work / "heap", plate)
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        payload = sum(p.stat().st_size for p in (work / "heap").rglob("*.png"))
        shutil.rmtree(work / "heap", ignore_errors=True)
    return {"frames": frames, "rss_growth_bytes": growth, "rss_method": method, "heap_peak_bytes": heap_peak,
            "payload_bytes": payload}


def memory_in_child(url: str, job_id: str, frames: int, width: int, height: int, work: Path) -> Dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--memory", url, job_id, str(frames), str(width), str(height),
                          str(work)], check=True, capture_output=True, text=True)
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- main ----------------------------------------------------------------------------------------------------------
def main(argv: List[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]))
        return 0
    if argv[:1] == ["--memory"]:
        url, job_id, frames, width, height, work = argv[1:7]
        print(json.dumps(measure_memory(url, job_id, int(frames), int(width), int(height), Path(work))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--small", type=int, default=250, help="the smaller sequence for the memory comparison")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="bench-matte-", dir=args.dir))
    proc, url = start_service(root / "service")
    report: Dict[str, Any] = {"width": args.width, "height": args.height, "repeat": args.repeat}
    try:
        with AutopilotClient(url, api_key=LOCAL_API_KEY) as client:
            jobs: Dict[int, str] = {}
            for frames in sorted({args.small, args.frames}):
                started = time.perf_counter()
                plate_zip = make_plate(root / f"plate{frames}.zip", frames, args.width, args.height)
                jobs[frames] = submit_roto(client, plate_zip, frames)
                print(f"setup: {frames}-frame roto job {jobs[frames]} ready in {time.perf_counter() - started:.1f} s",
                      file=sys.stderr)
            plate = plate_facts(root, args.frames, args.width, args.height)
            report["speed"] = compare(client, jobs[args.frames], root / "speed", plate, args.repeat, args.frames)
        report["memory"] = [memory_in_child(url, jobs[f], f, args.width, args.height, root / f"mem{f}")
                            for f in sorted(jobs)]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)

    speed = report["speed"]
    small, big = report["memory"][0], report["memory"][-1]
    report["ratio_ok"] = max(speed["ratio"], speed["paired_ratio"]) <= 1.3
    # flat: each added frame costs far less memory than its own bytes (half at most), i.e. the payload streams
    # through; what does grow is per-frame bookkeeping (ZipInfo entries, Paths, the sequence's file list)
    added_frames = max(1, big["frames"] - small["frames"])
    payload_per_frame = big["payload_bytes"] / max(1, big["frames"])
    for mem in (small, big):
        mem["payload_per_frame"] = mem["payload_bytes"] / max(1, mem["frames"])
    report["per_added_frame"] = {k: (big[k] - small[k]) / added_frames for k in ("rss_growth_bytes", "heap_peak_bytes")}
    # judged on the tracemalloc heap (exact); RSS is shown too, but below ~2 MiB of zip it also rises with the
    # download's chunk buffer (httpx iter_bytes(1 MiB) in AutopilotClient.download_result), a fixed cap, not a slope
    report["memory_flat"] = report["per_added_frame"]["heap_peak_bytes"] <= 0.5 * payload_per_frame
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{speed['frames']} matte frames ({args.width}x{args.height}), zip {speed['zip_bytes'] / MiB:.2f} MiB")
        for key, label in (("raw", "(a) raw copy of the sequence"), ("tether", "(b) Tether fetch + import"),
                           ("zip", "(z) the zip alone, one file")):
            print(f"  {label:30s} median {speed[key + '_median_s'] * 1000:7.1f} ms  "
                  f"[{', '.join(f'{t * 1000:.1f}' for t in speed[key + '_s'])}]")
        print(f"  b / a = {speed['ratio']:.2f} (medians), {speed['paired_ratio']:.2f} (median of each round's b / a)  "
              f"(target <= 1.3: {'ok' if report['ratio_ok'] else 'OVER'});  b / z = {speed['ratio_to_zip']:.1f} "
              "(informative)")
        for mem in report["memory"]:
            print(f"  memory, {mem['frames']:5d} frames: peak RSS growth {mem['rss_growth_bytes'] / MiB:6.2f} MiB "
                  f"({mem['rss_method']}), tracemalloc peak {mem['heap_peak_bytes'] / MiB:6.2f} MiB")
        per = report["per_added_frame"]
        print(f"  memory flat ({small['frames']} vs {big['frames']} frames, payload "
              f"{small['payload_bytes'] / MiB:.2f} vs {big['payload_bytes'] / MiB:.2f} MiB, "
              f"{payload_per_frame:.0f} B a frame): {'yes' if report['memory_flat'] else 'NO'}; each added frame costs "
              f"{per['heap_peak_bytes']:.0f} B heap (limit: half its bytes), {per['rss_growth_bytes']:.0f} B RSS")
    return 0 if report["ratio_ok"] and report["memory_flat"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
