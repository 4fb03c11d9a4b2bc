"""Move's webhooks, as Svix delivers them: verify the signature before trusting a byte of the body.

Svix signs ``{svix-id}.{svix-timestamp}.{body}`` with HMAC-SHA256 under the endpoint secret (``whsec_<base64>``;
the key is the base64-decoded part) and sends ``svix-signature: v1,<base64 digest>``, several entries separated
by spaces while a secret is being rotated. A delivery is accepted when one ``v1`` entry matches (compared in
constant time) and its timestamp is within five minutes of now either way (a replayed old delivery is refused).
The body is verified as the exact bytes received: parse it only afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Mapping, Optional, Union

from ..errors import TetherError

TOLERANCE_S = 5 * 60
PREFIX = "whsec_"


class WebhookVerificationError(TetherError):
    """The delivery is not provably from Move (bad or missing signature, or outside the replay window)."""


def secret_key(secret: str) -> bytes:
    value = secret.strip()
    if value.startswith(PREFIX):
        value = value[len(PREFIX):]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not a Svix secret (whsec_ followed by base64): copy "
                                       "it again from the webhook's settings") from None


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
           tolerance: float = TOLERANCE_S) -> Any:
    """Check a delivery; return its parsed JSON body. :class:`WebhookVerificationError` says why it was refused."""
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
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("the signed body is not JSON") from None


__all__ = ["TOLERANCE_S", "WebhookVerificationError", "secret_key", "sign", "verify"]
