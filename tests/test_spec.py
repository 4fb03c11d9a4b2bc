"""One spec per service, read by settings, clients, the command and the local services."""

from __future__ import annotations

import importlib

import pytest
from tether import settings
from tether.clients import client_for
from tether.errors import ConfigError
from tether.spec import SERVICES, SPECS, spec_for
from tether_cli import build_parser
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
