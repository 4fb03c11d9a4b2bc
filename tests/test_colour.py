"""What a video service sees of a plate and how it comes back: OCIO send transforms, the OIIO -> OCIO -> PyAV encode,
the round trip of an 18% grey EXR plate through the local TensorPix, and Autopilot sent a movie (or, without the
media libraries, the zip it took before)."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any, Iterator, List, Sequence

import numpy as np
import pytest
from tether.colour import BUILTIN_CONFIG, ColourChoice, SendTransform, send_transform
from tether.errors import CancelledByUser, InputError
from waiting import eventually

oiio = pytest.importorskip("OpenImageIO")
pytest.importorskip("PyOpenColorIO")
av = pytest.importorskip("av")

from tether.encode import encode_movie, frame_rgb, read_movie  # noqa: E402

W, H = 64, 36
GREY = 0.18
SRGB = "sRGB Encoded Rec.709 (sRGB)"


@pytest.fixture(autouse=True)
def _builtin_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


def write_plate(folder: Path, frames: Sequence[int] = (1001, 1002, 1003), value: float = GREY,
                ext: str = "exr", size: tuple = (W, H)) -> List[Path]:
    """A flat ``value`` plate (half-float EXR unless ``ext``) with a white bar one step right per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for k, number in enumerate(frames):
        pixels = np.full((height, width, 3), value, np.float32)
        pixels[:, 40 + k * 4:44 + k * 4] = 1.0
        path = folder / f"plate.{number:04d}.{ext}"
        out = oiio.ImageOutput.create(str(path))
        assert out is not None, oiio.geterror()
        out.open(str(path), oiio.ImageSpec(width, height, 3, oiio.HALF if ext == "exr" else oiio.UINT8))
        out.write_image(pixels)
        out.close()
        paths.append(path)
    return paths


# --- which transform ---------------------------------------------------------------------------------------------
def test_the_plate_colour_space_comes_from_the_read_else_the_file_type() -> None:
    exr = send_transform("/shots/plate.####.exr")
    assert exr == SendTransform(BUILTIN_CONFIG, "ACEScg", SRGB)  # scene_linear -> color_picking
    assert send_transform("scan.%04d.dpx").source == "ACEScct"  # compositing_log
    assert send_transform("ref.####.png").identity  # 8-bit images are display-referred already
    # what a Read says wins: an alias (the ACES 1.x name), Nuke's "label (name)" spelling, a role
    assert send_transform("a.exr", "ACES - ACEScg").source == "ACEScg"
    assert send_transform("a.exr", "default (linear)").source == "Linear Rec.709 (sRGB)"  # what the brackets name
    assert send_transform("a.dpx", "scene_linear (ACEScg)").source == "ACEScg"
    assert send_transform("a.exr", "ARRI LogC4").source == "ARRI LogC4"
    assert exr.inverse() == SendTransform(BUILTIN_CONFIG, SRGB, "ACEScg")
    assert SendTransform.from_dict(exr.to_dict()) == exr


def test_ocio_env_and_a_named_config_are_used_and_unknown_names_say_what_exists(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")
    assert send_transform("a.exr").config == "ocio://cg-config-latest"
    assert ColourChoice(config=BUILTIN_CONFIG).resolve("a.exr").config == BUILTIN_CONFIG
    with pytest.raises(InputError, match=r"'Kodak 5219' is not in the OpenColorIO config .*ACEScg.*--colorspace"):
        send_transform("a.exr", "Kodak 5219")
    with pytest.raises(InputError, match="cannot be loaded"):
        send_transform("a.exr", config="/nowhere/config.ocio")


# --- the encode ----------------------------------------------------------------------------------------------------
def test_a_plate_is_encoded_frame_for_frame_with_its_mapping(tmp_path: Path) -> None:
    files = write_plate(tmp_path / "plate", frames=(1001, 1002, 1003, 1004))
    seen: List[tuple] = []
    movie = encode_movie(files, tmp_path / "sent.mp4", send_transform(str(files[0])), fps=25, first_frame=1001,
                         progress=lambda done, total: seen.append((done, total)) and None)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert movie.record()["frame_map"] == {"movie_first": 1, "file_first": 1001, "count": 4}
    assert movie.record()["colour"] == {"ocio_config": BUILTIN_CONFIG, "from": "ACEScg", "to": SRGB}
    with av.open(str(movie.path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) == ("h264", W, H)
        # BT.709 matrix (AVCOL_SPC_BT709 = 1) said in the stream, so decoders agree
        assert stream.codec_context.colorspace == 1 and float(stream.average_rate) == 25
        frames = [frame_rgb(f) for f in container.decode(stream)]
    # display-referred: 18% grey is sRGB 0.4614 (118 of 255); each frame's bar is where that plate frame had it
    assert len(frames) == 4 and abs(int(frames[0][5, 5, 0]) - 118) <= 1
    for k, rgb in enumerate(frames):
        assert int(np.argmax(rgb[18, :, 1] > 200)) == 40 + 4 * k


def test_odd_sizes_are_padded_and_deeper_display_images_converted(tmp_path: Path) -> None:
    files = write_plate(tmp_path / "odd", frames=(1, 2), ext="tif", size=(63, 35), value=0.5)
    movie = encode_movie(files, tmp_path / "odd.mp4", send_transform(str(files[0])))
    assert movie.padded == (1, 1) and movie.record()["padded"] == [1, 1] and (movie.width, movie.height) == (63, 35)
    [first, _] = list(read_movie(movie.path))
    assert first.shape == (36, 64, 3) and abs(first[5, 5, 0] - 128 / 255) < 0.01  # 8-bit TIFF: no conversion


def test_a_bad_frame_or_a_cancel_leaves_nothing_behind(tmp_path: Path) -> None:
    files = write_plate(tmp_path / "p", frames=(1, 2)) + write_plate(tmp_path / "big", frames=(3,), size=(W * 2, H))
    transform = send_transform("p.exr")
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match=r"plate.0003.exr is 128x36 but the clip's first frame is 64x36"):
        encode_movie(files, out, transform)
    junk = tmp_path / "p" / "plate.0009.exr"
    junk.write_bytes(b"v/1\x01 not really")
    with pytest.raises(InputError, match=r"plate.0009.exr cannot be read"):
        encode_movie([*files[:1], junk], out, transform)
    with pytest.raises(CancelledByUser):
        encode_movie(files[:2], out, transform, progress=lambda done, total: done < 1)
    assert list(tmp_path.glob("out.mp4*")) == []


# --- the round trip through a video service --------------------------------------------------------------------------
@pytest.fixture
def tensorpix(local_services: Any) -> Iterator[Any]:
    from tether.http import RetryPolicy
    from tether.tensorpix.client import LOCAL_API_KEY, TensorPixClient

    with TensorPixClient(local_services.url("tensorpix"), token=LOCAL_API_KEY,
                         retry=RetryPolicy(attempts=4, backoff=0.01, max_retry_after=0.2)) as client:
        yield client


def test_linear_grey_comes_back_on_the_plate_through_tensorpix(tensorpix: Any, tmp_path: Path) -> None:
    """A linear 18% grey EXR plate, sent as the display-referred movie, enhanced with no change (the same size, no
    denoise or sharpening), decoded and put back through the inverse transform: 0.18 within 2%."""
    from tether.tensorpix.submit import submit

    files = write_plate(tmp_path / "plate")
    transform = send_transform(str(files[0]))
    movie = encode_movie(files, tmp_path / "sent" / "plate.mp4", transform, first_frame=1001)
    done = submit(tensorpix, str(movie.path), {"ml_models": [1], "output_resolution": H})
    job = eventually(lambda: tensorpix.get_job(str(done.job.id)), lambda j: j.state.finished, timeout=60,
                     message="the TensorPix job to finish")
    assert job.state.value == "completed", job
    back = tensorpix.download_output(str(done.job.id), tmp_path / "back")
    frames = list(read_movie(back, transform.inverse()))
    assert len(frames) == len(files) and frames[0].shape == (H, W, 3)
    for rgb in frames:
        grey = rgb[4:32, 2:36]  # the flat part, away from the bar
        assert abs(float(grey.mean()) / GREY - 1) < 0.02, grey.mean()
        assert float(np.abs(grey - GREY).max()) < 0.02 * GREY * 2


# --- Autopilot is sent what its own node sends ------------------------------------------------------------------------
def test_autopilot_gets_a_movie_of_an_exr_sequence_and_processes_it(autopilot_services: Any, tmp_path: Path) -> None:
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
    from tether.autopilot.submit import ServiceChoice, preview, submit
    from tether.registry import JobRegistry

    write_plate(tmp_path / "plate", frames=(1001, 1002, 1003))
    pattern = str(tmp_path / "plate" / "plate.####.exr")
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    encoded: List[tuple] = []
    with AutopilotClient(autopilot_services.url("autopilot"), api_key=LOCAL_API_KEY) as client:
        doc = preview(client, pattern, ServiceChoice(roto=True), check_quota=False).document()
        assert (doc["upload"]["file_name"], doc["upload"]["sent_as"]) == ("plate.mp4", "mp4")
        assert doc["payload"]["metadata"]["colour"]["from"] == "ACEScg"
        sub = submit(client, pattern, ServiceChoice(roto=True), registry=registry,
                     colour=ColourChoice(colorspace="ACES - ACEScg"),
                     encode_progress=lambda done, total: encoded.append((done, total)) and None)
        stored = autopilot_services.service("autopilot").store / sub.s3_key
        assert sub.s3_key.endswith("plate.mp4") and not zipfile.is_zipfile(stored) and encoded[-1] == (3, 3)
        with av.open(str(stored)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 3
        job = eventually(lambda: client.get_job(sub.job.id), lambda j: j.state.finished, timeout=60,
                         message="the Autopilot job to finish")
        assert job.state.value == "completed", job
        result = client.fetch_results(sub.job.id, tmp_path / "out")
        assert result.mattes and result.mattes[0].frames == [1, 2, 3]
    record = registry.get("autopilot", sub.job.id)
    assert record is not None and record.extra["frame_map"] == {"movie_first": 1, "file_first": 1001, "count": 3}
    assert record.extra["colour"]["to"] == SRGB and record.extra["first_frame"] == 1001


def test_without_the_media_libraries_autopilot_takes_the_zip_and_says_so(
        autopilot_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Nuke's own Python may lack PyAV/OpenImageIO/OpenColorIO: the frames then go as before, with a warning."""
    import tether.autopilot.submit as ap
    from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient

    monkeypatch.setattr(ap, "missing_media", lambda: "this Python has no PyAV (pip install 'tether[media]')")
    write_plate(tmp_path / "plate", frames=(7, 8), ext="png", value=0.5)
    with AutopilotClient(autopilot_services.url("autopilot"), api_key=LOCAL_API_KEY) as client, \
            caplog.at_level(logging.WARNING, logger="tether"):
        doc = ap.preview(client, str(tmp_path / "plate" / "plate.####.png"), ap.ServiceChoice(roto=True),
                         check_quota=False).document()
        assert doc["upload"]["sent_as"] == "zip" and "no PyAV" in doc["upload"]["warning"]
        sub = ap.submit(client, str(tmp_path / "plate" / "plate.####.png"), ap.ServiceChoice(roto=True))
        # the local Autopilot still reads the zip; waited for, so its frames count before the quota is reset
        job = eventually(lambda: client.get_job(sub.job.id), lambda j: j.state.finished, timeout=60,
                         message="the Autopilot job to finish")
        assert job.state.value == "completed", job
    assert zipfile.is_zipfile(autopilot_services.service("autopilot").store / sub.s3_key)
    assert "the frames go as a zip" in caplog.text


def test_the_command_line_says_how_a_sequence_goes_and_refuses_an_unknown_colour_space(
        autopilot_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    from tether_cli import main

    monkeypatch.setenv("TETHER_AUTOPILOT_URL", autopilot_services.url("autopilot"))
    write_plate(tmp_path / "plate", frames=(1001, 1002))
    pattern = str(tmp_path / "plate" / "plate.####.exr")
    assert main(["autopilot", "submit", pattern, "--roto", "--dry-run", "--colorspace", "ARRI LogC4"]) == 0
    assert f"sent as H.264 in {SRGB} (from ARRI LogC4)" in capsys.readouterr().out
    autopilot_services.requests.clear()
    assert main(["autopilot", "submit", pattern, "--roto", "--colorspace", "Kodak 5219"]) != 0
    assert "'Kodak 5219' is not in the OpenColorIO config" in capsys.readouterr().err
    assert autopilot_services.requests.count(method="PUT") == 0  # refused before anything was uploaded


def test_the_command_line_writes_the_returned_clip_in_the_space_that_undoes_the_send(
        tensorpix: Any, local_services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job sent from Nuke (its plate and send recorded as the panel records them), imported headless: the .nk's
    Read of the enhanced clip sits on the plate's frames with the display space as its colorspace."""
    from tether.nukeimport import PlateFacts, parse_nk
    from tether.registry import JobRegistry
    from tether.tensorpix.submit import submit
    from tether_cli import main

    files = write_plate(tmp_path / "plate", frames=(1001, 1002))
    plate = PlateFacts(node="Lin1", file=str(tmp_path / "plate" / "plate.####.exr"), first=1001, last=1002,
                       colorspace="ACES - ACEScg", width=W, height=H)
    movie = encode_movie(files, tmp_path / "sent" / "Lin1.mp4", plate.colour.resolve(plate.file), first_frame=1001)
    with JobRegistry() as registry:
        done = submit(tensorpix, str(movie.path), {"ml_models": [1], "output_resolution": H}, registry=registry,
                      extra={"plate": plate.to_dict(), **movie.record()})
    eventually(lambda: tensorpix.get_job(str(done.job.id)), lambda j: j.state.finished, timeout=60,
               message="the TensorPix job to finish")
    monkeypatch.setenv("TETHER_TENSORPIX_URL", local_services.url("tensorpix"))
    nk = tmp_path / "shot.nk"
    assert main(["tensorpix", "import", str(done.job.id), "--nk", str(nk)]) == 0
    reads = {node.name: node for node in parse_nk(nk.read_text()) if node.node_class == "Read"}
    clip = next(node for name, node in reads.items() if name.startswith("Lin1_tensorpix"))
    assert clip.knobs["colorspace"].strip('"') == SRGB and clip.knobs["frame"].strip('"') == "1001"
    assert Path(clip.knobs["file"].strip('"')).is_file()


def test_every_movie_frame_sits_at_its_own_time(tmp_path: Path) -> None:
    """Movie frame k plays at k / fps: what a Read numbers as frame k + 1 (a stream time base of 1/fps once broke
    the mp4 muxer a few dozen frames in)."""
    files = write_plate(tmp_path / "long", frames=range(1, 61), size=(16, 8), ext="png", value=0.5)
    movie = encode_movie(files, tmp_path / "long.mp4", send_transform(str(files[0])), fps=25)
    with av.open(str(movie.path)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    assert times == pytest.approx([k / 25 for k in range(60)])
