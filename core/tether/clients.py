"""Service name -> client, for the registry, the watcher and `tether jobs`."""

from __future__ import annotations

import importlib
from typing import Dict, Optional, Tuple

from .errors import ConfigError
from .jobs import JobService

# service -> (module, class); each class has ``from_profile(profile)`` and implements JobService
CLIENTS: Dict[str, Tuple[str, str]] = {
    "farm": ("tether.farm.client", "FarmClient"),
    "autopilot": ("tether.autopilot.client", "AutopilotClient"),
    "tensorpix": ("tether.tensorpix.client", "TensorPixClient"),
    "clipzy": ("tether.clipzy.client", "ClipzyClient"),
    "move": ("tether.move.client", "MoveClient"),
}


def client_for(service: str, profile: Optional[str] = None) -> JobService:
    try:
        module_name, class_name = CLIENTS[service]
    except KeyError:
        raise ConfigError(f"no client for service '{service}' (known: {', '.join(CLIENTS)})") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    client: JobService = cls.from_profile(profile)
    return client
