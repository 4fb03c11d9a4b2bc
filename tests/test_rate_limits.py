"""Rate limits over real HTTP: the local services answer 429 (fault injection), the client waits them out within
its service's budget (tether.spec), honours a Retry-After whole, says each wait, and says when to try again once the
budget is spent. The client's sleep is injected (nothing here really waits) but where a Cancel ends a real wait."""

from __future__ import annotations

import threading
from typing import Any, Iterator, List

import pytest
from tether.autopilot.client import LOCAL_API_KEY, AutopilotClient
from tether.errors import CancelledByUser, RateLimited
from tether.http import RetryPolicy
from tether.spec import SPECS
from tether_services.faults import Faults
from waiting import PATIENCE, eventually

QUOTA = "/api/user/limit$"


@pytest.fixture
def autopilot(local_services: Any) -> Iterator[AutopilotClient]:
    client = AutopilotClient(local_services.url("autopilot"), api_key=LOCAL_API_KEY)  # the spec's own policy
    yield client
    client.close()


def test_autopilot_waits_out_a_burst_longer_than_its_tries(autopilot: AutopilotClient, faults: Faults) -> None:
    slept: List[float] = []
    autopilot.sleep = slept.append
    policy = autopilot.retry
    assert policy.rate_budget == SPECS["autopilot"].rate_budget >= 300  # minutes, as the vendor's node waits
    faults.add("status", status=429, service="autopilot", path=QUOTA, times=policy.attempts + 4)
    assert autopilot.quota().subscription_tier == "free"
    assert len(slept) == policy.attempts + 4
    steps = [min(policy.rate_wait, policy.backoff * 2 ** i) for i in range(len(slept))]
    assert all(step / 2 <= wait <= step for wait, step in zip(slept, steps))  # backs off, never hammers


def test_retry_after_is_honoured_whole_within_the_budget(autopilot: AutopilotClient, faults: Faults) -> None:
    slept: List[float] = []
    autopilot.sleep = slept.append
    faults.add("status", status=429, retry_after=300, service="autopilot", path=QUOTA, times=1)
    assert autopilot.quota().subscription_tier == "free"
    assert slept == [300.0]  # not cut to the 2 minutes a 503's Retry-After is held to
    slept.clear()
    faults.add("status", status=429, retry_after=3600, service="autopilot", path=QUOTA, times=1)
    with pytest.raises(RateLimited) as caught:
        autopilot.quota()
    assert slept == []  # asking before the hour is up would only meet another 429
    text = str(caught.value)
    assert "asks to wait 60 min" in text and "try again after" in text and caught.value.retry_after == 3600


def test_a_spent_budget_says_how_long_it_waited(local_services: Any, faults: Faults) -> None:
    slept: List[float] = []
    policy = RetryPolicy(rate_budget=50.0, rate_wait=8.0)
    with AutopilotClient(local_services.url("autopilot"), api_key=LOCAL_API_KEY, retry=policy) as client:
        client.sleep = slept.append
        faults.add("status", status=429, service="autopilot", path=QUOTA, times=0)
        with pytest.raises(RateLimited) as caught:
            client.quota()
    assert sum(slept) == pytest.approx(50.0) and max(slept) <= 8.0
    assert "still refused after waiting 50 s" in str(caught.value)
    assert local_services.requests.count(path=QUOTA, status=429) >= len(slept) + 1


def test_the_command_shows_each_wait(local_services: Any, faults: Faults, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli import main

    monkeypatch.setenv("TETHER_AUTOPILOT_URL", local_services.url("autopilot"))
    slept: List[float] = []
    built = AutopilotClient.from_profile.__func__  # type: ignore[attr-defined]

    def with_fake_sleep(cls: Any, profile: Any = None) -> AutopilotClient:
        client = built(cls, profile)
        client.sleep = slept.append
        return client

    monkeypatch.setattr(AutopilotClient, "from_profile", classmethod(with_fake_sleep))
    faults.add("status", status=429, service="autopilot", path=QUOTA, times=2)
    faults.add("status", status=429, retry_after=20, service="autopilot", path=QUOTA, times=1)
    assert main(["autopilot", "quota", "--json"]) == 0
    err = capsys.readouterr().err
    assert err.count("rate limited by Autopilot, waiting") == 3, err
    assert "rate limited by Autopilot, waiting 20 s (budget 10 min left)" in err
    assert slept[-1] == 20.0


def test_abort_ends_the_wait_for_a_retry_after(autopilot: AutopilotClient, faults: Faults, local_services: Any) -> None:
    """The real wait (no injected sleep): five minutes asked for, within the budget; a Cancel from another thread
    ends it at once, and nothing more is asked."""
    faults.add("status", status=429, retry_after=300, service="autopilot", path=QUOTA, times=0)
    before = local_services.requests.count(path=QUOTA, status=429)
    outcome: List[BaseException] = []

    def ask() -> None:
        try:
            autopilot.quota()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=ask)
    worker.start()
    eventually(lambda: local_services.requests.count(path=QUOTA, status=429) > before, message="the first 429")
    autopilot.abort()
    worker.join(PATIENCE)
    assert not worker.is_alive(), "abort() did not end the wait"
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledByUser), outcome
    assert local_services.requests.count(path=QUOTA, status=429) == before + 1
