"""The one polling loop and backoff every follower uses (jobs, uploads being processed, stages).

:class:`Backoff` is the delay between two asks: ``fast`` after something changed, ``factor`` times longer per quiet
ask up to ``cap``, doubled when the ask failed, and never shorter than a ``Retry-After`` the service gave.
:func:`polls` asks again and again with that delay and yields each answer with whether it changed; the caller
stops it by leaving the loop. :func:`poll_until` is the common case: follow them until an answer is final.

Both take a :class:`Clock` (``monotonic`` and ``sleep``, the real ones by default) and a ``cancelled()`` check, so a
test drives them with a fake clock and no real waits, and a worker thread stops them at once (pass
``Clock(sleep=stop_event.wait)``: the wait ends when the event is set).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

from .errors import TetherError

T = TypeVar("T")

#: a ``Retry-After`` longer than this is taken as this (the same ceiling as the HTTP layer's retries)
MAX_RETRY_AFTER = 120.0


@dataclass(frozen=True)
class Clock:
    """Where a loop reads the time and waits. ``sleep`` may return early (an ``Event.wait``): the loop re-checks."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] = time.sleep


SYSTEM_CLOCK = Clock()


class PollTimeout(TetherError):
    """The answer was not final by the deadline."""


class Backoff:
    """The delay before the next ask: ``fast`` after a change, times ``factor`` per quiet ask up to ``cap``."""

    def __init__(self, fast: float = 1.0, cap: float = 10.0, factor: float = 1.5,
                 max_retry_after: float = MAX_RETRY_AFTER) -> None:
        if fast <= 0 or cap < fast or factor < 1:
            raise ValueError("need 0 < fast <= cap and factor >= 1")
        self.fast = fast
        self.cap = cap
        self.factor = factor
        self.max_retry_after = max_retry_after
        self.delay = fast

    def reset(self) -> float:
        """Something moved: ask again soon."""
        self.delay = self.fast
        return self.delay

    def quiet(self) -> float:
        """Nothing moved: wait longer, up to ``cap``."""
        self.delay = min(self.cap, self.delay * self.factor)
        return self.delay

    def step(self, changed: bool) -> float:
        return self.reset() if changed else self.quiet()

    def failed(self, retry_after: Optional[float] = None) -> float:
        """The ask failed: double the delay (at least ``2 * fast``, at most ``cap``), and wait at least as long as
        the service's ``Retry-After`` said (up to ``max_retry_after``), even past ``cap``."""
        self.delay = min(self.cap, max(self.delay, self.fast) * 2)
        if retry_after is not None:
            self.delay = max(self.delay, min(max(retry_after, 0.0), self.max_retry_after))
        return self.delay


@dataclass(frozen=True)
class Tick(Generic[T]):
    """One answer: ``changed`` is True on the first and whenever its key differs from the one before."""

    value: T
    changed: bool
    count: int  # 1 for the first answer


def _same(value: object) -> object:
    return value


def polls(
    fetch: Callable[[], T],
    *,
    key: Callable[[T], object] = _same,
    backoff: Optional[Backoff] = None,
    timeout: Optional[float] = None,
    timeout_message: Callable[[float], str] = lambda seconds: f"still not finished after {seconds:g} s",
    cancelled: Callable[[], bool] = lambda: False,
    clock: Clock = SYSTEM_CLOCK,
) -> Iterator[Tick[T]]:
    """Yield ``fetch()`` again and again, waiting ``backoff`` between asks, until the caller stops iterating.

    ``key(value)`` is what counts as a change (default: the value itself). Ends quietly when ``cancelled()`` turns
    True (checked before each wait and each ask); raises :class:`PollTimeout` (with ``timeout_message(timeout)``)
    when ``timeout`` seconds pass without the caller stopping. The last wait is cut to end at the deadline, so the
    last ask happens at the deadline, not after it. Errors from ``fetch`` propagate.
    """
    backoff = backoff or Backoff()
    deadline = None if timeout is None else clock.monotonic() + timeout
    last: object = None
    count = 0
    while True:
        if cancelled():
            return
        value = fetch()
        count += 1
        seen = key(value)
        changed = count == 1 or seen != last
        last = seen
        yield Tick(value, changed, count)
        if cancelled():
            return
        delay = backoff.step(changed)
        if deadline is not None:
            left = deadline - clock.monotonic()
            if left <= 0:
                raise PollTimeout(timeout_message(timeout or 0.0))
            delay = min(delay, left)
        clock.sleep(delay)


def poll_until(
    ticks: Iterable[Tick[T]],
    finished: Callable[[T], bool],
    on_update: Optional[Callable[[Tick[T]], Optional[bool]]] = None,
) -> Optional[T]:
    """Follow ``ticks`` (from :func:`polls`) until ``finished(value)``; return that value. ``on_update(tick)`` sees
    every answer first and may return False to stop early. Returns the last answer when stopped or cancelled (None
    if cancelled before any ask)."""
    value: Optional[T] = None
    for tick in ticks:
        value = tick.value
        if on_update is not None and on_update(tick) is False:
            break
        if finished(tick.value):
            break
    return value


__all__ = ["MAX_RETRY_AFTER", "SYSTEM_CLOCK", "Backoff", "Clock", "PollTimeout", "Tick", "poll_until", "polls"]
