"""The one polling loop (tether.poll): backoff, deadline, cancel and Retry-After, on a fake clock (no real waits)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, List

import pytest
from tether.errors import RateLimited
from tether.farm.client import FarmClient
from tether.http import RetryPolicy
from tether.jobs import JobState
from tether.poll import Backoff, Clock, PollTimeout, poll_until, polls
from tether.registry import JobRegistry
from tether.watch import ChangeKind, Watcher
from tether_services.faults import Faults


class FakeClock:
    """Time moves only when the loop sleeps: every wait is recorded and costs nothing."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: List[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def clock(self) -> Clock:
        return Clock(monotonic=self.monotonic, sleep=self.sleep)


def answers(*values: int) -> Iterator[int]:
    yield from values
    while True:
        yield values[-1]


def test_backoff_grows_while_quiet_resets_on_a_change_and_stops_when_final() -> None:
    fake = FakeClock()
    feed = answers(0, 0, 0, 0, 0, 1, 1, 2)
    seen: List[int] = []
    ticks = polls(lambda: next(feed), backoff=Backoff(fast=1, cap=3, factor=2), clock=fake.clock)
    last = poll_until(ticks, lambda v: v == 2, lambda t: seen.append(t.changed))
    assert last == 2
    # first answer counts as a change; quiet asks double up to the cap; a new value resets to fast
    assert fake.sleeps == [1, 2, 3, 3, 3, 1, 2]
    assert seen == [True, False, False, False, False, True, False, True]


def test_deadline_raises_and_the_last_wait_ends_at_the_deadline() -> None:
    fake = FakeClock()
    calls: List[float] = []

    def fetch() -> int:
        calls.append(fake.now)
        return 0

    with pytest.raises(PollTimeout, match="not ready after 10 s"):
        poll_until(polls(fetch, backoff=Backoff(fast=4, cap=4), timeout=10, clock=fake.clock,
                         timeout_message=lambda s: f"not ready after {s:g} s"), lambda v: v == 1)
    assert fake.sleeps == [4, 4, 2]  # cut to the deadline, not past it
    assert calls == [1000, 1004, 1008, 1010]  # one last ask at the deadline itself


def test_cancel_stops_before_the_next_wait_and_returns_the_last_answer() -> None:
    fake = FakeClock()
    stop = threading.Event()
    feed = answers(1, 2, 3)

    def fetch() -> int:
        value = next(feed)
        if value == 2:
            stop.set()
        return value

    assert poll_until(polls(fetch, cancelled=stop.is_set, clock=fake.clock), lambda v: False) == 2
    assert fake.sleeps == [1.0]
    assert poll_until(polls(fetch, cancelled=stop.is_set, clock=fake.clock), lambda v: False) is None  # never asked


def test_an_event_wait_as_sleep_is_cut_short_by_cancelling() -> None:
    stop = threading.Event()
    woke: List[bool] = []

    def fetch() -> int:
        threading.Timer(0.05, stop.set).start()
        return 0

    def wait(seconds: float) -> bool:
        woke.append(stop.wait(seconds))
        return woke[-1]

    done = threading.Event()
    ticks = polls(fetch, backoff=Backoff(600, 600), cancelled=stop.is_set, clock=Clock(sleep=wait))
    worker = threading.Thread(target=lambda: (poll_until(ticks, lambda v: False), done.set()))
    worker.start()
    assert done.wait(20), "a 600 s wait was not cut short by the cancel"
    assert woke == [True]


def test_on_update_false_stops_early() -> None:
    fake = FakeClock()
    feed = answers(1, 2, 3, 4)
    assert poll_until(polls(lambda: next(feed), clock=fake.clock), lambda v: v == 4, lambda t: t.value < 3) == 3


def test_key_decides_what_counts_as_a_change() -> None:
    fake = FakeClock()
    feed = answers(10, 11, 12, 20)
    ticks = polls(lambda: next(feed), key=lambda v: v // 10, backoff=Backoff(1, 8, 2), clock=fake.clock)
    assert [next(ticks).changed for _ in range(4)] == [True, False, False, True]
    assert fake.sleeps == [1, 2, 4]


def test_failed_doubles_and_honours_retry_after_past_the_cap() -> None:
    b = Backoff(fast=1, cap=10, factor=2, max_retry_after=120)
    assert [b.failed(), b.failed(), b.failed(), b.failed(), b.failed()] == [2, 4, 8, 10, 10]
    assert b.failed(retry_after=45) == 45  # the service said how long: wait it out even past the cap
    assert b.failed(retry_after=3) == 10
    assert b.failed(retry_after=10_000) == 120  # but not for hours
    assert b.reset() == 1
    with pytest.raises(ValueError):
        Backoff(fast=0)


def test_watcher_waits_out_a_rate_limit_retry_after(farm_url: str, faults: Faults, tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    registry.record(service="farm", job_id="rate-limited", profile="local")
    client = FarmClient(farm_url, email="artist@tether.local", password="tether-local",
                        retry=RetryPolicy(attempts=1))
    faults.add("status", status=429, retry_after=45, service="farm", path="/api/jobs", times=0)
    watcher = Watcher(registry, lambda service, profile: client, fast=2, cap=30)
    try:
        (change,) = watcher.poll_once()
        assert change.kind is ChangeKind.ERROR and isinstance(change.error, RateLimited)
        assert change.error.retry_after == 45
        assert watcher.next_delay() == 45
        assert registry.get("farm", "rate-limited").state is JobState.QUEUED  # type: ignore[union-attr]
    finally:
        watcher.close()
        registry.close()
