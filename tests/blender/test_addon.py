"""The add-on in the real bpy: register/unregister, start-up cost, panels drawn in every state, the handoff."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from waiting import PATIENCE

from .conftest import ADDON, ROOT

bpy = pytest.importorskip("bpy")

CLASS_NAMES = ("TETHER_OT_submit", "TETHER_OT_job_action", "TETHER_OT_fetch", "TETHER_PG_scene",
               "VIEW3D_PT_tether", "VIEW3D_PT_tether_jobs", "RENDER_PT_tether", "RENDER_PT_tether_summary",
               "TETHER_UL_paths")
HEAVY = ("httpx", "pydantic", "pydantic_core", "blender_asset_tracer", "keyring", "tether.farm", "tether.settings")


def _leftovers() -> List[str]:
    found = [name for name in CLASS_NAMES if hasattr(bpy.types, name)]
    if hasattr(bpy.types.Scene, "tether"):
        found.append("Scene.tether")
    found += [f"load_post:{h.__module__}" for h in bpy.app.handlers.load_post if h.__module__.startswith(ADDON)]
    draw_funcs = getattr(bpy.types.STATUSBAR_HT_header.draw, "_draw_funcs", [])
    found += [f"statusbar:{f.__module__}" for f in draw_funcs if f.__module__.startswith(ADDON)]
    ops = sys.modules.get(f"{ADDON}.ops")
    if ops is not None and bpy.app.timers.is_registered(ops.tick):
        found.append("timer")
    return found


def test_register_unregister_cycles_leave_nothing(blender: Any, tether_dirs: Path) -> None:
    import addon_utils

    assert _leftovers() == []
    for _ in range(3):
        assert addon_utils.enable(ADDON, default_set=True, handle_error=_fail) is not None
        assert "TETHER_OT_submit" in dir(bpy.types) and hasattr(bpy.types.Scene, "tether")
        bpy.context.scene.tether.chunk_size = 4
        ops = sys.modules[f"{ADDON}.ops"]
        ops.ensure_timer()  # a timer left registered by use must go too
        ops.runtime()
        addon_utils.disable(ADDON, default_set=True, handle_error=_fail)
        assert _leftovers() == []
        assert ops.peek_runtime() is None


def _fail(exc: BaseException) -> None:
    raise exc


def test_enable_imports_nothing_heavy(tmp_path: Path) -> None:
    """In a fresh process (this one has httpx loaded by other tests): enabling imports no httpx/pydantic/BAT."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import bpy, addon_utils
        before = set(sys.modules)
        assert addon_utils.enable({ADDON!r}, default_set=True) is not None
        loaded = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in
                        ("httpx", "pydantic", "pydantic_core", "blender_asset_tracer", "keyring", "tether"))
        print("RESULT" + json.dumps(loaded))
    """)
    env = {**_clean_env(), "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    assert json.loads(line[len("RESULT"):]) == []


def _clean_env() -> Dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}


# --- panels drawn with a recording layout ----------------------------------------------------------------------
FUNCS = set(bpy.types.UILayout.bl_rna.functions.keys())
LAYOUT_PROPS = set(bpy.types.UILayout.bl_rna.properties.keys())


class OpProps:
    """What layout.operator() returns: only the operator's own properties may be set."""

    def __init__(self, idname: str, log: List[Dict[str, Any]]) -> None:
        group, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, group), name).get_rna_type()
        object.__setattr__(self, "_allowed", set(rna.properties.keys()))
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_idname", idname)
        log.append({"call": "operator_props", "idname": idname, "values": self._values})

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in self._allowed, f"{self._idname} has no property {name!r}"
        self._values[name] = value


class Recorder:
    """A strict stand-in for UILayout: unknown functions, attributes or RNA properties fail the test."""

    def __init__(self, log: Optional[List[Dict[str, Any]]] = None) -> None:
        object.__setattr__(self, "log", log if log is not None else [])

    def __setattr__(self, name: str, value: Any) -> None:
        assert name in LAYOUT_PROPS, f"UILayout has no attribute {name!r}"
        self.log.append({"call": "set", "name": name, "value": value})

    def __getattr__(self, name: str) -> Any:
        assert name in FUNCS, f"UILayout has no function {name!r}"

        def call(*args: Any, **kwargs: Any) -> Any:
            entry = {"call": name, "args": args, **kwargs}
            self.log.append(entry)
            if name in ("prop", "prop_search") and args:
                data, prop = args[0], args[1]
                assert prop in data.bl_rna.properties, f"{type(data).__name__} has no property {prop!r}"
            if name == "operator":
                return OpProps(args[0], self.log)
            if name == "template_list":
                assert hasattr(bpy.types, args[0]), f"no UIList {args[0]}"
            if name in ("row", "column", "box", "split", "column_flow", "grid_flow"):
                return Recorder(self.log)
            return None

        return call

    def texts(self) -> List[str]:
        return [str(e.get("text", "")) for e in self.log if e["call"] in ("label", "progress", "operator")]

    def calls(self, name: str) -> List[Dict[str, Any]]:
        return [e for e in self.log if e["call"] == name]


def _draw_all(space: str = "VIEW3D") -> Recorder:
    rec = Recorder()
    for suffix in ("", "_settings", "_extras", "_summary", "_jobs"):
        panel = getattr(bpy.types, f"{space}_PT_tether{suffix}")
        fake = type("FakePanel", (), {"layout": rec})()
        panel.draw(fake, bpy.context)
    return rec


@pytest.fixture()
def saved_scene(addon: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The panel may start its background lookups: point them at a closed port so they fail fast and quietly.
    monkeypatch.setenv("TETHER_FARM_URL", "http://127.0.0.1:9/farm")
    path = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    # Draw tests look at drawing only: mark the background lookups as already started (they are tested below).
    rt = _rt()
    rt.auto_started = True
    rt.ui.summary_running = True
    return path


def _rt() -> Any:
    return sys.modules[f"{ADDON}.ops"].runtime()


def _settle() -> None:
    """Let the background lookups the draw started finish, and apply them."""
    rt = _rt()
    for thread in list(rt.threads):
        thread.join(PATIENCE)
    if rt.monitor is not None:
        rt.monitor.stop()
        rt.monitor = None
    rt.pump()


def test_panel_no_job(saved_scene: Path) -> None:
    dirty_before = bpy.data.is_dirty
    rec = _draw_all()
    _settle()
    texts = rec.texts()
    assert "Submit to Farm" in texts
    assert "No jobs for this file yet" in texts
    assert bpy.data.is_dirty == dirty_before  # draw() wrote no ID data
    rec2 = _draw_all("RENDER")
    assert "Submit to Farm" in rec2.texts()


def test_panel_uploading(saved_scene: Path) -> None:
    from blender_addon.runtime import Phase

    rt = _rt()
    rt.ui.submit.phase = Phase.UPLOADING
    rt.ui.submit.done_bytes, rt.ui.submit.total_bytes = 512 * 1024, 1024 * 1024
    rt.ui.submit.message = "uploading shot.blend"
    rec = _draw_all()
    bars = rec.calls("progress")
    assert bars and bars[0]["factor"] == pytest.approx(0.5)
    assert "uploading shot.blend" in bars[0]["text"]
    assert "Cancel" in rec.texts() and "Submit to Farm" not in rec.texts()
    _settle()


def _row(state: str, path: Path, **extra: Any) -> Any:
    from blender_addon.runtime import JobRow

    fields: Dict[str, Any] = {"job_id": "j-42", "title": "shot 1-5x2", "label": state, "progress": 40.0,
                              "tasks": 5, "completed": 2, "running": 1, "waiting": 2, **extra}
    return JobRow(state=state, source=str(path), scene=bpy.context.scene.name, **fields)


def test_panel_running(saved_scene: Path) -> None:
    rt = _rt()
    rec = _draw_all()
    _settle()
    rt.ui.jobs = [_row("running", saved_scene)]
    rec = _draw_all()
    actions = {e["values"].get("action"): e["values"].get("job_id") for e in rec.calls("operator_props")
               if e["idname"] == "tether.job_action"}
    assert actions == {"hold": "j-42", "priority": "j-42", "cancel": "j-42"}
    job_bar = [e for e in rec.calls("progress") if "tasks 2/5 done" in e["text"]]
    assert job_bar and job_bar[0]["factor"] == pytest.approx(0.4)
    assert "1 running" in job_bar[0]["text"] and "2 waiting" in job_bar[0]["text"]
    _settle()


def test_panel_failed(saved_scene: Path) -> None:
    from blender_addon.runtime import Phase

    rt = _rt()
    _draw_all()
    _settle()
    rt.ui.jobs = [_row("failed", saved_scene, error="chunk 3: Blender exited 1")]
    rt.ui.submit.phase = Phase.FAILED
    rt.ui.submit.message = "cannot submit:\n  - missing files: tex/missing.png (used by IMmissing)"
    rec = _draw_all()
    texts = rec.texts()
    assert "chunk 3: Blender exited 1" in texts
    assert any("missing files: tex/missing.png" in t for t in texts)
    assert not [e for e in rec.calls("operator_props") if e["values"].get("action") == "hold"]
    alerts = [e for e in rec.log if e["call"] == "set" and e["name"] == "alert" and e["value"]]
    assert alerts
    _settle()


def test_panel_lists_the_agents_hand_offs_and_where_results_came_home(saved_scene: Path) -> None:
    """A submission the agent holds is listed (uploading, with its progress; failed, with why) without job actions,
    and a job whose frames the agent downloaded says where they came home."""
    rt = _rt()
    _draw_all()
    _settle()
    home = str(saved_scene.parent / "render")
    rt.ui.jobs = [_row("queued", saved_scene, job_id="", label="uploading 40%", handoff=7),
                  _row("failed", saved_scene, job_id="", label="hand-off failed", handoff=6, error="the farm said no"),
                  _row("completed", saved_scene, fetched_to=home, came_home=True)]
    rec = _draw_all()
    texts = rec.texts()
    assert "Handed to the Tether agent (queue entry 7): Blender may close" in texts
    assert [e["factor"] for e in rec.calls("progress") if e["text"] == "uploading 40%"] == [pytest.approx(0.4)]
    assert "The Tether agent could not submit it: the farm said no" in texts
    assert f"Frames came home to {home}" in texts
    acted = [e["values"] for e in rec.calls("operator_props") if e["idname"] == "tether.job_action"]
    assert {v.get("job_id") for v in acted if not v.get("handoff")} <= {"j-42"}  # no hold or priority: not a job
    assert [v.get("action") for v in acted if v.get("handoff")] == ["cancel"]  # the waiting one can be cancelled
    _settle()


def test_the_jobs_list_reads_a_queued_hand_off_from_the_agent(saved_scene: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """backend.list_rows: the farm submission the (paused) agent holds, first, with its scene; the monitor looks
    again soon while one waits; its Cancel drops it; nothing is read with TETHER_AGENT=off."""
    from tether import agent
    from tether.agent_server import Agent
    from tether.clients import client_for
    from tether.farm.submit import FarmOptions, handoff_request
    from tether.registry import JobRegistry
    from tether.watch import Watcher

    from blender_addon import backend
    from blender_addon.runtime import HANDOFF_LOOK, Handoff, Monitor

    monkeypatch.setenv("TETHER_AGENT", "auto")
    live = Agent(agent.runtime_dir(), JobRegistry(), notify=lambda title, text: None).start()
    try:
        live.pause()
        entry = agent.hand_off("farm", handoff_request(FarmOptions(scene=saved_scene, frames="1")), profile="local",
                               title=saved_scene.stem, start_agent=False, record={"scene": bpy.context.scene.name})
        [row] = backend.list_rows()
        assert (row.handoff, row.label, row.state, row.job_id) == (entry.id, "queued for upload", "queued", "")
        assert row.source == str(saved_scene) and row.scene == bpy.context.scene.name
        monitor = Monitor(lambda: Watcher(JobRegistry(), client_for, service="farm"), backend.list_rows, Handoff())
        assert monitor.cycle() <= HANDOFF_LOOK
        assert backend.cancel_handoff(entry.id) == {}  # the row's Cancel: the agent drops it, no job is made
        assert backend.list_rows() == [] and JobRegistry().queue_entry(entry.id).state == "cancelled"  # type: ignore[union-attr]
        monkeypatch.setenv("TETHER_AGENT", "off")
        assert backend.list_rows() == []
    finally:
        live.close()


def test_panel_offline_says_how(saved_scene: Path) -> None:
    bpy.context.preferences.system.use_online_access = False
    try:
        rec = _draw_all()
        assert "Allow it in Preferences > System > Network > Allow Online Access" in rec.texts()
        with pytest.raises(RuntimeError, match="Allow Online Access"):
            bpy.ops.tether.submit(wait=True)
        assert _rt().submit_task is None  # nothing started
        with pytest.raises(RuntimeError, match="Allow Online Access"):
            bpy.ops.tether.job_action(job_id="j-1", action="hold")
    finally:
        bpy.context.preferences.system.use_online_access = True


def test_submit_refuses_unsaved(addon: Any) -> None:
    with pytest.raises(RuntimeError, match=r"Save the \.blend first"):
        bpy.ops.tether.submit(wait=True)


def test_background_is_dirty_is_meaningless(saved_scene: Path) -> None:
    """Why the add-on does not trust bpy.data.is_dirty headless: it stays True right after a save."""
    bpy.ops.wm.save_mainfile()
    assert bpy.app.background and bpy.data.is_dirty


# --- the plain-Python state machines ---------------------------------------------------------------------------
def test_handoff_worker_to_main(tmp_path: Path) -> None:
    from blender_addon.runtime import Phase, Runtime, SubmitTask

    rt = Runtime()
    release = threading.Event()
    seen: List[bool] = []

    def run(progress: Any) -> Dict[str, Any]:
        seen.append(progress((10, 100)))
        release.wait(PATIENCE)
        seen.append(progress((100, 100)))
        return {"job_id": "j-1", "message": "job j-1 submitted"}

    task = SubmitTask(run, rt.handoff, post_every=0.0)
    rt.submit_task = task
    task.start()
    release.set()
    task.join(PATIENCE)
    assert rt.ui.submit.phase is Phase.IDLE  # nothing applied until the main thread pumps
    notices = rt.pump()
    assert rt.ui.submit.phase is Phase.DONE and rt.ui.submit.job_id == "j-1"
    assert [n.text for n in notices] == ["job j-1 submitted"]
    assert seen == [True, True]


def test_cancel_makes_progress_return_false() -> None:
    from blender_addon.runtime import Phase, Runtime, SubmitTask

    rt = Runtime()
    started = threading.Event()
    answers: List[bool] = []

    def run(progress: Any) -> Dict[str, Any]:
        started.set()
        while True:
            ok = progress((1, 10))
            answers.append(ok)
            if not ok:
                from tether.errors import CancelledByUser

                raise CancelledByUser("upload cancelled")
            threading.Event().wait(0.01)

    task = SubmitTask(run, rt.handoff)
    task.start()
    started.wait(PATIENCE)
    task.cancel()
    task.join(PATIENCE)
    assert not task.alive()
    rt.pump()
    assert rt.ui.submit.phase is Phase.CANCELLED
    assert answers[-1] is False


def test_monitor_cycle_with_registry(tmp_path: Path, tether_dirs: Path) -> None:
    """The monitor as plain Python: a real registry and Watcher, a stub JobService; changes reach the UI state."""
    from tether.jobs import Job, JobState
    from tether.registry import JobRegistry
    from tether.watch import Watcher

    from blender_addon import backend
    from blender_addon.runtime import Monitor, Runtime

    reg = JobRegistry()
    reg.record(service="farm", job_id="j-7", profile="local", title="shot", source=str(tmp_path / "a.blend"),
               extra={"scene": "Scene"})
    answers = {"state": JobState.RUNNING, "progress": 50.0}

    class Service:
        service = "farm"

        def jobs_by_id(self, ids: Any) -> Dict[str, Job]:
            return {i: Job(service="farm", id=i, title="shot", state=answers["state"], raw_state="rendering",
                           progress=answers["progress"], counts={"tasks": 4, "completed": 2, "running": 1})
                    for i in ids}

    rt = Runtime()
    fetched: List[Any] = []
    rt.on_fetch = lambda job_id, folder: fetched.append((job_id, folder))
    rt.auto_fetch["j-7"] = str(tmp_path / "frames")
    monitor = Monitor(lambda: Watcher(reg, lambda s, p: Service(), service="farm"), backend.list_rows, rt.handoff)
    monitor.cycle()
    rt.pump()
    [row] = rt.ui.jobs
    assert (row.job_id, row.state, row.progress, row.tasks, row.completed, row.scene) == \
        ("j-7", "running", 50.0, 4, 2, "Scene")
    answers.update(state=JobState.COMPLETED, progress=100.0)
    monitor.cycle()
    notices = rt.pump()
    assert rt.ui.jobs[0].state == "completed"
    assert any("completed" in n.text for n in notices)
    assert fetched == [("j-7", str(tmp_path / "frames"))]
    reg.close()


def test_monitor_survives_a_broken_service(tether_dirs: Path) -> None:
    from blender_addon.runtime import Monitor, Runtime

    rt = Runtime()

    def broken() -> Any:
        raise RuntimeError("no route to farm")

    monitor = Monitor(broken, list, rt.handoff, idle_delay=7.0)
    assert monitor.cycle() == 7.0
    rt.pump()
    assert "no route to farm" in rt.ui.jobs_error


def test_a_service_that_keeps_failing_is_reported_once_and_shown_while_it_lasts(tether_dirs: Path) -> None:
    """Move jobs with no Move key (or a farm down for the night): one warning when the service stops answering,
    its reason in the jobs list while it lasts, cleared when it answers; failing again is reported again."""
    from tether.errors import ConfigError
    from tether.jobs import Job, JobState
    from tether.registry import JobRegistry
    from tether.watch import Watcher

    from blender_addon import backend
    from blender_addon.runtime import Monitor, Runtime

    reg = JobRegistry()
    reg.record(service="move", job_id="m-1", profile="local", title="walk.mp4")
    answering = {"now": False}

    class Move:
        service = "move"

        def jobs_by_id(self, ids: Any) -> Dict[str, Job]:
            if not answering["now"]:
                raise ConfigError("no Move API key: set TETHER_MOVE_API_KEY or run `tether login move`")
            return {i: Job(service="move", id=i, title="walk.mp4", state=JobState.RUNNING, raw_state="processing",
                           progress=10.0) for i in ids}

    rt = Runtime()
    monitor = Monitor(lambda: Watcher(reg, lambda s, p: Move(), service="move"), backend.list_rows, rt.handoff)

    def warnings() -> List[str]:
        return [n.text for n in rt.pump() if n.level == "WARNING"]

    said = []
    for _ in range(4):
        monitor.cycle()
        said += warnings()
        assert "no Move API key" in rt.ui.jobs_error and rt.ui.jobs[0].job_id == "m-1"
    assert len(said) == 1 and "no Move API key" in said[0]
    answering["now"] = True
    monitor.cycle()
    assert warnings() == [] and rt.ui.jobs_error == ""
    answering["now"] = False
    monitor.cycle()
    assert len(warnings()) == 1 and "no Move API key" in rt.ui.jobs_error
    reg.close()


def test_submit_hands_off_to_a_running_agent(addon: Any, tiny_blend: Path, local_services: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With an agent running, Submit checks the scene and queues it for the agent: Blender may close at once."""
    from tether import agent
    from tether.agent_server import Agent
    from tether.registry import JobRegistry

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    monkeypatch.setenv("TETHER_AGENT", "auto")
    live = Agent(agent.runtime_dir(), JobRegistry(), notify=lambda title, text: None).start()
    live.pause()  # it keeps what it is given; uploading is the agent's own test
    try:
        bpy.ops.wm.open_mainfile(filepath=str(tiny_blend))
        props = bpy.context.scene.tether
        props.fetch_dir, props.auto_fetch = str(tiny_blend.parent / "frames"), True
        assert props.upload_priority == 0  # as `tether farm submit --priority`'s default
        props.upload_priority = 7
        local_services.requests.clear()
        assert bpy.ops.tether.submit(wait=True) == {"FINISHED"}
        status = sys.modules[f"{ADDON}.ops"].runtime().ui.submit
        assert "handed to the Tether agent" in status.message and status.job_id == ""
        with JobRegistry() as reg:
            [entry] = reg.queue()
        assert entry.service == "farm" and entry.state == "queued" and entry.fetch is True
        assert entry.priority == 7  # the agent takes it before a lower one, and `tether agent queue` shows it
        assert entry.request["scene"] == str(tiny_blend) and entry.request["output_path"]
        assert entry.output_dir == str(tiny_blend.parent / "frames")
    finally:
        live.close()
    assert local_services.requests.count(path=r"/api/uploads|/api/jobs$") == 0  # nothing sent by Blender


def test_monitor_follows_each_job_at_its_own_endpoint(tiny_blend: Path, local_services: Any, tether_dirs: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A job submitted to an endpoint override (recorded with it, in-process or by the agent) is followed, fetched
    and acted on there, whatever the add-on's endpoint is now; the profile's own farm here leads nowhere."""
    import socket

    from test_farm_client import _held_jobs
    from tether.farm.client import FarmClient
    from tether.jobs import JobState
    from tether.registry import JobRegistry

    from blender_addon import backend

    with socket.socket() as free:  # the profile's farm, and the add-on's endpoint now: a port nothing listens on
        free.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{free.getsockname()[1]}/farm"
    monkeypatch.setenv("TETHER_FARM_URL", nowhere)
    farm_url = local_services.url("farm")
    with FarmClient.from_profile("local", url=farm_url) as farm:
        [job_id] = _held_jobs(farm, tiny_blend, "override", 1)
    with JobRegistry() as reg:
        reg.record(service="farm", job_id=job_id, profile="local", extra={"endpoint": farm_url})
    account = backend.Account(profile="local", endpoint=nowhere)
    assert backend.at_job(account, job_id) == backend.Account("local", farm_url)
    assert backend.at_job(account, "never-recorded") == account
    watcher = backend.make_watcher(account)
    try:
        assert [c.message for c in watcher.poll_once() if c.kind.value == "error"] == []
        [seen] = watcher.followed
        assert seen.job_id == job_id and seen.raw_state and not seen.missing
        backend.job_action(account, job_id, "cancel")  # at the job's farm, not the endpoint set now
        watcher.poll_once()
        assert watcher.followed[0].state is JobState.CANCELLED
    finally:
        watcher.close()


def test_the_monitor_subscribes_to_the_agent_while_one_runs(tiny_blend: Path, local_services: Any, tether_dirs: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With a Tether agent running, the add-on's job monitor reads the agent's cycles: Blender costs the farm no GET
    per job and no list of its own (the lists are the agent's, one page a cycle), the jobs reach their end states in
    the rows, and Monitor.stop returns at once. With TETHER_AGENT=off the monitor polls the farm itself."""
    import math
    import time

    from test_farm_client import EMAIL, PASSWORD, _held_jobs
    from tether import agent
    from tether.agent_server import Agent
    from tether.farm.client import FarmClient
    from tether.registry import JobRegistry
    from waiting import eventually

    from blender_addon import backend
    from blender_addon.runtime import Monitor, Runtime

    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    monkeypatch.setenv("TETHER_AGENT", "auto")
    farm = FarmClient(local_services.url("farm"), email=EMAIL, password=PASSWORD)
    ids = _held_jobs(farm, tiny_blend, "blender-watch", 3)
    registry = JobRegistry()
    for job_id in ids:
        registry.record(service="farm", job_id=job_id, profile="local")
    live = Agent(agent.runtime_dir(), registry, fast=0.05, cap=0.2, notify=lambda title, text: None).start()
    rt = Runtime()
    monitor = Monitor(lambda: backend.make_watcher(backend.Account("local")), backend.list_rows, rt.handoff)
    requests = local_services.requests
    try:
        monitor.start()
        eventually(lambda: monitor.watcher is not None and monitor.watcher.cycles >= 1, message="the monitor to start")
        requests.clear()
        start, seen = live.cycle, monitor.watcher.cycles
        eventually(lambda: live.cycle >= start + 5 and monitor.watcher.cycles >= seen + 3,
                   message="a few cycles of the agent and of the monitor")
        cycles = live.cycle - start
        pages = math.ceil(len(local_services.farm.jobs) / 100)
        assert requests.count("GET", r"/farm/api/jobs/[^/]+$") == 0  # no GET per job
        assert requests.count("GET", r"/farm/api/jobs$") <= (cycles + 1) * pages  # the agent's alone
        for job_id in ids:
            farm.cancel_job(job_id)

        def states() -> Dict[str, str]:
            rt.pump()
            return {row.job_id: row.state for row in rt.ui.jobs if row.job_id in ids}

        eventually(states, lambda now: now == {job_id: "cancelled" for job_id in ids},
                   message="the jobs to end in the rows")
        began = time.monotonic()
        monitor.stop()
        assert not monitor.alive() and time.monotonic() - began < 1.5  # a wait on the agent ends soon
    finally:
        monitor.stop()
        live.close()
    # no agent: the monitor polls the farm itself, and the jobs are followed as before
    monkeypatch.setenv("TETHER_AGENT", "off")
    more = _held_jobs(farm, tiny_blend, "blender-watch-alone", 2)
    for job_id in more:
        registry.record(service="farm", job_id=job_id, profile="local")
        farm.cancel_job(job_id)
    requests.clear()
    alone = Monitor(lambda: backend.make_watcher(backend.Account("local")), backend.list_rows, rt.handoff)
    try:
        alone.cycle()
        rt.pump()
        assert {row.job_id: row.state for row in rt.ui.jobs if row.job_id in more} == dict.fromkeys(more, "cancelled")
        assert requests.count("GET", r"/farm/api/jobs$") >= 1
    finally:
        alone.stop()
        farm.close()
        registry.close()
