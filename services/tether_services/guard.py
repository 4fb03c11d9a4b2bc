"""What keeps web pages away from the local services: a Host allow-list and an Origin check on every route.

A page in the artist's browser can send requests to ``http://127.0.0.1:8765`` (a "simple" ``text/plain`` POST needs no
CORS preflight) and, through DNS rebinding, read the replies under its own name. So, on loopback:

- the ``Host`` header must name the loopback address the services are bound to (``127.0.0.1``, ``localhost``,
  ``[::1]``) with the bound port: a rebound ``Host: attacker.example`` is refused (421);
- a request that carries ``Origin`` (browsers add it to every cross-site and every non-GET request) must come from the
  services' own origin, and ``Sec-Fetch-Site: cross-site`` is refused (403): Tether's clients send neither;
- ``POST /_faults`` takes ``Content-Type: application/json`` only, which a page cannot send cross-site without a
  preflight (as for ``DELETE``), and preflights are never granted: no CORS headers, ever.

Bound beyond loopback the ``Host`` is whatever name the network uses, so it is not checked; instead every service wants
the access key (see :class:`tether_services.server.LocalServices`), the control routes too (header
``X-Tether-Access-Key``), and the Origin rule still holds.
"""

from __future__ import annotations

import hmac
import json
from typing import Dict, Optional, Tuple

from tether.network import is_loopback_host as is_loopback

from .faults import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CONTROL_PREFIX = "/_"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def split_host(value: str) -> Tuple[str, Optional[int]]:
    """``"127.0.0.1:8765"`` -> ``("127.0.0.1", 8765)``; ``"[::1]:80"`` -> ``("::1", 80)``; no port -> ``None``."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    try:
        return name, int(port) if port else None
    except ValueError:
        return name, -1


class HostGuard:
    """Pure-ASGI middleware; :meth:`bind` tells it the address the socket got (port 0 is only known after binding)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.host = "127.0.0.1"
        self.port: Optional[int] = None
        self.access_key: Optional[str] = None

    def bind(self, host: str, port: int, access_key: Optional[str] = None) -> None:
        self.host, self.port, self.access_key = host, port, access_key

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def origins(self) -> frozenset[str]:
        names = ("localhost", "127.0.0.1", "[::1]") if self.loopback else (self.host,)
        return frozenset(f"http://{name}:{self.port}" for name in names)

    def _host_ok(self, value: Optional[str]) -> bool:
        if not self.loopback:
            return True
        if value is None:
            return False
        name, port = split_host(value)
        return name in LOOPBACK_NAMES and (self.port is None or port == self.port)

    def refusal(self, scope: Scope) -> Optional[Tuple[int, str]]:
        headers: Dict[bytes, str] = {k.lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if not self._host_ok(headers.get(b"host")):
            return 421, ("this Host is not served here: the local services answer only "
                         f"127.0.0.1:{self.port} and localhost:{self.port}")
        origin = headers.get(b"origin")
        if origin is not None and origin.rstrip("/").lower() not in self.origins():
            return 403, f"requests from web pages ({origin}) are refused by the local services"
        if headers.get(b"sec-fetch-site", "").lower() == "cross-site":
            return 403, "cross-site requests are refused by the local services"
        path: str = scope.get("path", "")
        if path.startswith(CONTROL_PREFIX) and self.access_key is not None and not hmac.compare_digest(
                headers.get(b"x-tether-access-key", "").encode(), self.access_key.encode()):
            return 401, "the control routes want the header X-Tether-Access-Key with the key `tether serve` printed"
        if path.startswith(CONTROL_PREFIX) and scope.get("method") in STATE_CHANGING:
            kind = headers.get(b"content-type", "").split(";")[0].strip().lower()
            if scope.get("method") == "POST" and kind != "application/json":
                return 415, "the control routes take Content-Type: application/json only"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.refusal(scope) if scope["type"] in ("http", "websocket") else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message = refused
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"message": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
