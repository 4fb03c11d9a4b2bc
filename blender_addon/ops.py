"""Operators, the main-thread timer and the glue between the scene and the workers.

Rules: ``bpy`` data is read only here, on the main thread, into plain values (:class:`backend.SubmitRequest`);
workers get those values and post results to the runtime's hand-off; :func:`tick` (a ``bpy.app.timers``
callback) applies them. Headless, timers never fire: ``wait=True`` on the submit operator, or :func:`pump`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy.types import Operator

from . import access
from .mainthread import Result, RuntimeSlot, redraw, stop_task

if TYPE_CHECKING:  # runtime loads on first use (the first panel draw), keeping register() cheap
    import threading

    from .runtime import Notice, Runtime

TICK_S = 0.1
REDRAW_AREAS = {"VIEW_3D", "PROPERTIES", "STATUSBAR", "PREFERENCES"}


# --- runtime --------------------------------------------------------------------------------------------------
def _new_runtime() -> Runtime:
    from .runtime import Runtime

    rt = Runtime()
    rt.on_fetch = lambda job_id, folder: start_fetch(job_id, folder, open_folder=False)
    rt.on_open = _open_folder
    return rt


def pump() -> List[Notice]:
    """Apply what the workers posted (what the timer does). Tests and scripts call it headless."""
    rt = peek_runtime()
    if rt is None:
        return []
    notices = rt.pump()
    for notice in notices:
        print(f"Tether: {notice.level.lower()}: {notice.text}")
    return notices


def _on_tick() -> None:
    notices = pump()
    if notices and not bpy.app.background:
        _popup(notices[-1])
    redraw(REDRAW_AREAS)


_SLOT: RuntimeSlot[Runtime] = RuntimeSlot(_new_runtime, _on_tick, TICK_S)
# The module's names for the slot (ui.py, prefs.py, __init__.py and the tests use them).
peek_runtime = _SLOT.peek
runtime = _SLOT.get
drop_runtime = _SLOT.drop
tick = _SLOT.tick
ensure_timer = _SLOT.ensure_timer
stop_timer = _SLOT.stop_timer


def in_background(name: str, work: Callable[[], Dict[str, Any]], kind: str, **tag: Any) -> threading.Thread:
    """Run ``work`` on a tracked worker thread; its result (or error) arrives as a ``kind`` event on a tick."""
    from .runtime import run_in_thread

    rt = runtime()
    thread = run_in_thread(name, work, rt.handoff, kind, **tag)
    rt.track(thread)
    ensure_timer()
    return thread


def _open_folder(folder: str) -> None:
    if not bpy.app.background and os.path.isdir(folder):
        bpy.ops.wm.path_open(filepath=folder)


def _popup(notice: Notice) -> None:
    icon = {"ERROR": "ERROR", "WARNING": "ERROR"}.get(notice.level, "INFO")

    def draw(menu: Any, _context: Any) -> None:
        menu.layout.label(text=notice.text)

    wm = bpy.context.window_manager
    if wm is not None and wm.windows:
        wm.popup_menu(draw, title="Tether", icon=icon)


def ensure_monitor() -> None:
    """Start following the registry's farm jobs (once; again after a failure stopped the thread)."""
    if not access.online():
        return
    rt = runtime()
    if rt.monitor is None or not rt.monitor.alive():
        from . import backend
        from .runtime import Monitor

        account = access.account()
        rt.monitor = Monitor(lambda: backend.make_watcher(account), backend.list_rows, rt.handoff)
        rt.monitor.start()
    ensure_timer()


# --- reading the scene (main thread) --------------------------------------------------------------------------
def fetch_folder(scene: Any) -> str:
    """The folder fetched frames go to: the setting, else the scene's own output folder as Blender resolves it."""
    settings = scene.tether
    if settings.fetch_dir.strip():
        return os.path.normpath(bpy.path.abspath(settings.fetch_dir.strip()))
    if not scene.render.filepath:
        return os.path.normpath(bpy.path.abspath("//"))
    # frame_path resolves `//`, the `#` padding and Blender 5's path templates ({blend_name}...) as a render does
    return os.path.normpath(os.path.dirname(scene.render.frame_path(frame=scene.frame_start)))


def request_from(context: Any, allow_missing: bool = False) -> Any:
    from .backend import SubmitRequest

    scene = context.scene
    s = scene.tether
    return SubmitRequest(
        scene=bpy.data.filepath, scene_name=scene.name,
        frames=s.frames_override.strip() if s.use_frames_override and s.frames_override.strip() else None,
        chunk_size=s.chunk_size, scout=s.scout.strip(), instance_type=s.instance_type or None,
        blender_version=s.blender_version or None, project=s.project.strip() or "default",
        preemptible=s.preemptible, preemptible_retries=s.preemptible_retries if s.preemptible else 0,
        extra_files=[bpy.path.abspath(i.path) for i in s.extra_files if i.path.strip()],
        environment={e.name.strip(): e.value for e in s.environment if e.name.strip()},
        fetch_dir=fetch_folder(scene) if bpy.data.filepath else None, auto_fetch=s.auto_fetch,
        allow_missing=allow_missing, priority=s.upload_priority,
    )


def chosen_from_lists(settings: Any) -> Dict[str, str]:
    """The scene's choices that come from the farm's lists (main thread: reads the scene's settings)."""
    return {"instance_type": settings.instance_type, "blender_version": settings.blender_version,
            "project": settings.project.strip()}


def blocking_reason() -> Optional[str]:
    """Why nothing can be sent right now, in words that say what to do."""
    if not access.online():
        return access.ONLINE_HELP
    if not bpy.data.filepath:
        return "Save the .blend first (File > Save As): the farm renders the saved file"
    return None


def request_summary(context: Any) -> None:
    """Start a background preflight when the options or the saved file changed. Safe to call from draw()."""
    if blocking_reason() is not None:
        return
    rt = runtime()
    req = request_from(context, allow_missing=True)
    key = req.key()
    if key == rt.ui.summary_key or rt.ui.summary_running:
        return
    from . import backend

    rt.ui.summary_key = key
    rt.ui.summary_running = True
    account = access.account(context)
    in_background("summary", lambda: backend.summary(account, req), "summary", key=key)


def request_catalog(context: Any = None, fetch: bool = True) -> None:
    """Show the farm lists kept on disk for this profile and farm, then (online) fetch fresh ones to replace them.

    Both happen on one worker, in that order, so lists from disk never overwrite fresher ones.
    """
    from . import backend

    rt = runtime()
    rt.lists_loaded = True
    fetch = fetch and access.online()
    account = access.account(context)
    handoff = rt.handoff

    def work() -> Dict[str, Any]:
        try:
            cached = backend.cached_catalog(account)
        except Exception:  # a bad profile: the fetch says what to change; offline there is nothing to show
            cached = {}
        if not fetch:
            return cached
        if cached:
            handoff.post("catalog", **cached, error="")
        return backend.catalog(account)

    rt.ui.catalog_running = rt.ui.catalog_running or fetch
    in_background("catalog", work, "catalog", cached=not fetch)


def start_fetch(job_id: str, folder: str, open_folder: bool) -> None:
    from . import backend

    rt = runtime()
    account = access.account()

    def progress(done: int, total: int) -> bool:
        rt.handoff.post("fetch", job_id=job_id, factor=(done / total if total else 0.0))
        return True

    def work() -> Any:
        result = backend.fetch(account, job_id, folder, progress)
        result["open"] = open_folder
        return result

    rt.ui.fetching[job_id] = 0.0
    in_background("fetch", work, "fetch", job_id=job_id, folder=folder)


# --- operators ------------------------------------------------------------------------------------------------
class TETHER_OT_submit(Operator):
    """Send the saved scene to the render farm (Esc cancels the upload)"""

    bl_idname = "tether.submit"
    bl_label = "Submit to Farm"
    bl_options = {"REGISTER"}

    save_first: BoolProperty(name="Save First", default=False, options={"SKIP_SAVE"},  # type: ignore[valid-type]
                             description="Save the unsaved changes, then submit")
    allow_missing: BoolProperty(name="Submit Anyway", default=False, options={"SKIP_SAVE"},  # type: ignore[valid-type]
                                description="Submit although some files the scene uses are missing")
    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},  # type: ignore[valid-type]
                       description="Block until the job is created (scripts and tests)")

    # Plain attributes, not annotations: Blender reads an Operator's annotations as its RNA properties.
    _task = None
    _timer = None

    def invoke(self, context: Any, event: Any) -> Result:
        if bpy.data.filepath and bpy.data.is_dirty and not self.save_first:
            self.save_first = True
            return context.window_manager.invoke_confirm(
                self, event, title="Unsaved changes", message="The farm renders the saved file. Save and submit?",
                confirm_text="Save and Submit")
        return self.execute(context)

    def execute(self, context: Any) -> Result:
        reason = blocking_reason()
        if reason:
            self.report({"ERROR"}, reason)
            return {"CANCELLED"}
        if self.save_first:
            bpy.ops.wm.save_mainfile()
        elif bpy.app.background:
            # Without a window Blender reports every file as modified (is_dirty stays True after a save), so a
            # script gets the file as it is on disk; it passes save_first=True to include its own changes.
            self.report({"INFO"}, f"Submitting {bpy.path.basename(bpy.data.filepath)} as saved on disk")
        elif bpy.data.is_dirty:
            self.report({"ERROR"}, "The scene has unsaved changes: save it (Ctrl+S) first, or use Save and "
                                   "Submit; the farm renders the saved file")
            return {"CANCELLED"}
        rt = runtime()
        if rt.submit_task is not None and rt.submit_task.alive():
            self.report({"ERROR"}, "A submission is already running: wait for it or cancel it")
            return {"CANCELLED"}
        for notice in rt.ui.not_listed(chosen_from_lists(context.scene.tether)):
            if notice.level == "ERROR":  # the farm's own check decides; say early what it will likely refuse
                self.report({"WARNING"}, notice.text)
        from . import backend
        from .runtime import Phase, SubmitTask

        # The saved file is the source: the submitter writes rewritten copies of it and its libraries (the bundle,
        # every path relative inside it) and never changes this file.
        req = request_from(context, allow_missing=self.allow_missing)
        account = access.account(context)
        task = SubmitTask(lambda progress: backend.submit(account, req, progress, task.uses), rt.handoff)
        rt.submit_task = task
        rt.ui.submit = type(rt.ui.submit)()
        task.start()
        ensure_timer()
        if self.wait or bpy.app.background or context.window is None:
            task.join()
            pump()
            status = rt.ui.submit
            if status.phase is not Phase.DONE:
                self.report({"ERROR"} if status.phase is Phase.FAILED else {"WARNING"}, status.message)
                return {"CANCELLED"}
            for warning in status.warnings:
                self.report({"WARNING"}, warning)
            self.report({"INFO"}, status.message)
            return {"FINISHED"}
        self._task = task
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> Result:
        task = self._task
        if task is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS" and task.alive():
            task.cancel()
        if event.type == "TIMER" and not task.alive():
            context.window_manager.event_timer_remove(self._timer)
            pump()
            status = runtime().ui.submit
            if status.phase.value == "done":
                self.report({"INFO"}, status.message)
                return {"FINISHED"}
            self.report({"ERROR"} if status.phase.value == "failed" else {"WARNING"}, status.message)
            return {"CANCELLED"}
        return {"PASS_THROUGH"}  # never swallow the artist's input while the upload runs


PREVIEW_TEXT = "Tether payload"
PREVIEW_MAX_AGE_S = 60.0  # an older summary is checked again: the farm's lists may have changed since
PREVIEW_TIMEOUT_S = 120.0


def fresh_preview(ui: Any, key: Any) -> Optional[str]:
    """The preview text of the panel's summary when it is of these settings and file, and recent; else None."""
    summary = ui.summary
    if ui.summary_running or ui.summary_key != key or not summary or "preview" not in summary:
        return None
    if time.time() - float(summary.get("checked_at") or 0.0) > PREVIEW_MAX_AGE_S:
        return None
    return str(summary["preview"])


def write_preview(context: Any, text: str) -> str:
    """Put ``text`` in the Text datablock (made or replaced), shown in any open Text Editor. Main thread only."""
    block = bpy.data.texts.get(PREVIEW_TEXT) or bpy.data.texts.new(PREVIEW_TEXT)
    block.clear()
    block.write(text)
    screen = getattr(context, "screen", None)
    for area in getattr(screen, "areas", ()):
        if area.type == "TEXT_EDITOR":
            area.spaces.active.text = block
    return block.name


class TETHER_OT_preview_payload(Operator):
    """Write what Submit would send (job payload, files to upload, what blocks it) to the Text Editor; sends nothing"""

    bl_idname = "tether.preview_payload"
    bl_label = "Preview Payload"
    bl_options = {"REGISTER"}

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},  # type: ignore[valid-type]
                       description="Block until the text is written (scripts and tests)")

    _timer = None
    _asked = False
    _deadline = 0.0

    def execute(self, context: Any) -> Result:
        reason = blocking_reason()
        if reason:
            self.report({"ERROR"}, reason)
            return {"CANCELLED"}
        self._asked = False
        self._deadline = time.monotonic() + PREVIEW_TIMEOUT_S
        done = self._step(context)
        if done is not None:
            return done
        if self.wait or bpy.app.background or context.window is None:
            rt = runtime()
            while done is None:
                threads = [t for t in rt.threads if t.is_alive()]
                for thread in threads:
                    thread.join(max(0.0, self._deadline - time.monotonic()))
                if not threads:
                    time.sleep(0.05)  # a check started elsewhere has no thread here to wait on
                pump()
                done = self._step(context)
            return done
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> Result:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        pump()
        done = self._step(context)
        if done is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return done

    def _step(self, context: Any) -> Optional[Result]:
        """Write the text once a fresh preflight of the current settings is in; until then make sure one runs.

        The panel's summary runs the same preflight in the background: a fresh one is reused, else one is started
        with the same machinery (never on this thread: it reads the .blend and asks the farm for its lists).
        """
        rt = runtime()
        key = request_from(context, allow_missing=True).key()
        text = fresh_preview(rt.ui, key)
        if text is not None:
            name = write_preview(context, text)
            self.report({"INFO"}, f"payload written to the Text Editor: {name}")
            return {"FINISHED"}
        summary = rt.ui.summary or {}
        if self._asked and not rt.ui.summary_running and rt.ui.summary_key == key and "preview" not in summary:
            self.report({"ERROR"}, "cannot preview the payload: " + "; ".join(map(str, summary.get("errors") or [])))
            return {"CANCELLED"}
        if time.monotonic() > self._deadline:
            self.report({"ERROR"}, "checking the scene took too long: press Refresh, then Preview Payload again")
            return {"CANCELLED"}
        if not rt.ui.summary_running:
            if rt.ui.summary_key == key:
                rt.ui.summary_key = None  # too old, or it failed before: check again
            request_summary(context)
            self._asked = True
        return None


class TETHER_OT_cancel_submit(Operator):
    """Stop the running upload; no job is created"""

    bl_idname = "tether.cancel_submit"
    bl_label = "Cancel Submission"

    def execute(self, context: Any) -> Result:
        rt = peek_runtime()
        return stop_task(self, rt.submit_task if rt is not None else None, "No submission is running")


class TETHER_OT_refresh(Operator):
    """Fetch the farm's lists again, check the scene again and update the jobs"""

    bl_idname = "tether.refresh"
    bl_label = "Refresh"

    def execute(self, context: Any) -> Result:
        if access.refuse_offline(self):
            return {"CANCELLED"}
        rt = runtime()
        rt.ui.summary_key = None
        request_catalog(context)
        request_summary(context)
        ensure_monitor()
        if rt.monitor is not None:
            rt.monitor.kick()
        return {"FINISHED"}


class TETHER_OT_job_action(Operator):
    """Hold, release, cancel or re-prioritise a farm job"""

    bl_idname = "tether.job_action"
    bl_label = "Job Action"

    job_id: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]
    action: EnumProperty(items=[  # type: ignore[valid-type]
        ("hold", "Hold", "Stop starting new tasks"),
        ("unhold", "Release", "Resume the job, and the tasks waiting behind its scout frames"),
        ("cancel", "Cancel", "Cancel the job on the farm"),
        ("priority", "Set Priority", "Give the job the scene's priority value"),
    ], options={"SKIP_SAVE"})
    priority: IntProperty(default=50, min=0, max=100, options={"SKIP_SAVE"})  # type: ignore[valid-type]
    # a submission the agent holds, not a job yet: only "cancel" applies (it stops the upload, no job is made)
    handoff: IntProperty(default=0, min=0, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    @classmethod
    def description(cls, _context: Any, properties: Any) -> str:
        if properties.handoff:
            return "Stop the Tether agent's upload of this submission: no job is made"
        return {"hold": "Stop starting new tasks of this job", "unhold": "Resume this job and its held tasks",
                "cancel": "Cancel this job on the farm",
                "priority": "Give this job the priority set below"}.get(properties.action, "")

    def invoke(self, context: Any, event: Any) -> Result:
        if self.action == "cancel":
            return context.window_manager.invoke_confirm(self, event)
        return self.execute(context)

    def execute(self, context: Any) -> Result:
        if access.refuse_offline(self):
            return {"CANCELLED"}
        from . import backend

        if self.handoff and self.action == "cancel":
            entry = self.handoff
            in_background("action", lambda: backend.cancel_handoff(entry), "action", job_id=f"(queue entry {entry})",
                          action="cancel")
            return {"FINISHED"}
        if not self.job_id:
            self.report({"ERROR"}, "No job given")
            return {"CANCELLED"}

        account = access.account(context)
        job_id, action, priority = self.job_id, self.action, self.priority
        in_background("action", lambda: backend.job_action(account, job_id, action, priority), "action",
                      job_id=job_id, action=action)
        return {"FINISHED"}


class TETHER_OT_fetch(Operator):
    """Download the job's frames into the scene's fetch folder, then open it"""

    bl_idname = "tether.fetch"
    bl_label = "Fetch Frames"

    job_id: StringProperty(options={"SKIP_SAVE"})  # type: ignore[valid-type]
    folder: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"},  # type: ignore[valid-type]
                           description="Where to put the frames; empty: the scene's fetch folder")
    open_folder: BoolProperty(default=True, options={"SKIP_SAVE"})  # type: ignore[valid-type]
    wait: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        if access.refuse_offline(self):
            return {"CANCELLED"}
        if not self.job_id:
            self.report({"ERROR"}, "No job given")
            return {"CANCELLED"}
        folder = bpy.path.abspath(self.folder) if self.folder else fetch_folder(context.scene)
        if not folder or folder in (".", os.sep):
            self.report({"ERROR"}, "No folder to fetch into: save the .blend or set Fetch To")
            return {"CANCELLED"}
        start_fetch(self.job_id, folder, self.open_folder and not bpy.app.background)
        if self.wait or bpy.app.background:
            rt = runtime()
            for thread in list(rt.threads):
                thread.join()
            for notice in pump():
                if notice.level == "ERROR":
                    self.report({"ERROR"}, notice.text)
                    return {"CANCELLED"}
            self.report({"INFO"}, f"Frames of job {self.job_id} in {folder}")
        return {"FINISHED"}


class TETHER_OT_open_folder(Operator):
    """Open the folder in the system's file browser"""

    bl_idname = "tether.open_folder"
    bl_label = "Open Folder"

    path: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        if not self.path or not Path(self.path).is_dir():
            self.report({"ERROR"}, f"Folder not found: {self.path or '(none)'}; fetch the frames first")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=self.path)
        return {"FINISHED"}


class TETHER_OT_list_edit(Operator):
    """Add or remove an extra file or an environment variable"""

    bl_idname = "tether.list_edit"
    bl_label = "Edit List"
    bl_options = {"REGISTER", "UNDO"}

    collection: EnumProperty(items=[("extra_files", "Extra Files", ""),  # type: ignore[valid-type]
                                    ("environment", "Environment", "")], options={"SKIP_SAVE"})
    remove: BoolProperty(default=False, options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def execute(self, context: Any) -> Result:
        settings = context.scene.tether
        items = getattr(settings, self.collection)
        index_name = f"{self.collection}_index"
        if self.remove:
            index = getattr(settings, index_name)
            if 0 <= index < len(items):
                items.remove(index)
                setattr(settings, index_name, max(0, min(index, len(items) - 1)))
        else:
            items.add()
            setattr(settings, index_name, len(items) - 1)
        return {"FINISHED"}


class TETHER_OT_login(Operator):
    """Log in to the farm; the token is kept in the OS keyring, the password is not stored"""

    bl_idname = "tether.login"
    bl_label = "Log In to the Farm"

    email: StringProperty(name="E-mail", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    password: StringProperty(name="Password", subtype="PASSWORD", options={"SKIP_SAVE"})  # type: ignore[valid-type]

    def invoke(self, context: Any, event: Any) -> Result:
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: Any) -> Result:
        if access.refuse_offline(self):
            return {"CANCELLED"}
        if not self.email or not self.password:
            self.report({"ERROR"}, "Give the e-mail and the password of the farm account")
            return {"CANCELLED"}
        from . import backend

        account = access.account(context)
        email, password = self.email, self.password
        self.password = ""  # do not leave it in the operator's memory
        thread = in_background("login", lambda: backend.login(account, email, password), "login", report=True)
        if bpy.app.background:
            thread.join()
            pump()
        return {"FINISHED"}


class TETHER_OT_logout(Operator):
    """Forget the farm token of this profile (removes it from the OS keyring)"""

    bl_idname = "tether.logout"
    bl_label = "Log Out"

    def execute(self, context: Any) -> Result:
        from . import backend

        account = access.account(context)
        in_background("logout", lambda: backend.logout(account), "login", report=True)
        return {"FINISHED"}


class TETHER_OT_check_login(Operator):
    """Check where this profile's farm credentials come from"""

    bl_idname = "tether.check_login"
    bl_label = "Check Login"

    def execute(self, context: Any) -> Result:
        from . import backend

        account = access.account(context)
        in_background("login-state", lambda: backend.login_state(account), "login")
        return {"FINISHED"}


CLASSES = (TETHER_OT_submit, TETHER_OT_preview_payload, TETHER_OT_cancel_submit, TETHER_OT_refresh,
           TETHER_OT_job_action, TETHER_OT_fetch, TETHER_OT_open_folder, TETHER_OT_list_edit, TETHER_OT_login,
           TETHER_OT_logout, TETHER_OT_check_login)
