"""Fault injection and request recording for the local services, as one pure-ASGI middleware.

Faults are switched per test, in-process (``services.faults.add("status", status=429, retry_after=2)``) or over HTTP
(``POST /_faults`` with the same fields as JSON, a single object or a list; ``DELETE /_faults`` clears them;
``GET /_faults`` lists them with their hit counts). A fault matches on service (the first path segment, e.g.
``farm``), HTTP method and a regular expression searched in the full path (``/farm/api/jobs``); ``times`` says how
many requests it hits (``0`` = every matching request until cleared).

Kinds:

- ``status``: answer ``status`` (default 503) with ``{"message": ...}`` and, if given, ``Retry-After``; the service
  never sees the request.
- ``drop``: break the connection. ``when="after"`` (default) lets the service act on the request first, then sends
  the headers with the real ``Content-Length`` and only half of the body before closing: the client sees a broken
  response to a request that *did* take effect (this is what proves a POST is not blindly retried into a duplicate).
  ``when="before"`` closes the same way without the service ever seeing the request.
- ``slow``: wait ``delay`` seconds, then serve normally; clearing the faults ends the wait (a test that holds a
  request for long releases it as it ends).
- ``malformed``: let the service act, then answer 200 with a body that is not valid JSON.
- ``redirect``: answer ``status`` (307 unless set otherwise) with ``Location: location``; the service never sees it.
- ``reshape``: let the service act, then answer its JSON reply in another vendor's shape: the top-level keys in
  ``drop`` left out, those in ``rename`` (old -> new) renamed, those in ``merge`` set (the same reply, as a vendor
  whose documents are silent there might send it).

Every request outside the control routes (``/_...``, ``/health``) is recorded as ``(method, path, status)`` in
:class:`RequestLog`, so tests can count requests per poll cycle. Every reply carries ``x-request-id`` (the client's own
if it sent one). With no fault set the only cost is one truthiness check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Deque, Dict, Iterable, List, MutableMapping, Optional, Tuple

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KINDS = ("status", "drop", "slow", "malformed", "reshape", "redirect")
CONTROL_PREFIXES = ("/_", "/health")
MALFORMED_BODY = b'{"items": [{"id": "truncated'


class DroppedConnection(Exception):
    """Raised inside the ASGI app after a response has started so that uvicorn closes the socket mid-reply."""


class _QuietDrops(logging.Filter):
    """uvicorn logs every exception in the app with a traceback; an injected drop is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


@dataclass
class Fault:
    kind: str
    service: Optional[str] = None
    method: Optional[str] = None
    path: Optional[str] = None
    times: int = 1
    status: int = 503
    retry_after: Optional[float] = None
    delay: float = 1.0
    when: str = "after"
    message: str = ""
    location: str = ""
    drop: List[str] = field(default_factory=list)
    rename: Dict[str, str] = field(default_factory=dict)
    merge: Dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    hits: int = 0
    _regex: Optional[re.Pattern[str]] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.when not in ("before", "after"):
            raise ValueError(f"drop 'when' must be 'before' or 'after', got {self.when!r}")
        if self.times < 0:
            raise ValueError("times must be 0 (every request) or more")
        if self.method:
            self.method = self.method.upper()
        if self.service:
            self.service = self.service.strip("/")
        self._regex = re.compile(self.path) if self.path else None

    @property
    def spent(self) -> bool:
        return self.times > 0 and self.hits >= self.times

    def matches(self, service: str, method: str, path: str) -> bool:
        if self.spent:
            return False
        if self.service is not None and self.service != service:
            return False
        if self.method is not None and self.method != method:
            return False
        return self._regex is None or self._regex.search(path) is not None

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data.pop("_regex", None)
        return data


class Faults:
    """The fault table. Thread-safe: tests add faults from their thread while the server runs in another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: List[Fault] = []

    def add(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind=kind, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults = []

    def list(self) -> List[Fault]:
        with self._lock:
            return list(self._faults)

    def __bool__(self) -> bool:
        return bool(self._faults)

    def armed(self, fault: Fault) -> bool:
        """``fault`` is still in the table (not cleared), spent or not."""
        with self._lock:
            return any(f is fault for f in self._faults)

    def take(self, service: str, method: str, path: str) -> Optional[Fault]:
        """The first live fault matching this request, with its hit counted."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, method, path):
                    fault.hits += 1
                    return fault
        return None


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    service: str
    request_id: str
    at: float


class RequestLog:
    """Every request the services answered (bounded), for counting requests per poll cycle."""

    def __init__(self, maxlen: int = 200_000) -> None:
        self._records: Deque[RequestRecord] = deque(maxlen=maxlen)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)  # deque.append is atomic

    def clear(self) -> None:
        self._records.clear()

    def all(self) -> List[RequestRecord]:
        return list(self._records)

    def count(self, method: Optional[str] = None, path: Optional[str] = None, service: Optional[str] = None,
              status: Optional[int] = None) -> int:
        """How many recorded requests match; ``path`` is a regular expression searched in the full path."""
        regex = re.compile(path) if path else None
        return sum(
            1 for r in list(self._records)
            if (method is None or r.method == method.upper()) and (service is None or r.service == service)
            and (status is None or r.status == status) and (regex is None or regex.search(r.path))
        )

    def __len__(self) -> int:
        return len(self._records)


def _service_of(path: str) -> str:
    return path.split("/", 2)[1] if path.count("/") >= 1 else ""


class FaultMiddleware:
    """Adds ``x-request-id``, records each request and applies faults."""

    def __init__(self, app: ASGIApp, faults: Faults, requests: RequestLog) -> None:
        self.app = app
        self.faults = faults
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
                break
        request_id = request_id or uuid.uuid4().hex
        path: str = scope["path"]
        method: str = scope["method"]
        control = path.startswith(CONTROL_PREFIXES)
        service = _service_of(path)
        recorded = [False]

        def record(status: int) -> None:
            # Recorded before the reply leaves, so a client that has its answer always finds it in the log.
            if not control and not recorded[0]:
                recorded[0] = True
                self.requests.add(RequestRecord(method, path, status, service, request_id, time.time()))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        fault = None if control or not self.faults else self.faults.take(service, method, path)
        try:
            if fault is None:
                await self.app(scope, receive, send_with_id)
            else:
                await self._apply(fault, scope, receive, send_with_id)
        finally:
            record(0)

    async def _apply(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        if fault.kind == "slow":
            loop = asyncio.get_running_loop()
            until = loop.time() + fault.delay
            while loop.time() < until and self.faults.armed(fault):
                await asyncio.sleep(min(0.05, max(0.0, until - loop.time())))
            await self.app(scope, receive, send)
            return
        if fault.kind == "redirect":
            await _drain(receive)
            status = fault.status if 300 <= fault.status < 400 else 307
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"location", fault.location.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if fault.kind == "status":
            await _drain(receive)
            body = json.dumps({"message": fault.message or f"injected fault: HTTP {fault.status}"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            if fault.retry_after is not None:
                value = f"{fault.retry_after:g}"
                headers.append((b"retry-after", value.encode()))
            await send({"type": "http.response.start", "status": fault.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if fault.kind == "drop" and fault.when == "before":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")]})
            raise DroppedConnection("injected drop before the service saw the request")
        # drop-after and malformed: the service acts, we keep its reply back and send a broken one instead
        status, headers, body = await _capture(self.app, scope, receive)
        if fault.kind == "reshape":
            body = _reshaped(body, fault)
            out = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            out.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": body})
            return
        if fault.kind == "malformed":
            out = [(b"content-type", b"application/json"), (b"content-length", str(len(MALFORMED_BODY)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": out})
            await send({"type": "http.response.body", "body": MALFORMED_BODY})
            return
        kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        kept.append((b"content-length", str(max(len(body), 2)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": kept})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise DroppedConnection("injected drop after the service acted")


def _reshaped(body: bytes, fault: Fault) -> bytes:
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict):
        data = {fault.rename.get(k, k): v for k, v in data.items() if k not in fault.drop}
        data.update(fault.merge)
    return json.dumps(data).encode()


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> Tuple[int, List[Tuple[bytes, bytes]], bytes]:
    state: Dict[str, Any] = {"status": 500, "headers": []}
    chunks: List[bytes] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
            state["headers"] = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return state["status"], state["headers"], b"".join(chunks)


def faults_from_json(body: Any) -> Iterable[Dict[str, Any]]:
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, dict) or "kind" not in item:
            raise ValueError('each fault is an object with at least "kind"')
        yield {k: v for k, v in item.items() if k not in ("id", "hits")}
