"""Move (motion capture) for the add-on, in plain Python (no ``bpy``): the worker and its hand-off to the main thread.

A :class:`MoveRuntime` holds its own :class:`runtime.Handoff` and :class:`MoveStatus` (what the Move panel draws).
The worker (:func:`run_move`) hands the video to the Tether agent (which uploads it, makes the take and the job, and
goes on after Blender closes; in-process when no agent can run), follows the hand-off and then the job, and
downloads the FBX rig, posting ``move`` events as it goes; :meth:`MoveRuntime.pump` applies them on the main thread
and returns the finished result, which the operator imports there (``bpy`` is never touched off the main thread).
Headless, timers never fire: the operator joins the worker and pumps itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .runtime import Handoff, Notice, WorkerTask

PHASES = ("idle", "uploading", "processing", "downloading", "done", "failed", "cancelled")


@dataclass
class MoveStatus:
    phase: str = "idle"
    message: str = ""
    job_id: str = ""
    state: str = ""  # the job's state label (the vendor's own word when unknown)
    progress: float = 0.0  # 0..100
    done_bytes: int = 0
    total_bytes: int = 0
    fbx: str = ""
    fps: Optional[float] = None
    entry: int = 0  # the Tether agent's queue entry of this send (0: sent in-process, or following a job)
    notices: List[Notice] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return self.phase in ("uploading", "processing", "downloading")

    @property
    def factor(self) -> float:
        if self.phase == "uploading" and self.total_bytes:
            return self.done_bytes / self.total_bytes
        return self.progress / 100.0


@dataclass(frozen=True)
class MoveRequestValues:
    """What the operator read from the scene, as plain values."""

    profile: str
    video: str = ""
    job_id: str = ""  # follow an existing job instead of submitting
    entry: int = 0  # follow a hand-off in the agent's queue (sent before Blender was closed) to its job
    name: str = ""
    dest_root: str = ""  # "" = Tether's data folder
    outputs: tuple = ("MAIN_FBX",)
    start: Optional[float] = None  # the clip window sent to Move, seconds into the video
    end: Optional[float] = None
    priority: int = 0  # the Tether agent's queue order of its upload, as `tether move submit --priority`


@dataclass(frozen=True)
class StripTake:
    """A Sequencer movie strip as Move sees it: the file, the clip window of its visible (trimmed) part, and the
    scene frame where that part starts, where the take's first key belongs."""

    video: str
    fps: float
    start: Optional[float]  # seconds; None when the strip shows the whole file
    end: Optional[float]
    frame: int


def strip_take(video: str, fps: float, frame_start: float, final_start: int, final_end: int,
               duration: int) -> StripTake:
    """A movie strip shows one video frame per scene frame (Blender 5 does not stretch a 25 fps strip in a 24 fps
    scene), so the scene frame ``f`` shows the video at ``(f - frame_start) / fps`` seconds; the visible frames are
    ``final_start .. final_end - 1``. An untrimmed strip sends no window (Move processes the whole file)."""
    first = max(0.0, final_start - frame_start)
    last = min(float(duration), final_end - frame_start)
    trimmed = first > 0 or last < duration
    return StripTake(video=video, fps=fps, start=round(first / fps, 6) if trimmed else None,
                     end=round(last / fps, 6) if trimmed else None, frame=int(final_start))


@dataclass(frozen=True)
class Retime:
    """Where an imported take's keys go: the importer keys second ``t`` at ``offset + t * import_fps`` (the
    scene's whole-number ``render.fps``, whatever its ``fps_base``); the take is put back on whole scene frames from
    ``place`` at the scene's real rate, so it plays in real time however the video and the scene differ."""

    first_key: float  # the importer's frame of the take's first key
    last_key: float
    import_fps: float
    scene_rate: float  # scene frames per second (fps / fps_base)
    place: int

    @property
    def seconds(self) -> float:
        return max(0.0, (self.last_key - self.first_key) / self.import_fps)

    @property
    def frames(self) -> List[int]:
        """The whole scene frames the take covers (a key on each)."""
        count = int(self.seconds * self.scene_rate + 1e-6) + 1
        return [self.place + i for i in range(count)]

    def source_frame(self, scene_frame: float) -> float:
        """The importer's frame that shows what the take does at ``scene_frame``."""
        return self.first_key + (scene_frame - self.place) / self.scene_rate * self.import_fps


class MoveTask(WorkerTask):
    """One submit-and-follow (or follow) on a daemon thread; ``cancel()`` stops the upload or the waiting."""

    kind = "move"
    thread_name = "tether-move"
    cancelled_message = "stopped; a job already created goes on at Move"

    def __init__(self, values: MoveRequestValues, handoff: Handoff, work: Optional[Callable[..., Any]] = None) -> None:
        super().__init__(handoff)
        self.values = values
        self._work = work or run_move

    def start(self) -> None:
        first = "uploading" if not self.values.job_id else "processing"
        self.launch(phase=first, message="starting", job_id=self.values.job_id)

    def work(self) -> Dict[str, Any]:
        return self._work(self.values, self._post, self.cancel_requested.is_set, self.uses)

    def _post(self, **data: Any) -> None:
        self.handoff.post(self.kind, **data)


def _request(values: MoveRequestValues) -> Any:
    from tether.move.submit import MoveRequest

    return MoveRequest(video=Path(values.video), name=values.name, outputs=list(values.outputs), start=values.start,
                       end=values.end)


RIG = "MAIN_FBX"  # the output imported as the rig


def rig_root(values: MoveRequestValues) -> Path:
    """Where rigs go: the operator's folder (beside the saved .blend), else Tether's data folder."""
    from tether.settings import data_dir

    return Path(values.dest_root) if values.dest_root else data_dir() / "move"


def hand_off(values: MoveRequestValues, profile: str) -> Optional[int]:
    """Queue the send for the Tether agent (started if needed) and return its queue entry: the agent uploads the video
    (the artist's own file, read where it is: nothing of Blender's is needed once queued), makes the take and the job
    and records it, and brings the rig home to a folder of its own under the rig folder when the job completes,
    after Blender closes too. None to send in-process: TETHER_AGENT=off, or no agent can run."""
    from tether import agent
    from tether.move.submit import handoff_request

    title = values.name or Path(values.video).stem
    entry = agent.offer("move", lambda: handoff_request(_request(values), source_label=values.video), profile=profile,
                        title=title, priority=values.priority, fetch=True,
                        output_dir=agent.home_folder(rig_root(values), title))
    return entry.id if entry is not None else None


def rig_came_home(rec: Any) -> Optional[Path]:
    """The rig the Tether agent brought home for the job (its home folder's MAIN_FBX file), or None: not brought home
    by the agent, or no longer there (then it is downloaded again)."""
    folder = str(rec.extra.get("fetched_to") or rec.output_dir or "") if rec is not None else ""
    if not folder or not rec.extra.get("agent_fetch") or rec.fetched_at is None or not Path(folder).is_dir():
        return None
    rigs = sorted(p for p in Path(folder).glob(f"{RIG}.*") if p.is_file() and p.stat().st_size > 0)
    return rigs[0] if rigs else None


def rig_from_home(client: Any, reg: Any, job_id: str, cancelled: Callable[[], bool]) -> Optional[Path]:
    """The rig of a completed job the agent was asked to bring home, read from there: waited for while an agent runs
    (it downloads it once it sees the job complete, maybe after Blender did), brought home here as the agent would
    when none runs or when it is no longer all there. None when it is not the agent's to bring, or a running agent
    did not bring it (Blender downloads a copy of its own then, home left to the agent)."""
    from tether import agent

    rec = reg.get("move", job_id)
    if rec is None or not rec.extra.get("agent_fetch") or not rec.output_dir:
        return None
    if rec.fetched_at is None:
        try:
            return rig_came_home(agent.await_home(reg, "move", job_id, cancelled=cancelled))
        except agent.AgentNotRunning:
            pass  # none will bring it
    # no agent runs, or what it brought is no longer all there (it brings a job's results once)
    agent.bring_home(client, reg, rec)
    return rig_came_home(reg.get("move", job_id))


def follow_handoff(entry_id: int, post: Callable[..., None], cancelled: Callable[[], bool],
                   sleep: Callable[[float], object]) -> Dict[str, Any]:
    """Wait for the agent to make the job of hand-off ``entry_id``, showing its upload; ``{"job_id": ...}``, or the
    worker's final result when it failed or the artist stopped following (the agent goes on with it)."""
    from tether.agent import follow_handoff as follow
    from tether.poll import Clock

    def update(handed: Any) -> bool:
        post(phase="uploading", entry=entry_id, done_bytes=handed.bytes_done, total_bytes=handed.bytes_total,
             message=handed.note if not handed.bytes_total else f"the Tether agent: video {handed.words} "
                                                                 f"(queue entry {entry_id})")
        return not cancelled()

    last = follow(entry_id, update, clock=Clock(sleep=sleep))
    entry = last.entry if last is not None else None
    if entry is None or entry.state not in ("done", "failed", "cancelled"):
        return {"phase": "cancelled", "entry": entry_id,
                "message": f"stopped following; the Tether agent goes on with queue entry {entry_id} (Follow picks it "
                           "up again)"}
    if entry.state != "done" or not entry.job_id:
        return {"phase": "failed", "entry": entry_id,
                "message": f"the Tether agent could not send the video (queue entry {entry_id}): "
                           f"{entry.error or entry.state}"}
    return {"job_id": str(entry.job_id)}


FOLLOW_WAIT = 0.5  # how long one look at the Tether agent waits for its next cycle: a Stop is heard within it


def follow_job(values: MoveRequestValues, job_id: str, reg: Any, client: Any, post: Callable[..., None],
               cancelled: Callable[[], bool], uses: Callable[[Any], Any]) -> Any:
    """Follow the Move job until it finishes, posting its state: through the Tether agent's cycles while one answers
    (Blender asks Move nothing; ``tether.agent.watcher_for``), else polling Move itself, a Stop ending the wait
    between polls at once (``client.pause``). The job's last record; None when stopped."""
    from tether.agent import watcher_for
    from tether.clients import client_for

    if reg.get("move", job_id) is None:  # a job this machine did not send (a Follow by its id): learnt once
        reg.update_from(client.get_job(job_id), client.profile)
    watcher = watcher_for(reg, lambda service, profile: uses(client_for(service, profile or values.profile or None)),
                          wait=FOLLOW_WAIT, jobs=[("move", job_id)], fast=0.5, cap=10.0)
    try:
        while not cancelled():
            watcher.poll_once()
            rec = next((r for r in watcher.followed if r.job_id == job_id), None)
            if rec is not None:
                post(phase="processing", job_id=job_id, state=rec.state_label, progress=rec.progress,
                     message=f"job {job_id}: {rec.state_label}")
            if watcher.done:
                return rec
            client.pause(watcher.next_delay())
        return None
    finally:
        watcher.close()


def run_move(values: MoveRequestValues, post: Callable[..., None], cancelled: Callable[[], bool],
             uses: Callable[[Any], Any] = lambda client: client) -> Dict[str, Any]:
    """Submit (unless ``values.job_id``), follow until finished, download the FBX. Runs on the worker; ``uses``
    is given the client (the task's :meth:`~blender_addon.runtime.WorkerTask.uses`: a Stop aborts it). The send
    goes to the Tether agent when one runs or can start (:func:`hand_off`); the job is then the one it makes."""
    from tether.jobs import JobState
    from tether.move.client import MoveClient
    from tether.move.submit import submit_video
    from tether.registry import JobRegistry

    client = uses(MoveClient.from_profile(values.profile or None))
    reg = JobRegistry()
    try:
        job_id = values.job_id
        fps: Optional[float] = None
        entry = values.entry if not job_id else 0
        if not job_id and not entry:
            entry = hand_off(values, client.profile) or 0
        if entry:
            made = follow_handoff(entry, post, cancelled, client.pause)
            if "phase" in made:
                return made
            job_id = made["job_id"]
            post(phase="processing", job_id=job_id, entry=entry, message=f"job {job_id} made by the Tether agent")
        if not job_id:
            def upload_progress(done: int, total: int) -> bool:
                post(phase="uploading", done_bytes=done, total_bytes=total,
                     message=f"uploading {Path(values.video).name}")
                return not cancelled()

            sub = submit_video(client, _request(values), registry=reg, progress=upload_progress,
                               source_label=values.video)
            job_id, fps = sub.job.id, sub.facts.fps
            post(phase="processing", job_id=job_id, state=sub.job.raw_state,
                 message=f"job {job_id} submitted ({sub.frames} frames)" if sub.frames else f"job {job_id} submitted")
        if fps is None:
            record = reg.get("move", job_id)
            raw = record.extra.get("fps") if record is not None else None
            fps = float(raw) if isinstance(raw, (int, float)) else None

        rec = follow_job(values, job_id, reg, client, post, cancelled, uses)
        if rec is None or cancelled():
            return {"phase": "cancelled", "job_id": job_id, "message": f"stopped following job {job_id}; it goes on "
                                                                       "at Move (Follow picks it up again)"}
        if rec.state is not JobState.COMPLETED:
            gone = "was not found at Move" if rec.missing else rec.state_label
            return {"phase": "failed", "job_id": job_id, "state": rec.state_label,
                    "message": f"job {job_id} {gone}" + (f": {rec.error}" if rec.error else "")}
        post(phase="downloading", job_id=job_id, message=f"bringing the rig of job {job_id} home")
        fbx = rig_came_home(reg.get("move", job_id)) or rig_from_home(client, reg, job_id, cancelled)
        if cancelled():
            return {"phase": "cancelled", "job_id": job_id, "message": f"stopped; the rig of job {job_id} comes home "
                                                                       "with the Tether agent (Follow imports it)"}
        said = f"rig came home to {fbx}"
        if fbx is None:  # not the agent's to bring, or not all there: downloaded here
            dest = rig_root(values) / job_id
            fbx = client.download_output(client.get_move_job(job_id), RIG, dest)
            record = reg.get("move", job_id)
            if record is None or not record.extra.get("agent_fetch"):  # a copy here is not the rig's home
                reg.mark_fetched("move", job_id, dest)
            said = f"rig downloaded to {fbx}"
        return {"phase": "done", "job_id": job_id, "fbx": str(fbx), "fps": fps, "progress": 100.0,
                "state": rec.state_label, "message": f"job {job_id}: {said}"}
    finally:
        reg.close()
        client.close()


class MoveRuntime:
    """The Move panel's live state between register() and unregister()."""

    def __init__(self) -> None:
        self.handoff = Handoff()
        self.status = MoveStatus()
        self.task: Optional[MoveTask] = None

    @property
    def busy(self) -> bool:
        return (self.task is not None and self.task.alive()) or not self.handoff.empty()

    def start(self, values: MoveRequestValues, work: Optional[Callable[..., Any]] = None) -> MoveTask:
        self.status = MoveStatus(notices=self.status.notices)
        self.task = MoveTask(values, self.handoff, work)
        self.task.start()
        return self.task

    def pump(self) -> List[Dict[str, Any]]:
        """Apply the worker's events (main thread). Returns the finished results (phase done/failed/cancelled)."""
        finished: List[Dict[str, Any]] = []
        for event in self.handoff.drain(budget_s=0.004):
            data = dict(event.data)
            for name, value in data.items():
                if hasattr(self.status, name) and name != "notices":
                    setattr(self.status, name, value)
            if data.get("phase") in ("done", "failed", "cancelled"):
                level = {"done": "INFO", "failed": "ERROR"}.get(str(data["phase"]), "WARNING")
                self.status.notices.append(Notice(level, str(data.get("message") or data["phase"])))
                del self.status.notices[:-5]
                finished.append(data)
        return finished

    def shutdown(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task.join(2.0)
            self.task = None


def rig_frame_range(frame_ranges: List[tuple]) -> Optional[tuple]:
    """The scene range covering every imported action's keys: (first, last) as whole frames, or None."""
    if not frame_ranges:
        return None
    start = min(r[0] for r in frame_ranges)
    end = max(r[1] for r in frame_ranges)
    first = round(float(start))
    return first, max(first, round(float(end)))


__all__ = ["MoveRequestValues", "MoveRuntime", "MoveStatus", "MoveTask", "rig_frame_range", "run_move"]
