"""Clip in, clip out: the video services (TensorPix, Clipzy) behind the service seam
(:class:`tether_nuke.service.ServiceAdapter`): the selected Read's clip goes as one movie, the returned movie comes
back as a Read beside the plate on the plate's own frames.

What the clip services share is :class:`MovieInOut`: ``stage`` makes the plate's clip one movie
(:func:`tether.encode.movie_for_upload`, as the command line does: a movie plate is sent as it is, a sequence is
encoded in a display space from the Read's colour, where this Python has the ``media`` extra), ``submit`` records that
colour and frame mapping with the job, and ``describe`` places the returned movie (:func:`describe_clip_import`) with
the colour space that undoes the send. Each service adds its ``client``, ``send`` and ``fetch``:
:class:`TensorPixAdapter` here, Clipzy's from the core (``tether.clipzy.nuke_adapter``). Their dialog is
``tether_nuke.dialog``; the TensorPix dialog's helpers (its options, its cached model list) are here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tether.clipzy.nuke_adapter import ClipzyAdapter
from tether.encode import EncodedMovie, movie_for_upload
from tether.errors import InputError
from tether.nukeimport import ImportDescription, PlateFacts
from tether.nukeimport.clip import COLUMN, describe_clip_import, describe_clip_job
from tether.nukeimport.model import HandOffRequest, Sent
from tether.progress import Progress
from tether.registry import JobRecord, JobRegistry

log = logging.getLogger("tether")


class MovieInOut:
    """The clip services' half of the seam: the plate goes as one movie, a movie comes back as a Read."""

    label: str  # the service's own (a mixin: never set here, so a base adapter's stand)
    suffix: str

    def came_home(self, dest: Path, record: JobRecord) -> Path:
        """The movie the agent downloaded into ``dest`` (what ``fetch`` gives; Clipzy's style JSON lies beside it)."""
        movies = [p for p in sorted(Path(dest).iterdir()) if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() != ".json"]
        if len(movies) != 1:
            raise InputError(f"{self.label} job {record.job_id}: {dest} holds {len(movies)} movies, not the one "
                             "that came home")
        return movies[0]

    def stage(self, plate: PlateFacts, folder: Path, progress: Optional[Progress] = None) -> Any:
        return movie_for_upload(plate, folder, progress)

    def send(self, client: Any, movie: Path, options: Dict[str, Any], registry: Optional[JobRegistry], label: str,
             extra: Dict[str, Any], upload_progress: Optional[Progress] = None) -> Sent:
        raise NotImplementedError

    def submit(self, client: Any, upload: Any, options: Dict[str, Any], registry: Optional[JobRegistry], label: str,
               extra: Dict[str, Any], progress: Optional[Progress] = None,
               upload_progress: Optional[Progress] = None) -> Sent:
        """Send the staged movie (``upload_progress`` follows its bytes); an encoded one's colour transform and frame
        mapping go into the job's record."""
        sent_as = upload.record() if isinstance(upload, EncodedMovie) else {}
        movie = upload.path if isinstance(upload, EncodedMovie) else Path(upload)
        sent = self.send(client, movie, options, registry, label, {**extra, **sent_as}, upload_progress)
        return Sent(job_id=sent.job_id, first_index=sent.first_index, extra={**sent.extra, **sent_as})

    def request(self, client: Any, movie: Path, options: Dict[str, Any], label: str, extra: Dict[str, Any],
                keep: bool) -> HandOffRequest:
        raise NotImplementedError

    def handoff_request(self, client: Any, upload: Any, options: Dict[str, Any], registry: Optional[JobRegistry],
                        label: str, extra: Dict[str, Any], progress: Optional[Progress] = None) -> HandOffRequest:
        """:meth:`submit` handed to the agent: an encoded movie moves into the hand-off's own folder (it must outlive
        Nuke), and its colour transform and frame mapping go into the job's record as a send's do."""
        encoded = isinstance(upload, EncodedMovie)
        sent_as = upload.record() if encoded else {}
        movie = upload.path if encoded else Path(upload)
        handed = self.request(client, movie, options, label, {**extra, **sent_as}, encoded)
        return HandOffRequest(handed.request, handed.first_index, {**handed.extra, **sent_as})

    def describe(self, plate: PlateFacts, fetched: Any, record: JobRecord,
                 include: Tuple[str, ...] = ()) -> ImportDescription:
        return describe_clip_job(plate, Path(fetched), record.extra, suffix=self.suffix, job_id=record.job_id,
                                 title=f"Tether {self.label} import")


class TensorPixAdapter(MovieInOut):
    service = "tensorpix"
    label = "TensorPix"
    suffix = "tensorpix"
    action = "Enhance (TensorPix)"
    can_cancel = False  # the TensorPix API publishes no cancel route (TensorPixClient.cancel_job says so)
    cancel_note = ("TensorPix publishes no way to cancel a job: it runs to the end (cancel it in the TensorPix web "
                   "app if it must stop)")

    def client(self, profile: Optional[str]) -> Any:
        from tether.tensorpix.client import TensorPixClient

        return TensorPixClient.from_profile(profile)

    def send(self, client: Any, movie: Path, options: Dict[str, Any], registry: Optional[JobRegistry], label: str,
             extra: Dict[str, Any], upload_progress: Optional[Progress] = None) -> Sent:
        from tether.tensorpix.submit import enhance_clip

        done = enhance_clip(client, str(movie), options, registry=registry, source_label=label, extra=extra,
                            progress=upload_progress)
        return Sent(job_id=str(done.job.id), first_index=int(options.get("start_frame") or 0),
                    extra={"video_id": done.video.id})

    def request(self, client: Any, movie: Path, options: Dict[str, Any], label: str, extra: Dict[str, Any],
                keep: bool) -> HandOffRequest:
        from tether.tensorpix.submit import handoff_request, preview

        preview(client, str(movie), options)  # the model ids checked, as a send checks them, before the agent has it
        return HandOffRequest(handoff_request(str(movie), options, source_label=label, extra=extra, keep=keep),
                              first_index=int(options.get("start_frame") or 0))

    def fetch(self, client: Any, job_id: str, dest: Path) -> Path:
        path: Path = client.download_output(job_id, dest)
        return path


class ClipzyNukeAdapter(MovieInOut, ClipzyAdapter):
    """Clipzy's adapter from the core (DCC-free), with the clip services' staging, colour record and import."""

    def send(self, client: Any, movie: Path, options: Dict[str, Any], registry: Optional[JobRegistry], label: str,
             extra: Dict[str, Any], upload_progress: Optional[Progress] = None) -> Sent:
        return ClipzyAdapter.submit(self, client, movie, options, registry, label, extra, progress=upload_progress)

    def request(self, client: Any, movie: Path, options: Dict[str, Any], label: str, extra: Dict[str, Any],
                keep: bool) -> HandOffRequest:
        return ClipzyAdapter.handoff_movie(self, movie, options, label, extra, keep)


# --- the TensorPix dialog's helpers (no Qt) ------------------------------------------------------------------------
# (option, label, lowest, highest, unit): the ranges of tether.tensorpix.models.JobCreate; 0 leaves it to TensorPix
TENSORPIX_NUMBERS = (("grain", "Grain", 0, 100, "%"), ("sharpen_strength", "Sharpen", 0, 100, "%"),
                     ("stabilization_smoothing", "Stabilisation", 0, 100, "%"),
                     ("fps_interpolation_factor", "Frame rate", 1, 8, "x"), ("playback_speed", "Speed", 0.1, 16, "x"))
TENSORPIX_RESOLUTIONS = (("TensorPix's choice", -1), ("720p", 720), ("1080p", 1080), ("1440p", 1440),
                         ("2160p (4K)", 2160))


MODELS_SERVICE = "tensorpix"  # the list cache's service name for TensorPix's ML models
MODELS_LIST = "ml_models"


def load_models(service: str, profile: str, url: str) -> Optional[Tuple[List[Tuple[str, str]], float]]:
    """The models last listed for this profile and endpoint, as ``([(id, name)], fetched_at)``; None if never."""
    from tether import listcache

    cached = listcache.load(service, profile, url)
    if cached is None or MODELS_LIST not in cached.lists:
        return None
    return [(item[0], item[1] if len(item) > 1 else "") for item in cached.lists[MODELS_LIST]], cached.fetched_at


def save_models(service: str, profile: str, url: str, models: List[Tuple[str, str]]) -> float:
    """Keep the fresh list for the next dialog (a failure to write only costs that); returns its time."""
    from tether import listcache

    stamp = time.time()
    try:
        listcache.save(service, profile, url, {MODELS_LIST: models}, stamp)
    except (OSError, ValueError) as exc:
        log.warning("Tether: the TensorPix models were not cached: %s", exc)
    return stamp


def clock(stamp: Optional[float]) -> str:
    """``HH:MM`` for today, else with the date (local time)."""
    if stamp is None:
        return "?"
    day = time.strftime("%Y-%m-%d", time.localtime(stamp))
    hour = time.strftime("%H:%M", time.localtime(stamp))
    return hour if day == time.strftime("%Y-%m-%d") else f"{day} {hour}"


def tensorpix_options(models: List[int], resolution: int = -1, *, preview: bool = False,
                      **numbers: Optional[float]) -> Dict[str, Any]:
    """The TensorPix options from the dialog's values (0/empty number fields leave the service's default)."""
    options: Dict[str, Any] = {"ml_models": list(models), "output_resolution": resolution, "preview": preview}
    for key, value in numbers.items():
        if value not in (None, 0, 0.0, ""):
            options[key] = value
    return options


__all__ = ["COLUMN", "ClipzyNukeAdapter", "MovieInOut", "TensorPixAdapter", "describe_clip_import",
           "movie_for_upload", "tensorpix_options"]
