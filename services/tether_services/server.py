"""Run the local services with uvicorn on a background thread (tests, the demo) or in the foreground (`tether serve`).

::

    with LocalServices(port=0) as services:          # port 0: the OS picks a free port, read back in .port
        services.url("farm")                          # "http://127.0.0.1:54321/farm"
        services.faults.add("status", status=429, retry_after=1, service="farm", path="/api/jobs$")
        services.requests.count("GET", r"/farm/api/jobs$")
        services.farm                                 # the LocalFarm object (tokens, executor, jobs)
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from tether.spec import SPECS

from .app import SERVICES, Frame, ServiceOptions, create_app
from .faults import Faults, RequestLog
from .guard import is_loopback

if TYPE_CHECKING:
    from .farm.engine import LocalFarm


def default_port() -> int:
    try:
        from tether import settings  # type: ignore[attr-defined,unused-ignore]

        return int(getattr(settings, "LOCAL_PORT", 8765))
    except ImportError:
        return 8765


class LocalServices:
    """The local services on ``host:port`` in a background thread. ``port=0`` picks a free port.

    On loopback each service takes its well-known local key (``local-autopilot-key``, the farm's printed password...),
    and only requests naming the loopback address reach them (see :mod:`.guard`). Bound beyond loopback anyone on the
    network could use them, so every service (Clipzy included) wants ``access_key`` instead, one made up when none is
    given: read it back in ``.access_key``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        *,
        state_dir: Optional[Path] = None,
        workers: int = 2,
        token_ttl: float = 3600.0,
        services: Optional[Sequence[str]] = None,
        log_level: str = "warning",
        access_key: Optional[str] = None,
    ) -> None:
        self.host = host
        if access_key is not None and not access_key.strip():
            raise ValueError("the access key is empty; give one with at least a few characters or none at all")
        self.access_key = access_key or (None if is_loopback(host) else secrets.token_urlsafe(24))
        self._wanted_port = default_port() if port is None else port
        self._owns_state = state_dir is None
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="tether-services-"))
        self.options = ServiceOptions(workers=workers, token_ttl=token_ttl, access_key=self.access_key)
        self.names = list(services or SERVICES)
        self.log_level = log_level
        self._frame: Optional[Frame] = None
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._sock: Optional[socket.socket] = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> LocalServices:
        import uvicorn

        if self._thread is not None:
            return self
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._frame = create_app(self.state_dir, self.options, self.names)
        # IPPROTO_TCP explicitly: with protocol 0 asyncio never sets TCP_NODELAY on accepted connections, and each
        # reply then waits out the client's delayed ACK (~40 ms per request on loopback).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._wanted_port))
        except OSError as exc:
            sock.close()
            self._frame.close()
            raise OSError(f"cannot listen on {self.host}:{self._wanted_port} ({exc.strerror}); "
                          "stop whatever uses that port or pick another with --port") from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._frame.app.bind(self.host, self.port, self.access_key)
        config = uvicorn.Config(self._frame.app, log_level=self.log_level, lifespan="off", access_log=False,
                                timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="tether-local-services", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local services did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        if self._frame is not None:
            self._frame.close()
        self._server = self._thread = self._sock = self._frame = None
        if self._owns_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the foreground raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ------------------------------------------------------------------------------------------
    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("the local services are not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, service: str) -> str:
        if service not in self.names:
            raise ValueError(f"no local service {service!r}; running: {', '.join(self.names)}")
        return self.base_url + SPECS[service].local_prefix

    # --- what tests reach into -------------------------------------------------------------------------------
    @property
    def frame(self) -> Frame:
        if self._frame is None:
            raise RuntimeError("the local services are not running; call start() first")
        return self._frame

    @property
    def faults(self) -> Faults:
        return self.frame.faults

    @property
    def requests(self) -> RequestLog:
        return self.frame.requests

    def service(self, name: str) -> Any:
        return self.frame.services[name]

    @property
    def farm(self) -> LocalFarm:
        """The local farm's engine (tokens, jobs, executor) behind ``/farm``."""
        engine: LocalFarm = self.service("farm").farm
        return engine
