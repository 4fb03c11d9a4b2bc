"""What the farm and Move operators share: the runtime slot and its timer, the worker task base, the Stop helper."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Dict, List

import pytest
from waiting import PATIENCE, eventually

from .conftest import ADDON

bpy = pytest.importorskip("bpy")


class FakeRuntime:
    def __init__(self) -> None:
        self.busy = True
        self.shutdowns = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


def test_runtime_slot_lazy_timer_and_drop(blender: Any) -> None:
    from blender_addon.mainthread import RuntimeSlot

    made: List[FakeRuntime] = []
    ticks: List[int] = []

    def make() -> FakeRuntime:
        made.append(FakeRuntime())
        return made[-1]

    slot = RuntimeSlot(make, lambda: ticks.append(1), 0.25)
    assert slot.peek() is None and made == []  # nothing made until first use
    rt = slot.get()
    assert slot.get() is rt and made == [rt]
    assert slot.tick() == 0.25 and ticks == [1]  # busy: the timer goes on
    rt.busy = False
    assert slot.tick() is None and ticks == [1, 1]  # idle: the timer ends
    try:
        slot.ensure_timer()
        slot.ensure_timer()
        assert bpy.app.timers.is_registered(slot.tick)
    finally:
        slot.stop_timer()
    assert not bpy.app.timers.is_registered(slot.tick)
    slot.drop()
    assert rt.shutdowns == 1 and slot.peek() is None
    slot.drop()  # dropping nothing is fine
    assert rt.shutdowns == 1


def _move_task(work: Callable[..., Dict[str, Any]]) -> Any:
    from blender_addon.move_backend import MoveRequestValues, MoveRuntime

    rt = MoveRuntime()
    rt.start(MoveRequestValues(profile="", job_id="job-7"), work)
    return rt


def test_worker_task_posts_result_failure_and_cancel(blender: Any) -> None:
    rt = _move_task(lambda values, post, cancelled, uses: {"phase": "done", "job_id": values.job_id, "message": "ok"})
    assert rt.task is not None
    rt.task.join(PATIENCE)
    assert [r["message"] for r in rt.pump()] == ["ok"] and rt.status.phase == "done"

    def broken(values: Any, post: Any, cancelled: Any, uses: Any) -> Dict[str, Any]:
        raise ValueError("bad video")

    rt = _move_task(broken)
    rt.task.join(PATIENCE)
    (result,) = rt.pump()
    assert result["phase"] == "failed" and result["message"] == "ValueError: bad video"
    assert rt.status.notices[-1].level == "ERROR"

    started = threading.Event()

    def waits(values: Any, post: Any, cancelled: Callable[[], bool], uses: Any) -> Dict[str, Any]:
        started.set()
        while not cancelled():
            threading.Event().wait(0.01)
        raise RuntimeError("interrupted")  # any error after a cancel counts as the cancel

    rt = _move_task(waits)
    assert started.wait(PATIENCE) and rt.busy
    rt.task.cancel()
    rt.task.join(PATIENCE)
    assert not rt.task.alive()
    (result,) = rt.pump()
    assert result["phase"] == "cancelled" and "goes on at Move" in result["message"]


def test_cancel_aborts_the_task_client_in_its_wait_between_retries(blender: Any, tether_dirs: Any,
                                                                   local_services: Any, faults: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The real worker (run_move, following a job) against a Move that answers 503 with Retry-After: the client
    waits up to two minutes before its next try; cancel() aborts the client, so that wait ends at once."""
    from blender_addon.move_backend import MoveRequestValues, MoveRuntime

    monkeypatch.setenv("TETHER_MOVE_URL", local_services.url("move"))
    monkeypatch.delenv("TETHER_MOVE_API_KEY", raising=False)
    faults.add("status", status=503, retry_after=600, service="move", times=0)
    refused = lambda: local_services.requests.count(service="move", status=503) - before  # noqa: E731
    before = local_services.requests.count(service="move", status=503)
    rt = MoveRuntime()
    task = rt.start(MoveRequestValues(profile="", job_id="job-held"))
    eventually(refused, message="the held Move's first 503")
    assert task.alive()  # waiting out the Retry-After
    task.cancel()
    task.join(PATIENCE)
    assert not task.alive()
    assert [r["phase"] for r in rt.pump()] == ["cancelled"]
    assert refused() == 1  # nothing asked after the cancel


def test_stop_operators(addon: Any) -> None:
    ops = sys.modules[f"{ADDON}.ops"]
    move_ops = sys.modules[f"{ADDON}.move_ops"]
    assert bpy.ops.tether.cancel_submit() == {"CANCELLED"}  # no runtime yet
    assert bpy.ops.tether.move_stop() == {"CANCELLED"}
    from blender_addon.runtime import Phase, SubmitTask

    uploading = threading.Event()

    def run(progress: Any) -> Dict[str, Any]:
        uploading.set()
        while progress((1, 2)):
            threading.Event().wait(0.01)
        raise RuntimeError("transfer stopped")

    rt = ops.runtime()
    rt.submit_task = SubmitTask(run, rt.handoff)
    rt.submit_task.start()
    assert uploading.wait(PATIENCE)
    assert bpy.ops.tether.cancel_submit() == {"FINISHED"}
    rt.submit_task.join(PATIENCE)
    ops.pump()
    assert rt.ui.submit.phase is Phase.CANCELLED and rt.ui.submit.message.startswith("submission cancelled")

    started = threading.Event()

    def waits(values: Any, post: Any, cancelled: Callable[[], bool], uses: Any) -> Dict[str, Any]:
        started.set()
        while not cancelled():
            threading.Event().wait(0.01)
        return {"phase": "cancelled", "message": "stopped following"}

    from blender_addon.move_backend import MoveRequestValues

    mrt = move_ops.runtime()
    mrt.start(MoveRequestValues(profile="", job_id="job-8"), waits)
    assert started.wait(PATIENCE)
    assert bpy.ops.tether.move_stop() == {"FINISHED"}
    mrt.task.join(PATIENCE)
    assert [r["message"] for r in move_ops.pump()] == ["stopped following"]
    move_ops.drop_runtime()
    ops.drop_runtime()
