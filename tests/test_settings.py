"""Settings and credentials: profiles, the config file, env overrides, keyring secrets and `tether config/login`."""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from memkeyring import MemoryKeyring
from tether import settings as st
from tether.errors import ConfigError, redact
from tether_cli import main


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.upper().startswith("TETHER_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def nokeyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


def write_config(text: str) -> Path:
    path = st.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fresh_secret() -> str:
    return "s3cr3t-" + secrets.token_hex(12)


STUDIO = """
default_profile = "studio"

[profiles.studio.farm]
url = "https://farm.studio.example/"
email = "td@studio.example"
timeout = 60

[profiles.studio.clipzy]
url = "https://clipzy.studio.example"
"""


# --- paths and built-ins ------------------------------------------------------------------------------------------
def test_paths_follow_the_override_dirs(clean_env: Path) -> None:
    assert st.config_path() == clean_env / "config" / "config.toml"
    assert st.data_dir() == clean_env / "data"
    assert st.data_dir().is_dir()


def test_local_profile_is_the_default(memkeyring: MemoryKeyring) -> None:
    settings = st.load_settings()
    assert settings.name == "local"
    prof = settings.active
    for service in st.SERVICES:
        assert prof.service(service).url == f"http://127.0.0.1:{st.LOCAL_PORT}/{service}"
    assert prof.farm.email == "artist@tether.local"
    password = st.get_secret("local", "farm", "password")
    assert password is not None and password.get_secret_value() == "tether-local"
    assert st.get_secret("local", "farm", "token") is None
    assert st.get_secret("studio", "farm", "password") is None  # the stand-in password is the local profile's only


def test_local_port_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_LOCAL_PORT", "9911")
    prof = st.active_profile()
    assert prof.farm.url == f"{st.local_base_url(9911)}/farm" == "http://127.0.0.1:9911/farm"
    assert prof.move.url == "http://127.0.0.1:9911/move"
    monkeypatch.setenv("TETHER_LOCAL_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="TETHER_LOCAL_PORT"):
        st.load_settings()


# --- the config file ----------------------------------------------------------------------------------------------
def test_file_profile_and_public_defaults() -> None:
    write_config(STUDIO)
    settings = st.load_settings()
    assert settings.name == "studio"
    prof = settings.active
    assert prof.farm.url == "https://farm.studio.example"  # trailing slash dropped
    assert prof.farm.email == "td@studio.example"
    assert prof.farm.timeout == 60
    assert prof.clipzy.url == "https://clipzy.studio.example"
    assert prof.service("autopilot").url == st.PUBLIC_URLS["autopilot"]
    assert prof.service("tensorpix").url == "https://backend.tensorpix.ai"  # the seed's host
    assert prof.service("move").url == "https://api.move.ai/ugc/graphql"
    assert settings.profile_names() == ["local", "studio"]


def test_clipzy_has_no_public_default() -> None:
    write_config('[profiles.studio.farm]\nurl = "https://farm.example"\n')
    prof = st.active_profile("studio")
    assert prof.clipzy.url == ""
    with pytest.raises(ConfigError, match="self-hosted") as info:
        prof.service("clipzy")
    assert "--clipzy-url" in str(info.value) and "TETHER_CLIPZY_URL" in str(info.value)


def test_save_profile_round_trip() -> None:
    base = st.load_settings()
    prof = st.Profile(
        name="studio",
        farm=st.ServiceSettings(url="https://farm.studio.example", email="td@studio.example", timeout=45),
        autopilot=st.ServiceSettings(url=st.PUBLIC_URLS["autopilot"]),
        tensorpix=st.ServiceSettings(url="https://tensorpix.proxy.example"),
        clipzy=st.ServiceSettings(url="https://clipzy.studio.example"),
        move=st.ServiceSettings(url=st.PUBLIC_URLS["move"]),
    )
    assert base.name == "local"
    st.save_profile(prof, make_default=True)
    loaded = st.load_settings()
    assert loaded.name == "studio"
    assert loaded.active == prof
    # only what differs from the built-ins is written, and nothing else lands next to the file
    text = st.config_path().read_text()
    assert "autopilot" not in text and "https://farm.studio.example" in text
    assert sorted(p.name for p in st.config_path().parent.iterdir()) == ["config.toml"]

    other = prof.model_copy(update={"name": "night", "farm": st.ServiceSettings(url="http://10.0.0.5:8000")})
    st.save_profile(other)
    again = st.load_settings()
    assert again.name == "studio"  # not made default
    assert again.get_profile("studio") == prof
    assert again.get_profile("night").farm.url == "http://10.0.0.5:8000"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('default_profil = "local"\n', "default_profil"),
        ('[profiles.studio.farmm]\nurl = "https://x.example"\n', "profiles.studio.farmm"),
        ('[profiles.studio.farm]\nurll = "https://x.example"\n', "profiles.studio.farm.urll"),
        ('[profile.studio.farm]\nurl = "https://x.example"\n', "profile"),
    ],
)
def test_unknown_key_is_an_error_naming_key_and_file(text: str, key: str) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        st.load_settings()
    message = str(info.value)
    assert f"'{key}'" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('default_profile = "studio"\n\n[profiles.studio.farm]\nurl = "https://x.example"\nurll = "https://y"\n', 5,
         "profiles.studio.farm.urll"),
        ('# studio\n[profiles.studio.farm]\nurl = "https://x.example"\n\n[profiles.studio.move]\ntimeout = -1\n', 6,
         "profiles.studio.move.timeout"),
        ('[profiles."bad/name".farm]\nurl = "https://x.example"\n', 1, "bad/name"),
        ('local_port = 8765\nprofiles.studio.farm.email = "nobody"\n', 2, "profiles.studio.farm.email"),
        ('[profiles.studio]\nfarm = 3\n', 2, "profiles.studio.farm"),
    ],
)
def test_config_error_names_the_line_and_the_key(text: str, line: int, key: str) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        st.load_settings()
    assert str(info.value).startswith(f"{path}, line {line}: ") and f"'{key}'" in str(info.value)


def test_secret_in_file_is_refused() -> None:
    secret = fresh_secret()
    path = write_config(f'[profiles.studio.farm]\nurl = "https://x.example"\ntoken = "{secret}"\n')
    with pytest.raises(ConfigError, match="never read from the config file") as info:
        st.load_settings()
    assert str(path) in str(info.value)
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("default_profile = [", "not valid TOML"),
        ('default_profile = "nope"\n', "names no profile"),
        ('[profiles.studio.farm]\nurl = "renderfarm.example"\n', "not an http"),
        ('[profiles.studio.autopilot]\nemail = "a@b.c"\n', "only the farm"),
        ('[profiles.studio.farm]\ntimeout = 0\n', "timeout"),
        ('local_port = 70000\n', "local_port"),
        ('[profiles."bad/name".farm]\nurl = "https://x.example"\n', "bad/name"),
    ],
)
def test_bad_values_in_file(text: str, needle: str) -> None:
    write_config(text)
    with pytest.raises(ConfigError, match=needle):
        st.load_settings()


def test_unknown_profile_lists_known_ones() -> None:
    write_config(STUDIO)
    with pytest.raises(ConfigError) as info:
        st.active_profile("nope")
    assert "'nope'" in str(info.value) and "local, studio" in str(info.value)
    assert "TETHER_PROFILE" not in str(info.value)


def test_unknown_profile_from_the_environment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(STUDIO)
    monkeypatch.setenv("TETHER_PROFILE", "ghost town")
    with pytest.raises(ConfigError) as info:
        st.active_profile()
    text = str(info.value)
    assert "named by the TETHER_PROFILE environment variable" in text
    assert "`tether config set-profile 'ghost town' --farm-url URL ...`" in text  # a command that pastes as one


# --- precedence ---------------------------------------------------------------------------------------------------
def test_precedence_builtin_file_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # built-in
    assert st.load_settings().sources()["farm.url"] == "built-in"
    # file over built-in (the local profile can be adjusted in the file too)
    write_config('local_port = 9000\n[profiles.local.farm]\nurl = "http://127.0.0.1:7000/farm"\n')
    settings = st.load_settings()
    assert settings.active.farm.url == "http://127.0.0.1:7000/farm"
    assert settings.active.autopilot.url == "http://127.0.0.1:9000/autopilot"
    assert settings.sources()["farm.url"] == "file"
    # env over file
    monkeypatch.setenv("TETHER_FARM_URL", "http://127.0.0.1:7001/farm/")
    monkeypatch.setenv("TETHER_FARM_EMAIL", "env@tether.local")
    monkeypatch.setenv("TETHER_LOCAL_PORT", "9001")
    settings = st.load_settings()
    assert settings.active.farm.url == "http://127.0.0.1:7001/farm"
    assert settings.active.farm.email == "env@tether.local"
    assert settings.active.autopilot.url == "http://127.0.0.1:9001/autopilot"
    sources = settings.sources()
    assert sources["farm.url"] == "env TETHER_FARM_URL"
    assert sources["farm.email"] == "env TETHER_FARM_EMAIL"
    assert sources["autopilot.url"] == "built-in"


def test_profile_choice_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(STUDIO + '\n[profiles.night.farm]\nurl = "https://night.example"\n')
    assert st.load_settings().name == "studio"
    assert st.load_settings().profile_source() == "file (default_profile)"
    monkeypatch.setenv("TETHER_PROFILE", "night")
    assert st.load_settings().name == "night"
    assert st.load_settings().profile_source() == "env TETHER_PROFILE"
    assert st.load_settings("local").name == "local"  # --profile beats the environment
    assert st.load_settings("local").profile_source() == "--profile"


def test_env_overrides_apply_to_the_selected_profile_only(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(STUDIO)
    monkeypatch.setenv("TETHER_FARM_URL", "https://override.example")
    settings = st.load_settings()
    assert settings.active.farm.url == "https://override.example"
    assert settings.get_profile("local").farm.url.startswith("http://127.0.0.1:")
    assert settings.resolve("studio", overrides=False)[0].farm.url == "https://farm.studio.example"


def test_bad_env_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TENSORPIX_URL", "api.tensorpix.ai")
    with pytest.raises(ConfigError, match="TETHER_TENSORPIX_URL"):
        st.active_profile()


# --- secrets ------------------------------------------------------------------------------------------------------
def test_keyring_round_trip_and_kinds(memkeyring: MemoryKeyring) -> None:
    token = fresh_secret()
    st.set_secret("studio", "farm", token)
    assert memkeyring.store[("tether", "studio/farm/token")] == token
    got = st.get_secret("studio", "farm", "token")
    assert got is not None and got.get_secret_value() == token
    assert "**" in str(got)  # SecretStr hides it when printed
    assert st.get_secret("other", "farm", "token") is None  # per profile

    key = fresh_secret()
    st.set_secret("studio", "autopilot", key, kind="token")  # alias of autopilot's api_key
    assert memkeyring.store[("tether", "studio/autopilot/api_key")] == key
    for kind in ("api_key", "token", "key", "TETHER_AUTOPILOT_API_KEY"):
        value = st.get_secret("studio", "autopilot", kind)
        assert value is not None and value.get_secret_value() == key
    with pytest.raises(ConfigError, match="token, password"):
        st.get_secret("studio", "farm", "api_key")  # the farm has two kinds: no guessing
    with pytest.raises(ConfigError, match="unknown service"):
        st.get_secret("studio", "render", "token")

    st.delete_secret("studio", "farm")
    assert st.get_secret("studio", "farm") is None
    st.delete_secret("studio", "farm")  # nothing stored: quiet


def test_env_beats_keyring(memkeyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    stored, from_env = fresh_secret(), fresh_secret()
    st.set_secret("local", "move", stored, kind="api_key")
    monkeypatch.setenv("TETHER_MOVE_API_KEY", from_env)
    value = st.get_secret("local", "move", "api_key")
    assert value is not None and value.get_secret_value() == from_env
    assert st.secret_source("local", "move", "api_key") == "env TETHER_MOVE_API_KEY"
    monkeypatch.setenv("TETHER_FARM_PASSWORD", from_env)
    password = st.get_secret("local", "farm", "password")
    assert password is not None and password.get_secret_value() == from_env  # over the built-in stand-in


def test_loaded_secrets_are_registered_for_redaction(memkeyring: MemoryKeyring,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    in_keyring, in_env = fresh_secret(), fresh_secret()
    memkeyring.set_password("tether", "local/clipzy/token", in_keyring)  # stored by someone else: not yet known
    monkeypatch.setenv("TETHER_TENSORPIX_TOKEN", in_env)
    assert in_keyring in redact(f"value {in_keyring} here") and in_env in redact(f"value {in_env} here")
    assert st.get_secret("local", "clipzy") is not None
    assert st.get_secret("local", "tensorpix") is not None
    assert redact(f"value {in_keyring} here") == "value *** here"
    assert redact(f"value {in_env} here") == "value *** here"
    assert in_env not in str(ConfigError(f"the service rejected {in_env}"))


def test_no_keyring_backend(nokeyring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert st.get_secret("local", "farm", "token") is None  # quietly
    with pytest.raises(ConfigError) as info:
        st.set_secret("local", "farm", fresh_secret(), kind="token")
    assert "TETHER_FARM_TOKEN" in str(info.value)
    with pytest.raises(ConfigError, match="TETHER_AUTOPILOT_API_KEY"):
        st.set_secret("local", "autopilot", fresh_secret(), kind="api_key")
    st.delete_secret("local", "farm")  # nothing to delete: quiet
    token = fresh_secret()
    monkeypatch.setenv("TETHER_FARM_TOKEN", token)
    value = st.get_secret("local", "farm", "token")
    assert value is not None and value.get_secret_value() == token  # the environment still works
    assert "none available" in st.keyring_status()


# --- the CLI ------------------------------------------------------------------------------------------------------
def test_config_show_masks_secrets(memkeyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_config(STUDIO)
    farm_token, move_key = fresh_secret(), fresh_secret()
    st.set_secret("studio", "farm", farm_token)
    monkeypatch.setenv("TETHER_MOVE_API_KEY", move_key)
    monkeypatch.setenv("TETHER_AUTOPILOT_URL", "https://autopilot.proxy.example")

    assert main(["config", "show"]) == 0
    out, err = capsys.readouterr()
    assert farm_token not in out + err and move_key not in out + err
    assert "studio" in out and str(st.config_path()) in out and "(exists)" in out
    assert "https://farm.studio.example  (file)" in out
    assert "https://autopilot.proxy.example  (env TETHER_AUTOPILOT_URL)" in out
    assert "https://backend.tensorpix.ai  (built-in)" in out
    assert "set (keyring)" in out
    assert "set (env TETHER_MOVE_API_KEY)" in out
    assert "not set" in out

    assert main(["config", "show", "--json"]) == 0
    out, err = capsys.readouterr()
    assert farm_token not in out + err and move_key not in out + err
    info = json.loads(out)
    assert info["profile"] == "studio" and info["config_file_exists"] is True
    assert info["services"]["farm"]["credentials"] == {"token": "set (keyring)", "password": "not set"}
    assert info["services"]["move"]["credentials"] == {"api_key": "set (env TETHER_MOVE_API_KEY)",
                                                        "webhook_secret": "not set"}
    assert info["services"]["farm"]["url_source"] == "file"
    assert info["services"]["clipzy"]["url"] == "https://clipzy.studio.example"


def test_config_show_local_and_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--profile", "local", "config", "show", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"] == "local" and info["profile_source"] == "--profile"
    assert info["config_file_exists"] is False
    assert info["services"]["farm"]["credentials"]["password"] == "set (built-in local stand-in)"


def test_config_path_and_set_profile(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["config", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(st.config_path())

    monkeypatch.setenv("TETHER_MOVE_URL", "https://move.env.example")  # must not end up in the file
    assert main(["config", "set-profile", "studio", "--farm-url", "https://farm.studio.example",
                 "--farm-email", "td@studio.example", "--clipzy-url", "https://clipzy.studio.example"]) == 0
    assert "added profile 'studio'" in capsys.readouterr().out
    assert st.load_settings().name == "local"
    assert main(["config", "set-profile", "studio", "--timeout", "90", "--default"]) == 0
    capsys.readouterr()
    settings = st.load_settings()
    assert settings.name == "studio"
    prof = settings.resolve(overrides=False)[0]
    assert prof.farm.url == "https://farm.studio.example" and prof.farm.email == "td@studio.example"
    assert prof.clipzy.url == "https://clipzy.studio.example"
    assert prof.farm.timeout == 90 and prof.move.timeout == 90
    assert "move.env.example" not in st.config_path().read_text()

    assert main(["config", "set-profile", "studio", "--farm-url", "renderfarm.example"]) == 1
    assert "http" in capsys.readouterr().err
    assert main(["config", "set-profile", "bad/name", "--farm-url", "https://x.example"]) == 1
    assert "bad/name" in capsys.readouterr().err


def test_login_logout_api_key(memkeyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    key = fresh_secret()
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    assert main(["login", "tensorpix", "--key-stdin"]) == 0
    out, err = capsys.readouterr()
    assert key not in out + err and "'local'" in out
    assert memkeyring.store[("tether", "local/tensorpix/token")] == key
    assert not st.config_path().exists()  # secrets never go to the file

    prompted = fresh_secret()
    monkeypatch.setattr("getpass.getpass", lambda prompt="": prompted)
    assert main(["login", "move", "--profile", "local"]) == 0
    assert prompted not in "".join(capsys.readouterr())
    assert memkeyring.store[("tether", "local/move/api_key")] == prompted

    assert main(["logout", "tensorpix"]) == 0
    assert "removed" in capsys.readouterr().out
    assert ("tether", "local/tensorpix/token") not in memkeyring.store
    assert main(["logout", "tensorpix"]) == 0
    assert "no tensorpix credential" in capsys.readouterr().out


def test_login_without_keyring_says_which_variable(nokeyring: None, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    key = fresh_secret()
    monkeypatch.setattr(sys, "stdin", io.StringIO(key + "\n"))
    assert main(["login", "autopilot", "--key-stdin"]) == 1
    _, err = capsys.readouterr()
    assert "TETHER_AUTOPILOT_API_KEY" in err and key not in err


def test_login_clipzy_needs_a_url(memkeyring: MemoryKeyring, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('default_profile = "studio"\n[profiles.studio.farm]\nurl = "https://farm.example"\n')
    with pytest.raises(ConfigError, match="self-hosted"):
        from tether_cli.config_cmd import login

        login("clipzy", None, None, fresh_secret())
    assert memkeyring.store == {}


def test_login_farm_against_local_farm(memkeyring: MemoryKeyring, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tether_services.farm.api", reason="the local farm is not there yet")
    server = pytest.importorskip("tether_services.server")
    from tether_cli.config_cmd import login

    with server.LocalServices(port=0, state_dir=tmp_path / "services", services=["farm"]) as services:
        monkeypatch.setenv("TETHER_LOCAL_PORT", str(services.port))
        assert login("farm", "local", None, "tether-local") == "local"
        token = st.get_secret("local", "farm", "token")
        assert token is not None and token.get_secret_value()
        assert memkeyring.store[("tether", "local/farm/token")] == token.get_secret_value()

        monkeypatch.setattr(sys, "stdin", io.StringIO("wrong-password\n"))
        assert main(["login", "farm", "--password-stdin"]) == 1
        _, err = capsys.readouterr()
        assert "wrong-password" not in err
