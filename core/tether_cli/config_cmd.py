"""`tether config show|path|set-profile`, `tether login SERVICE` and `tether logout SERVICE`.

Credentials are shown only as where they come from (``set (keyring)``, ``set (env TETHER_FARM_TOKEN)``, ``not set``),
never as values.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any, Dict, List, Optional

from tether.errors import ConfigError, InputError, register_secret
from tether.settings import (
    SERVICES,
    Profile,
    ServiceSettings,
    builtin_service,
    canonical_kind,
    config_path,
    data_dir,
    delete_secret,
    keyring_status,
    load_settings,
    local_store_dir,
    save_profile,
    secret_env_var,
    secret_kinds,
    secret_source,
    set_secret,
    stored_in_keyring,
)

_PROFILE_HELP = "settings profile (default: the configured one, else 'local')"


def _add_profile(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps the global `tether --profile X` when the subcommand does not repeat it.
    parser.add_argument("--profile", default=argparse.SUPPRESS, help=_PROFILE_HELP)


def register(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="show or change settings (profiles, service URLs)")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    config.set_defaults(func=lambda args: (config.print_help(), 2)[1])

    show = config_sub.add_parser("show", help="the effective settings and where each value comes from")
    show.add_argument("--json", action="store_true", help="print JSON")
    _add_profile(show)
    show.set_defaults(func=cmd_show)

    path = config_sub.add_parser("path", help="print where the config file is")
    path.set_defaults(func=cmd_path)

    setp = config_sub.add_parser("set-profile", help="add or update a profile in the config file")
    setp.add_argument("name", help="profile name (letters, digits, '_', '.', '-')")
    for service in SERVICES:
        setp.add_argument(f"--{service}-url", metavar="URL", help=f"{service} base URL")
    setp.add_argument("--farm-email", metavar="EMAIL", help="farm login e-mail")
    setp.add_argument("--timeout", type=float, metavar="SECONDS", help="request timeout for every service")
    setp.add_argument("--default", action="store_true", help="make it the default profile")
    setp.set_defaults(func=cmd_set_profile)

    login = subparsers.add_parser("login", help="store a service credential in the OS keyring")
    login.add_argument("service", choices=SERVICES)
    login.add_argument("--email", help="farm login e-mail (default: the profile's)")
    login.add_argument("--password-stdin", "--key-stdin", dest="stdin", action="store_true",
                       help="read the password (farm) or API key from standard input instead of prompting")
    _add_profile(login)
    login.set_defaults(func=cmd_login)

    logout = subparsers.add_parser("logout", help="remove a service's stored credentials from the OS keyring")
    logout.add_argument("service", choices=SERVICES)
    _add_profile(logout)
    logout.set_defaults(func=cmd_logout)


# --- config show ----------------------------------------------------------------------------------------------
def credential_status(profile: str, service: str, kind: str) -> str:
    source = secret_source(profile, service, kind)
    if source is None:
        return "not set"
    if source == "built-in":
        return "set (built-in local stand-in)"
    return f"set ({source})"


def describe(profile: Optional[str] = None) -> Dict[str, Any]:
    """The effective settings as plain data, with credentials as statuses only."""
    settings = load_settings(profile)
    prof, sources = settings.resolve()
    path = config_path()
    services: Dict[str, Any] = {}
    for service in SERVICES:
        svc: ServiceSettings = getattr(prof, service)
        entry: Dict[str, Any] = {
            "url": svc.url or None,
            "url_source": sources[f"{service}.url"],
            "timeout": svc.timeout,
            "timeout_source": sources[f"{service}.timeout"],
        }
        if service == "farm":
            entry["email"] = svc.email
            entry["email_source"] = sources["farm.email"]
        entry["credentials"] = {kind: credential_status(prof.name, service, kind) for kind in secret_kinds(service)}
        services[service] = entry
    return {
        "profile": prof.name,
        "profile_source": settings.profile_source(),
        "profiles": settings.profile_names(),
        "config_file": str(path),
        "config_file_exists": path.is_file(),
        "local_port": settings.local_port,
        "data_dir": str(data_dir()),
        "local_store": str(local_store_dir()),
        "keyring": keyring_status(),
        "services": services,
    }


def cmd_show(args: argparse.Namespace) -> int:
    info = describe(getattr(args, "profile", None))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    lines: List[str] = [
        f"profile      {info['profile']}  ({info['profile_source']})",
        f"profiles     {', '.join(info['profiles'])}",
        f"config file  {info['config_file']}  ({'exists' if info['config_file_exists'] else 'not created yet'})",
        f"keyring      {info['keyring']}",
        f"local port   {info['local_port']}  (where `tether serve` listens and the 'local' profile connects; "
        "TETHER_LOCAL_PORT or local_port in the config file)",
        f"data folder  {info['data_dir']}  (the job registry; TETHER_DATA_DIR moves it)",
        f"local store  {info['local_store']}  (`tether serve` keeps the local services' uploads, jobs and outputs "
        "here; --store or --temporary instead)",
    ]
    for service, entry in info["services"].items():
        lines.append("")
        lines.append(service)
        if entry["url"]:
            lines.append(f"  {'url':<10}{entry['url']}  ({entry['url_source']})")
        else:
            lines.append(f"  {'url':<10}not configured: `tether config set-profile {info['profile']} "
                         f"--{service}-url URL` or TETHER_{service.upper()}_URL")
        if "email" in entry:
            email = entry["email"] or "not set"
            lines.append(f"  {'email':<10}{email}  ({entry['email_source']})")
        lines.append(f"  {'timeout':<10}{entry['timeout']:g} s  ({entry['timeout_source']})")
        for kind, status in entry["credentials"].items():
            lines.append(f"  {kind:<10}{status}")
    print("\n".join(lines))
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    print(config_path())
    return 0


# --- config set-profile -------------------------------------------------------------------------------------------
def cmd_set_profile(args: argparse.Namespace) -> int:
    settings = load_settings()
    name = args.name
    existing = name in settings.profile_names()
    # The environment's overrides must not end up in the file.
    base = settings.resolve(name, overrides=False)[0] if existing else _new_profile(name)
    values = base.model_dump()
    changed = False
    for service in SERVICES:
        url = getattr(args, f"{service}_url")
        if url is not None:
            values[service]["url"] = url
            changed = True
    if args.farm_email is not None:
        if "@" not in args.farm_email:
            raise InputError(f"--farm-email '{args.farm_email}' is not an e-mail address")
        values["farm"]["email"] = args.farm_email
        changed = True
    if args.timeout is not None:
        if args.timeout <= 0:
            raise InputError(f"--timeout must be > 0 seconds, not {args.timeout:g}")
        for service in SERVICES:
            values[service]["timeout"] = args.timeout
        changed = True
    if not (changed or args.default or not existing):
        raise InputError("nothing to change: give --SERVICE-url, --farm-email, --timeout or --default")
    try:
        profile = Profile.model_validate(values)
    except ValueError as exc:  # pydantic's ValidationError: a URL without http(s)://
        raise InputError(f"profile '{name}': {_first_error(exc)}") from None
    save_profile(profile, make_default=args.default)
    verb = "updated" if existing else "added"
    print(f"{verb} profile '{name}' in {config_path()}" + (" (now the default)" if args.default else ""))
    return 0


def _new_profile(name: str) -> Profile:
    """A new profile: the public endpoints (see tether.settings.PUBLIC_URLS), nothing else."""
    return Profile(name=name, **{s: ServiceSettings(**builtin_service(name, s)) for s in SERVICES})


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}".replace("Value error, ", "")
    return str(exc)


# --- login / logout -----------------------------------------------------------------------------------------------
def login(service: str, profile: Optional[str] = None, email: Optional[str] = None,
          password: Optional[str] = None) -> str:
    """Store a credential for ``service`` in ``profile`` (default: the selected one); return the profile name.

    For the farm, ``password`` is exchanged for a token with ``FarmClient.login_token`` and only the token is
    stored. For the other services, ``password`` is the API key / token itself.
    """
    settings = load_settings(profile)
    prof = settings.active
    if not password:
        raise InputError(f"no {'password' if service == 'farm' else 'API key'} given for {service}")
    register_secret(password)
    if service == "farm":
        from tether.farm.client import FarmClient

        svc = prof.service("farm")
        email = email or svc.email
        if not email:
            raise InputError(
                f"no farm e-mail for profile '{prof.name}': give --email, or save one with "
                f"`tether config set-profile {prof.name} --farm-email EMAIL`"
            )
        token = FarmClient.login_token(svc.url, email, password, svc.timeout)
        set_secret(prof.name, "farm", token, "token")
        return prof.name
    if service not in SERVICES:
        raise ConfigError(f"unknown service '{service}': use one of {', '.join(SERVICES)}")
    prof.service(service)  # a self-hosted service with no URL: say so now rather than at first use
    set_secret(prof.name, service, password, canonical_kind(service, "token"))
    return prof.name


def _read_secret(prompt: str, from_stdin: bool) -> str:
    try:
        value = sys.stdin.readline().rstrip("\r\n") if from_stdin else getpass.getpass(prompt)
    except EOFError:  # no terminal and nothing piped in (a script, cron, CI)
        value = ""
    if not value:
        raise InputError("nothing entered: no credential stored (in a script, pipe it in with --password-stdin, "
                         "e.g. `printenv FARM_PASSWORD | tether login farm --password-stdin`)")
    return value


def cmd_login(args: argparse.Namespace) -> int:
    service = args.service
    settings = load_settings(getattr(args, "profile", None))
    prof = settings.active
    if keyring_status().startswith("none"):
        # Say so before asking for a password that could not be kept anyway.
        envs = " or ".join(secret_env_var(service, kind) for kind in reversed(secret_kinds(service)))
        raise ConfigError(f"no OS keyring is available to store the {service} credential for profile '{prof.name}': "
                          f"set {envs} in the environment instead")
    if service == "farm":
        email = args.email or prof.farm.email
        if not email:
            raise InputError(
                f"no farm e-mail for profile '{prof.name}': give --email, or save one with "
                f"`tether config set-profile {prof.name} --farm-email EMAIL`"
            )
        secret = _read_secret(f"farm password for {email} ({prof.farm.url}): ", args.stdin)
        name = login("farm", prof.name, email, secret)
        print(f"logged in to the farm as {email} for profile '{name}'; token stored in the OS keyring")
    else:
        if args.email:
            raise InputError(f"--email is for the farm only; {service} uses an API key")
        prof.service(service)  # no URL (self-hosted Clipzy): say so before asking for the key
        kind = canonical_kind(service, "token")
        secret = _read_secret(f"{service} {kind.replace('_', ' ')} for profile '{prof.name}': ", args.stdin)
        name = login(service, prof.name, None, secret)
        print(f"stored the {service} {kind.replace('_', ' ')} for profile '{name}' in the OS keyring")
    _warn_env(service)
    return 0


def _warn_env(service: str) -> None:
    for kind in secret_kinds(service):
        env = secret_env_var(service, kind)
        if os.environ.get(env):
            print(f"note: {env} is set in the environment and takes precedence over the keyring", file=sys.stderr)


def cmd_logout(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "profile", None))
    name = settings.name
    settings.resolve()  # an unknown profile is an error, not a silent no-op
    removed = []
    for kind in secret_kinds(args.service):
        if stored_in_keyring(name, args.service, kind):
            removed.append(kind)
        delete_secret(name, args.service, kind)
    if removed:
        print(f"removed the stored {args.service} {', '.join(removed)} for profile '{name}'")
    else:
        print(f"no {args.service} credential was stored for profile '{name}'")
    _warn_env(args.service)
    return 0
