"""OrgaClient: the three HTTP steps of the Orga realtime API over httpx.

Every foreign exception is translated here, once, into the OrgaError tree.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from . import __version__
from .config import DEFAULT_BASE_URL
from .errors import ApiError, CallError, NetworkError, UsageError, mask, secrets, setting
from .models import (
    CallAnswer,
    IceServer,
    ResponseFormatError,
    Token,
    error_message,
    parse_ice_config,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_PATH = "/v1/realtime/client-secrets"
ICE_PATH = "/v1/realtime/ice-config"
CALLS_PATH = "/v1/realtime/calls"

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_WAIT = 20.0  # a Retry-After longer than this is reported, not waited out


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, insecure_http: bool = False) -> str:
    """Validate *base_url*; plain http is allowed only to loopback unless insecure_http."""
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"base URL {base_url!r} is not an http(s) URL",
            "use e.g. https://api.orga-ai.com or the URL `orga serve` prints",
        )
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise UsageError(f"base URL {base_url!r} has an invalid port") from exc
    if parts.scheme == "http" and not insecure_http and not is_loopback_host(parts.hostname):
        raise UsageError(
            f"refusing to send credentials in clear text to {parts.hostname} over http://",
            f"use https://, or pass {setting('insecure_http')} if you really mean it",
        )
    return url


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 12:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _translate_transport(exc: httpx.HTTPError, url: httpx.URL, timeout: float) -> NetworkError:
    host = url.host
    where = f"{host}:{url.port}" if url.port else host
    chain = _causes(exc)
    if isinstance(exc, httpx.TimeoutException):
        return NetworkError(
            f"no answer from {where} within {timeout:g} s",
            f"check your network, or raise {setting('timeout')}",
        )
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "verification failed"
            return NetworkError(
                f"TLS certificate of {host} not trusted ({reason})",
                "check the URL; behind a TLS-inspecting proxy set SSL_CERT_FILE to its CA bundle",
            )
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or str(cause)
            return NetworkError(
                f"TLS handshake with {where} failed ({reason})",
                "check the URL's scheme and port (is it really https?)",
            )
        if isinstance(cause, socket.gaierror):
            return NetworkError(
                f"cannot resolve host {host!r}",
                "check the base URL and your DNS or network connection",
            )
        if isinstance(cause, ConnectionRefusedError):
            return NetworkError(
                f"connection to {where} refused",
                f"is the server running? check {setting('base_url')} (and the port)",
            )
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "Name or service not known" in text:
        return NetworkError(f"cannot resolve host {host!r}", "check the base URL and your network")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return NetworkError(
            f"{where} closed the connection before a complete response ({text})",
            "try again; if it persists, check the server or proxy",
        )
    return NetworkError(
        f"request to {where} failed: {text}", f"check your network and {setting('base_url')}"
    )


def usable_token(token: Token | str) -> Token:
    """The token, registered as a secret; UsageError if its exp claim has passed."""
    if isinstance(token, str):
        token = Token.from_string(token)
    secrets.add(token.value)
    left = token.seconds_left()
    if left is not None and left <= 0:
        raise UsageError(
            f"the ephemeral token expired {int(-left) or 1} s ago",
            f"mint a new one with `orga token` (or leave out {setting('token')})",
        )
    return token


Steps = Generator["httpx.Request | float", "tuple[httpx.Response, bytes] | None", T]
"""A step of the API as a sans-IO generator: it yields a request to send (and is sent
back the response and its body) or a number of seconds to sleep, and returns the result.
The async and the sync client drive the same steps."""


class _Core:
    """What the three API steps send and how their answers are read; no I/O."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float, retries: int) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.tries = max(1, retries)
        secrets.add(api_key)

    def http_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout": httpx.Timeout(self.timeout),
            # Loading the CA bundle costs ~80 ms; a plain-http (loopback) base URL never
            # negotiates TLS, and redirects are not followed, so it needs none.
            "verify": self.base_url.startswith("https://"),
            "headers": {"User-Agent": f"orga-cli/{__version__}", "Accept": "application/json"},
            "follow_redirects": False,
        }

    def create_token(self, email: str | None, expires_in: int | None) -> Steps[Token]:
        if not self.api_key:
            raise UsageError(
                "no API key",
                f"pass {setting('api_key')}, set ORGA_API_KEY, or run `orga config set api_key`",
            )
        params = {"email": email} if email else None
        body = {"expires_in": expires_in} if expires_in is not None else None
        data = yield from self._request(
            "POST", TOKEN_PATH, bearer=self.api_key, params=params, json_body=body, step="token"
        )
        try:
            token = Token.from_json(data)
        except ResponseFormatError as exc:
            raise NetworkError(
                f"the token response is unusable: {exc}",
                f"check that {setting('base_url')} points at the Orga API",
            ) from exc
        secrets.add(token.value)
        return token

    def ice_servers(self, token: Token | str) -> Steps[list[IceServer]]:
        usable = self._usable(token)
        data = yield from self._request("GET", ICE_PATH, bearer=usable.value, step="ice")
        try:
            servers = parse_ice_config(data)
        except ResponseFormatError as exc:
            raise NetworkError(
                f"the ICE configuration is unusable: {exc}",
                f"check that {setting('base_url')} points at the Orga API",
            ) from exc
        for server in servers:
            secrets.add(server.credential)
        return servers

    def create_call(
        self, token: Token | str, offer: dict[str, Any], params: dict[str, Any] | None
    ) -> Steps[CallAnswer]:
        usable = self._usable(token)
        body: dict[str, Any] = {"offer": offer}
        if params is not None:
            body["params"] = params
        # Offers are not idempotent: a retried POST could start a second conversation.
        data = yield from self._request(
            "POST", CALLS_PATH, bearer=usable.value, json_body=body, step="call", retry=False
        )
        try:
            return CallAnswer.from_json(data)
        except ResponseFormatError as exc:
            # The call itself cannot go on: the server answered, but not with a call.
            raise CallError(
                f"/calls answered, but {exc.args[0].replace('the response', 'the answer')}"
            ) from exc

    def _usable(self, token: Token | str) -> Token:
        return usable_token(token)

    def _request(
        self,
        method: str,
        path: str,
        *,
        bearer: str,
        step: str,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Steps[Any]:
        headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
        content = json.dumps(json_body).encode() if json_body is not None else None
        url = httpx.URL(self.base_url + path, params=params)
        request = httpx.Request(method, url, headers=headers, content=content)
        tries = self.tries
        for attempt in range(1, tries + 1):
            log.debug("→ %s %s  Authorization: Bearer %s", method, request.url, mask(bearer))
            started = time.perf_counter()
            answer = yield request
            assert answer is not None
            response, body = answer
            log.debug(
                "← %d %s  %.0f ms, %d bytes",
                response.status_code,
                response.reason_phrase,
                (time.perf_counter() - started) * 1000,
                len(body),
            )
            status = response.status_code
            if 200 <= status < 300:
                return _decode(response, body)
            # A request that is not safe to repeat (/calls) is still tried again after a 429:
            # the server refused it without acting on it.
            if status in RETRY_STATUSES and attempt < tries and (retry or status == 429):
                wait = _backoff(attempt, _retry_after(response))
                if wait is not None:
                    log.info(
                        "%d %s; retry %d of %d in %.1f s",
                        status,
                        response.reason_phrase,
                        attempt,
                        tries - 1,
                        wait,
                    )
                    yield wait
                    continue
            raise _status_error(response, body, step, attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _backoff(attempt: int, retry_after: float | None) -> float | None:
    """Seconds before the next try: Retry-After if the server gave one (None when it asks
    for more than MAX_RETRY_WAIT), else exponential with full jitter on top."""
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_WAIT else None
    base: float = 0.5 * 2 ** (attempt - 1)
    return base + random.uniform(0, base)


def _decode(response: httpx.Response, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        ctype = response.headers.get("content-type", "")
        excerpt = error_message(body, ctype) or "an empty body"
        what = "HTML" if "html" in ctype.lower() or body.lstrip()[:1] == b"<" else "not JSON"
        raise NetworkError(
            f"the server answered {response.status_code} but the body is {what}: {excerpt}",
            f"check that {setting('base_url')} points at the Orga API, not a web page or proxy",
        ) from exc


def _status_error(
    response: httpx.Response, body: bytes, step: str, attempt: int
) -> ApiError | NetworkError:
    status = response.status_code
    reason = response.reason_phrase or "error"
    message = error_message(body, response.headers.get("content-type", "")) or reason
    if status == 429:
        wait = _retry_after(response)
        after = f"; the server asks to wait {wait:.0f} s" if wait is not None else ""
        return ApiError(
            f"rate limited (429) after {attempt} {'try' if attempt == 1 else 'tries'}{after}: {message}",
            "wait a little and try again",
            status=status,
        )
    if status >= 500:
        tries = f" after {attempt} tries" if attempt > 1 else ""
        return NetworkError(
            f"the server failed with {status} {reason}{tries}: {message}",
            "try again later",
            status=status,
        )
    hint: str | None
    if status == 401 and step == "token":
        what, hint = (
            "the API key was refused",
            f"check ORGA_API_KEY, {setting('api_key')} or `orga config set api_key`",
        )
    elif status == 401:
        what, hint = (
            "the ephemeral token was refused",
            ("mint a new one with `orga token` (tokens live about a minute)"),
        )
    elif status == 403:
        what, hint = "forbidden", "check the key's scope, or that a credential was sent"
    elif status == 404 and step == "token":
        what, hint = "user not found", f"check {setting('email')} / ORGA_USER_EMAIL"
    elif status == 404:
        what, hint = "not found", f"check {setting('base_url')}"
    elif status == 422 and step == "token":
        what, hint = (
            "the request was rejected",
            f"this server needs a user email: pass {setting('email')} or set ORGA_USER_EMAIL",
        )
    else:
        what, hint = "the request was rejected", None
    return ApiError(f"{what} ({status}): {message}", hint, status=status)


class OrgaClient:
    """An async client of the Orga realtime HTTP API.

    ``api_key`` is needed only for :meth:`create_token`. Pass ``transport`` to
    talk to an in-process server or to inject faults in tests.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        insecure_http: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self._core = _Core(
            check_base_url(base_url, insecure_http=insecure_http), api_key, timeout, retries
        )
        self.base_url = self._core.base_url
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **self._core.http_options())

    async def __aenter__(self) -> OrgaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_token(
        self, *, email: str | None = None, expires_in: int | None = None
    ) -> Token:
        """Step 1: exchange the API key for an ephemeral token."""
        return await self._drive(self._core.create_token(email, expires_in))

    async def ice_servers(self, token: Token | str) -> list[IceServer]:
        """Step 2: the ICE servers (STUN/TURN) for a session."""
        return await self._drive(self._core.ice_servers(token))

    async def create_call(
        self, token: Token | str, offer: dict[str, Any], params: dict[str, Any] | None = None
    ) -> CallAnswer:
        """Step 3: send the SDP offer (with its candidates) and get the answer."""
        return await self._drive(self._core.create_call(token, offer, params))

    async def _drive(self, steps: Steps[T]) -> T:
        import asyncio

        sleep = self._sleep or asyncio.sleep
        try:
            step = next(steps)
            while True:
                if isinstance(step, float):
                    await sleep(step)
                    step = steps.send(None)
                    continue
                try:
                    response = await self._http.send(step)
                    body = await response.aread()
                except httpx.HTTPError as exc:
                    raise _translate_transport(exc, step.url, self._core.timeout) from exc
                step = steps.send((response, body))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class SyncOrgaClient:
    """The same API steps without an event loop, for short-lived commands.

    ``orga token`` and ``orga ice`` use it: an event loop and anyio cost ~70 ms of
    start-up, a third of the whole command.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        insecure_http: bool = False,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._core = _Core(
            check_base_url(base_url, insecure_http=insecure_http), api_key, timeout, retries
        )
        self.base_url = self._core.base_url
        self._sleep = sleep
        self._http = httpx.Client(transport=transport, **self._core.http_options())

    def __enter__(self) -> SyncOrgaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create_token(self, *, email: str | None = None, expires_in: int | None = None) -> Token:
        """Step 1: exchange the API key for an ephemeral token."""
        return self._drive(self._core.create_token(email, expires_in))

    def ice_servers(self, token: Token | str) -> list[IceServer]:
        """Step 2: the ICE servers (STUN/TURN) for a session."""
        return self._drive(self._core.ice_servers(token))

    def _drive(self, steps: Steps[T]) -> T:
        try:
            step = next(steps)
            while True:
                if isinstance(step, float):
                    self._sleep(step)
                    step = steps.send(None)
                    continue
                try:
                    response = self._http.send(step)
                    body = response.read()
                except httpx.HTTPError as exc:
                    raise _translate_transport(exc, step.url, self._core.timeout) from exc
                step = steps.send((response, body))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
