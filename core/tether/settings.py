"""Settings and credentials: profiles of service endpoints, and secrets from the environment or the OS keyring.

Layers, lowest first: built-ins < the config file < the environment (< ``--profile`` for the profile choice).

- **Built-in profile ``local``** (the default) points every service at the local stand-ins,
  ``http://127.0.0.1:<port>/<service>`` (port :data:`LOCAL_PORT`, or ``TETHER_LOCAL_PORT``). Its farm login is
  ``artist@tether.local`` with password ``tether-local``: a local stand-in, not a secret.
- **Config file** ``config.toml`` in the user config dir (platformdirs; ``TETHER_CONFIG_DIR`` moves it)::

      default_profile = "studio"
      # local_port = 8765

      [profiles.studio.farm]
      url = "https://renderfarm.swade-art.com"
      email = "td@studio.example"
      timeout = 60

      [profiles.studio.clipzy]
      url = "https://clipzy.studio.example"

  The file is checked by a pydantic model (:class:`ConfigFile`): a key it does not know, or a value of the wrong
  kind, is an error naming the file, the line and the key: a typo is never ignored. A service a
  non-local profile leaves out uses its public endpoint, when it has one; Clipzy is self-hosted, so it has none.
  Secrets are never read from or written to this file.
- **Environment**: ``TETHER_PROFILE``, ``TETHER_LOCAL_PORT``, ``TETHER_<SERVICE>_URL`` (e.g. ``TETHER_FARM_URL``)
  and ``TETHER_FARM_EMAIL`` override the selected profile.

Credentials (:func:`get_secret`): the environment first, then the OS keyring (service ``tether``, user
``<profile>/<service>/<kind>``). Environment variables apply to whichever profile is selected.

==========  ===================  ==========================  ==========================================
service     kind                 environment variable        accepted spellings of ``kind``
==========  ===================  ==========================  ==========================================
farm        ``token``            ``TETHER_FARM_TOKEN``       ``token`` (from ``tether login farm``)
farm        ``password``         ``TETHER_FARM_PASSWORD``    ``password`` (lets the client log in again)
autopilot   ``api_key``          ``TETHER_AUTOPILOT_API_KEY``  ``api_key``, ``token``, ``key``
tensorpix   ``token``            ``TETHER_TENSORPIX_TOKEN``  ``token``, ``api_key``, ``key``
clipzy      ``token``            ``TETHER_CLIPZY_TOKEN``     ``token``, ``api_key``, ``key``
move        ``api_key``          ``TETHER_MOVE_API_KEY``     ``api_key``, ``token``, ``key``
==========  ===================  ==========================  ==========================================

The environment variable's own name is accepted as ``kind`` too (``get_secret(p, "move", "TETHER_MOVE_API_KEY")``).
Every secret loaded is registered with :func:`tether.errors.register_secret`, so no error text can show it.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Dict, List, Optional, Tuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError, redact, register_secret
from .fileio import private_dir, write_text_atomic
from .spec import SERVICES, SPECS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10 (Nuke 14)
    import tomli as tomllib

log = logging.getLogger(__name__)

LOCAL_PORT = 8765
LOCAL_PROFILE = "local"
LOCAL_FARM_EMAIL = "artist@tether.local"
# The local farm's fixed password. Not a secret (it only opens the stand-in on 127.0.0.1), so it is not registered
# for redaction either: that would blank out every "tether-local..." name in messages.
LOCAL_FARM_PASSWORD = "tether-local"
DEFAULT_TIMEOUT = 30.0
KEYRING_SERVICE = "tether"
CONFIG_FILE_NAME = "config.toml"

# Endpoints a non-local profile gets for a service it does not list (Clipzy is self-hosted: none), and
# service -> credential kind -> environment variable (the table in the module docstring): both from tether.spec.
PUBLIC_URLS: Dict[str, str] = {s.name: s.public_url for s in SPECS.values() if s.public_url}
SECRET_ENV: Dict[str, Dict[str, str]] = {s.name: s.env for s in SPECS.values()}
_KEY_ALIASES = ("token", "api_key", "key")

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOP_KEYS = ("default_profile", "local_port", "profiles")
_SERVICE_KEYS = ("url", "email", "timeout")
_SECRETISH = re.compile(r"(?i)token|password|passwd|secret|api[_-]?key|^key$")
# Settings fields that only the config file may fill (never the environment).
_FILE_ONLY = frozenset({"file_values", "config_file"})


# --- paths ----------------------------------------------------------------------------------------------------
def user_dir(variable: str, kind: str) -> Path:
    """The folder ``variable`` names, else platformdirs' ``kind`` folder for Tether (``user_config_dir`` ...)."""
    override = os.environ.get(variable)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(getattr(platformdirs, kind)("tether", appauthor=False))


def config_dir() -> Path:
    return user_dir("TETHER_CONFIG_DIR", "user_config_dir")


def config_path() -> Path:
    """The TOML config file (it need not exist)."""
    return config_dir() / CONFIG_FILE_NAME


def data_dir() -> Path:
    """The user data dir for Tether (job registry, caches); created if missing."""
    return private_dir(user_dir("TETHER_DATA_DIR", "user_data_dir"))


def local_store_dir() -> Path:
    """Where `tether serve` keeps the local services' uploads, jobs and outputs between runs."""
    return data_dir() / "local-services"


def local_base_url(port: int = LOCAL_PORT) -> str:
    """Where `tether serve` answers; the local service S lives at ``<this>/S``."""
    return f"http://127.0.0.1:{port}"


# --- models -----------------------------------------------------------------------------------------------------
def _check_url(value: str) -> str:
    value = value.strip()
    if value and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"'{value}' is not an http:// or https:// URL")
    return value.rstrip("/")


class ServiceSettings(BaseModel):
    """One service endpoint in a profile. ``url`` is empty only for a self-hosted service nobody configured."""

    model_config = ConfigDict(extra="forbid")

    url: str
    email: Optional[str] = None
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class Profile(BaseModel):
    name: str
    farm: ServiceSettings
    autopilot: ServiceSettings
    tensorpix: ServiceSettings
    clipzy: ServiceSettings
    move: ServiceSettings  # one typed field per service of tether.spec (checked below the class)

    def service(self, name: str) -> ServiceSettings:
        """The endpoint for ``name``; a ConfigError when it is unknown or has no URL in this profile."""
        if name not in SERVICES:
            raise ConfigError(f"unknown service '{name}': use one of {', '.join(SERVICES)}")
        svc: ServiceSettings = getattr(self, name)
        if not svc.url:
            spec = SPECS[name]
            why = f" ({spec.title} is self-hosted, so there is no public default)" if not spec.public_url else ""
            raise ConfigError(
                f"no {name} URL in profile '{self.name}'{why}: set it with "
                f"`tether config set-profile {self.name} --{name}-url URL` or TETHER_{name.upper()}_URL"
            )
        return svc


if tuple(name for name in Profile.model_fields if name != "name") != SERVICES:  # pragma: no cover - a spec edit
    raise RuntimeError("tether.settings.Profile needs one field per service of tether.spec, in its order")


def builtin_service(profile: str, service: str, port: int = LOCAL_PORT) -> Dict[str, Any]:
    """What a profile has for a service before the file and the environment speak."""
    if profile == LOCAL_PROFILE:
        values: Dict[str, Any] = {"url": local_base_url(port) + SPECS[service].local_prefix}
        if service == "farm":
            values["email"] = LOCAL_FARM_EMAIL
        return values
    return {"url": PUBLIC_URLS.get(service, "")}


# --- the config file ----------------------------------------------------------------------------------------------
class _FileService(BaseModel):
    """``[profiles.NAME.SERVICE]`` as the file may write it (all optional: the built-ins fill the rest)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Optional[str] = None
    timeout: Optional[float] = Field(None, gt=0, description="a number of seconds > 0")

    @field_validator("url")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else _check_url(value)


class _FileFarm(_FileService):
    email: Optional[str] = Field(None, pattern=r"@", description="an e-mail address")


_FILE_SERVICES = {name: _FileFarm if name == "farm" else _FileService for name in SERVICES}
_FileProfile = create_model(  # one optional table per service of tether.spec
    "_FileProfile", __config__=ConfigDict(extra="forbid", strict=True),
    **{name: (Optional[model], None) for name, model in _FILE_SERVICES.items()},  # type: ignore[call-overload]
)
_ProfileName = Annotated[str, StringConstraints(pattern=_PROFILE_NAME.pattern)]


class ConfigFile(BaseModel):
    """What ``config.toml`` may hold. Unknown keys are refused: a typo is never ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    default_profile: Optional[str] = None
    local_port: Optional[int] = Field(None, gt=0, lt=65536, description="a port number 1-65535")
    profiles: Dict[_ProfileName, _FileProfile] = {}


_TOML_KEY = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(\.)?""")


def _dotted(text: str) -> Optional[Tuple[str, ...]]:
    """``profiles."bad/name".farm`` -> its parts; None when ``text`` is not only a dotted key."""
    parts: List[str] = []
    pos = 0
    while pos < len(text):
        match = _TOML_KEY.match(text, pos)
        if match is None:
            return None
        parts.append(match.group(1).strip("\"'"))
        pos = match.end()
        if not match.group(2):
            break
    return tuple(parts) if parts and not text[pos:].strip() else None


def key_lines(text: str) -> Dict[Tuple[str, ...], int]:
    """The line (1-based) where each table and key of a TOML text is first written, by dotted path.

    A line scanner, not a parser (tomllib keeps no positions): it reads ``[table]`` headers and ``key = ...`` lines,
    which is all a Tether config holds."""
    lines: Dict[Tuple[str, ...], int] = {}
    table: Tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?(.+?)\]\]?\s*(#.*)?$", stripped)
        if header:
            parts = _dotted(header.group(1))
            if parts is None:
                continue
            table = parts
            key = parts
        elif "=" in stripped and not stripped.startswith("#"):
            parts = _dotted(stripped.split("=", 1)[0])
            if parts is None:
                continue
            key = table + parts
        else:
            continue
        for end in range(1, len(key) + 1):
            lines.setdefault(key[:end], number)
    return lines


def _config_error(error: Any, path: Path, lines: Dict[Tuple[str, ...], int]) -> str:
    loc = tuple(str(p) for p in error.get("loc", ()))
    if loc and loc[-1] == "[key]":  # a dict key refused: the profile name
        loc = loc[:-1]
    where = str(path)
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            where = f"{path}, line {lines[loc[:end]]}"
            break
    key = ".".join(loc)
    leaf = loc[-1] if loc else ""
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        if _SECRETISH.search(leaf):
            return (f"{where}: secrets are never read from the config file; remove '{key}' and use "
                    "`tether login SERVICE` (OS keyring) or the TETHER_* environment variable instead")
        if leaf == "email" and len(loc) == 4:
            return f"{where}: '{key}' is not used: only the farm logs in with an e-mail"
        expected = {1: _TOP_KEYS, 3: SERVICES}.get(len(loc), _SERVICE_KEYS)
        return f"{where}: unknown key '{key}': expected one of {', '.join(expected)}"
    if error.get("loc", ())[-1:] == ("[key]",):
        return f"{where}: profile name '{leaf}': use letters, digits, '_', '.', '-' only (max 64)"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{where}: '{key}' must be a table ([profiles.NAME.SERVICE] with url/email/timeout)"
    msg = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    field = _FIELD_HINTS.get(leaf)
    if field and kind != "value_error":
        msg = f"must be {field}"
    if kind == "value_error":
        return f"{where}: '{key}': {msg}"
    return f"{where}: '{key}' {msg}, not {redact(repr(error.get('input')))}"


_FIELD_HINTS = {"local_port": "a port number 1-65535", "timeout": "a number of seconds > 0",
                "email": "an e-mail address", "url": "a string", "default_profile": "a string"}


def validate_config(data: Dict[str, Any], path: Path, text: str = "") -> Dict[str, Any]:
    """Check a parsed config file against :class:`ConfigFile`; a ConfigError names the file, the line (given the
    file's ``text``) and the key."""
    try:
        ConfigFile.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text) if text else {}
        raise ConfigError("; ".join(_config_error(e, path, lines) for e in exc.errors()[:5])) from None
    default = data.get("default_profile")
    if default is not None and default != LOCAL_PROFILE and default not in data.get("profiles", {}):
        line = key_lines(text).get(("default_profile",)) if text else None
        raise ConfigError(
            f"{path}{f', line {line}' if line else ''}: default_profile = '{default}' names no profile: add "
            f"[profiles.{default}.farm] (or `tether config set-profile {default} ...`) or change default_profile"
        )
    return data


def read_config(path: Optional[Path] = None) -> Dict[str, Any]:
    """The config file, parsed and checked; ``{}`` when there is none."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from None
    return validate_config(data, path, text)


def _write_config(data: Dict[str, Any], path: Path) -> None:
    import tomli_w

    header = (
        "# Tether settings (see `tether config show`). Rewritten by `tether config set-profile`: comments are not\n"
        "# kept. Secrets never go here: use `tether login SERVICE` or the TETHER_* environment variables.\n\n"
    )
    text = header + tomli_w.dumps(data)
    write_text_atomic(path, text)


# --- settings (pydantic-settings) ---------------------------------------------------------------------------------
class _ConfigFileSource(PydanticBaseSettingsSource):
    """The config file as a settings source (below the environment)."""

    def get_field_value(self, field: Any, field_name: str) -> Tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> Dict[str, Any]:
        path = config_path()
        data = read_config(path)
        values: Dict[str, Any] = {"config_file": str(path), "file_values": data}
        for key in ("default_profile", "local_port"):
            if key in data:
                values[key] = data[key]
        return values


class _EnvSource(PydanticBaseSettingsSource):
    """pydantic-settings' own environment source, kept away from the fields only the file may fill."""

    def __init__(self, settings_cls: Any, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> Tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> Dict[str, Any]:
        return {k: v for k, v in self._inner().items() if k not in _FILE_ONLY}


def _env_set(name: str) -> bool:
    # pydantic-settings matches environment names case-insensitively; say "env" on the same terms.
    return any(k.upper() == name and v != "" for k, v in os.environ.items())


class Settings(BaseSettings):
    """The effective settings. Build it with :func:`load_settings`; the selected profile is :attr:`active`."""

    model_config = SettingsConfigDict(env_prefix="TETHER_", extra="ignore", env_ignore_empty=True)

    profile: Optional[str] = None  # TETHER_PROFILE (or --profile); else default_profile
    default_profile: str = LOCAL_PROFILE  # from the file
    local_port: int = Field(LOCAL_PORT, gt=0, lt=65536)  # TETHER_LOCAL_PORT > file > 8765
    # TETHER_<SERVICE>_URL and TETHER_FARM_EMAIL: one field per service of tether.spec, added by _EnvSettings
    config_file: str = ""
    file_values: Dict[str, Any] = Field(default_factory=dict)

    _profile_from_cli: bool = PrivateAttr(default=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: Any,
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> Tuple[PydanticBaseSettingsSource, ...]:
        # No .env or secrets-dir sources: secrets come from the process environment or the keyring only.
        return init_settings, _EnvSource(settings_cls, env_settings), _ConfigFileSource(settings_cls)

    # --- profiles ---------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The selected profile's name."""
        return self.profile or self.default_profile

    @property
    def file_profiles(self) -> Dict[str, Dict[str, Dict[str, Any]]]:
        profiles: Dict[str, Dict[str, Dict[str, Any]]] = self.file_values.get("profiles", {})
        return profiles

    def profile_names(self) -> List[str]:
        return [LOCAL_PROFILE, *sorted(n for n in self.file_profiles if n != LOCAL_PROFILE)]

    def profile_source(self) -> str:
        if self._profile_from_cli:
            return "--profile"
        if self.profile:
            return "env TETHER_PROFILE" if _env_set("TETHER_PROFILE") else "given"
        if "default_profile" in self.file_values:
            return "file (default_profile)"
        return "built-in default"

    def resolve(
        self, name: Optional[str] = None, *, overrides: Optional[bool] = None
    ) -> Tuple[Profile, Dict[str, str]]:
        """Profile ``name`` (default: the selected one) and where each value came from (``farm.url`` -> ``file``).

        Environment overrides apply to the selected profile only, unless ``overrides`` says otherwise.
        """
        name = name or self.name
        if name != LOCAL_PROFILE and name not in self.file_profiles:
            known = ", ".join(self.profile_names())
            came = (" (named by the TETHER_PROFILE environment variable)"
                    if name == self.name and _env_set("TETHER_PROFILE") else "")
            raise ConfigError(
                f"no profile '{name}'{came} (known: {known}); add it to {self.config_file or config_path()} with "
                f"`tether config set-profile {shlex.quote(name)} --farm-url URL ...`"
            )
        if overrides is None:
            overrides = name == self.name
        services: Dict[str, ServiceSettings] = {}
        sources: Dict[str, str] = {}
        for service in SERVICES:
            values = builtin_service(name, service, self.local_port)
            for key in _SERVICE_KEYS:
                sources[f"{service}.{key}"] = "built-in" if values.get(key) else "unset"
            sources[f"{service}.timeout"] = "built-in"
            for key, value in self.file_profiles.get(name, {}).get(service, {}).items():
                values[key] = value
                sources[f"{service}.{key}"] = "file"
            if overrides:
                for key in ("url", "email"):
                    value = getattr(self, f"{service}_{key}", None)
                    if value:
                        env = f"TETHER_{service.upper()}_{key.upper()}"
                        try:
                            values[key] = _check_url(value) if key == "url" else value
                        except ValueError as exc:
                            raise ConfigError(f"{env}: {exc}") from None
                        sources[f"{service}.{key}"] = f"env {env}" if _env_set(env) else "given"
            services[service] = ServiceSettings(**values)
        return Profile(name=name, **services), sources

    def get_profile(self, name: Optional[str] = None) -> Profile:
        return self.resolve(name)[0]

    @property
    def active(self) -> Profile:
        return self.resolve()[0]

    def sources(self, name: Optional[str] = None) -> Dict[str, str]:
        return self.resolve(name)[1]


# The effective settings class: Settings plus an environment override per service of the spec.
_EnvSettings = create_model(
    "Settings", __base__=Settings, farm_email=(Optional[str], None),
    **{f"{service}_url": (Optional[str], None) for service in SERVICES},  # type: ignore[call-overload]
)


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        parts.append(f"TETHER_{field.upper()}: {error.get('msg', 'invalid')} (got {error.get('input')!r})")
    return "invalid settings: " + "; ".join(parts)


def load_settings(profile: Optional[str] = None) -> Settings:
    """The effective settings: built-ins < config file < environment; ``profile`` (from --profile) wins."""
    try:
        settings = _EnvSettings(profile=profile) if profile else _EnvSettings()
    except ValidationError as exc:
        raise ConfigError(_describe_validation(exc)) from None
    settings._profile_from_cli = bool(profile)
    return settings


def active_profile(profile: Optional[str] = None) -> Profile:
    """The selected profile with environment overrides applied; a ConfigError when it is not defined."""
    return load_settings(profile).active


def save_profile(profile: Profile, make_default: bool = False) -> None:
    """Add or replace ``profile`` in the config file (atomically), keeping only what differs from the built-ins.

    Secrets are never written: there is no field for them.
    """
    if not _PROFILE_NAME.match(profile.name):
        raise ConfigError(f"profile name '{profile.name}': use letters, digits, '_', '.', '-' only (max 64)")
    path = config_path()
    data = read_config(path)
    port = load_settings().local_port if profile.name == LOCAL_PROFILE else LOCAL_PORT
    entry: Dict[str, Dict[str, Any]] = {}
    for service in SERVICES:
        current: ServiceSettings = getattr(profile, service)
        base = builtin_service(profile.name, service, port)
        table: Dict[str, Any] = {}
        if current.url and current.url != base.get("url", ""):
            table["url"] = current.url
        if current.email and current.email != base.get("email"):
            table["email"] = current.email
        if current.timeout != DEFAULT_TIMEOUT:
            table["timeout"] = current.timeout
        if table:
            entry[service] = table
    data.setdefault("profiles", {})[profile.name] = entry
    if make_default:
        data["default_profile"] = profile.name
    _write_config(validate_config(data, path), path)


# --- secrets ------------------------------------------------------------------------------------------------------
def secret_kinds(service: str) -> Tuple[str, ...]:
    if service not in SECRET_ENV:
        raise ConfigError(f"unknown service '{service}': use one of {', '.join(SERVICES)}")
    return tuple(SECRET_ENV[service])


def canonical_kind(service: str, kind: str) -> str:
    """The one spelling of ``kind`` for ``service`` (see the table in the module docstring)."""
    kinds = SECRET_ENV.get(service)
    if kinds is None:
        raise ConfigError(f"unknown service '{service}': use one of {', '.join(SERVICES)}")
    for canon, env in kinds.items():
        if kind.upper() == env:
            return canon
    normal = kind.strip().lower().replace("-", "_")
    if normal in kinds:
        return normal
    auth = [k for k in kinds if k != "webhook_secret"]  # a webhook secret never signs in
    if len(auth) == 1 and normal in _KEY_ALIASES:
        return auth[0]
    raise ConfigError(f"unknown credential '{kind}' for {service}: use one of {', '.join(kinds)}")


def secret_env_var(service: str, kind: str = "token") -> str:
    """The environment variable that holds this credential, e.g. ``TETHER_FARM_TOKEN``."""
    return SECRET_ENV[service][canonical_kind(service, kind)]


def keyring_username(profile: str, service: str, kind: str) -> str:
    return f"{profile}/{service}/{canonical_kind(service, kind)}"


def _keyring() -> Any:
    """The usable keyring backend, or None (keyring not installed, e.g. in a DCC's Python, or no backend)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken backend plugin must not take settings down with it
        log.debug("no keyring: %s", exc)
        return None
    return None if isinstance(backend, fail.Keyring) else backend


def keyring_status() -> str:
    """For `tether config show`: which keyring backend stores credentials, if any."""
    backend = _keyring()
    if backend is None:
        return "none available: credentials can only come from TETHER_* environment variables"
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _lookup(profile: str, service: str, kind: str) -> Tuple[Optional[SecretStr], Optional[str]]:
    kind = canonical_kind(service, kind)
    env = SECRET_ENV[service][kind]
    value = os.environ.get(env)
    if value:
        register_secret(value)
        return SecretStr(value), f"env {env}"
    backend = _keyring()
    if backend is not None:
        try:
            value = backend.get_password(KEYRING_SERVICE, keyring_username(profile, service, kind))
        except Exception as exc:  # locked or broken keyring: as if nothing were stored
            log.debug("keyring lookup failed: %s", exc)
            value = None
        if value:
            register_secret(value)
            return SecretStr(value), "keyring"
    if profile == LOCAL_PROFILE and service == "farm" and kind == "password":
        return SecretStr(LOCAL_FARM_PASSWORD), "built-in"
    return None, None


def get_secret(profile: str, service: str, kind: str = "token") -> Optional[SecretStr]:
    """The credential from the environment, else the OS keyring, else None (also when there is no keyring)."""
    return _lookup(profile, service, kind)[0]


def secret_source(profile: str, service: str, kind: str = "token") -> Optional[str]:
    """Where the credential comes from (``env TETHER_FARM_TOKEN``, ``keyring``, ``built-in``), or None."""
    return _lookup(profile, service, kind)[1]


def stored_in_keyring(profile: str, service: str, kind: str = "token") -> bool:
    """Whether the OS keyring holds this credential (whatever the environment says)."""
    backend = _keyring()
    if backend is None:
        return False
    try:
        return bool(backend.get_password(KEYRING_SERVICE, keyring_username(profile, service, kind)))
    except Exception:
        return False


def set_secret(profile: str, service: str, value: str, kind: str = "token") -> None:
    """Store a credential in the OS keyring; a ConfigError saying which variable to use when there is none."""
    kind = canonical_kind(service, kind)
    if not _PROFILE_NAME.match(profile):
        raise ConfigError(f"profile name '{profile}': use letters, digits, '_', '.', '-' only (max 64)")
    if not value:
        raise ConfigError(f"empty {service} {kind}: nothing to store")
    register_secret(value)
    env = SECRET_ENV[service][kind]
    backend = _keyring()
    if backend is None:
        raise ConfigError(
            f"no OS keyring is available to store the {service} {kind} for profile '{profile}': "
            f"set {env} in the environment instead"
        )
    try:
        backend.set_password(KEYRING_SERVICE, keyring_username(profile, service, kind), value)
    except Exception as exc:
        raise ConfigError(
            f"the OS keyring refused to store the {service} {kind} for profile '{profile}' ({exc}); "
            f"set {env} in the environment instead"
        ) from None


def delete_secret(profile: str, service: str, kind: str = "token") -> None:
    """Remove a stored credential; nothing happens when none is stored or there is no keyring."""
    kind = canonical_kind(service, kind)
    backend = _keyring()
    if backend is None:
        return
    from keyring.errors import PasswordDeleteError

    try:
        backend.delete_password(KEYRING_SERVICE, keyring_username(profile, service, kind))
    except PasswordDeleteError:
        return
    except Exception as exc:
        raise ConfigError(f"the OS keyring could not remove the {service} {kind} for profile '{profile}': {exc}") \
            from None


def client_settings(service: str, profile: Optional[str] = None) -> Dict[str, Any]:
    """A keyed client's constructor arguments from the profile: ``base_url``, ``profile``, ``timeout`` and the
    credential under its spec kind (``api_key=`` or ``token=``), for ``from_profile``.

    On the built-in local profile the stand-in's fixed key (:attr:`ServiceSpec.local_key`) is used when nothing
    is stored; a credential the service requires and nobody gave is a ConfigError that says how to log in.
    """
    spec = SPECS[service]
    prof = active_profile(profile)
    svc = prof.service(service)
    secret = get_secret(prof.name, service, spec.kind)
    value = secret.get_secret_value() if secret else (spec.local_key if prof.name == LOCAL_PROFILE else None)
    if value is None and spec.credential_required:
        raise ConfigError(f"no {spec.credential_label} for profile '{prof.name}': run `tether login {service} "
                          f"--profile {prof.name}` or set {secret_env_var(service, spec.kind)}")
    return {"base_url": svc.url, "profile": prof.name, "timeout": svc.timeout, spec.kind: value}
