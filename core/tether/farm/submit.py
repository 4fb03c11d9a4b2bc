"""The one headless farm submission path: the CLI, the Blender add-on and the tests all go through it.

The verbs of every service (:mod:`tether.submission`): :func:`prepare` (the checks, as a :class:`Preflight`),
:func:`preview` (the same :class:`Preflight`, whose ``document()`` is what would be sent) and :func:`submit`.
:class:`FarmSubmitter` is the path behind them; one instance keeps the farm's instance and package lists, so a UI
that checks again and again asks the farm once.

validate -> lay out the bundle (:mod:`tether.farm.bundle`) -> write its rewritten .blend copies -> hash and upload
what the farm lacks -> create the job -> record it locally. Everything that can be wrong with the input is found in
:meth:`FarmSubmitter.preflight` and reported before a byte is uploaded; missing dependencies may be submitted anyway
once named (the farm then renders without them).
"""

from __future__ import annotations

import getpass
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..blend import Dependencies, SceneFacts, check_blend, scene_facts
from ..creation import create_recorded
from ..errors import BadRequest, InputError, redact
from ..fileio import output_dir_problem, summarise
from ..fileio import staging as staging_folder
from . import bundle as bundles
from .client import FarmClient
from .models import FarmJob, Instance, JobCreate, Package

if TYPE_CHECKING:
    from ..handoff import Checkpoint
    from ..registry import JobRegistry
    from ..transfer import HashCache, Throttle, TransferProgress

SERVICE = "farm"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class FarmOptions:
    """What the artist chose. ``None`` means: take it from the scene or the farm's default."""

    scene: Path
    frames: Optional[str] = None  # full spec (1-100x2, 1,5,10-20, fml:3); default: the scene's start-end x step
    chunk_size: int = 1
    scout: str = ""
    instance_type: Optional[str] = None
    blender_version: Optional[str] = None
    project: str = "default"
    title: Optional[str] = None
    output_path: Optional[str] = None  # where the farm writes; default renders/<scene>/<time>
    out_dir: Optional[Path] = None  # where frames are fetched to on this machine
    extra_files: Sequence[Path] = ()
    environment: Dict[str, str] = field(default_factory=dict)
    preemptible: bool = False
    preemptible_retries: int = 0
    scene_name: Optional[str] = None
    allow_missing: bool = False  # "submit anyway" after the missing files were named
    project_root: Optional[Path] = None  # the folder whose layout the farm keeps; default: the scene's folder


@dataclass
class Preflight:
    """The scan outcome: what would be sent, and what is wrong with it."""

    facts: SceneFacts
    frames: List[int]
    frame_spec: str
    chunks: List[List[int]]
    scout_frames: List[int]
    deps: Dependencies
    extra_files: List[Path]
    bundle: Optional[bundles.Bundle]  # the layout (nothing written yet); None when the scene could not be traced
    errors: List[str]
    warnings: List[str]
    payload: Optional[JobCreate]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def upload_size(self) -> int:
        return self.facts.path.stat().st_size + self.deps.size + sum(p.stat().st_size for p in self.extra_files)

    @property
    def scout_tasks(self) -> int:
        scouts = set(self.scout_frames)
        return sum(1 for chunk in self.chunks if scouts.intersection(chunk))

    @property
    def uploads(self) -> List[Path]:
        """The local files a submission uploads, in order: the .blend (as a rewritten copy), its dependencies
        (linked libraries as rewritten copies too), extras."""
        return [self.facts.path, *self.deps.found, *self.extra_files]

    @property
    def remote_names(self) -> List[str]:
        """The farm-side name of each of :attr:`uploads`, in the same order."""
        assert self.bundle is not None
        return self.bundle.remote_names(self.extra_files)

    def preview(self) -> Dict[str, Any]:
        """What :meth:`FarmSubmitter.submit` would send, as plain JSON values; nothing is uploaded or created.

        ``errors`` (nothing is sent while there are any) and ``warnings`` first, then the job ``payload`` (None while
        errors block it; keys sorted), each file to upload with its farm-side name and size, and the missing files.
        ``output_path``'s default holds the time of this check: a submission stamps its own.
        """
        files: List[Dict[str, Any]] = []
        names = self.remote_names if self.bundle is not None else [""] * len(self.uploads)
        for path, remote in zip(self.uploads, names):
            try:
                size: Optional[int] = path.stat().st_size
            except OSError:
                size = None
            files.append({"path": str(path), "remote": remote, "size": size})
        return {
            "ready": self.ok,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "payload": _sorted(self.payload.model_dump(mode="json")) if self.payload is not None else None,
            "uploads": files,
            "upload_size": sum(f["size"] or 0 for f in files),
            "missing": {str(p): self.deps.missing_from.get(p, "?") for p in self.deps.missing},
        }

    def preview_json(self) -> str:
        """:meth:`preview` as indented JSON, any registered secret redacted (a credential is never part of it)."""
        return redact(json.dumps(self.preview(), indent=2))

    document = preview  # the verbs' Preview (tether.submission.Preview)
    to_json = preview_json

    def raise_errors(self) -> None:
        if self.errors:
            raise InputError("cannot submit:\n  - " + "\n  - ".join(self.errors))


@dataclass
class SubmitResult:
    job: FarmJob
    preflight: Preflight
    upload: Any  # tether.transfer.UploadReport
    seconds: float


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False



def _listing(opts: FarmOptions, scene: Path, name: str) -> Path:
    """Where a long list goes in full: beside the output folder when there is one, else in Tether's data folder."""
    if opts.out_dir is not None:
        return Path(opts.out_dir).parent / f"{Path(opts.out_dir).name}.{scene.stem}.{name}"
    from ..settings import data_dir

    return data_dir() / "reports" / f"{scene.stem}.{name}"

class FarmSubmitter:
    def __init__(self, client: FarmClient, registry: Optional[JobRegistry] = None,
                 hash_cache: Optional[HashCache] = None, throttle: Optional[Throttle] = None) -> None:
        self.client = client
        self.registry = registry
        self.hash_cache = hash_cache
        self.throttle = throttle  # a bandwidth cap on the uploads (the agent's)
        self._instances: Optional[List[Instance]] = None
        self._packages: Optional[List[Package]] = None

    # --- the farm's lists, fetched once per submitter -------------------------------------------------------
    def instances(self) -> List[Instance]:
        if self._instances is None:
            self._instances = self.client.instances()
        return self._instances

    def packages(self) -> List[Package]:
        if self._packages is None:
            self._packages = self.client.packages()
        return self._packages

    # --- validation ---------------------------------------------------------------------------------------------
    def preflight(self, opts: FarmOptions) -> Preflight:
        from .. import frames as framespec

        scene = check_blend(opts.scene)
        facts = scene_facts(scene, opts.scene_name)
        errors: List[str] = []
        warnings: List[str] = []

        if not facts.has_camera:
            errors.append(f"scene '{facts.scene}' has no active camera: set one (Scene properties > Camera)")
        software = facts.render_software
        if software is None:
            errors.append(f"the scene's render engine '{facts.engine}' is not one the farm runs "
                          f"(known: {', '.join(sorted(set(ENGINE_NAMES)))}); switch engine in Render properties")
        if not facts.output_pattern.strip():
            errors.append("the scene's output path is empty: set Output properties > Output to e.g. //render/####")

        frame_list: List[int] = []
        spec_text = opts.frames or facts.frame_spec
        chunks: List[List[int]] = []
        scouts: List[int] = []
        try:
            base = framespec.parse(facts.frame_spec)
            spec = framespec.parse(spec_text, base=base)
            frame_list = list(spec.frames)
            the_plan = framespec.plan(spec, opts.chunk_size, opts.scout or None)
            chunks = [list(c.frames) for c in the_plan.chunks]
            scouts = list(the_plan.scout_frames)
            spec_text = spec.format()
        except InputError as exc:
            errors.append(str(exc))

        instance_id = opts.instance_type
        enabled = [i for i in self.instances() if i.enabled]
        if instance_id is None:
            instance_id = enabled[0].id if enabled else None
            if instance_id is None:
                errors.append("the farm offers no enabled instance type")
        else:
            known = {i.id: i for i in self.instances()}
            if instance_id not in known:
                errors.append(f"unknown instance type '{instance_id}'; the farm offers: "
                              f"{', '.join(i.id for i in enabled)}")
            elif not known[instance_id].enabled:
                errors.append(f"instance type '{instance_id}' is disabled on this farm; choose one of: "
                              f"{', '.join(i.id for i in enabled)}")

        version = opts.blender_version
        packages = {p.id: p for p in self.packages()}
        if version is None:
            version = sorted(packages, key=_version_key)[-1] if packages else None
            if version is None:
                errors.append("the farm lists no Blender package")
        elif version not in packages:
            errors.append(f"unknown Blender version '{version}'; the farm offers: {', '.join(sorted(packages))}")
        if version in packages and software and packages[version].render_software and \
                software not in packages[version].render_software:
            errors.append(f"{version} on this farm renders {', '.join(packages[version].render_software)}, "
                          f"not {software}")

        chosen = next((i for i in self.instances() if i.id == instance_id), None)
        errors += _output_errors(facts, opts)
        warnings += _output_warnings(facts)
        if chosen is not None:
            refusals, advice = _hardware(facts, chosen, [i for i in enabled if i.gpu])
            errors += refusals
            warnings += advice

        if opts.preemptible_retries < 0:
            errors.append("preemptible retries must be 0 or more")
        for name in opts.environment:
            if not _ENV_NAME.match(name):
                errors.append(f"environment variable name '{name}' is not valid: use letters, digits and _")

        extra: List[Path] = []
        for item in opts.extra_files:
            path = Path(item).expanduser()
            if not path.is_file():
                errors.append(f"extra file not found: {path}")
            else:
                extra.append(path.resolve())

        layout: Optional[bundles.Bundle] = None
        try:
            layout = bundles.build(scene, opts.project_root)
            deps = layout.deps
            errors += layout.errors
            warnings += layout.warnings
        except InputError as exc:
            errors.append(str(exc))
            deps = Dependencies()
        if deps.missing:
            named = summarise([f"{p} (used by {deps.missing_from.get(p, '?')})" for p in deps.missing],
                              "missing file(s)", _listing(opts, scene, "missing-files.txt"))
            if opts.allow_missing:
                warnings.append(f"{named}; the farm will render without them")
            else:
                errors.append(f"{named}; fix the paths, or submit anyway (--allow-missing) "
                              "and the farm will render without them")

        if opts.out_dir is not None:
            problem = output_dir_problem(opts.out_dir)
            if problem:
                errors.append(problem)
        uploads = [scene, *deps.found, *extra]
        out_dirs = [d for d in (facts.output_dir(), opts.out_dir) if d is not None]
        for folder in out_dirs:
            clash = [p for p in uploads if _inside(p, folder)]
            if clash:
                errors.append(f"the output folder {folder} holds files that would be uploaded ({clash[0].name}"
                              f"{' and more' if len(clash) > 1 else ''}): rendered frames would overwrite them; "
                              "choose another output folder")

        payload = None
        if not errors and instance_id and version and software and layout is not None:
            payload = JobCreate(
                job_title=opts.title or f"{scene.stem} {spec_text}",
                project=opts.project,
                instance_type=instance_id,
                preemptible=opts.preemptible,
                preemptible_retries=opts.preemptible_retries,
                chunk_size=opts.chunk_size,
                frame_range=spec_text,
                scout_frames=opts.scout or "",
                blender_version=version,
                render_software=software,
                output_path=opts.output_path or f"renders/{scene.stem}/{time.strftime('%Y%m%d-%H%M%S')}",
                upload_paths=layout.remote_names(extra),
                environment_variables=dict(opts.environment),
            )
        return Preflight(facts=facts, frames=frame_list, frame_spec=spec_text, chunks=chunks, scout_frames=scouts,
                         deps=deps, extra_files=extra, bundle=layout, errors=errors, warnings=warnings,
                         payload=payload)

    # --- submission ---------------------------------------------------------------------------------------------
    def submit(self, opts: FarmOptions, progress: Optional[Callable[[TransferProgress], Optional[bool]]] = None,
               source: Optional[str] = None) -> SubmitResult:
        from ..transfer import HashCache, upload_files

        started = time.monotonic()
        check = self.preflight(opts)
        check.raise_errors()
        assert check.payload is not None
        with staging_folder("tether-submit-") as staging:
            # Rewritten copies of the .blend files (a snapshot too: the artist can keep saving while it uploads).
            built = bundles.build(check.facts.path, opts.project_root, staging)
            if built.deps.missing and not opts.allow_missing:
                raise InputError(f"files went missing since the check: {', '.join(map(str, built.deps.missing))}")
            payload = check.payload.model_copy(update={"upload_paths": built.remote_names(check.extra_files)})
            items = built.items(check.extra_files)
            cache = self.hash_cache or HashCache()
            with ThreadPoolExecutor(1, thread_name_prefix="tether-proof") as pool:
                # Blender opens the bundle while the files are hashed; the farm is asked nothing before it passes.
                proof = pool.submit(bundles.verify, built, check.facts.path)
                report = upload_files(items, self.client, cache=cache, progress=progress, throttle=self.throttle,
                                      before_send=lambda: self._proven(proof.result(), check))
            self._ensure_project(opts.project)
            source = source or str(check.facts.path)
            out_dir = str(opts.out_dir) if opts.out_dir else None
            extra = {"frames": check.frame_spec, "chunk_size": opts.chunk_size, "scout": opts.scout,
                     "output_path": check.payload.output_path, "user": getpass.getuser()}

            def create() -> FarmJob:
                nonlocal report
                try:
                    return self.client.create_job(payload)
                except BadRequest as exc:
                    if "never uploaded" not in str(exc):
                        raise
                # The farm lost files it had confirmed earlier: forget what it said, upload again, once.
                cache.forget_store(self.client.store_key)
                report = upload_files(items, self.client, cache=cache, progress=progress, throttle=self.throttle)
                return self.client.create_job(payload)

            job = create_recorded(self.client, self.registry, create, lambda job: job.id, title=payload.job_title,
                                  source=source, output_dir=out_dir, extra=extra,
                                  reply=lambda job: {"title": job.job_title})
        return SubmitResult(job=job, preflight=check, upload=report, seconds=time.monotonic() - started)

    @staticmethod
    def _proven(problems: Optional[List[bundles.Unresolved]], check: Preflight) -> None:
        if problems is None:
            check.warnings.append("no headless Blender here to open the rewritten scene before the upload "
                                  "(pip install bpy==5.0.1, or set TETHER_BLENDER); the bundle was sent unproven")
        elif problems:
            raise InputError("the rewritten scene would not find these files on the farm; nothing was uploaded:"
                             "\n  - " + "\n  - ".join(map(str, problems)))

    def _ensure_project(self, name: str) -> None:
        if not any(p.name == name for p in self.client.projects()):
            self.client.create_project(name)


def prepare(client: FarmClient, opts: FarmOptions) -> Preflight:
    """Every check, before anything is uploaded; the outcome says what is wrong (``errors``) instead of raising."""
    return FarmSubmitter(client).preflight(opts)


def preview(client: FarmClient, opts: FarmOptions) -> Preflight:
    """What :func:`submit` would send: the :class:`Preflight` (its ``document()`` and ``to_json()``)."""
    return prepare(client, opts)


def submit(client: FarmClient, opts: FarmOptions, *, registry: Optional[JobRegistry] = None,
           progress: Optional[Callable[[TransferProgress], Optional[bool]]] = None, source_label: Optional[str] = None,
           hash_cache: Optional[HashCache] = None) -> SubmitResult:
    """Check, upload what the farm lacks, create the job; record it in ``registry``."""
    return FarmSubmitter(client, registry, hash_cache).submit(opts, progress=progress, source=source_label)


# --- hand-off to the agent (tether.agent) ----------------------------------------------------------------------
def handoff_request(opts: FarmOptions) -> Dict[str, Any]:
    """``opts`` as the JSON the agent's queue keeps. The farm-side output path is pinned now (its default holds a
    time), so a resumed hand-off can recognise the job it may already have made before it was killed."""
    from pydantic import TypeAdapter

    if not opts.output_path:
        opts = replace(opts, output_path=f"renders/{Path(opts.scene).stem}/{time.strftime('%Y%m%d-%H%M%S')}-"
                                         f"{uuid.uuid4().hex[:6]}")
    adapter: TypeAdapter[FarmOptions] = TypeAdapter(FarmOptions)
    return dict(adapter.dump_python(opts, mode="json"))


def run_handoff(client: FarmClient, request: Dict[str, Any], *, registry: JobRegistry, resumed: bool,
                progress: Optional[Callable[[TransferProgress], Optional[bool]]] = None,
                throttle: Optional[Throttle] = None, checkpoint: Optional[Checkpoint] = None) -> str:
    """The agent's side of a hand-off: submit the queued request and return the job id. ``resumed`` (an earlier
    attempt was cut off): first look for the job that attempt may have created, so it is never made twice; the
    uploads it finished are not sent again (the farm is asked by md5, and confirmed files are remembered in the hash
    cache, which is the farm's checkpoint: ``checkpoint`` is not needed)."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[FarmOptions] = TypeAdapter(FarmOptions)
    opts = adapter.validate_python(request)
    if resumed and opts.output_path:
        existing = next((j for j in client.list_jobs(page=1, per_page=50).items
                         if j.output_path == opts.output_path), None)
        if existing is not None:
            registry.record(service=SERVICE, job_id=existing.id, profile=client.profile, title=existing.job_title,
                            source=str(opts.scene), output_dir=str(opts.out_dir) if opts.out_dir else None)
            return existing.id
    return FarmSubmitter(client, registry, throttle=throttle).submit(opts, progress=progress).job.id


ENGINE_NAMES = ("CYCLES", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH")


def _output_errors(facts: SceneFacts, opts: FarmOptions) -> List[str]:
    errors = []
    if facts.movie:
        errors.append("the scene writes a movie (FFMPEG video): farm tasks render frames on separate machines and "
                      "cannot write one video file; choose an image format (PNG, OpenEXR) in Output Properties > "
                      "Output and make the movie from the fetched frames")
    return errors


def _output_warnings(facts: SceneFacts) -> List[str]:
    warnings = []
    if facts.views:
        warnings.append(f"stereo/multiview written view by view: each frame comes back as "
                        f"{len(facts.views)} files ({', '.join(facts.views)} before the extension)")
    unresolved = facts.unresolved_templates()
    if unresolved:
        warnings.append(f"the output path '{facts.output_pattern}' uses path templates Tether cannot fill in from "
                        f"the file ({', '.join('{' + t + '}' for t in unresolved)}): the farm's Blender fills them "
                        "in, and frames are fetched to the folder before the first template")
    if facts.addons:
        named = "; ".join(f"{name} (on {', '.join(owners[:3])}{' and more' if len(owners) > 3 else ''})"
                          for name, owners in sorted(facts.addons.items()))
        warnings.append(f"the scene holds settings of add-ons that are not part of Blender: {named}; the farm's "
                        "Blender renders without them (their effect is lost) unless they are installed there")
    return warnings


def _hardware(facts: SceneFacts, instance: Instance, gpus: List[Instance]) -> Tuple[List[str], List[str]]:
    """(errors, warnings) of the scene's engine and device against the chosen instance type."""
    offer = ", ".join(i.id for i in gpus) or "none on this farm"
    if facts.render_software == "eevee" and not instance.gpu:
        return [f"EEVEE needs a GPU and instance type '{instance.id}' has none: choose a GPU instance "
                f"({offer}) or render with Cycles"], []
    if facts.render_software == "cycles" and facts.cycles_device == "GPU" and not instance.gpu:
        return [], [f"the scene's Cycles device is GPU Compute but instance type '{instance.id}' has no GPU: "
                    f"the farm renders on its CPU (slower); choose a GPU instance ({offer}) or set Device to CPU"]
    if facts.render_software == "cycles" and facts.cycles_device == "CPU" and instance.gpu:
        return [], [f"instance type '{instance.id}' has a GPU ({instance.gpu}) but the scene's Cycles device is "
                    "CPU: the GPU stays idle; set Device to GPU Compute, or choose a CPU instance"]
    return [], []


def _sorted(value: Any) -> Any:
    """Dicts with their keys sorted, at every depth (json.dumps(sort_keys=True) would reorder the preview too)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _version_key(package_id: str) -> Tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", package_id))
