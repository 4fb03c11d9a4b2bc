"""One spec per service, read by settings, clients, the command and the local services."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, List

import pytest
from tether import settings
from tether.clients import client_for
from tether.errors import ConfigError
from tether.spec import SERVICES, SPECS, spec_for
from tether.submission import UPLOAD_PLACEHOLDER
from tether_cli import build_parser, main
from tether_services import app


def test_every_reader_takes_its_services_from_the_spec() -> None:
    assert SERVICES == ("farm", "autopilot", "tensorpix", "clipzy", "move")
    assert tuple(app.SERVICES) == SERVICES
    assert tuple(settings.SECRET_ENV) == SERVICES
    assert tuple(n for n in settings.Profile.model_fields if n != "name") == SERVICES
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, spec in SPECS.items():
        assert name in choices, name
        cls = spec.client_class()
        assert name == importlib.import_module(cls.__module__).SERVICE
        assert settings.builtin_service("local", name, 9000)["url"] == f"http://127.0.0.1:9000/{name}"
        assert settings.PUBLIC_URLS.get(name, "") == spec.public_url
        assert settings.secret_env_var(name, spec.kind) == spec.credentials[0][1]


def test_a_keyed_client_is_built_from_the_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("TETHER_LOCAL_PORT", "9123")
    for name in ("autopilot", "tensorpix", "move"):
        monkeypatch.delenv(SPECS[name].credentials[0][1], raising=False)
        client = client_for(name, "local")
        assert client.base_url.startswith("http://127.0.0.1:9123")  # type: ignore[attr-defined]
        assert SPECS[name].local_key and client.auth is not None  # type: ignore[attr-defined]
        client.close()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"unknown service 'render'.*farm, autopilot"):
        spec_for("render")
    with pytest.raises(ConfigError, match="unknown service"):
        client_for("render")


# --- the same verbs for every service ----------------------------------------------------------------------------
def _actions(service: str) -> Any:
    parser = build_parser()._subparsers._group_actions[0].choices[service]  # type: ignore[union-attr]
    return parser._subparsers._group_actions[0].choices


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_verbs(service: str) -> None:
    actions = _actions(service)
    for verb in ("submit", "jobs", "status", "fetch", "cancel"):
        assert verb in actions, f"tether {service} {verb}"


@pytest.mark.parametrize(("service", "old", "verb"), [
    ("tensorpix", "enhance", "submit"), ("clipzy", "style", "submit"), ("clipzy", "result", "fetch"),
    ("autopilot", "results", "fetch"),
])
def test_older_verbs_stay_as_aliases(service: str, old: str, verb: str) -> None:
    actions = _actions(service)
    assert actions[old] is actions[verb]


@pytest.fixture(scope="module")
def movie_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_move import _video

    return _video(tmp_path_factory.mktemp("spec-clip") / "walk.mp4", 36)


@pytest.mark.parametrize(("argv", "key"), [
    (["tensorpix", "submit", "{clip}", "--model", "1", "--dry-run"], "payload"),
    (["clipzy", "submit", "{clip}", "--template", "{clip}", "--dry-run"], "payload"),
    (["move", "submit", "{clip}", "--output", "MAIN_FBX", "--dry-run"], "take"),
])
def test_a_dry_run_of_any_service_prints_what_it_would_send_and_sends_nothing(
        argv: List[str], key: str, movie_clip: Path, local_services: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    local_services.requests.clear()
    assert main([a.replace("{clip}", str(movie_clip)) for a in argv]) == 0
    doc = json.loads(capsys.readouterr().out)  # on stdout: `> file` keeps it
    assert UPLOAD_PLACEHOLDER in json.dumps(doc[key])
    assert local_services.requests.count(method="POST") == 0


def test_farm_jobs_status_fetch_and_cancel_through_the_common_verbs(
        tiny_blend: Path, local_services: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", str(local_services.port))
    out = tmp_path / "frames"
    assert main(["farm", "submit", str(tiny_blend), "--frames", "1", "--out", str(out), "--json"]) == 0
    job_id = json.loads(capsys.readouterr().out)["job_id"]
    assert main(["farm", "jobs", "--json"]) == 0
    assert job_id in [j["id"] for j in json.loads(capsys.readouterr().out)]
    assert main(["farm", "status", job_id]) == 0
    assert capsys.readouterr().out.startswith(f"{job_id}: completed")
    again = tmp_path / "again"
    assert main(["farm", "fetch", job_id, "--out", str(again), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert files and all(Path(f).parent == again for f in files)
    assert main(["farm", "fetch", job_id]) == 0  # the output folder recorded at submit
    assert Path(capsys.readouterr().out.split()[0]).parent == out
    assert main(["farm", "cancel", job_id]) == 1  # asked of the farm, which says why not
    assert "only an unfinished job can be cancelled" in capsys.readouterr().err
