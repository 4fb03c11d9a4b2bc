"""The one ASGI app of the local services: one port, one path prefix per service.

Wire choices: each service of :data:`tether.spec.SPECS` is mounted under its ``local_prefix`` (``/farm``,
``/autopilot``, ``/tensorpix``, ``/clipzy``, ``/move``) and speaks its vendor's API below that prefix, so a client's
base URL is ``http://127.0.0.1:8765/farm``. The frame itself answers ``GET /health`` and the test control routes
``/_faults`` and ``/_requests`` (see :mod:`tether_services.faults`).

A service ``name`` of the spec is served by ``tether_services.<name>.api:create_service``, where
``create_service(state_dir: Path, options: ServiceOptions) -> Service`` returns an object with an ASGI ``app`` and
``close()``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Protocol, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tether.spec import SPECS

from .faults import FaultMiddleware, Faults, RequestLog, faults_from_json
from .guard import HostGuard

SERVICES: Dict[str, str] = {name: f"tether_services.{name}.api:create_service" for name in SPECS}


@dataclass
class ServiceOptions:
    """Knobs shared by every service factory; a service ignores the ones it does not use."""

    workers: int = 2
    token_ttl: float = 3600.0
    # Bound beyond loopback, every service wants this instead of its well-known local key (see server.py).
    access_key: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


class Service(Protocol):
    app: Any

    def close(self) -> None: ...


def load_service(name: str, state_dir: Path, options: ServiceOptions) -> Service:
    try:
        target = SERVICES[name]
    except KeyError:
        raise ValueError(f"unknown local service {name!r}; known: {', '.join(SERVICES)}") from None
    module_name, factory = target.split(":")
    module = importlib.import_module(module_name)
    service: Service = getattr(module, factory)(state_dir / name, options)
    return service


@dataclass
class Frame:
    """The assembled app plus what tests reach into: faults, the request log and each service object."""

    app: HostGuard
    faults: Faults
    requests: RequestLog
    services: Dict[str, Service]

    def close(self) -> None:
        for service in self.services.values():
            service.close()


def create_app(state_dir: Path, options: Optional[ServiceOptions] = None,
               names: Optional[Sequence[str]] = None) -> Frame:
    options = options or ServiceOptions()
    faults = Faults()
    requests = RequestLog()
    root = FastAPI(title="Tether local services", docs_url="/_docs", openapi_url="/_openapi.json")
    loaded: Dict[str, Service] = {}
    for name in names or list(SERVICES):
        loaded[name] = load_service(name, Path(state_dir), options)
        root.mount(SPECS[name].local_prefix, loaded[name].app)

    @root.get("/health")
    def health() -> Dict[str, Any]:
        return {"status": "ok", "services": sorted(loaded)}

    @root.get("/_faults")
    def list_faults() -> Dict[str, Any]:
        return {"items": [f.to_dict() for f in faults.list()]}

    @root.post("/_faults", status_code=201)
    async def add_faults(request: Request) -> Any:
        try:
            added: List[Dict[str, Any]] = [faults.add(**spec).to_dict()
                                           for spec in faults_from_json(await request.json())]
        except (ValueError, TypeError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        return {"items": added}

    @root.delete("/_faults", status_code=204)
    def clear_faults() -> None:
        faults.clear()

    @root.get("/_requests")
    def list_requests() -> Dict[str, Any]:
        return {"items": [r.__dict__ for r in requests.all()]}

    @root.delete("/_requests", status_code=204)
    def clear_requests() -> None:
        requests.clear()

    app = HostGuard(FaultMiddleware(root, faults, requests))
    return Frame(app=app, faults=faults, requests=requests, services=loaded)
