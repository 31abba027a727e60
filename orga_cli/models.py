"""Frozen dataclasses for what crosses the wire, each with a tolerant ``from_json``.

Every response form listed in orga-api.md is accepted here, and raw JSON
(``Any``) does not leave this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

MODEL = "orga-1-beta"  # the only model (orga-api.md); the SDK's default
DEFAULT_VOICE = "Sofía"  # the SDK's default: the first of the voice list
DEFAULT_BASE_URL = "https://api.orga-ai.com"


class ResponseFormatError(ValueError):
    """A response body that does not have the shape we need."""


# --------------------------------------------------------------------------- tokens


def decode_claims(token: str) -> dict[str, Any]:
    """Decode a JWT's claims without verifying it (the client holds no key).

    Raises ValueError when *token* is not a JWT.
    """
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("not a JWT (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ValueError("not a JWT (its payload is not base64url JSON)") from exc
    if not isinstance(claims, dict):
        raise ValueError("not a JWT (its payload is not a JSON object)")
    return claims


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 string (no zone means UTC) or epoch seconds, as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    return None


def iso_utc(moment: datetime) -> str:
    """``2025-11-11T11:49:43Z`` (seconds precision, explicit UTC)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Token:
    """An ephemeral token and what is known of its lifetime."""

    value: str = field(repr=False)
    token_type: str = "bearer"
    expires_at: datetime | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: Any, *, now: float | None = None) -> Token:
        """Accept every documented response form of POST /client-secrets."""
        if not isinstance(data, dict):
            raise ResponseFormatError("the response is not a JSON object")
        value = data.get("ephemeral_token") or data.get("ephemeralToken") or data.get("token")
        if not isinstance(value, str) or not value.strip():
            raise ResponseFormatError("the response has no ephemeral_token")
        value = value.strip()
        token_type = data.get("token_type") or data.get("tokenType") or "bearer"
        expires_at = parse_timestamp(data.get("expires_at") or data.get("expiresAt"))
        try:
            claims = decode_claims(value)
        except ValueError:
            claims = {}
        if expires_at is None:
            ttl = data.get("ttl", data.get("expires_in"))
            if isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
                expires_at = parse_timestamp((time.time() if now is None else now) + ttl)
        if expires_at is None:
            expires_at = parse_timestamp(claims.get("exp"))
        return cls(value=value, token_type=str(token_type), expires_at=expires_at, claims=claims)

    @classmethod
    def from_string(cls, value: str) -> Token:
        """A token given by the user; its expiry comes from the ``exp`` claim if any."""
        value = value.strip()
        try:
            claims = decode_claims(value)
        except ValueError:
            claims = {}
        return cls(value=value, expires_at=parse_timestamp(claims.get("exp")), claims=claims)

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at.timestamp() - (time.time() if now is None else now)

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The JSON form of `orga token --json`."""
        left = self.seconds_left(now)
        return {
            "token": self.value,
            "token_type": self.token_type,
            "expires_at": iso_utc(self.expires_at) if self.expires_at else None,
            "seconds_left": None if left is None else int(left),
            "claims": self.claims,
        }


# --------------------------------------------------------------------------- ICE

_ICE_SCHEMES = ("stun", "stuns", "turn", "turns")


@dataclass(frozen=True)
class IceUrl:
    """One parsed ``stun:``/``turn:``/``turns:`` URL."""

    url: str
    scheme: str
    host: str
    port: int
    transport: str  # "udp", "tcp" or "tls"

    @classmethod
    def parse(cls, url: str) -> IceUrl:
        text = url.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in _ICE_SCHEMES:
            raise ValueError(f"{url!r} is not a stun:, turn: or turns: URL")
        if rest.startswith("//"):
            rest = rest[2:]
        hostport, _, query = rest.partition("?")
        params = parse_qs(query)
        secure = scheme in ("stuns", "turns")
        default_port = 5349 if secure else 3478
        parsed = urlsplit("//" + hostport)
        try:
            port = parsed.port or default_port
        except ValueError as exc:
            raise ValueError(f"{url!r} has an invalid port") from exc
        host = parsed.hostname or ""
        if not host:
            raise ValueError(f"{url!r} has no host")
        transport = (params.get("transport") or [""])[0].lower()
        if transport not in ("", "udp", "tcp"):
            raise ValueError(f"{url!r} has an unknown transport {transport!r}")
        if secure:
            transport = "tls"
        elif not transport:
            transport = "udp"
        return cls(url=text, scheme=scheme, host=host, port=port, transport=transport)

    @property
    def kind(self) -> str:
        """ "stun" or "turn" (the secure variants included)."""
        return {"stuns": "stun", "turns": "turn"}.get(self.scheme, self.scheme)


@dataclass(frozen=True)
class IceServer:
    """One entry of ``iceServers``; ``urls`` is always a tuple."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> IceServer:
        if isinstance(data, str):
            data = {"urls": data}
        if not isinstance(data, dict):
            raise ResponseFormatError("an ICE server entry is not an object")
        urls = data.get("urls", data.get("url"))
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise ResponseFormatError("an ICE server entry has no urls")
        username = data.get("username")
        credential = data.get("credential")
        return cls(
            urls=tuple(urls),
            username=str(username) if username is not None else None,
            credential=str(credential) if credential is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


def ice_servers_from_urls(
    urls: list[str] | tuple[str, ...], usernames: list[str], credentials: list[str]
) -> list[IceServer]:
    """ICE servers from URLs and TURN credentials given on a command line.

    One username/credential applies to every TURN URL; several pair with the
    TURN URLs in order. Raises ValueError naming what is wrong.
    """
    parsed = [IceUrl.parse(url) for url in urls]
    turn_count = sum(1 for p in parsed if p.kind == "turn")
    for name, values in (("usernames", usernames), ("credentials", credentials)):
        if len(values) > 1 and len(values) != turn_count:
            raise ValueError(
                f"{len(values)} TURN {name} for {turn_count} TURN URLs: give one for all,"
                " or one per TURN URL in order"
            )
    servers = []
    turn_index = 0
    for url in parsed:
        if url.kind != "turn":
            servers.append(IceServer((url.url,)))
            continue
        pick = 0 if len(usernames) <= 1 else turn_index
        pick_cred = 0 if len(credentials) <= 1 else turn_index
        turn_index += 1
        if not usernames or not credentials:
            raise ValueError(f"TURN URL {url.url} needs a username and a credential")
        servers.append(IceServer((url.url,), usernames[pick], credentials[pick_cred]))
    return servers


def parse_ice_config(data: Any) -> list[IceServer]:
    """Both documented shapes: ``{"iceServers": [...]}`` and a bare list."""
    if isinstance(data, dict):
        servers = data.get("iceServers", data.get("ice_servers"))
        if servers is None:
            raise ResponseFormatError("the response has no iceServers")
    else:
        servers = data
    if not isinstance(servers, list):
        raise ResponseFormatError("iceServers is not a list")
    return [IceServer.from_json(entry) for entry in servers]


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class CallAnswer:
    """The answer of POST /calls."""

    conversation_id: str
    sdp: str = field(repr=False)
    type: str = "answer"

    @classmethod
    def from_json(cls, data: Any) -> CallAnswer:
        if not isinstance(data, dict):
            raise ResponseFormatError("the response is not a JSON object")
        answer = data.get("answer")
        if not isinstance(answer, dict) or not isinstance(answer.get("sdp"), str):
            raise ResponseFormatError("the response has no answer SDP")
        conversation_id = data.get("conversation_id") or data.get("conversationId")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise ResponseFormatError("the response has no conversation_id")
        return cls(
            conversation_id=conversation_id,
            sdp=answer["sdp"],
            type=str(answer.get("type") or "answer"),
        )


# --------------------------------------------------------------------------- errors

_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def error_message(body: bytes, content_type: str = "") -> str | None:
    """The innermost human message of an error body, or a clean excerpt of it.

    Handles the Orga envelope (nested to any depth, the message itself possibly
    a JSON string), FastAPI's ``{"detail": ...}``, HTML and plain text.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if data is not None:
        found = _innermost(data, depth=0)
        if found:
            return _clip(found)
        return _clip(text)
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        if title and title.group(1).strip():
            return _clip(title.group(1))
        text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.I | re.S)
        text = _TAGS.sub(" ", text)
    return _clip(text)


def _innermost(data: Any, depth: int) -> str | None:
    if depth > 8:
        return None
    if isinstance(data, str):
        stripped = data.strip()
        if stripped.startswith(("{", "[")):
            try:
                return _innermost(json.loads(stripped), depth + 1)
            except ValueError:
                pass
        return stripped or None
    if isinstance(data, list):
        parts = [p for p in (_innermost(item, depth + 1) for item in data) if p]
        return "; ".join(parts) or None
    if isinstance(data, dict):
        for key in ("error", "detail", "message", "msg", "error_description", "title"):
            if key in data and data[key] not in (None, "", {}, []):
                found = _innermost(data[key], depth + 1)
                if found:
                    return found
        if "loc" in data and "msg" in data:
            return str(data["msg"])
    return None


def _clip(text: str, limit: int = 160) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class Voice:
    name: str
    language: str
    gender: str
    description: str

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "language": self.language,
            "gender": self.gender,
            "description": self.description,
        }


# --------------------------------------------------------------------------- data channel

_EMOTION = re.compile(r"<emotion\b[^>]*/?>(?:\s*</emotion>)?", re.IGNORECASE)
_LAUGHTER = re.compile(r"\[laughter\]", re.IGNORECASE)

USER_TRANSCRIPT = "conversation.item.input_audio_transcription.completed"
ASSISTANT_TEXT = "response.output_item.done"


def display_text(text: str) -> str:
    """Assistant text for the screen: emotion tags removed, [laughter] as an emoji."""
    text = _EMOTION.sub("", text)
    text = _LAUGHTER.sub("😄", text)
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class ChannelEvent:
    """One message from the data channel; ``type`` is None when it is not a JSON object."""

    raw: str
    type: str | None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, message: str | bytes) -> ChannelEvent:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        try:
            data = json.loads(text)
        except ValueError:
            return cls(raw=text, type=None)
        if not isinstance(data, dict):
            return cls(raw=text, type=None)
        kind = data.get("type", data.get("event"))
        return cls(raw=text, type=kind if isinstance(kind, str) else None, data=data)

    def _text(self, *keys: str) -> str | None:
        for key in keys:
            value = self.data.get(key)
            if isinstance(value, str) and value.strip():
                return value
        return None

    def conversation_line(self) -> tuple[str, str] | None:
        """(speaker, text) for events that belong in the conversation, else None."""
        if self.type == USER_TRANSCRIPT:
            text = self._text("transcript", "text", "message")
            return ("you", text.strip()) if text else None
        if self.type == ASSISTANT_TEXT:
            text = self._text("text", "message")
            shown = display_text(text) if text else ""
            return ("orga", shown) if shown else None
        return None

    def session_id(self) -> str | None:
        session = self.data.get("session")
        if self.type == "session.created" and isinstance(session, dict):
            value = session.get("id")
            return str(value) if value is not None else None
        return None

    def conversation_id(self) -> str | None:
        conv = self.data.get("conversation")
        if self.type == "conversation.created" and isinstance(conv, dict):
            value = conv.get("id")
            return str(value) if value is not None else None
        return None
