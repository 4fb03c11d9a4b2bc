"""One headless path for TensorPix: check options -> upload -> wait until ready -> create job -> record.

The CLI and the Nuke plug-in both call :func:`enhance_clip`. Options are validated (:class:`JobOptions`) before a
byte is uploaded, and the model ids are checked against ``/api/ml-models/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from pydantic import ValidationError

from ..errors import InputError
from ..fileio import check_output_dir
from ..media import WEB_MOVIE_EXTS
from .models import InputVideo, JobCreate, TensorPixJob


def _field_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def build_options(options: Dict[str, Any], input_video: int = 1) -> JobCreate:
    """The job request, or :class:`InputError` naming each wrong field."""
    try:
        return JobCreate(input_video=input_video, **options)
    except ValidationError as exc:
        raise InputError(f"the TensorPix options are not valid: {_field_errors(exc)}") from None
    except TypeError as exc:
        raise InputError(f"the TensorPix options are not valid: {exc}") from None


def check_models(client: Any, ids: List[int]) -> None:
    known = {m.id: m for m in client.models()}
    unknown = [i for i in ids if i not in known]
    if unknown:
        listing = ", ".join(f"{m.id} ({m.name})" for m in known.values())
        raise InputError(f"TensorPix has no model {', '.join(map(str, unknown))}; known: {listing}")


@dataclass
class Enhancement:
    job: TensorPixJob
    video: InputVideo
    source: str


def enhance_clip(client: Any, clip: str, options: Dict[str, Any], *, registry: Any = None,
                 out_dir: Optional[Path] = None, source_label: Optional[str] = None,
                 extra: Optional[Dict[str, Any]] = None, ready_timeout: float = 600.0) -> Enhancement:
    """Upload ``clip`` (a movie file), wait until TensorPix has it, create the job, record it in ``registry``."""
    path = Path(clip)
    if not path.is_file():
        raise InputError(f"{clip}: no such file")
    if path.suffix.lower() not in WEB_MOVIE_EXTS:
        raise InputError(f"{clip}: TensorPix takes a movie ({', '.join(sorted(WEB_MOVIE_EXTS))}); encode the frames "
                         "first")
    build_options(options)  # refuses bad options before uploading
    if out_dir is not None:
        check_output_dir(out_dir)
    check_models(client, list(options.get("ml_models") or []))
    uploaded = client.upload_video(path)
    video = client.wait_ready(uploaded.id, timeout=ready_timeout)
    job = client.create_job(build_options(options, input_video=video.id))
    if registry is not None:
        registry.record(service="tensorpix", job_id=str(job.id), profile=getattr(client, "profile", ""),
                        title=path.name, source=source_label or str(path), output_dir=out_dir,
                        extra={"source": str(path), "video_id": video.id, "frame_count": video.n_frames,
                               "first_frame": 1, "options": build_options(options).payload(), **(extra or {})})
    return Enhancement(job=job, video=video, source=str(path))


__all__ = ["Enhancement", "build_options", "check_models", "enhance_clip"]
