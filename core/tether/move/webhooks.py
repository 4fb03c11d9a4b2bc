"""Move's webhooks, as Svix delivers them: verify the signature before trusting a byte of the body.

Svix signs ``{svix-id}.{svix-timestamp}.{body}`` with HMAC-SHA256 under the endpoint secret (``whsec_<base64>``;
the key is the base64-decoded part) and sends ``svix-signature: v1,<base64 digest>``, several entries separated
by spaces while a secret is being rotated. A delivery is accepted when one ``v1`` entry matches (compared in
constant time) and its timestamp is within five minutes of now either way (a replayed old delivery is refused);
with a :class:`DeliveryLog` a delivery id seen before inside that window is refused too (a replay of a fresh one).
The body is verified as the exact bytes received: parse it only afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ..errors import TetherError
from ..fileio import private_file

TOLERANCE_S = 5 * 60
PREFIX = "whsec_"


class WebhookVerificationError(TetherError):
    """The delivery is not provably from Move (bad or missing signature, or outside the replay window)."""


def secret_key(secret: str) -> bytes:
    value = secret.strip()
    if value.startswith(PREFIX):
        value = value[len(PREFIX):]
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not a Svix secret (whsec_ followed by base64): copy "
                                       "it again from the webhook's settings") from None
    if not key:  # an empty key signs anything anyone can compute
        raise WebhookVerificationError("the webhook secret is empty after whsec_: copy the whole secret from the "
                                       "webhook's settings")
    return key


class DeliveryLog:
    """The delivery ids accepted in the last two tolerance windows, in a small SQLite file (0600) shared by every
    process that verifies for this user: the same ``svix-id`` twice is a replay."""

    def __init__(self, path: Union[str, Path], window: float = 2 * TOLERANCE_S) -> None:
        self.path = Path(path)
        self.window = window

    def remember(self, msg_id: str, now: Optional[float] = None) -> bool:
        """True the first time ``msg_id`` is seen, False after."""
        current = time.time() if now is None else now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)
        db = sqlite3.connect(str(self.path), timeout=15, isolation_level=None)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL NOT NULL)")
            db.execute("DELETE FROM seen WHERE at < ?", (current - self.window,))
            return db.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (msg_id, current)).rowcount == 1
        finally:
            db.close()


def sign(secret: str, msg_id: str, timestamp: Union[int, str], body: bytes) -> str:
    """The ``svix-signature`` value for a delivery (``v1,<base64>``): for the local service and tests."""
    payload = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    # Svix's own libraries also accept the un-branded webhook-* names
    alt = name.replace("svix-", "webhook-")
    for key, value in headers.items():
        if key.lower() == alt:
            return str(value)
    raise WebhookVerificationError(f"the delivery has no {name} header: it did not come through Svix")


def verify(secret: str, headers: Mapping[str, str], body: Union[bytes, str], *, now: Optional[float] = None,
           tolerance: float = TOLERANCE_S, log: Optional[DeliveryLog] = None) -> Any:
    """Check a delivery; return its parsed JSON body. :class:`WebhookVerificationError` says why it was refused.
    With ``log``, a delivery id already accepted is refused as a replay."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    msg_id = _header(headers, "svix-id")
    stamp = _header(headers, "svix-timestamp")
    signatures = _header(headers, "svix-signature")
    try:
        timestamp = int(stamp.strip())
    except ValueError:
        raise WebhookVerificationError(f"svix-timestamp {stamp!r} is not a Unix time in seconds") from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError(f"the delivery is too old ({int(current - timestamp)} s; at most "
                                       f"{int(tolerance)} s): refused as a possible replay")
    if timestamp > current + tolerance:
        raise WebhookVerificationError(f"the delivery is dated {int(timestamp - current)} s in the future: check "
                                       "this machine's clock")
    expected = sign(secret, msg_id, timestamp, raw).split(",", 1)[1].encode()
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            matched = True  # no early exit: the time taken does not say which entry matched
    if not matched:
        raise WebhookVerificationError("no v1 signature in svix-signature matches the body: it was changed on the "
                                       "way, or the secret is not this endpoint's")
    if log is not None and not log.remember(msg_id, current):
        raise WebhookVerificationError(f"delivery {msg_id} was accepted before: refused as a replay")
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("the signed body is not JSON") from None


__all__ = ["TOLERANCE_S", "DeliveryLog", "WebhookVerificationError", "secret_key", "sign", "verify"]
