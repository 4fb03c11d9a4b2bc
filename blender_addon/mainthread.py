"""What the farm (:mod:`.ops`) and Move (:mod:`.move_ops`) operators share on Blender's main thread: a lazily made
runtime with the ``bpy.app.timers`` callback that applies its workers' events, panel redraws and stopping a task.

Light on purpose (``bpy`` and the standard library only): :func:`register` imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Collection, Generic, Literal, Optional, Protocol, Set, TypeVar

import bpy

if TYPE_CHECKING:
    from .runtime import WorkerTask

Result = Set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]


class Live(Protocol):
    """What a runtime offers its slot: whether workers or undelivered events remain, and how to stop them."""

    @property
    def busy(self) -> bool: ...

    def shutdown(self) -> None: ...


R = TypeVar("R", bound=Live)


class RuntimeSlot(Generic[R]):
    """One runtime, made on first use (``make()``; the first panel draw, not register()), and its timer.

    Each tick runs ``on_tick()`` (pump the hand-off, redraw) and keeps the timer going while the runtime is busy, so
    an idle Blender runs no timer. Headless, timers never fire: callers pump themselves.
    """

    def __init__(self, make: Callable[[], R], on_tick: Callable[[], object], interval: float) -> None:
        self._make = make
        self._on_tick = on_tick
        self.interval = interval
        self._value: Optional[R] = None
        # bpy.app.timers knows a callback by identity: make the bound method once, so is_registered() finds it.
        self.tick: Callable[[], Optional[float]] = self._tick

    def peek(self) -> Optional[R]:
        return self._value

    def get(self) -> R:
        if self._value is None:
            self._value = self._make()
        return self._value

    def drop(self) -> None:
        """Shut the runtime down (its workers stop) and forget it."""
        if self._value is not None:
            self._value.shutdown()
        self._value = None

    def _tick(self) -> Optional[float]:
        self._on_tick()
        return self.interval if self._value is not None and self._value.busy else None

    def ensure_timer(self) -> None:
        if not bpy.app.timers.is_registered(self.tick):
            bpy.app.timers.register(self.tick, first_interval=self.interval)

    def stop_timer(self) -> None:
        if bpy.app.timers.is_registered(self.tick):
            bpy.app.timers.unregister(self.tick)


def redraw(area_types: Collection[str]) -> None:
    """Tag the areas of these types in every window for redraw (the panels show the new state)."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in area_types:
                area.tag_redraw()


def stop_task(op: Any, task: Optional[WorkerTask], idle_message: str) -> Result:
    """An operator's Stop/Cancel: ask the running worker task to stop, or say ``idle_message`` when none runs."""
    if task is None or not task.alive():
        op.report({"INFO"}, idle_message)
        return {"CANCELLED"}
    task.cancel()
    return {"FINISHED"}


__all__ = ["Live", "Result", "RuntimeSlot", "redraw", "stop_task"]
