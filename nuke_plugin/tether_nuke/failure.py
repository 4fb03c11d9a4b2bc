"""What went wrong, twice: in the words an artist uses, and with the technical detail (status, request id, address)
for whoever looks deeper. No Qt: the workers make these and the panel and the dialogs show them."""

from __future__ import annotations

from typing import Optional

from tether.errors import (
    AuthError,
    NotFound,
    RateLimited,
    ServiceError,
    ServiceUnavailable,
    TetherError,
    redact,
)


class Failure(str):
    """An ``"error"`` event's payload: the full text (so it still reads as before) with ``summary`` (artist words)
    and ``details`` (everything technical) beside it."""

    summary: str
    details: str

    def __new__(cls, summary: str, details: str = "") -> Failure:
        text = summary if not details or details == summary else f"{summary} ({details})"
        made = super().__new__(cls, text)
        made.summary = summary
        made.details = details
        return made


def _words(exc: BaseException) -> str:
    """Why, in words, with what to do."""
    service = (getattr(exc, "service", "") or "the service").replace("autopilot", "Autopilot") \
        .replace("tensorpix", "TensorPix").replace("clipzy", "Clipzy")
    if isinstance(exc, AuthError):
        return f"{service} refused the API key: store a valid one in Settings"
    if isinstance(exc, ServiceUnavailable):
        return f"{service} is not answering: check the network or VPN, or try again in a few minutes"
    if isinstance(exc, RateLimited):
        return f"{service} is busy (too many requests): try again in a minute"
    if isinstance(exc, NotFound):
        return f"{service} does not know it (deleted there?)"
    if isinstance(exc, ServiceError):
        if exc.status is not None and exc.status >= 500:
            return f"{service} had a problem on its side: try again later"
        return exc.server_message or str(exc).split(";")[0]
    if isinstance(exc, TetherError):
        return str(exc)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"{service} is not answering: check the network or VPN, or try again in a few minutes"
    return "something unexpected went wrong (the details say what)"


def failure(what: str, exc: BaseException) -> Failure:
    """``what`` was being done (e.g. "sending the clip to TensorPix") when ``exc`` was raised."""
    words = _words(exc)
    summary = f"{what[:1].upper()}{what[1:]} failed: {words}"
    technical = [f"{type(exc).__name__}: {exc}"]
    if isinstance(exc, ServiceError):
        for label, value in (("status", exc.status), ("request id", exc.request_id),
                             ("request", f"{exc.method} {exc.url}".strip())):
            if value and str(value) not in technical[0]:
                technical.append(f"{label}: {value}")
    details = redact("\n".join(technical))
    # an input problem is already in words: its detail would only repeat it
    plain = isinstance(exc, TetherError) and not isinstance(exc, ServiceError)
    return Failure(summary, "" if plain else details)


def as_failure(payload: object, what: Optional[str] = None) -> Failure:
    """Any ``"error"`` payload as a :class:`Failure` (plain text from elsewhere stands as its own summary)."""
    if isinstance(payload, Failure):
        return payload
    return Failure(str(payload) if what is None else f"{what}: {payload}")


__all__ = ["Failure", "as_failure", "failure"]
