"""The one HTTP layer every service client shares.

- auth hooks per service: a fixed header (``x-api-key``, ``Token``, raw ``authorization``) or a Bearer token from
  a login that is renewed once when the server answers 401;
- timeouts, and retries with exponential backoff and jitter that honour ``Retry-After`` on 429/502/503/504 and
  on connection errors, for idempotent requests only. A POST is retried only when the server cannot have acted
  on it: the connection was never made, or it answered 429 (it refused the request outright);
- rate limits: a service's 429s are waited out within its budget (:attr:`tether.spec.ServiceSpec.rate_budget`),
  a ``Retry-After`` that fits the budget honoured whole, and each wait said on the ``tether.http`` logger (the
  command prints it; a DCC shows it in its console);
- typed errors carrying status, the server's own message and the request id, with secrets redacted;
- proxies from the environment for the vendors, never for loopback, and certificates checked against the OS trust
  store or the CA bundle the environment names (:mod:`tether.network`); a certificate error is never retried.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, List, Optional, Sequence, Type, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import network
from .errors import (
    AuthError,
    BadRequest,
    CancelledByUser,
    ConfigError,
    Conflict,
    NotFound,
    ProtocolError,
    RateLimited,
    ServiceError,
    ServiceUnavailable,
    redact,
    register_secret,
)

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound="BaseClient")
# List replies come bare or under one of these keys (the vendors' paging shapes are mostly unknown: SERVICES.md).
LIST_KEYS = ("items", "results", "data", "jobs", "inferences", "projects", "instances", "packages", "transactions")
_SECRET_KEY_WORDS = ("auth", "token", "secret", "password", "api_key", "apikey", "x-api-key", "signature", "key")
# Headers that carry a service's credential (HeaderAuth's and BearerLogin's), dropped on the way to another origin.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-auth-token")
RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-correlation-id", "cf-ray")


@dataclass
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    # Seconds one request may spend waiting out 429s, however many tries that takes (0: 429s get `attempts` tries
    # like a 503); each wait at most `rate_wait` when the service names none. Per service: RetryPolicy.for_service.
    rate_budget: float = 0.0
    rate_wait: float = 30.0

    @classmethod
    def for_service(cls, service: str) -> RetryPolicy:
        """The default policy with ``service``'s rate-limit budget from :data:`tether.spec.SPECS`."""
        from .spec import SPECS

        spec = SPECS.get(service)
        return cls(rate_budget=spec.rate_budget, rate_wait=spec.rate_wait) if spec else cls()

    def delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        # "full jitter": spreads the retries of many clients that failed together
        return random.uniform(0, min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))

    def rate_delay(self, attempt: int, retry_after: Optional[float], waited: float) -> Optional[float]:
        """The wait before another try after the ``attempt``-th 429 with ``waited`` seconds spent on 429s so far;
        None when the budget cannot cover it (a Retry-After longer than what is left is not cut short: asking
        before the service said would only meet another 429)."""
        left = self.rate_budget - waited
        if retry_after is not None:
            return max(retry_after, 0.0) if retry_after <= left else None
        if left <= 0:
            return None
        # "equal jitter": at least half the step, so a limited client never hammers, yet many still spread out
        step = min(self.rate_wait, self.backoff * (2 ** (attempt - 1)))
        return min(left, random.uniform(step / 2, step))


def spoken_seconds(seconds: float) -> str:
    """'0.4 s', '20 s', '9 min', '1 h 5 min': a wait as a person reads it."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600) // 60} min"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HeaderAuth(httpx.Auth):
    """A fixed credential header: ``x-api-key: K``, ``Authorization: Token K``, ``authorization: K``."""

    def __init__(self, header: str, value: str, prefix: str = "") -> None:
        register_secret(value)
        self._header = header
        self._value = f"{prefix} {value}".strip() if prefix else value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value
        yield request


class BearerLogin(httpx.Auth):
    """Bearer token obtained from a login call; on a 401 it logs in again once and repeats the request."""

    def __init__(self, login: Callable[[], str], token: Optional[str] = None) -> None:
        self._login = login
        self._token = token
        self._lock = threading.Lock()
        register_secret(token)

    @property
    def token(self) -> Optional[str]:
        return self._token

    def _fresh(self, stale: Optional[str]) -> str:
        with self._lock:
            if self._token is None or self._token == stale:
                self._token = self._login()
                register_secret(self._token)
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token or self._fresh(None)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._fresh(token)}"
            yield request


def _server_message(response: httpx.Response) -> str:
    """The server's own words, from the error body shapes the vendors use."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return response.text[:300].strip()
    if isinstance(body, dict):
        for path in (("message",), ("detail",), ("error", "detail"), ("error", "message"), ("error",)):
            node: Any = body
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, str) and node:
                code = body.get("error", {}).get("code") if isinstance(body.get("error"), dict) else None
                return f"{node} ({code})" if code else node
            if isinstance(node, list) and node:  # FastAPI/DRF validation lists
                return "; ".join(str(x.get("msg", x)) if isinstance(x, dict) else str(x) for x in node)
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
    return str(body)[:300]


def request_id_of(response: httpx.Response) -> Optional[str]:
    for name in REQUEST_ID_HEADERS:
        if name in response.headers:
            return response.headers[name]
    return None


_STATUS_ERRORS: dict[int, type[ServiceError]] = {
    400: BadRequest, 401: AuthError, 403: AuthError, 404: NotFound, 409: Conflict, 422: BadRequest, 429: RateLimited,
}


@dataclass
class BaseClient:
    """One service's HTTP client. Subclasses add typed methods; they never touch httpx directly for errors."""

    SERVICE: ClassVar[str] = ""  # the service a subclass is the client of (``service=`` in its class line)
    service: str
    base_url: str
    auth: Optional[httpx.Auth] = None
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Says how to fix a 401 for this profile, e.g. "run `tether login farm --profile studio`".
    auth_hint: str = ""
    # how a retry waits: None waits the real time on an event that abort() sets (a Cancel ends the wait at once); a
    # test sets a fake one
    sleep: Optional[Callable[[float], None]] = None
    _client: Optional[httpx.Client] = field(default=None, init=False, repr=False)
    _companions: List[BaseClient] = field(default_factory=list, init=False, repr=False)
    _sockets: network.OpenSockets = field(default_factory=network.OpenSockets, init=False, repr=False)
    aborts: int = field(default=0, init=False)  # how many times abort() was called: a request compares it
    _aborted: threading.Event = field(default_factory=threading.Event, init=False, repr=False)  # set by abort()

    @property
    def http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url.rstrip("/"),
                auth=self.auth,
                timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                follow_redirects=True,
                headers={"User-Agent": "tether/0.1"},
                verify=network.ssl_context(),
                mounts=network.LOOPBACK_MOUNTS,
                event_hooks={"request": [self._strip_credentials_off_origin, self._record_sockets]},
            )
        return self._client

    def _strip_credentials_off_origin(self, request: httpx.Request) -> None:
        """A redirect to another origin carries none of this service's credentials. httpx strips Authorization there
        itself, but not a key in a header of the vendor's own (Autopilot's ``x-api-key``)."""
        if not self.base_url:
            return
        home = httpx.URL(self.base_url)
        if (request.url.scheme, request.url.host, request.url.port) != (home.scheme, home.host, home.port):
            for name in CREDENTIAL_HEADERS:
                request.headers.pop(name, None)

    def _record_sockets(self, request: httpx.Request) -> None:
        request.extensions.setdefault("trace", self._sockets.trace)

    def abort(self) -> None:
        """End this client's requests in flight now, from any thread (a Cancel button, Ctrl-C while workers upload):
        their connections are shut down, so a request waiting on a server that holds it stops at once instead of at
        the read timeout, and raises :class:`CancelledByUser` instead of being retried. Later requests run as usual
        on new connections."""
        self.aborts += 1  # before the event is swapped: a pause that took the old one sees the count changed
        woken, self._aborted = self._aborted, threading.Event()
        woken.set()
        self._sockets.shut_down()
        for companion in self._companions:
            companion.abort()

    def cancelled(self, mark: int, what: str, then: str = "") -> None:
        """Raise :class:`CancelledByUser` if :meth:`abort` was called since ``aborts`` was ``mark``: "SERVICE: WHAT
        was cancelled", then ``then`` (what was kept, say) after a semicolon."""
        if self.aborts != mark:
            raise CancelledByUser(f"{self.service}: {what} was cancelled{f'; {then}' if then else ''}")

    def pause(self, seconds: float, mark: Optional[int] = None) -> None:
        """Wait ``seconds`` before a retry or the next ask; :meth:`abort` ends the wait at once (and so does an abort
        since ``aborts`` was ``mark``, when given): the caller's next :meth:`cancelled` check raises."""
        woken = self._aborted
        if mark is not None and self.aborts != mark:
            return
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            woken.wait(max(seconds, 0.0))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for companion in self._companions:
            companion.close()

    def storage_client(self, what: str = "storage", auth_hint: str = "") -> BaseClient:
        """A client for presigned URLs (absolute, already authorised): never sends this service's credentials,
        shares its timeout, retries and waits (this client's abort() ends them), and is closed with it."""
        companion = BaseClient(service=f"{self.service} {what}", base_url="", timeout=self.timeout, retry=self.retry,
                               auth_hint=auth_hint, sleep=lambda seconds: self.pause(seconds))
        self._companions.append(companion)
        return companion

    def __init_subclass__(cls, *, service: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.SERVICE = service or cls.SERVICE

    @classmethod
    def from_profile(cls: Type[C], profile: Optional[str] = None) -> C:
        """The client of the profile's endpoint with its credentials (``profile`` None: the default one), for the
        service a subclass names (``class XClient(BaseClient, service=...)``)."""
        from .settings import client_settings

        return cls(**client_settings(cls.SERVICE, profile))

    def __enter__(self: C) -> C:  # `with XClient(...) as c`: c is an XClient, for every service's client
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -------------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: Optional[bool] = None,
        expect: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; raise a typed :class:`ServiceError` unless the status is 2xx or in ``expect``.

        ``idempotent`` overrides the method's default (e.g. a PATCH that sets a value may be repeated safely).
        """
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        mark = self.aborts
        attempt = 0
        limited = 0.0  # seconds waited out on 429s, against the policy's rate budget
        while True:
            attempt += 1
            retry_after: Optional[float] = None
            self.cancelled(mark, f"{method} {path}")
            try:
                response = self.http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.cancelled(mark, f"{method} {path}")
                # The request never left: safe to repeat whatever the method, unless no repeat can succeed.
                if network.is_certificate_error(exc):
                    raise self._untrusted(method, path, exc) from None
                if attempt >= self.retry.attempts:
                    raise self._unreachable(method, path, exc) from None
            except httpx.TransportError as exc:
                self.cancelled(mark, f"{method} {path}")
                # It may have reached the server (read timeout, dropped connection): only repeat what is safe.
                if not safe or attempt >= self.retry.attempts:
                    raise self._unreachable(method, path, exc, maybe_sent=not safe) from None
            else:
                if response.status_code == 429 and self.retry.rate_budget > 0:
                    error = self.error_for(response)
                    response.close()
                    limited += self.wait_out_rate_limit(error, attempt, limited, mark)
                    continue
                if response.status_code in RETRY_STATUSES and attempt < self.retry.attempts and (
                    safe or response.status_code == 429
                ):
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    response.close()
                else:
                    if response.is_success or response.status_code in expect:
                        return response
                    raise self.error_for(response)
            self.pause(self.retry.delay(attempt, retry_after), mark)

    def wait_out_rate_limit(self, error: ServiceError, attempt: int, waited: float, mark: int) -> float:
        """After the ``attempt``-th 429 (``error``) of one request that has waited ``waited`` seconds on 429s so far:
        wait as the policy's rate budget allows (said on the ``tether.http`` logger) and return the seconds waited;
        raise the 429 that outlasts the budget, saying when to try again. Every request's 429s come here, a
        download's too."""
        wait = self.retry.rate_delay(attempt, error.retry_after, waited)
        if wait is None:
            raise self._rate_limited(error, waited)
        log.warning("rate limited by %s, waiting %s (budget %s left)", self._title, spoken_seconds(wait),
                    spoken_seconds(self.retry.rate_budget - waited - wait))
        self.pause(wait, mark)
        return wait

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.body_of(self.request(method, path, **kwargs), method, path)

    def body_of(self, response: httpx.Response, method: str, path: str) -> Any:
        """A reply's JSON body (None when empty); a body that is not JSON is a :class:`ProtocolError`."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise ProtocolError(
                f"{self.service}: {method} {path} answered {response.status_code} with a body that is not JSON",
                service=self.service, status=response.status_code, server_message=response.text[:200],
                request_id=request_id_of(response), method=method, url=str(response.request.url),
            ) from None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Stream a response body (downloads). Errors are raised typed, before the body is read."""
        with contextlib.ExitStack() as stack:
            try:
                response = stack.enter_context(self.http.stream(method, path, **kwargs))
            except httpx.ConnectError as exc:
                if network.is_certificate_error(exc):
                    raise self._untrusted(method, path, exc) from None
                raise
            if not response.is_success:
                response.read()
                raise self.error_for(response)
            yield response

    # --- replies --------------------------------------------------------------------------------------------
    def parse(self, model: Type[M], body: Any, what: str) -> M:
        """A reply as its model; a reply of another shape is a :class:`ProtocolError` naming the endpoint (``what``,
        e.g. ``POST /api/jobs``) and the fields, with a short redacted excerpt. pydantic's own message is not shown:
        it quotes the input values, which can hold a token the server echoed."""
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise self._shape_error(what, body, exc) from None

    def parse_list(self, item: Type[M], body: Any, what: str, keys: Sequence[str] = LIST_KEYS) -> List[M]:
        """A list reply, bare or under one of ``keys``, as a list of ``item``."""
        items = self._items(body, what, keys)
        try:
            return TypeAdapter(List[item]).validate_python(items)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise self._shape_error(what, body, exc) from None

    def parse_page(self, model: Type[M], body: Any, what: str, keys: Sequence[str] = LIST_KEYS,
                   **defaults: Any) -> M:
        """A page reply (items plus whatever paging fields the server sent, ``defaults`` for those it did not) as
        ``model``, which holds the items under ``items``."""
        items = self._items(body, what, keys)
        meta = {k: v for k, v in body.items() if k not in keys} if isinstance(body, dict) else {}
        return self.parse(model, {**defaults, **meta, "items": items}, what)

    def _items(self, body: Any, what: str, keys: Sequence[str]) -> List[Any]:
        try:
            return items_of(body, keys)
        except ValueError as exc:
            raise ProtocolError(f"{self.service}: the reply to {what} {exc}; it began: {reply_excerpt(body)}",
                                service=self.service) from None

    def _shape_error(self, what: str, body: Any, exc: ValidationError) -> ProtocolError:
        problems = []
        for err in exc.errors(include_url=False, include_input=False)[:4]:
            where = ".".join(str(part) for part in err["loc"]) or "the reply"
            problems.append(f"{where}: {err['msg'].lower()}")
        more = f" (and {exc.error_count() - 4} more)" if exc.error_count() > 4 else ""
        return ProtocolError(f"{self.service}: the reply to {what} does not have the expected shape: "
                             f"{'; '.join(problems)}{more}; it began: {reply_excerpt(body)}", service=self.service)

    # --- errors ---------------------------------------------------------------------------------------------
    def error_for(self, response: httpx.Response) -> ServiceError:
        status = response.status_code
        method = response.request.method
        url = str(response.request.url.copy_with(query=None))
        server = _server_message(response)
        kind = _STATUS_ERRORS.get(status, ServiceError)
        what = f"{self.service}: {method} {url} failed with HTTP {status}"
        if status == 401:
            what = f"{self.service}: the credentials were refused (HTTP 401)"
            if self.auth_hint:
                what += f"; {self.auth_hint}"
        elif status == 403:
            what = f"{self.service}: this account may not do that (HTTP 403) at {url}"
        elif status == 429:
            what = f"{self.service}: rate limited (HTTP 429) after {self.retry.attempts} tries; try again later"
        elif status >= 500:
            what = f"{self.service}: the service failed (HTTP {status}) on {method} {url}"
        return kind(what, service=self.service, status=status, server_message=server,
                    request_id=request_id_of(response), method=method, url=url,
                    retry_after=parse_retry_after(response.headers.get("retry-after")))

    @property
    def _title(self) -> str:
        """What people call the service ("Autopilot storage" for a companion); the bare name off the specs."""
        from .spec import spec_for

        name, _, rest = self.service.partition(" ")
        try:
            return f"{spec_for(name).title} {rest}".strip()
        except ConfigError:
            return self.service

    def _rate_limited(self, error: ServiceError, waited: float) -> ServiceError:
        """The 429 that outlasted the budget, saying how long was waited and when to try again."""
        if not isinstance(error, RateLimited):  # a client's own mapping of the reply: keep it
            return error
        retry_after = error.retry_after
        budget = spoken_seconds(self.retry.rate_budget)
        if retry_after is not None and retry_after > self.retry.rate_budget - waited:
            when = time.strftime("%H:%M", time.localtime(time.time() + retry_after))
            what = (f"{self.service}: rate limited (HTTP 429): the service asks to wait {spoken_seconds(retry_after)}"
                    f", more than is left of the {budget} Tether waits for one request; try again after {when}")
        else:
            what = (f"{self.service}: rate limited (HTTP 429): still refused after waiting {spoken_seconds(waited)} "
                    f"(the {budget} Tether waits for one request); try again later")
        return RateLimited(what, service=self.service, status=429, server_message=error.server_message,
                           request_id=error.request_id, method=error.method, url=error.url, retry_after=retry_after)

    def _untrusted(self, method: str, path: str, exc: Exception) -> ServiceError:
        url = path if "://" in path else f"{self.base_url.rstrip('/')}{path}"
        host = httpx.URL(url).host
        return ServiceUnavailable(
            f"{self.service}: the certificate of {host} is not trusted ({redact(str(exc))}); checked against "
            f"{network.trust_store()}. {network.CERT_HINT[0].upper()}{network.CERT_HINT[1:]}",
            service=self.service, method=method, url=url)

    def _unreachable(self, method: str, path: str, exc: Exception, maybe_sent: bool = False) -> ServiceError:
        url = f"{self.base_url.rstrip('/')}{path}"
        reason = type(exc).__name__
        detail = redact(str(exc))
        if maybe_sent:
            msg = (f"{self.service}: the connection failed during {method} {url} ({reason}: {detail}); "
                   "it may have reached the server, so it was not repeated: check the job list before resubmitting")
        else:
            msg = (f"{self.service}: cannot reach {self.base_url} ({reason}: {detail}); is the service running and "
                   "the URL right? (`tether config show`)")
        return ServiceUnavailable(msg, service=self.service, method=method, url=url, maybe_sent=maybe_sent)


def _masked(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return "..."
    if isinstance(value, dict):
        return {k: "***" if any(w in str(k).lower() for w in _SECRET_KEY_WORDS) else _masked(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, depth + 1) for v in value[:5]]
    return value


def reply_excerpt(body: Any, limit: int = 160) -> str:
    """The start of a reply for an error message: values under credential-like keys masked, secrets redacted."""
    try:
        text = json.dumps(_masked(body), default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(body)
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "..."


def items_of(body: Any, keys: Sequence[str] = LIST_KEYS) -> List[Any]:
    """A list reply's items: the body itself, or the first list under one of ``keys``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            if isinstance(body.get(key), list):
                return list(body[key])
    raise ValueError(f"holds no list (a bare list, or one under {', '.join(repr(k) for k in keys[:3])}...)")
