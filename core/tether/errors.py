"""Typed errors. Every message is written for the person who has to act on it, and never holds a secret."""

from __future__ import annotations

import re
import threading
from typing import Optional

_secrets_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: Optional[str]) -> None:
    """Remember a secret value so that :func:`redact` removes it from any text we show or log."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


_BEARER = re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEYED = re.compile(r"(?i)((?:api[_-]?key|password|access_token|token|secret)[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+")


def redact(text: str) -> str:
    """Replace every registered secret and anything shaped like a credential with ``***``."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, "***")
    text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    return _KEYED.sub(lambda m: f"{m.group(1)}***", text)


class TetherError(Exception):
    """Base of every error Tether raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class InputError(TetherError, ValueError):
    """The user's input is wrong; the message says what to change. Raised before anything is sent."""


class ConfigError(TetherError):
    """Settings or credentials are missing or wrong."""


class CancelledByUser(TetherError):
    """A progress callback asked to stop."""


class TransferError(TetherError):
    """An upload or download did not complete or did not verify."""


class ServiceError(TetherError):
    """A service answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        status: Optional[int] = None,
        server_message: str = "",
        request_id: Optional[str] = None,
        method: str = "",
        url: str = "",
        retry_after: Optional[float] = None,
        maybe_sent: bool = False,
    ) -> None:
        self.service = service
        self.maybe_sent = maybe_sent  # the connection failed after the request may have reached the service
        self.retry_after = retry_after  # seconds the service asked us to wait (Retry-After), when it said
        self.status = status
        self.server_message = redact(server_message)
        self.request_id = request_id
        self.method = method
        self.url = redact(url)
        parts = [message]
        if server_message and server_message not in message:
            parts.append(f"the server said: {server_message}")
        if request_id:
            parts.append(f"request id {request_id}")
        super().__init__("; ".join(parts))


class ServiceUnavailable(ServiceError):
    """The service could not be reached at all (connection refused, DNS, timeout)."""


class AuthError(ServiceError):
    """401/403: credentials missing, wrong or expired."""


class NotFound(ServiceError):
    """404."""


class Conflict(ServiceError):
    """409: the request clashes with the resource's state (e.g. deleting a running job)."""


class RateLimited(ServiceError):
    """429 after retries were exhausted."""


class BadRequest(ServiceError):
    """400/422: the service refused what we sent."""


class ProtocolError(ServiceError):
    """The reply did not have the shape the contract promises (malformed JSON, missing fields)."""
