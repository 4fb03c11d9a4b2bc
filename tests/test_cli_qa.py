"""The `tether` command as users run it: pipes, scripts without a terminal, Ctrl-C, typos and dead servers.

Regression tests for a QA pass of the CLI; everything that talks to a service does so over real HTTP.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import time
import types
from pathlib import Path
from typing import Any, Iterator

import keyring
import pytest
from keyring.backends import fail
from memkeyring import MemoryKeyring
from tether.http import BaseClient
from tether.registry import JobRegistry
from tether_cli import main


@pytest.fixture
def nokeyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def urls(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for service in ("farm", "autopilot", "tensorpix", "clipzy", "move"):
        monkeypatch.setenv(f"TETHER_{service.upper()}_URL", local_services.url(service))
    return local_services


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def services_down(monkeypatch: pytest.MonkeyPatch) -> int:
    """The local services' port, with nobody listening on it. The clients try as often as ever but do not wait
    between tries (seconds of backoff a try): these tests check what the command says once they give up."""
    port = _closed_port()
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(port))
    monkeypatch.setattr(BaseClient, "pause", lambda self, seconds, mark=None: None)
    return port


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_output_into_a_closed_pipe_is_quiet(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    # `tether frames 1-100 --json | head -2`: the reader leaves early; no traceback, SIGPIPE's exit status.
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["frames", "1-100", "--json"]) == 141
    assert "Traceback" not in capsys.readouterr().err


def test_login_without_a_terminal_says_how_to_script_it(memkeyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import getpass

    def no_terminal(prompt: str = "") -> str:
        raise EOFError  # what getpass does with no tty and an empty stdin (cron, CI)

    monkeypatch.setattr(getpass, "getpass", no_terminal)
    assert main(["login", "autopilot"]) == 1
    err = capsys.readouterr().err
    assert "--password-stdin" in err and "Traceback" not in err
    assert memkeyring.store == {}


def test_login_without_keyring_refuses_before_asking(nokeyring: None, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.StringIO("a-password-never-read\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["login", "farm", "--password-stdin"]) == 1
    err = capsys.readouterr().err
    assert "TETHER_FARM_PASSWORD" in err and "TETHER_FARM_TOKEN" in err
    assert stdin.tell() == 0  # nothing was read: no password typed in vain


def test_farm_lists_json_is_one_document_and_piped_tables_keep_ids(urls: Any, capsys: pytest.CaptureFixture[str]
                                                                  ) -> None:
    assert main(["farm", "instances", "--json"]) == 0
    instances = json.loads(capsys.readouterr().out)  # one array, like every other --json listing
    assert isinstance(instances, list) and instances
    assert main(["farm", "instances"]) == 0  # stdout is not a terminal here: plain columns
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "ID"
    assert [line.split()[0] for line in lines[1:]] == [i["id"] for i in instances]


def test_autopilot_cancel_of_an_unknown_id_fails(urls: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["autopilot", "cancel", "no-such-job"]) == 1
    assert "`tether autopilot jobs`" in capsys.readouterr().err


def test_unknown_job_id_says_where_to_look(urls: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["autopilot", "results", "no-such-job", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "`tether autopilot jobs` lists the autopilot jobs" in err


def test_local_services_not_running_says_start_them(services_down: int, capsys: pytest.CaptureFixture[str]) -> None:
    port = services_down
    assert main(["farm", "projects"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and f"`tether serve --port {port}`" in err


def test_ctrl_c_during_wait_says_how_to_resume(urls: Any, tiny_blend: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tether.farm.client import FarmClient

    def ctrl_c(self: FarmClient, job_ids: Any) -> Any:
        raise KeyboardInterrupt

    # Ctrl-C while following: at the first poll, so a render quicker than one poll interval cannot finish first
    # (and no global such as time.sleep is patched under the in-process services' threads)
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as patched:
        patched.setattr(FarmClient, "jobs_by_id", ctrl_c)
        code = main(["farm", "submit", str(tiny_blend), "--frames", "1-40", "--out", "frames"])  # long: cancelled below
    err = capsys.readouterr().err
    assert code == 130
    (record,) = JobRegistry().list(service="farm")
    assert f"`tether jobs watch {record.job_id}`" in err and f"`tether jobs fetch {record.job_id}`" in err
    # Recorded absolute: `tether jobs fetch` from another folder still lands the frames here.
    assert record.output_dir == str(tmp_path / "frames")
    assert main(["jobs", "cancel", record.job_id]) == 0


def test_watch_says_an_unreachable_service_once(services_down: int, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import tether_cli.jobs_cmd as jobs_cmd

    JobRegistry().record(service="farm", job_id="job-unreachable", profile="local", title="shot")
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            raise KeyboardInterrupt

    # the command's own clock only: the in-process services' threads keep the real time.sleep
    monkeypatch.setattr(jobs_cmd, "time", types.SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    assert main(["jobs", "watch", "job-unreachable", "--interval", "0.01"]) == 130
    err = capsys.readouterr().err
    assert err.count("cannot reach") == 1  # two polls, one message
    assert "`tether jobs watch job-unreachable` follows them again" in err


def test_tensorpix_wait_json_prints_one_document(urls: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    from test_tensorpix import make_clip

    clip = make_clip(tmp_path / "clip.mp4", frames=3)
    out = tmp_path / "out"
    assert main(["tensorpix", "enhance", str(clip), "--model", "2", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "completed" and data["job_id"]
    assert [Path(f).parent for f in data["files"]] == [out]


@pytest.mark.parametrize("command", [["farm", "submit"], ["autopilot", "submit"], ["autopilot", "import"],
                                     ["tensorpix", "enhance"], ["clipzy", "style"], ["move", "submit"], ["jobs"],
                                     ["install"]])
def test_help_shows_examples_that_parse(command: list, capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from tether_cli import build_parser

    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    examples = [line.split("#")[0].strip() for line in text.split("examples:", 1)[1].splitlines() if line.strip()]
    assert examples
    for example in examples:  # every example is a command line the parser accepts as written
        args = build_parser().parse_args(shlex.split(example)[1:])
        assert getattr(args, "func", None) is not None, example


def test_status_lines_are_not_broken_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    from tether_cli.progress import status_console

    line = "submitted Move job job-681407f2-a765-407a-a2f7-f182e5f7fb37 (take " + "x" * 150 + ")"
    status_console().print(line)
    assert capsys.readouterr().err == line + "\n"  # one line, however narrow the console thinks it is
