"""The services Tether talks to, described once.

Settings (profiles, public endpoints, credential variables), :mod:`tether.clients`, the `tether` command (one
command per service, the same verbs for each) and the local services (one path prefix per service) all read
:data:`SPECS`; adding a service is one entry here plus its package ``tether.<name>`` (``models``, ``client``,
``submit``). Importing this module loads nothing heavy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .errors import ConfigError


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its name everywhere, how to reach it, and how it authenticates."""

    name: str  # profile table, registry rows, `tether NAME`, the local services' /NAME prefix
    title: str  # what people call it
    summary: str  # one line for `tether --help`
    client: str  # "module:Class"; the class has from_profile(profile) and implements tether.jobs.JobService
    credentials: Tuple[Tuple[str, str], ...]  # (kind, environment variable), the main credential first
    credential_label: str  # for messages: "no Autopilot API key for profile ..."
    public_url: str = ""  # a non-local profile's endpoint when it names none; "" for a self-hosted service
    local_key: Optional[str] = None  # the local stand-in's fixed key (not a secret: it opens 127.0.0.1 only)
    credential_required: bool = True  # False: some deployments need none (Clipzy behind no proxy)
    # 429s: one request waits them out for up to ``rate_budget`` seconds in all, each wait at most ``rate_wait``
    # when the service names none (a Retry-After within the budget is waited whole); see tether.http.RetryPolicy
    rate_budget: float = 120.0
    rate_wait: float = 30.0
    # where a create carries the client's marker, so a job whose create reply was lost is found (tether.creation)
    create_marker: str = "metadata.tether_submission"

    @property
    def local_prefix(self) -> str:
        """The path the local services mount this service under (``/farm``)."""
        return f"/{self.name}"

    @property
    def kind(self) -> str:
        """The main credential's kind (``api_key``, ``token``)."""
        return self.credentials[0][0]

    @property
    def env(self) -> Dict[str, str]:
        """Credential kind -> environment variable."""
        return dict(self.credentials)

    def login_hint(self, profile: str) -> str:
        """What a refused or missing credential's message tells the user to do."""
        return (f"run `tether login {self.name} --profile {profile}` to store the {self.credential_label} "
                f"(or set {self.credentials[0][1]})")

    def client_class(self) -> Any:
        module, name = self.client.split(":")
        return getattr(importlib.import_module(module), name)


SPECS: Dict[str, ServiceSpec] = {s.name: s for s in (
    ServiceSpec(
        name="farm", title="Renderfarm Platform", summary="the Blender render farm (Renderfarm Platform)",
        client="tether.farm.client:FarmClient",
        credentials=(("token", "TETHER_FARM_TOKEN"), ("password", "TETHER_FARM_PASSWORD")),
        credential_label="farm login", public_url="https://renderfarm.swade-art.com",
        create_marker="environment variable TETHER_SUBMISSION",  # the payload's only free-form field (seed 004)
    ),
    ServiceSpec(
        name="autopilot", title="Autopilot", summary="Slapshot Autopilot: roto, camera tracking, depth for a clip",
        client="tether.autopilot.client:AutopilotClient",
        credentials=(("api_key", "TETHER_AUTOPILOT_API_KEY"),), credential_label="Autopilot API key",
        public_url="https://autopilot.slapshot.ai", local_key="local-autopilot-key",
        # the vendor's own node waits 60 s on a 429 (SERVICES.md): bursts last minutes, not seconds
        rate_budget=600.0, rate_wait=60.0,
    ),
    ServiceSpec(
        name="tensorpix", title="TensorPix", summary="TensorPix: upscale, denoise, interpolate a video",
        client="tether.tensorpix.client:TensorPixClient",
        credentials=(("token", "TETHER_TENSORPIX_TOKEN"),), credential_label="TensorPix API token",
        public_url="https://backend.tensorpix.ai",  # the seed's requests: https://backend.tensorpix.ai/api/...
        create_marker="input_video",  # no free-form field in a create (seed 002): each submit uploads its own video
        local_key="local-tensorpix-key",
    ),
    ServiceSpec(
        name="clipzy", title="Clipzy", summary="Clipzy ML Engine: style a clip from a template video",
        client="tether.clipzy.client:ClipzyClient",
        credentials=(("token", "TETHER_CLIPZY_TOKEN"),), credential_label="Clipzy token",
        credential_required=False,  # self-hosted: no public default, and no auth unless behind a proxy
        create_marker="video_id",  # JobCreateRequest has no free-form field (seed 001): each submit uploads its own
    ),
    ServiceSpec(
        name="move", title="Move", summary="Move: motion capture from a video, an FBX rig back",
        client="tether.move.client:MoveClient",
        credentials=(("api_key", "TETHER_MOVE_API_KEY"), ("webhook_secret", "TETHER_MOVE_WEBHOOK_SECRET")),
        credential_label="Move API key", create_marker="take",  # each submit makes its own take
        public_url="https://api.move.ai/ugc/graphql", local_key="local-move-key",
    ),
)}

SERVICES: Tuple[str, ...] = tuple(SPECS)


def spec_for(service: str) -> ServiceSpec:
    """The spec of ``service``; a ConfigError naming the known ones when there is none."""
    try:
        return SPECS[service]
    except KeyError:
        raise ConfigError(f"unknown service '{service}': use one of {', '.join(SERVICES)}") from None


__all__ = ["SERVICES", "SPECS", "ServiceSpec", "spec_for"]
