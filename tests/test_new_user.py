"""What a new user tripped on (issue 10, point 8): each fix, checked as the user met it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tether.registry import JobRegistry
from tether.settings import local_store_dir
from tether_cli import main

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_listens_where_the_local_profile_connects(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "TETHER_LOCAL_PORT": str(port)}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("tether")), "serve", "--temporary"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert f"at http://127.0.0.1:{port} " in first, first


def test_the_store_serve_help_points_to_is_shown_by_config_show(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "`tether config show` names" in " ".join(capsys.readouterr().out.split())
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert f"local store  {local_store_dir()}" in out and "local port   8765" in out
    assert main(["config", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["local_store"] == str(local_store_dir())


def test_doctor_says_what_it_saw_and_what_its_marks_mean(local_services: Any, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tether_install import doctor

    port = _free_port()
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(port))  # nothing listens there
    monkeypatch.setenv("TETHER_FARM_URL", local_services.url("farm"))  # up
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    (tmp_path / ".config" / "blender" / "4.2").mkdir(parents=True)  # a Blender without the extension
    monkeypatch.delenv("BLENDER_USER_RESOURCES", raising=False)
    main(["doctor"])
    out = capsys.readouterr().out
    farm = next(line for line in out.splitlines() if "endpoint farm" in line)
    assert farm.startswith("ok ") and "reachable:" in farm and "for its base URL" in farm, farm
    move = next(line for line in out.splitlines() if "endpoint move" in line)
    assert move.startswith("FAIL") and f"start them with `tether serve --port {port}`" in move, move
    blender = next(line for line in out.splitlines() if "blender 4.2: extension installed" in line)
    assert blender.startswith("-- ") and "is not there" in blender, blender
    assert "marks: ok = " in out and "FAIL = " in out and "-- = " in out
    assert doctor._answered("http://x", 503)[0] is False


def test_a_dry_run_prints_its_answer_to_stdout(tiny_blend: Path, local_services: Any, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    assert main(["farm", "submit", str(tiny_blend), "--frames", "1-4", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "frames    1-4 (4 frames" in captured.out and '"frame_range": "1-4"' in captured.out
    assert "anyway" not in captured.out + captured.err


def test_a_piped_job_list_fits_the_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    deep = "/very/long/studio/path/" + "nested/" * 20
    with JobRegistry() as registry:
        registry.record(service="farm", job_id="job-0123456789abcdef", title="a title " * 10,
                        source=deep + "shot010_comp_v0042.blend", output_dir=deep + "renders")
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["jobs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 100 for line in lines), max(map(len, lines))
    assert "job-0123456789abcdef" in lines[1] and "...v0042.blend" in lines[1]  # the id whole, paths their end


def test_demo_help_says_what_the_demo_does(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "The whole round trip with no account" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "first"), [(["frames", "-3-1", "--json"], -3),
                                             (["frames", "-10--1x3", "--chunk-size", "2", "--json"], -10)])
def test_negative_frame_specs_are_specs(argv: list, first: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["frames"][0] == first


def test_the_readme_says_what_the_user_would_ask() -> None:
    from tether_install.extension import PLATFORMS

    text = (ROOT / "README.md").read_text("utf-8")
    assert "TETHER_LOCAL_PORT" in text
    assert "one zip per platform" in text and "the Blender extension zip," not in text and len(PLATFORMS) > 1
    assert "python3.9" in text and "python3.12" in text and "skipped" in text
