"""Proxies and certificate trust for every connection Tether makes (one place, used by :mod:`tether.http`).

Proxies: ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case) are honoured for the vendors'
URLs, as httpx reads them. Loopback never goes through a proxy, whatever they say: the ``local`` profile's services
on ``127.0.0.1`` are on this machine, and a proxy would answer 502 for them.

Trust: a CA bundle named by ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE`` or ``CURL_CA_BUNDLE`` (first set wins; a folder
works as for ``SSL_CERT_DIR``) replaces the default, as requests and curl do. Otherwise the OS trust store, through
``truststore`` (where a studio installs its TLS-inspecting proxy's CA); on Python 3.9 (Nuke 14), where truststore
does not install, httpx's certifi bundle.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import urllib.request
import weakref
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .errors import ConfigError

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
# httpx mounts: None means "the client's own transport", i.e. no proxy, for these hosts on any port
LOOPBACK_MOUNTS: Dict[str, None] = {"all://127.0.0.1": None, "all://localhost": None, "all://[::1]": None}
CERT_HINT = ("if a studio proxy inspects TLS, set REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) to its CA bundle, or add its "
             "CA to the system trust store; `tether doctor` shows the trust store in use")

_lock = threading.Lock()
_cached: Dict[Tuple[str, str], ssl.SSLContext] = {}


def ca_bundle() -> Optional[Tuple[str, Path]]:
    """The variable and path of the CA bundle the environment names, or None. A named one that is missing is an
    error: silently trusting the default instead would fail later with a less helpful message."""
    for name in CA_BUNDLE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            path = Path(value).expanduser()
            if not path.exists():
                raise ConfigError(f"{name} names {path}, which does not exist: point it at your CA bundle (.pem) "
                                  f"or unset it")
            return name, path
    return None


def _truststore_context() -> Optional[ssl.SSLContext]:
    try:
        import truststore
    except ImportError:
        return None
    context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return context


def ssl_context() -> ssl.SSLContext:
    """The context every client verifies with (cached per bundle; contexts are thread-safe once built)."""
    bundle = ca_bundle()
    key = (bundle[0], str(bundle[1])) if bundle else ("", "")
    with _lock:
        if key not in _cached:
            if bundle is not None:
                path = bundle[1]
                context = ssl.create_default_context(cafile=None if path.is_dir() else str(path),
                                                     capath=str(path) if path.is_dir() else None)
            else:
                import httpx

                context = _truststore_context() or httpx.create_ssl_context()
            _cached[key] = context
        return _cached[key]


def trust_store() -> str:
    """In words, what certificates are checked against."""
    bundle = ca_bundle()
    if bundle is not None:
        return f"CA bundle {bundle[1]} (from {bundle[0]})"
    if _truststore_context() is not None:
        return "the operating system's trust store (truststore)"
    return "certifi's CA bundle (truststore needs Python 3.10+)"


def proxy_for(url: str) -> Optional[str]:
    """The proxy a request to ``url`` goes through, or None (loopback, ``NO_PROXY``, or none set)."""
    import httpx

    parsed = httpx.URL(url)
    host = parsed.host
    if host in ("127.0.0.1", "localhost", "::1") or not host:
        return None
    if _no_proxy(host):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parsed.scheme) or proxies.get("all")


def _no_proxy(host: str) -> bool:
    """``NO_PROXY`` as curl reads it: ``*``, or names matching the host or a domain it is in."""
    value = os.environ.get("NO_PROXY", os.environ.get("no_proxy", ""))
    for entry in (e.strip().lower().lstrip(".") for e in value.split(",")):
        name = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


def redact_proxy(proxy: str) -> str:
    """A proxy URL fit to print: ``http://user:pass@proxy:3128`` -> ``http://proxy:3128``."""
    import httpx

    url = httpx.URL(proxy)
    return str(url.copy_with(username=None, password=None)) if url.userinfo else proxy


def is_certificate_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a failed certificate check: no retry will fix it."""
    seen: set[int] = set()
    node: Optional[BaseException] = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(node):
            return True
        node = node.__cause__ or node.__context__
    return False


class OpenSockets:
    """The sockets a client opened, so that another thread can end its requests in flight at once (:meth:`shut_down`).

    A thread waiting for a reply (a server holding an upload) is woken by ``shutdown()`` on its socket; ``close()``,
    which is all httpx's own ``Client.close()`` does, leaves it blocked until the read timeout. httpx offers no
    socket of a request in flight, so the sockets are recorded through the documented ``trace`` request extension
    (httpx's "Request Extensions"): ``connection.connect_tcp.complete`` and ``start_tls.complete`` carry the new
    network stream, and a stream's ``get_extra_info("socket")`` its socket. Held weakly: a closed connection goes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def trace(self, event: str, info: Dict[str, Any]) -> None:
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            get_extra_info = getattr(info.get("return_value"), "get_extra_info", None)
            sock = get_extra_info("socket") if callable(get_extra_info) else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.add(sock)

    def shut_down(self) -> int:
        """Shut down every socket still open (both directions); returns how many."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        count = 0
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                count += 1
            except OSError:  # closed meanwhile, or its descriptor moved into a TLS socket recorded beside it
                pass
        return count


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address, brackets allowed) is this machine: 127.0.0.0/8, ::1 or localhost."""
    import ipaddress

    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine."""
    from urllib.parse import urlsplit

    return is_loopback_host(urlsplit(url).hostname or "")
