"""An Orga-compatible API server on loopback (aiohttp).

It speaks the three endpoints of orga-api.md with the same shapes, status
codes and error bodies, signs real HS256 tokens, and sends CORS headers on
every response so that a web page on another origin can use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets as pysecrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jwt
from aiohttp import web

from ..errors import mask
from ..models import MODEL, IceServer
from ..seams import answer_parse_errors
from ..voices import find_voice

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CallHandler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


def generate_api_key() -> str:
    return "sk_orga_ai_sandbox_" + pysecrets.token_hex(16)


@dataclass
class SandboxConfig:
    api_key: str = field(default_factory=generate_api_key, repr=False)
    token_ttl: int = 60
    require_email: bool = False
    known_emails: tuple[str, ...] = ()
    ice_servers: tuple[IceServer, ...] = ()
    signing_key: bytes = field(default_factory=lambda: pysecrets.token_bytes(32), repr=False)


def orga_error(
    status: int,
    message: Any,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


class FieldError(Exception):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class Busy(Exception):
    """The call handler takes no more calls now: it holds all it may (``orga serve
    --max-calls``), or its event loop is running late (the calls it holds come first)."""

    def __init__(self, why: str, retry_after: int = 2) -> None:
        super().__init__(why)
        self.retry_after = retry_after


def parse_error(status: int, exc: BaseException | None) -> web.Response:
    """The answer to a request aiohttp could not parse: the API's error shape, one log
    line, none of the request's bytes (a header over the limit may be an API key)."""
    from aiohttp import http_exceptions as h

    if isinstance(exc, h.LineTooLong) or "header" in type(exc).__name__.lower():
        status, message = 431, "Request header fields too large (8 KiB each at most)."
    elif isinstance(exc, h.BadHttpMethod | h.BadStatusLine):
        status, message = 400, "Not an HTTP request."
    else:
        status, message = (status if 400 <= status < 600 else 400), "Malformed HTTP request."
    log.info("refused a request it could not parse: %d %s", status, message)
    return orga_error(status, message, code="bad_request")


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _cors_headers(request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    headers = {
        "Access-Control-Allow-Origin": origin or "*",
        "Access-Control-Expose-Headers": "Retry-After",
    }
    if origin:
        headers["Vary"] = "Origin"
    return headers


class SandboxApp:
    """The aiohttp application and its state. ``call_handler`` answers /calls."""

    def __init__(self, config: SandboxConfig, call_handler: CallHandler | None = None) -> None:
        self.config = config
        self.call_handler = call_handler
        self.app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        self.app.router.add_post("/v1/realtime/client-secrets", self.client_secrets)
        self.app.router.add_get("/v1/realtime/ice-config", self.ice_config)
        self.app.router.add_post("/v1/realtime/calls", self.calls)
        self.app.router.add_get("/", self.index)
        self.app.router.add_route("OPTIONS", "/{tail:.*}", self.preflight)

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            status = exc.status
            if isinstance(exc, web.HTTPMethodNotAllowed) and exc.allowed_methods <= {"OPTIONS"}:
                status = 404  # only the CORS preflight's catch-all route matched the path
            message = {404: "Not Found", 405: "Method Not Allowed"}.get(status, exc.reason)
            response = orga_error(status, message)
        except Exception:
            log.exception("sandbox: internal error on %s %s", request.method, request.path)
            response = orga_error(500, "Internal server error", type_="server_error")
        if not response.prepared:
            response.headers.update(_cors_headers(request))
        bearer = _bearer(request)
        auth = f" auth=Bearer {mask(bearer)}" if bearer else ""
        query = f"?{request.query_string}" if request.query_string else ""
        log.info(
            "%s %s%s -> %d (%.0f ms)%s",
            request.method,
            request.path,
            query,
            response.status,
            (time.perf_counter() - started) * 1000,
            auth,
        )
        return response

    async def preflight(self, request: web.Request) -> web.Response:
        requested = request.headers.get("Access-Control-Request-Headers")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": requested or "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )

    async def index(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "orga sandbox",
                "endpoints": [
                    "POST /v1/realtime/client-secrets",
                    "GET /v1/realtime/ice-config",
                    "POST /v1/realtime/calls",
                ],
            }
        )

    # ------------------------------------------------------------------ tokens

    def mint(self, email: str | None, ttl: int) -> tuple[str, datetime]:
        now = int(time.time())
        key_id = "key_" + hashlib.sha256(self.config.api_key.encode()).hexdigest()[:16]
        subject = (
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email}")) if email else "sandbox-user"
        )
        claims = {
            "sub": subject,
            "api_key_id": key_id,
            "scope": "api",
            "iat": now,
            "exp": now + ttl,
        }
        token = jwt.encode(claims, self.config.signing_key, algorithm="HS256")
        return token, datetime.fromtimestamp(now + ttl, tz=timezone.utc)

    def check_token(self, request: web.Request) -> web.Response | dict[str, Any]:
        token = _bearer(request)
        if token is None:
            return orga_error(403, "Not authenticated")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.config.signing_key, algorithms=["HS256"], options={"require": ["exp"]}
            )
        except jwt.PyJWTError:
            return orga_error(401, "Invalid ephemeral token")
        return claims

    async def client_secrets(self, request: web.Request) -> web.Response:
        key = _bearer(request)
        if key is None:
            return orga_error(403, "Not authenticated")
        if not pysecrets.compare_digest(key.encode(), self.config.api_key.encode()):
            inner = {
                "error": {
                    "message": "Incorrect or inactive API key provided.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            }
            return orga_error(401, inner)
        email = request.query.get("email") or None
        if self.config.require_email and not email:
            return web.json_response(
                {
                    "detail": [
                        {
                            "type": "missing",
                            "loc": ["query", "email"],
                            "msg": "Field required",
                            "input": None,
                        }
                    ]
                },
                status=422,
            )
        if email and self.config.known_emails and email not in self.config.known_emails:
            return orga_error(404, "User not found.", code="user_not_found")
        ttl = self.config.token_ttl
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return orga_error(400, "Request body is not valid JSON.", code="invalid_json")
            if not isinstance(body, dict):
                return orga_error(400, "Request body must be a JSON object.", code="invalid_json")
            if "expires_in" in body:
                value = body["expires_in"]
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 86400:
                    return orga_error(
                        400,
                        "expires_in must be an integer number of seconds from 1 to 86400.",
                        param="expires_in",
                        code="invalid_value",
                    )
                ttl = value
        token, expires = self.mint(email, ttl)
        return web.json_response(
            {
                "ephemeral_token": token,
                "token_type": "bearer",
                # The reference's form: ISO 8601 with microseconds and no zone (UTC).
                "expires_at": expires.replace(tzinfo=None).isoformat(timespec="microseconds"),
            }
        )

    # ------------------------------------------------------------------ ICE

    async def ice_config(self, request: web.Request) -> web.Response:
        checked = self.check_token(request)
        if isinstance(checked, web.Response):
            return checked
        return web.json_response({"iceServers": [s.to_json() for s in self.config.ice_servers]})

    # ------------------------------------------------------------------ calls

    async def calls(self, request: web.Request) -> web.Response:
        checked = self.check_token(request)
        if isinstance(checked, web.Response):
            return checked
        try:
            body = await request.json()
        except ValueError:
            return orga_error(400, "Request body is not valid JSON.", code="invalid_json")
        try:
            offer, params = validate_call(body)
        except FieldError as exc:
            return orga_error(400, exc.message, param=exc.param, code="invalid_value")
        if self.call_handler is None:
            return orga_error(
                501,
                "This sandbox has no media peer; calls are not answered.",
                type_="server_error",
                code="not_implemented",
            )
        try:
            answer = await self.call_handler(offer, params)
        except FieldError as exc:
            return orga_error(400, exc.message, param=exc.param, code="invalid_value")
        except Busy as exc:
            return orga_error(
                429,
                f"The sandbox is {exc}.",
                type_="rate_limit_error",
                code="too_many_calls",
                headers={"Retry-After": str(exc.retry_after)},
            )
        return web.json_response(answer)


def validate_call(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a /calls body; raise FieldError naming the first bad field."""
    if not isinstance(body, dict):
        raise FieldError("body", "Request body must be a JSON object.")
    offer = body.get("offer")
    if not isinstance(offer, dict):
        raise FieldError("offer", "offer is required and must be an object.")
    sdp = offer.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise FieldError("offer.sdp", "offer.sdp must be an SDP string starting with v=0.")
    if offer.get("type") != "offer":
        raise FieldError("offer.type", 'offer.type must be "offer".')
    candidates = offer.get("candidates", [])
    if not isinstance(candidates, list):
        raise FieldError("offer.candidates", "offer.candidates must be a list.")
    for i, cand in enumerate(candidates):
        if not isinstance(cand, dict) or not isinstance(cand.get("candidate"), str):
            raise FieldError(
                f"offer.candidates[{i}]", f"offer.candidates[{i}] must have a candidate string."
            )
    params = body.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise FieldError("params", "params must be an object.")
    checks: dict[str, Callable[[Any], bool]] = {
        "voice": lambda v: isinstance(v, str) and find_voice(v) is not None,
        "model": lambda v: v == MODEL,
        "temperature": lambda v: (
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
        ),
        "return_transcription": lambda v: isinstance(v, bool),
        "instructions": lambda v: v is None or isinstance(v, str),
        "modalities": lambda v: isinstance(v, list) and set(v) <= {"audio", "video"},
        "history": lambda v: isinstance(v, bool),
    }
    explain = {
        "voice": "params.voice must be one of the voices (see `orga voices`).",
        "model": f'params.model must be "{MODEL}".',
        "temperature": "params.temperature must be a number from 0 to 1.",
        "return_transcription": "params.return_transcription must be true or false.",
        "instructions": "params.instructions must be a string or null.",
        "modalities": 'params.modalities must be a list drawn from "audio" and "video".',
        "history": "params.history must be true or false.",
    }
    for name, ok in checks.items():
        if name in params and not ok(params[name]):
            raise FieldError(f"params.{name}", explain[name])
    return offer, params


class SandboxServer:
    """Runs a SandboxApp on a TCP port; usable in-process (``async with``)."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        call_handler: CallHandler | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.sandbox = SandboxApp(self.config, call_handler)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        self._runner = web.AppRunner(self.sandbox.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        assert self._runner.server is not None
        answer_parse_errors(self._runner.server, parse_error)
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        addresses = self._runner.addresses  # the bound sockets' names: the real port
        port = int(addresses[0][1]) if addresses else self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.port = port
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 5)
            self._runner = None

    async def __aenter__(self) -> SandboxServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
