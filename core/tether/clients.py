"""Service name -> client, for the registry, the watcher and `tether jobs`."""

from __future__ import annotations

from typing import Optional

from .errors import ConfigError
from .jobs import JobService


def client_for(service: str, profile: Optional[str] = None) -> JobService:
    if service == "farm":
        from .farm.client import FarmClient

        return FarmClient.from_profile(profile)
    if service == "autopilot":
        from .autopilot.client import AutopilotClient

        return AutopilotClient.from_profile(profile)
    raise ConfigError(f"no client for service '{service}' yet (known: farm, autopilot)")
