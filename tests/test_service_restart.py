"""Every local job service keeps its jobs across a restart of `tether serve`, as a vendor's would: finished jobs
are still there (and their results fetchable), and a job the restart interrupted runs to the end."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Callable

import pytest
from tether.autopilot.client import LOCAL_API_KEY as AUTOPILOT_KEY
from tether.autopilot.client import AutopilotClient
from tether.autopilot.submit import ServiceChoice, submit_clip
from tether.clipzy.client import ClipzyClient
from tether.jobs import JobState
from tether.move.client import LOCAL_API_KEY as MOVE_KEY
from tether.move.client import MoveClient
from tether.move.submit import MoveRequest, submit_video
from tether.tensorpix.client import LOCAL_API_KEY as TENSORPIX_KEY
from tether.tensorpix.client import TensorPixClient
from tether.tensorpix.submit import enhance_clip
from tether_services.server import LocalServices
from waiting import eventually

pytest.importorskip("av")

NAMES = ["autopilot", "tensorpix", "clipzy", "move"]


def _clients(services: LocalServices) -> dict:
    return {"autopilot": AutopilotClient(services.url("autopilot"), api_key=AUTOPILOT_KEY),
            "tensorpix": TensorPixClient(services.url("tensorpix"), token=TENSORPIX_KEY),
            "clipzy": ClipzyClient(services.url("clipzy")),
            "move": MoveClient(services.url("move"), api_key=MOVE_KEY)}


def _finished(get: Callable[[], Any], timeout: float = 60.0) -> Any:
    return eventually(get, lambda job: job.state.finished, timeout=timeout, message="the job to finish")


def test_jobs_survive_a_restart_and_interrupted_ones_finish(tmp_path: Path) -> None:
    from test_autopilot_client import moving_square
    from test_clipzy import BLUE, ORANGE
    from test_clipzy import make_clip as colour_clip
    from test_tensorpix import make_clip

    movie = make_clip(tmp_path / "clips" / "tiny.mp4")
    shot, look = colour_clip(tmp_path / "clips" / "shot.mp4", BLUE), colour_clip(tmp_path / "clips" / "look.mp4",
                                                                                 ORANGE)
    plate = moving_square(tmp_path / "plate", n=4)
    state = tmp_path / "store"
    ids = {}
    with LocalServices(port=0, state_dir=state, services=NAMES, workers=1) as first:
        clients = _clients(first)
        for name in ("autopilot", "tensorpix", "move"):
            first.service(name).pause()  # these are still waiting when the services stop
        ids["autopilot"] = submit_clip(clients["autopilot"], plate, ServiceChoice(roto=True)).job.id
        ids["tensorpix"] = str(enhance_clip(clients["tensorpix"], str(movie), {"ml_models": [1]}).job.id)
        ids["move"] = submit_video(clients["move"], MoveRequest(video=movie)).job.id
        ids["clipzy"] = clients["clipzy"].style(shot, look).job_id
        assert _finished(lambda: clients["clipzy"].get_job(ids["clipzy"])).state is JobState.COMPLETED
        for c in clients.values():
            c.close()
    for name in NAMES:
        journal = state / name / "journal.json"
        assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600, name
    with LocalServices(port=0, state_dir=state, services=NAMES, workers=1) as again:
        clients = _clients(again)
        # before, a restart answered 404 for every one of them
        assert clients["clipzy"].get_job(ids["clipzy"]).state is JobState.COMPLETED
        for name in ("tensorpix", "move"):  # running again already, or about to
            assert clients[name].get_job(ids[name]).id == ids[name]
        job = _finished(lambda: clients["autopilot"].get_job(ids["autopilot"]))
        assert job.state is JobState.COMPLETED, job.error
        assert clients["autopilot"].fetch_results(ids["autopilot"], tmp_path / "results").mattes
        for c in clients.values():
            c.close()
