"""Service name -> client, for the registry, the watcher and `tether jobs` (the classes are named in
:mod:`tether.spec`)."""

from __future__ import annotations

from typing import Callable, Optional

from .errors import ConfigError
from .jobs import JobService
from .spec import spec_for


def client_for(service: str, profile: Optional[str] = None, url: Optional[str] = None) -> JobService:
    """``url``: the service's endpoint instead of the profile's (the farm's clients take one; others refuse it)."""
    cls = spec_for(service).client_class()
    if not url:
        client: JobService = cls.from_profile(profile)
        return client
    try:
        return cls.from_profile(profile, url=url)  # type: ignore[no-any-return,unused-ignore]
    except TypeError:
        raise ConfigError(f"{service} takes no endpoint override: set the URL in the profile instead") from None


def client_at(service: str, profile: str, endpoint: str = "",
              clients: Optional[Callable[[str, Optional[str]], JobService]] = None) -> JobService:
    """A job's or a hand-off's client: at its own ``endpoint`` (a farm override, with the profile's credentials
    still), else made by ``clients`` (a watcher's or the agent's factory; default :func:`client_for`)."""
    if endpoint or clients is None:
        return client_for(service, profile or None, endpoint)
    return clients(service, profile or None)
