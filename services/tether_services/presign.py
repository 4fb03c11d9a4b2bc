"""Signed, expiring URLs onto a local service's object store: the stand-in for S3-style presigned URLs.

A URL is ``<route>?expires=<unix time>&signature=<HMAC-SHA256 of method, key and expiry>``; a tampered, expired
or escaping one is refused with 403, as S3 would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Optional


class Presigner:
    def __init__(self, store: Path, *, put_route: Optional[str], get_route: str,
                 error: Callable[[int, str], Exception], ttl: int = 900) -> None:
        self.store = store
        self.ttl = ttl
        # route names are global across the mounted services, so each service names its own
        self._routes = {"GET": get_route, **({"PUT": put_route} if put_route else {})}
        self._error = error
        self._secret = secrets.token_bytes(32)

    def _sign(self, method: str, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{method}\n{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, request: Any, method: str, key: str, *, expired: bool = False) -> str:
        """A signed URL for ``method`` on ``key``; ``expired`` issues one already past its expiry (a fault to test
        a client's refresh)."""
        expires = int(time.time()) + (-1 if expired else self.ttl)
        # url_for knows the service's mount prefix, which base_url leaves out
        url = str(request.url_for(self._routes[method], key=key))
        return f"{url}?expires={expires}&signature={self._sign(method, key, expires)}"

    def check(self, request: Any, method: str, key: str) -> Path:
        """The stored file a signed URL names, or the service's 403 error."""
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            raise self._error(403, "SignatureDoesNotMatch: the URL has no valid expiry") from None
        if not hmac.compare_digest(request.query_params.get("signature", ""), self._sign(method, key, expires)):
            raise self._error(403, "SignatureDoesNotMatch: the URL's signature does not match")
        if expires < time.time():
            raise self._error(403, "Request has expired: ask for a new URL")
        path = (self.store / key).resolve()
        if self.store.resolve() not in path.parents:
            raise self._error(403, "the key is outside the store")
        return path

    def serve(self, request: Any, key: str) -> Any:
        """A signed GET: the stored file, or the service's 403 (bad or expired URL) or 404 (no such key)."""
        from fastapi.responses import FileResponse

        path = self.check(request, "GET", key)
        if not path.is_file():
            raise self._error(404, "NoSuchKey")
        return FileResponse(path, filename=path.name)
