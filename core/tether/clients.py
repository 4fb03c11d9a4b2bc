"""Service name -> client, for the registry, the watcher and `tether jobs` (the classes are named in
:mod:`tether.spec`)."""

from __future__ import annotations

from typing import Optional

from .jobs import JobService
from .spec import spec_for


def client_for(service: str, profile: Optional[str] = None) -> JobService:
    client: JobService = spec_for(service).client_class().from_profile(profile)
    return client
