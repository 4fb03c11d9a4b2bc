"""Service name -> client, for the registry, the watcher and `tether jobs` (the classes are named in
:mod:`tether.spec`)."""

from __future__ import annotations

from typing import Optional

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
