"""One headless submission path for Autopilot: prepare (check the clip, the options and the quota) -> preview ->
submit (pack -> upload -> create job -> record).

The CLI and the Nuke plug-in both call :func:`submit` (``submit_clip`` is its older name). Everything that can be
wrong with the input (a clip over the frame limit or the account's quota, a sequence with gaps, sensor width without
height, no service asked for) is found by :func:`prepare` before a byte is uploaded, and raised as
:class:`InputError` saying what to change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from pydantic import ValidationError

from ..colour import ColourChoice, SendTransform
from ..creation import create_recorded
from ..encode import encode_movie, frame_map, missing_media
from ..errors import InputError
from ..fileio import check_output_dir, staging
from ..handoff import Steps, agent_progress, kept_folder, made_before, release
from ..jobs import JobState
from ..nukeimport.plate import PlateFacts
from ..progress import Progress
from ..registry import JobRecord, QueueEntry
from ..submission import UPLOAD_PLACEHOLDER, invalid_options, preview_json
from ..transfer import HashCache
from .clip import Clip, inspect_clip, pack_sequence
from .models import MAX_FRAMES, Asset, AutopilotJob, JobCreate, Quota

if TYPE_CHECKING:
    from ..handoff import Checkpoint
    from ..registry import JobRegistry
    from ..transfer import ProgressCallback, Throttle
    from .client import AutopilotClient

SERVICE = "autopilot"
log = logging.getLogger("tether")


@dataclass
class ServiceChoice:
    """What the user asked for. ``tracking``/``smart_vectors`` metadata are the API's own field names."""

    roto: bool = False
    tracking: bool = False
    depth: bool = False
    smart_vectors: bool = False
    depth_export: Optional[str] = None  # "jpg" | "mov"
    tracking_metadata: Dict[str, Any] = field(default_factory=dict)
    smart_vectors_metadata: Dict[str, Any] = field(default_factory=dict)
    roto_references: Optional[List[str]] = None

    @property
    def count(self) -> int:
        return sum((self.roto, self.tracking, self.depth, self.smart_vectors))

    def exports(self) -> Dict[str, str]:
        """The export type asked for per service, where it is not the vendor's default: recorded in the job's
        metadata so a fetch asks for what was sent (a depth ``mov``), whatever the reply says of its inferences."""
        return {"depth_map": self.depth_export} if self.depth and self.depth_export else {}

    def specs(self, output_path: str) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        if self.roto:
            out.append({"type": "roto", "output_path": output_path, "references_path": self.roto_references})
        if self.tracking:
            out.append({"type": "tracking", "output_path": output_path,
                        "metadata": dict(self.tracking_metadata) or None})
        if self.depth:
            out.append({"type": "depth_map", "output_path": output_path, "export_type": self.depth_export})
        if self.smart_vectors:
            out.append({"type": "smart_vectors", "output_path": output_path,
                        "metadata": dict(self.smart_vectors_metadata) or None})
        return out


def build_payload(source_path: str, choice: ServiceChoice, *, output_path: str,
                  asset_metadata: Optional[Dict[str, Any]] = None, job_metadata: Optional[Dict[str, Any]] = None,
                  job_source: Optional[str] = "tether") -> JobCreate:
    if choice.count == 0:
        raise InputError("ask for at least one of roto, tracking, depth (or smart vectors)")
    try:
        asset = Asset(source_path=source_path, services=choice.specs(output_path),
                      metadata=asset_metadata or {})
        return JobCreate(assets=[asset], metadata=job_metadata or {}, job_source=job_source)
    except ValidationError as exc:
        raise invalid_options("Autopilot", exc) from None


def check_frames(clip: Clip, choice: ServiceChoice, quota: Optional[Quota]) -> None:
    """Refuse a clip the service would refuse, or that the account cannot afford, before uploading it."""
    if clip.frame_count > MAX_FRAMES:
        raise InputError(f"{clip.source} has {clip.frame_count} frames; Autopilot takes at most {MAX_FRAMES} per "
                         "clip: split it into shorter ranges")
    if quota is None:
        return
    tier = quota.subscription_tier or "unknown"
    if quota.is_above_limit:
        raise InputError(f"the Autopilot account is above its frame limit ({quota.frames_inferenced} frames used, "
                         f"tier {tier}): upgrade the plan or wait for the quota to reset before sending more")
    needed = clip.frame_count * max(choice.count, 1)
    remaining = quota.remaining
    if remaining is not None and needed > remaining:
        raise InputError(f"this clip needs {needed} frames of quota ({clip.frame_count} frames x {choice.count} "
                         f"services) but the account has {remaining} left of {quota.limit} (tier {tier}): "
                         "send fewer frames or services")


@dataclass
class Prepared:
    clip: Clip
    choice: ServiceChoice
    quota: Optional[Quota]
    output_path: str
    submission: str
    # a sequence goes as an H.264 movie in a display space (tether.encode), as the vendor's own node sends; None: as
    # it is (a movie), or as a zip of its frames where this Python cannot encode (``fallback`` says why)
    transform: Optional[SendTransform] = None
    fallback: Optional[str] = None

    @property
    def upload_name(self) -> str:
        name = self.clip.upload_name
        return f"{Path(name).stem}.mp4" if self.transform is not None else name


def prepare(client: Optional[AutopilotClient], clip_spec: str, choice: ServiceChoice, *,
            output_path: Optional[str] = None, check_quota: bool = True,
            colour: Optional[ColourChoice] = None, frames: Optional[str] = None) -> Prepared:
    """Check the clip, its colour and the options, and (``check_quota`` and a client) that the account can afford
    it. ``colour``: the plate's colour space and config (default: by file type, ``$OCIO`` or OCIO's studio config);
    ``frames``: the frames of a sequence to send (default: the range in its name, else all on disk)."""
    clip = inspect_clip(clip_spec, frames)
    submission = str(uuid.uuid4())
    out = output_path or f"tether/{Path(clip.upload_name).stem}/{submission[:8]}"
    build_payload("placeholder", choice, output_path=out)  # validates the options before anything is sent
    transform, fallback = None, None
    if clip.kind == "sequence":
        fallback = missing_media()
        if fallback is None:
            transform = (colour or ColourChoice()).resolve(clip.source)
        else:
            fallback = f"{fallback}: the frames go as a zip, in their own colour space"
    quota = client.quota() if check_quota and client is not None else None
    check_frames(clip, choice, quota)
    return Prepared(clip=clip, choice=choice, quota=quota, output_path=out, submission=submission,
                    transform=transform, fallback=fallback)


def submission_facts(prep: Prepared, source: Optional[str] = None) -> Dict[str, Any]:
    """What every job records about its clip, so results line up with the plate's own frame numbers. ``source``
    names the clip where it was read from a staged copy (a Nuke plate's frames staged in a temporary folder)."""
    clip = prep.clip
    facts: Dict[str, Any] = {"first_frame": clip.first_frame, "frame_count": clip.frame_count,
                             "source": source or clip.source, "tether_submission": prep.submission}
    if prep.choice.exports():
        facts["export_types"] = prep.choice.exports()
    if prep.transform is not None:  # movie frame 1 is the first file frame; the colour undoes on the way back
        facts["colour"] = prep.transform.to_dict()
        facts["frame_map"] = frame_map(clip.first_frame, clip.frame_count)
    return facts


def job_payload(prep: Prepared, s3_key: str, metadata: Optional[Dict[str, Any]] = None,
                source: Optional[str] = None) -> JobCreate:
    """The create-job body for a prepared clip uploaded as ``s3_key``: the one builder, for a send and a preview."""
    clip = prep.clip
    return build_payload(s3_key, prep.choice, output_path=prep.output_path,
                         asset_metadata={"first_frame": clip.first_frame, "source": source or clip.source},
                         job_metadata={**(metadata or {}), **submission_facts(prep, source)})


@dataclass
class Preview:
    """What :func:`submit` would send for these inputs, with :data:`UPLOAD_PLACEHOLDER` for the clip's key."""

    prepared: Prepared
    payload: JobCreate

    def document(self) -> Dict[str, Any]:
        """Plain JSON values: the create-job body exactly as sent, and the clip that would be uploaded."""
        clip = self.prepared.clip
        files = clip.files or [Path(clip.source)]
        try:
            size: Optional[int] = sum(f.stat().st_size for f in files)
        except OSError:
            size = None
        quota = self.prepared.quota
        return {
            "payload": self.payload.payload(),
            "upload": {"source": clip.source, "kind": clip.kind, "file_name": self.prepared.upload_name,
                       "sent_as": "mp4" if self.prepared.transform is not None else Path(clip.upload_name).suffix[1:],
                       **({"warning": self.prepared.fallback} if self.prepared.fallback else {}),
                       "frames": clip.frame_count, "first_frame": clip.first_frame, "last_frame": clip.last_frame,
                       "files": len(files), "bytes": size, "key": f"{UPLOAD_PLACEHOLDER}: given by the upload"},
            "quota_remaining": quota.remaining if quota is not None else None,
        }

    def to_json(self) -> str:
        return preview_json(self.document())


def preview(client: Optional[AutopilotClient], clip_spec: str, choice: ServiceChoice, *,
            output_path: Optional[str] = None,
            metadata: Optional[Dict[str, Any]] = None, check_quota: bool = True,
            source: Optional[str] = None, colour: Optional[ColourChoice] = None,
            frames: Optional[str] = None) -> Preview:
    """Check the clip and build the job body :func:`submit` would send; upload nothing, create nothing.

    ``check_quota=False`` asks the service nothing at all (``client`` may then be None). The output path and
    submission id are fresh ones, as each send makes its own.
    """
    prep = prepare(client, clip_spec, choice, output_path=output_path, check_quota=check_quota, colour=colour,
                   frames=frames)
    return Preview(prepared=prep, payload=job_payload(prep, UPLOAD_PLACEHOLDER, metadata, source))


@dataclass
class Submission:
    job: AutopilotJob
    clip: Clip
    s3_key: str
    output_path: str


# --- what the import needs, recorded by both doors (the Nuke panel and the command line) ---------------------------
def clip_plate(clip: Clip) -> PlateFacts:
    """The plate of a clip sent from the command line: what a Nuke Read of it would say (absolute path, format,
    fps, the file frames sent on their own numbers), so `tether autopilot import` builds what the panel builds."""
    from ..nukeimport.describe import image_size
    from ..nukeimport.job import CLI_PLATE_NAME

    source = os.path.abspath(os.path.expanduser(clip.source))
    width, height = clip.width or 0, clip.height or 0
    if not (width and height) and clip.files:
        width, height = image_size(clip.files[0]) or (0, 0)
    first, last = (1, clip.frame_count) if clip.kind == "movie" else (clip.first_frame, clip.last_frame)
    return PlateFacts(node=CLI_PLATE_NAME, file=source, first=first, last=last, origfirst=first, origlast=last,
                      width=width, height=height, fps=clip.fps, movie=clip.kind == "movie", sent=(first, last))


def sensor_of(choice: ServiceChoice) -> Optional[List[float]]:
    """The film back (mm) a tracking job was given, as the import needs it."""
    meta = choice.tracking_metadata if choice.tracking else {}
    width, height = meta.get("sensor_width"), meta.get("sensor_height")
    return [float(width), float(height)] if width and height else None


def content_hash(clip: Clip, cache: Optional[HashCache] = None) -> str:
    """What the frames hold, whatever they are called or where they sit: the sha256 of each frame's md5 in frame
    order (a movie: its one file). md5s come from the shared hash cache, so sending an unchanged clip again reads
    nothing; linked frames (a Nuke plate staged as symlinks) are hashed as the files they point to."""
    files = clip.files or [Path(clip.source)]
    own = cache is None
    hashes = cache if cache is not None else HashCache()
    try:
        digest = hashlib.sha256()
        for path in files:
            digest.update(hashes.md5(Path(path).resolve()).encode("ascii") + b"\n")
        return digest.hexdigest()
    finally:
        if own:
            hashes.close()


def options_key(choice: ServiceChoice, transform: Optional[SendTransform] = None) -> Dict[str, Any]:
    """The options that change what a job returns (services, their metadata, export types, and the colour
    conversion a sequence is sent through), as plain JSON values; where the output goes is left out."""
    specs = [{k: v for k, v in spec.items() if k != "output_path" and v is not None} for spec in choice.specs("")]
    key: Dict[str, Any] = {"services": specs, "exports": choice.exports()}
    if transform is not None:
        key["colour"] = transform.to_dict()
    return json.loads(json.dumps(key, sort_keys=True))


class AlreadySent(InputError):
    """This clip was sent with these options before: the earlier job's results answer it, or the hand-off the agent
    holds for it (waiting or uploading, not a job yet) will (``--force`` sends anyway). Raised before anything is
    uploaded. ``job_id`` is the earlier job's (None for a hand-off: ``handoff`` is its queue entry then); ``what``
    names either, for a sentence."""

    def __init__(self, earlier: Union[JobRecord, QueueEntry]) -> None:
        if isinstance(earlier, QueueEntry):
            from ..agent import HandOff

            self.job_id: Optional[str] = None
            self.handoff: Optional[int] = earlier.id
            self.state = JobState.RUNNING if earlier.state == "running" else JobState.QUEUED
            self.what = f"the Tether agent's hand-off {earlier.id}"
            how, follow = HandOff(earlier).words, "follow it (`tether agent queue`)"
        else:
            self.job_id, self.handoff, self.state = earlier.job_id, None, earlier.state
            self.what = f"Autopilot job {earlier.job_id}"
            done = earlier.state is JobState.COMPLETED
            how = "its results are ready" if done else f"it is {earlier.state_label}"
            follow = (f"import it (`tether autopilot import {earlier.job_id} --nk OUT.nk`) or fetch it" if done
                      else f"follow it (`tether autopilot status {earlier.job_id}`)")
        super().__init__(f"this clip was already sent with the same options as {self.what} ({how}): {follow} "
                         "instead of paying for the frames again, or send anyway with --force")


def find_sent(registry: JobRegistry, clip_hash: str, options: Dict[str, Any]) -> Optional[JobRecord]:
    """The job that already did (or is doing) this clip with these options: a completed one first, else one still
    running; failed, cancelled and vanished jobs do not count."""
    same = [r for r in registry.list(service=SERVICE)
            if r.extra.get("clip_hash") == clip_hash and r.extra.get("options") == options and not r.missing
            and r.state not in (JobState.FAILED, JobState.CANCELLED)]
    done = [r for r in same if r.state is JobState.COMPLETED]
    found = done or same
    return found[0] if found else None


def find_handed(registry: JobRegistry, clip_hash: str, options: Dict[str, Any]) -> Optional[QueueEntry]:
    """The hand-off of this clip with these options the agent's queue holds and has not made into a job yet
    (waiting or uploading): two sends queued before either is a job are one too many. One the agent made into a
    job is :func:`find_sent`'s; a failed or cancelled one does not count."""
    from ..agent import QUEUE_WAITING

    for entry in registry.queue(QUEUE_WAITING):
        recorded = entry.request.get("recorded") or {}
        if (entry.service == SERVICE and recorded.get("clip_hash") == clip_hash
                and recorded.get("options") == options):
            return entry
    return None


def submit(client: AutopilotClient, clip_spec: str, choice: ServiceChoice, *, output_path: Optional[str] = None,
           metadata: Optional[Dict[str, Any]] = None, registry: Optional[JobRegistry] = None,
           out_dir: Optional[Path] = None, progress: Optional[Progress] = None, source_label: Optional[str] = None,
           source: Optional[str] = None, plate: Optional[PlateFacts] = None, force: bool = False,
           colour: Optional[ColourChoice] = None, encode_progress: Optional[Progress] = None,
           frames: Optional[str] = None) -> Submission:
    """Check, encode a sequence, upload and create the job; record it in ``registry``.

    ``source_label`` is what the job list shows; ``source`` what the job's metadata names as its clip (both default
    to the clip's path). ``plate`` is the Nuke Read the clip was staged from (the command line's plate is made from
    the clip); it is recorded with the film back, the content hash and the options, so an import from either door
    builds the same nodes. With a registry, a clip already sent with the same options raises :class:`AlreadySent`
    before anything is uploaded, unless ``force``. ``colour``: the plate's colour (a sequence is sent as a movie in
    a display space); ``progress`` follows the upload's bytes, ``encode_progress`` the encode's frames (False from
    either cancels); ``frames``: as :func:`prepare`."""
    prep, record_extra = _checked(client, clip_spec, choice, output_path=output_path, registry=registry,
                                  out_dir=out_dir, plate=plate, force=force, colour=colour, frames=frames)
    clip = prep.clip
    with staging("tether-autopilot-") as tmp:
        upload_path = _staged(prep, Path(tmp), encode_progress)
        job, s3_key = _send(client, upload_path, prep.upload_name, job_payload(prep, UPLOAD_PLACEHOLDER, metadata,
                                                                               source),
                            {**submission_facts(prep, source), **record_extra}, Steps(), registry=registry,
                            title=Path(clip.source).name, source=source_label or clip.source, out_dir=out_dir,
                            progress=progress)
    return Submission(job=job, clip=clip, s3_key=s3_key, output_path=prep.output_path)


def _checked(client: Optional[AutopilotClient], clip_spec: str, choice: ServiceChoice, *,
             output_path: Optional[str], registry: Optional[JobRegistry], out_dir: Optional[Path],
             plate: Optional[PlateFacts], force: bool, colour: Optional[ColourChoice], frames: Optional[str] = None
             ) -> Tuple[Prepared, Dict[str, Any]]:
    """Every check before anything is encoded or uploaded, and what the registry keeps for the import."""
    prep = prepare(client, clip_spec, choice, output_path=output_path, colour=colour, frames=frames)
    if out_dir is not None:
        check_output_dir(out_dir)
    clip = prep.clip
    record_extra: Dict[str, Any] = {}
    if registry is not None:
        clip_hash, options = content_hash(clip), options_key(choice, prep.transform)
        earlier = find_sent(registry, clip_hash, options) or find_handed(registry, clip_hash, options)
        if earlier is not None and not force:
            raise AlreadySent(earlier)
        from ..nukeimport.job import FROM_COMMAND_LINE, FROM_NUKE

        record_extra = {"plate": (plate or clip_plate(clip)).to_dict(),
                        "plate_origin": FROM_NUKE if plate is not None else FROM_COMMAND_LINE,
                        "sensor": sensor_of(choice), "clip_hash": clip_hash, "options": options}
    return prep, record_extra


def _staged(prep: Prepared, folder: Path, encode_progress: Optional[Progress]) -> Path:
    """The file the clip goes up as: a sequence encoded (or zipped) into ``folder``, a movie as it is."""
    clip = prep.clip
    if prep.transform is not None:
        return encode_movie(clip.files, folder / prep.upload_name, prep.transform, fps=clip.fps,
                            first_frame=clip.first_frame, progress=encode_progress).path
    if clip.kind == "sequence":
        log.warning("Tether: %s", prep.fallback)
        return pack_sequence(clip, folder / clip.upload_name)
    return Path(clip.source)


def _send(client: AutopilotClient, upload_path: Path, upload_name: str, payload: JobCreate,
          recorded: Dict[str, Any], steps: Steps, *, registry: Optional[JobRegistry], title: str, source: str,
          out_dir: Optional[Path], progress: Optional[Progress] = None, resumed: bool = False
          ) -> Tuple[AutopilotJob, str]:
    """Upload (once: ``steps``), create with the payload's marker and record: the one path of a submit and of the
    agent's hand-off. ``resumed``: an earlier attempt may have made the job: it is looked for by its marker first."""
    s3_key = steps.once("s3_key", lambda: client.upload(upload_path, asset_type="video", file_name=upload_name,
                                                        progress=progress))
    payload = payload.model_copy(update={"assets": [a.model_copy(update={"source_path": s3_key})
                                                    for a in payload.assets]})
    recorded = {**recorded, "s3_key": s3_key, "services": [s.type for s in payload.assets[0].services]}
    marker = str(payload.metadata.get("tether_submission") or "")
    earlier = made_before(client, marker) if resumed and marker else None
    job = create_recorded(client, registry, lambda: client.create_job(payload), lambda job: job.id, earlier=earlier,
                          title=title, source=source, output_dir=out_dir, extra=recorded)
    return job, s3_key


# --- hand-off to the agent (tether.agent) ----------------------------------------------------------------------
def handoff_request(client: Optional[AutopilotClient], clip_spec: str, choice: ServiceChoice, *,
                    output_path: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None,
                    registry: Optional[JobRegistry] = None, out_dir: Optional[Path] = None,
                    source_label: Optional[str] = None, source: Optional[str] = None,
                    plate: Optional[PlateFacts] = None, force: bool = False, colour: Optional[ColourChoice] = None,
                    encode_progress: Optional[Progress] = None, frames: Optional[str] = None) -> Dict[str, Any]:
    """:func:`submit`'s checks and encode here (a DCC's or the command's), its upload, create and record in the
    agent: the JSON the agent's queue keeps. A sequence's movie (or zip) is written into a folder of the hand-off's
    own under Tether's data folder, which the agent removes once the job is made."""
    prep, record_extra = _checked(client, clip_spec, choice, output_path=output_path, registry=registry,
                                  out_dir=out_dir, plate=plate, force=force, colour=colour, frames=frames)
    clip = prep.clip
    kept = kept_folder(prep.submission)
    try:
        upload_path = _staged(prep, kept, encode_progress)
    except BaseException:
        shutil.rmtree(kept, ignore_errors=True)
        raise
    return {"upload": str(Path(upload_path).absolute()), "upload_name": prep.upload_name,
            "payload": job_payload(prep, UPLOAD_PLACEHOLDER, metadata, source).model_dump(mode="json"),
            "recorded": {**submission_facts(prep, source), **record_extra}, "title": Path(clip.source).name,
            "source": source_label or clip.source, "out_dir": str(out_dir) if out_dir is not None else None,
            "kept": str(kept)}


def run_handoff(client: AutopilotClient, request: Dict[str, Any], *, registry: JobRegistry, resumed: bool,
                progress: Optional[ProgressCallback] = None, throttle: Optional[Throttle] = None,
                checkpoint: Optional[Checkpoint] = None) -> str:
    """The agent's side: :func:`submit`'s upload, create and record, the upload remembered in the queue; returns the
    job id. The hand-off's own folder goes once the job is recorded."""
    upload = Path(request["upload"])
    out = request.get("out_dir")
    job, _ = _send(client, upload, request["upload_name"], JobCreate.model_validate(request["payload"]),
                   dict(request["recorded"]), Steps.of(request, checkpoint), registry=registry,
                   title=request["title"], source=request["source"], out_dir=Path(out) if out else None,
                   progress=agent_progress(progress, throttle, upload.name), resumed=resumed)
    release(request)
    return job.id


submit_clip = submit  # the older name

__all__ = ["UPLOAD_PLACEHOLDER", "AlreadySent", "Prepared", "Preview", "ServiceChoice", "Submission", "build_payload",
           "check_frames", "clip_plate", "content_hash", "find_handed", "find_sent", "handoff_request", "job_payload",
           "options_key", "prepare", "preview", "run_handoff", "sensor_of", "submission_facts", "submit", "submit_clip"]
