"""What every `tether SERVICE ...` command shares: the same verbs for each service of :mod:`tether.spec`.

``tether SERVICE submit|jobs|status|fetch|cancel``: a service module adds ``submit`` and ``jobs`` (their options are
its own) and whatever it alone offers, and may give its own ``status``, ``fetch`` or ``cancel``; :meth:`finish` adds
the generic ones it left out, which work through the client's :class:`tether.jobs.JobService` methods. Older verbs
(``enhance``, ``style``, ``result``, ``results``) stay as aliases of the verb they are.
"""

from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Set

from tether.errors import InputError
from tether.spec import SPECS

if TYPE_CHECKING:
    from tether.colour import ColourChoice
    from tether.jobs import Job
    from tether.submission import Preview

VERBS = ("submit", "jobs", "status", "fetch", "cancel")


class ServiceCommand:
    """``tether SERVICE``: its parser, its actions, and the common verbs it does not define itself."""

    def __init__(self, subparsers: Any, service: str) -> None:
        spec = SPECS[service]
        self.service = service
        self.parser: argparse.ArgumentParser = subparsers.add_parser(
            service, help=spec.summary,
            description=f"{spec.summary}. Every service has the verbs {', '.join(VERBS)}.")
        self.actions = self.parser.add_subparsers(dest=f"{service}_command", metavar="ACTION")
        self.parser.set_defaults(func=self._help, service_name=service)
        self.verbs: Set[str] = set()
        self.parsers: Dict[str, argparse.ArgumentParser] = {}

    def _help(self, args: argparse.Namespace) -> int:
        self.parser.print_help()
        return 2

    def add(self, verb: str, *, aliases: Sequence[str] = (), func: Any = None, json_option: bool = False,
            **kwargs: Any) -> argparse.ArgumentParser:
        """An action running ``func``; ``aliases`` are older names that run the same action; ``json_option`` adds
        ``--json``."""
        self.verbs.add(verb)
        parser: argparse.ArgumentParser = self.actions.add_parser(verb, aliases=list(aliases), **kwargs)
        self.parsers[verb] = parser
        if json_option:
            parser.add_argument("--json", action="store_true", help="print JSON")
        if func is not None:
            parser.set_defaults(func=func)
        return parser

    @staticmethod
    def submit_options(parser: argparse.ArgumentParser, checks: str, out: str) -> None:
        """What every ``submit`` takes: --dry-run (``checks`` says what it checks), --wait, --out (``out``), --json."""
        parser.add_argument("--dry-run", action="store_true", help=f"check {checks}; send nothing")
        parser.add_argument("--wait", action="store_true", help="follow the job until it finishes")
        parser.add_argument("--out", type=Path,
                            help=f"{out} (implies --wait; handed to the agent, it fetches them itself)")
        parser.add_argument("--json", action="store_true", help="print machine-readable results")
        parser.add_argument("--no-agent", action="store_true",
                            help="upload here and now instead of handing off to the background agent "
                                 "(also TETHER_AGENT=off; the way on render nodes and in CI)")
        parser.add_argument("--priority", type=int, default=0, metavar="N",
                            help="the agent's order: a higher N uploads first and overtakes a lower one's upload "
                                 "between files (default 0; `tether agent priority` changes it while it waits)")

    @staticmethod
    def sequence_options(parser: argparse.ArgumentParser) -> None:
        """What every clip service's ``submit`` takes for an image sequence: which frames, and its colour on the way
        to the service (:mod:`tether.colour`)."""
        parser.add_argument("--frames", metavar="RANGE",
                            help="a sequence's frames to send, e.g. 1001-1100 (default: the range in its name, "
                                 "plate.1001-1100#.exr, else every frame on disk)")
        parser.add_argument("--colorspace", "--colourspace", dest="colorspace", metavar="NAME",
                            help="a sequence's colour space in the OCIO config: a name, alias or role, Nuke's names "
                                 "too (linear, sRGB, Cineon, ...) (default: EXR scene_linear, DPX compositing_log, "
                                 "PNG/JPEG/TIFF display-referred)")
        parser.add_argument("--ocio", metavar="CONFIG", help="OCIO config file or ocio:// URI (default: $OCIO, else "
                                                              "ocio://studio-config-latest)")
        parser.add_argument("--display-colorspace", metavar="NAME",
                            help="the display colour space a sequence is sent in (default: the config's "
                                 "color_picking)")

    def clip_import(self) -> None:
        """``import JOB --nk OUT.nk``: a clip service's returned movie as a Read on its plate's frames, in the colour
        space that undoes the send (the Nuke dialog's import, written as a script)."""
        title = SPECS[self.service].title
        imp = self.add("import", help=f"write a finished {title} job's clip as a Read in a Nuke .nk script")
        imp.add_argument("job", help="job id")
        imp.add_argument("--nk", type=Path, required=True, metavar="OUT.nk", help="the .nk script to write")
        imp.add_argument("--out", type=Path, help="folder for the downloaded clip (default: beside the .nk)")
        imp.add_argument("--snippet", action="store_true",
                         help="write a snippet to paste with the plate's Read selected, not a script that opens alone")
        imp.set_defaults(func=cmd_clip_import)

    def finish(self) -> None:
        """Add the common verbs this service did not define itself."""
        title = SPECS[self.service].title
        if "status" not in self.verbs:
            status = self.add("status", help=f"one {title} job's state, progress and outputs")
            status.add_argument("job", help="job id")
            status.add_argument("--json", action="store_true", help="print JSON")
            status.set_defaults(func=cmd_status)
        if "fetch" not in self.verbs:
            fetch = self.add("fetch", help=f"download a finished {title} job's outputs")
            fetch.add_argument("job", help="job id")
            fetch.add_argument("--out", type=Path, metavar="DIR",
                               help="folder for the outputs (default: the one recorded when it was submitted)")
            fetch.add_argument("--json", action="store_true", help="print the files as JSON")
            fetch.set_defaults(func=cmd_fetch)
        if "cancel" not in self.verbs:
            cancel = self.add("cancel", help=f"cancel a {title} job")
            cancel.add_argument("job", help="job id")
            cancel.set_defaults(func=cmd_cancel)
        missing = [v for v in VERBS if v not in self.verbs]
        if missing:  # pragma: no cover - a service module that forgot its submit or jobs
            raise RuntimeError(f"`tether {self.service}` has no {', '.join(missing)}")
        jobs = self.parsers["jobs"]
        jobs.add_argument("--remote", action="store_true",
                          help=f"every job {title} itself lists, each marked whether it is recorded here (one that "
                               f"is not is brought in by `tether jobs adopt {self.service} ID`)")
        own = jobs.get_default("func")
        jobs.set_defaults(func=lambda args: cmd_remote_jobs(args) if args.remote else own(args))


def client(args: argparse.Namespace) -> Any:
    """The client of the command's service, for the command's profile."""
    return SPECS[args.service_name].client_class().from_profile(args.profile)


def job_dict(job: Job) -> Dict[str, Any]:
    return {**job.model_dump(mode="json"), "state_label": job.state_label}


def status_line(job: Job) -> str:
    return (f"{job.id}: {job.state_label} ({job.raw_state}), {job.progress:.0f}%"
            + (f"; outputs: {', '.join(o.name for o in job.outputs)}" if job.outputs else "")
            + (f"; {job.error}" if job.error else ""))


def print_jobs(jobs: List[Job], as_json: bool, columns: Sequence[str] = ("job", "title", "state", "progress")) -> None:
    """A service's job listing: JSON, or a table (plain when piped) of ``columns`` (also ``outputs``, ``error``)."""
    from .tables import print_table

    if as_json:
        print(json.dumps([job_dict(j) for j in jobs]))
        return
    cells = {"job": lambda j: j.id, "title": lambda j: j.title, "state": lambda j: j.state_label,
             "progress": lambda j: f"{j.progress:.0f}%", "outputs": lambda j: ", ".join(o.name for o in j.outputs),
             "error": lambda j: j.error or ""}
    print_table(tuple("name" if c == "title" and "outputs" in columns else c for c in columns),
                [tuple(cells[c](j) for c in columns) for j in jobs])


def print_preview(preview: Preview) -> None:
    """A dry run's answer: what would be sent, as JSON on stdout (so `> file` keeps it)."""
    print(preview.to_json())


def cmd_status(args: argparse.Namespace) -> int:
    from tether.jobs import JobState

    with client(args) as c:
        job = c.get_job(args.job)
    print(json.dumps(job_dict(job)) if args.json else status_line(job))
    return 1 if job.state in (JobState.FAILED, JobState.CANCELLED) else 0


def output_folder(args: argparse.Namespace) -> Path:
    """``--out``, else the folder recorded when the job was submitted from this machine."""
    if args.out is not None:
        return Path(args.out).resolve()
    from tether.registry import JobRegistry

    record = JobRegistry().get(args.service_name, args.job)
    if record is None or not record.output_dir:
        raise InputError(f"{args.service_name} job {args.job} has no recorded output folder: add --out DIR")
    return Path(record.output_dir)


def cmd_fetch(args: argparse.Namespace) -> int:
    from tether.registry import JobRegistry

    from .progress import TransferBars, status_console

    out = output_folder(args)
    with client(args) as c, TransferBars(status_console()) as bars:
        files = c.fetch_outputs(args.job, out, progress=lambda done, total: bars.bytes("download", done, total))
    JobRegistry().mark_fetched(args.service_name, args.job, out)
    if getattr(args, "json", False):
        print(json.dumps({"job_id": args.job, "files": [str(p) for p in files]}))
    else:
        for path in files:
            print(path)
    return 0


def cmd_remote_jobs(args: argparse.Namespace) -> int:
    """``tether SERVICE jobs --remote``: the service's own list (``remote_jobs``), whether each is recorded here."""
    from itertools import islice

    from tether.registry import JobRegistry

    from .progress import status_console
    from .tables import print_table

    limit = getattr(args, "limit", 0) or 100
    with client(args) as c:
        jobs: List[Job] = list(islice(c.remote_jobs(), limit))
    here = {r.job_id for r in JobRegistry().list(service=args.service_name)}
    if args.json:
        print(json.dumps([{**job_dict(j), "recorded": j.id in here} for j in jobs]))
        return 0
    print_table(("job", "title", "state", "progress", "recorded"),
                [(j.id, j.title, j.state_label, f"{j.progress:.0f}%", "yes" if j.id in here else "no") for j in jobs])
    strays = sum(1 for j in jobs if j.id not in here)
    if strays:
        status_console().print(f"{strays} not recorded here: `tether jobs adopt {args.service_name} ID` records one",
                               markup=False, highlight=False)
    return 0


def cmd_clip_import(args: argparse.Namespace) -> int:
    from tether.media import is_movie
    from tether.nukeimport import plate_from_record, write_nk
    from tether.nukeimport.clip import describe_clip_job
    from tether.registry import JobRegistry

    from .progress import status_console

    service, title = args.service_name, SPECS[args.service_name].title
    registry = JobRegistry()
    record = registry.get(service, args.job)
    if record is None:
        raise InputError(f"{title} job {args.job} is not in the job registry ({registry.path}): only jobs sent from "
                         "this machine know their plate")
    nk = args.nk.resolve()
    dest = (args.out or nk.parent / f"{nk.stem}_{service}").resolve()
    with client(args) as c:
        files = c.fetch_outputs(args.job, dest)
    registry.mark_fetched(service, args.job, dest)
    movies = [f for f in files if is_movie(f)]
    if not movies:
        raise InputError(f"{title} job {args.job} returned no movie ({', '.join(p.name for p in files) or 'nothing'})")
    description = describe_clip_job(plate_from_record(record.extra), movies[0], record.extra, suffix=service,
                                    job_id=args.job, title=f"Tether {title} import")
    path = write_nk(description, nk, standalone=not args.snippet)
    console = status_console()
    console.print(f"[green]wrote[/] {path} ({movies[0].name} as a Read)")
    for note in description.notes:
        console.print(f"  [yellow]note[/] {note}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.cancel_job(args.job)
    print(f"{args.service_name} job {args.job} cancelled")
    return 0


def handed_off(args: argparse.Namespace, service: str, request: Callable[[], Dict[str, Any]], *, profile: str,
               title: str, out: Optional[Path], console: Any) -> bool:
    """Hand a checked submission to the background agent (started when none runs) and say so; False when it goes
    in-process instead (``--no-agent``, ``TETHER_AGENT=off``, or no agent could be started). ``request`` makes the
    service's ``handoff_request`` JSON, once the agent is known to run (it may encode a clip first)."""
    from tether import agent

    entry = agent.offer(service, request, no_agent=getattr(args, "no_agent", False),
                        unavailable=lambda exc: console.print(f"[yellow]{exc}[/]: uploading from here instead"),
                        profile=profile, title=title, output_dir=out, fetch=out is not None,
                        priority=getattr(args, "priority", 0))
    if entry is None:
        return False
    where = f"; its outputs come home to {out}" if out is not None else ""
    console.print(f"[green]handed off[/] to the agent (queue entry {entry.id}): it uploads and creates the job; "
                  f"`tether agent queue` shows it{where}")
    if getattr(args, "json", False):
        print(json.dumps({"handoff": entry.id, "service": service, "title": title}))
    return True


def colour_choice(args: argparse.Namespace) -> ColourChoice:
    """The plate's colour as :meth:`ServiceCommand.sequence_options` took it."""
    from tether.colour import ColourChoice

    return ColourChoice(colorspace=args.colorspace or "", config=args.ocio, display=args.display_colorspace)


@dataclass
class ClipToSend:
    """The movie a movie-only service is sent for the command's clip, and what its job records about it."""

    path: Path
    source: str  # what the user named: the movie, or the sequence's pattern
    extra: Dict[str, Any] = field(default_factory=dict)  # the plate, the colour transform and the frame mapping

    @property
    def staged(self) -> bool:
        """Encoded into the block's staging folder (a sequence), not the user's own movie."""
        return "colour" in self.extra or "plate" in self.extra

    def preview(self, upload: Dict[str, Any]) -> Dict[str, Any]:
        """A dry run's ``upload`` facts, naming the sequence (not the movie staged for it) and how it goes."""
        if "colour" not in self.extra:
            return upload
        return {**upload, "source": self.source, "sent_as": "mp4", "colour": self.extra["colour"],
                "frames": self.extra["frame_count"], "first_frame": self.extra["first_frame"]}


@contextmanager
def clip_to_send(args: argparse.Namespace, console: Any) -> Iterator[ClipToSend]:
    """``args.clip`` as the movie to upload: a movie as it is; an image sequence (``plate.####.exr``,
    ``plate.1001-1100#.exr``, ``--frames``) checked, then encoded as the Nuke panel encodes a Read's frames
    (:func:`tether.encode.movie_for_upload`) into a staging folder that lives as long as the block. Bad input (missing
    frames, an unknown colour space, no media libraries) is refused before anything is encoded or sent."""
    from dataclasses import replace

    from tether.autopilot.clip import inspect_clip, is_pattern
    from tether.autopilot.submit import clip_plate
    from tether.encode import EncodedMovie, movie_for_upload
    from tether.fileio import staging
    from tether.media import split_range
    from tether.nukeimport.job import FROM_COMMAND_LINE

    from .progress import TransferBars

    spec = str(args.clip)
    if not (is_pattern(split_range(spec)[0]) or args.frames):
        yield ClipToSend(path=Path(spec), source=spec)  # a movie: the service's own checks apply
        return
    clip = inspect_clip(spec, args.frames)
    colour = colour_choice(args)
    plate = replace(clip_plate(clip), colorspace=colour.colorspace, ocio_config=colour.config or "")
    with staging(f"tether-{args.service_name}-") as tmp:
        with TransferBars(console) as bars:  # the colour and the media libraries are checked before the first frame
            movie = movie_for_upload(plate, tmp, lambda done, total: bars.bytes("encode", done, total), colour)
        sent, path = (movie.record(), movie.path) if isinstance(movie, EncodedMovie) else ({}, movie)
        yield ClipToSend(path=path, source=clip.source, extra={
            "plate": plate.to_dict(), "plate_origin": FROM_COMMAND_LINE, "source": clip.source,
            "first_frame": clip.first_frame, "frame_count": clip.frame_count, **sent})


def out_folder(value: Optional[Path]) -> Optional[Path]:
    return value.resolve() if value else None


__all__ = ["VERBS", "ClipToSend", "ServiceCommand", "client", "clip_to_send", "cmd_cancel", "cmd_fetch",
           "cmd_remote_jobs", "cmd_status", "colour_choice", "handed_off", "job_dict", "out_folder", "print_jobs",
           "print_preview", "status_line"]
