"""Pure tests of the wire models against every documented form."""

from __future__ import annotations

import json
import time

import pytest

from orga_cli.models import (
    CallAnswer,
    IceServer,
    IceUrl,
    ResponseFormatError,
    Token,
    decode_claims,
    error_message,
    parse_ice_config,
)
from orga_cli.voices import filter_voices, find_voice, suggest_voices

from .helpers.tokens import make_jwt

SAMPLE = make_jwt({"sub": "u1", "api_key_id": "k1", "scope": "api", "iat": 1000, "exp": 1900})


def test_token_current_reference_form() -> None:
    tok = Token.from_json(
        {
            "ephemeral_token": SAMPLE,
            "token_type": "bearer",
            "expires_at": "2025-11-11T11:49:43.252934",
        }
    )
    assert tok.value == SAMPLE
    assert tok.expires_at is not None
    assert tok.expires_at.isoformat() == "2025-11-11T11:49:43.252934+00:00"  # no zone means UTC
    assert tok.summary()["expires_at"] == "2025-11-11T11:49:43Z"
    assert tok.claims["scope"] == "api"


def test_token_bare_form_uses_exp_claim() -> None:
    tok = Token.from_json({"ephemeral_token": SAMPLE})
    assert tok.expires_at is not None and tok.expires_at.timestamp() == 1900
    assert tok.token_type == "bearer"


def test_token_camel_case_with_ttl() -> None:
    tok = Token.from_json({"ephemeralToken": "opaque-token-value", "ttl": 120}, now=5000.0)
    assert tok.value == "opaque-token-value"
    assert tok.expires_at is not None and tok.expires_at.timestamp() == 5120
    assert tok.claims == {}


@pytest.mark.parametrize("body", [{}, {"ephemeral_token": ""}, [], "x", {"token_type": "bearer"}])
def test_token_without_token_is_rejected(body: object) -> None:
    with pytest.raises(ResponseFormatError):
        Token.from_json(body)


def test_seconds_left_and_summary() -> None:
    now = time.time()
    tok = Token.from_string(make_jwt({"exp": int(now) + 30}))
    left = tok.seconds_left(now)
    assert left is not None and 29 <= left <= 30
    assert tok.summary(now)["seconds_left"] in (29, 30)


@pytest.mark.parametrize("bad", ["abc", "a.b", "a.!!!.c", ".x.y"])
def test_decode_claims_rejects_non_jwt(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_claims(bad)


def test_decode_claims_rejects_non_object_payload() -> None:
    with pytest.raises(ValueError, match="object"):
        decode_claims(make_jwt([1, 2]))  # type: ignore[arg-type]


def test_ice_object_and_bare_list() -> None:
    obj = {
        "iceServers": [
            {"urls": "stun:stun.example.com:3478"},
            {
                "urls": ["turn:turn.orga-ai.com:3478?transport=udp"],
                "username": "u",
                "credential": "c",
            },
        ]
    }
    servers = parse_ice_config(obj)
    assert servers[0].urls == ("stun:stun.example.com:3478",)
    assert servers[1].username == "u" and servers[1].credential == "c"
    assert parse_ice_config(obj["iceServers"]) == servers
    assert servers[0].to_json() == {"urls": ["stun:stun.example.com:3478"]}


@pytest.mark.parametrize(
    "bad", [{"x": 1}, {"iceServers": "stun:x"}, {"iceServers": [{"urls": []}]}, 3]
)
def test_ice_bad_shapes(bad: object) -> None:
    with pytest.raises(ResponseFormatError):
        parse_ice_config(bad)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "transport"),
    [
        ("stun:stun.l.example.com:19302", "stun", "stun.l.example.com", 19302, "udp"),
        ("turn:turn.orga-ai.com:3478?transport=udp", "turn", "turn.orga-ai.com", 3478, "udp"),
        ("turn:turn.orga-ai.com?transport=tcp", "turn", "turn.orga-ai.com", 3478, "tcp"),
        ("turns:turn.orga-ai.com:443?transport=tcp", "turns", "turn.orga-ai.com", 443, "tls"),
        ("turns:t.example", "turns", "t.example", 5349, "tls"),
        ("stun:[::1]:3478", "stun", "::1", 3478, "udp"),
    ],
)
def test_ice_url_parse(url: str, scheme: str, host: str, port: int, transport: str) -> None:
    parsed = IceUrl.parse(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.transport) == (
        scheme,
        host,
        port,
        transport,
    )


@pytest.mark.parametrize("url", ["http://x", "turn:", "turn:x?transport=sctp", "stun:x:99999"])
def test_ice_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        IceUrl.parse(url)


def test_ice_server_repr_hides_credential() -> None:
    assert "hunter2-secret" not in repr(IceServer(("turn:x",), "u", "hunter2-secret"))


def test_call_answer() -> None:
    ans = CallAnswer.from_json(
        {"conversation_id": "c1", "answer": {"sdp": "v=0\r\n", "type": "answer"}}
    )
    assert ans.conversation_id == "c1"
    with pytest.raises(ResponseFormatError, match="conversation_id"):
        CallAnswer.from_json({"answer": {"sdp": "v=0", "type": "answer"}})
    with pytest.raises(ResponseFormatError, match="answer"):
        CallAnswer.from_json({"conversation_id": "c1"})


def test_error_message_nested_envelope() -> None:
    body = {
        "error": {
            "message": {
                "error": {"message": "Incorrect or inactive API key provided.", "type": "x"}
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert error_message(json.dumps(body).encode()) == "Incorrect or inactive API key provided."
    # the inner envelope serialised as a string
    body["error"]["message"] = json.dumps(body["error"]["message"])  # type: ignore[index]
    assert error_message(json.dumps(body).encode()) == "Incorrect or inactive API key provided."


def test_error_message_other_shapes() -> None:
    assert (
        error_message(b'{"error": {"message": "Invalid ephemeral token"}}')
        == "Invalid ephemeral token"
    )
    assert error_message(b'{"detail": "Not authenticated"}') == "Not authenticated"
    detail = {"detail": [{"loc": ["query", "email"], "msg": "Field required"}]}
    assert error_message(json.dumps(detail).encode()) == "Field required"
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    assert error_message(html, "text/html") == "502 Bad Gateway"
    assert (
        error_message(b"upstream connect error   or disconnect")
        == "upstream connect error or disconnect"
    )
    long = error_message(b"x" * 1000)
    assert long is not None and len(long) <= 160
    assert error_message(b"") is None


def test_voices() -> None:
    assert find_voice("Sofía") is not None
    assert find_voice("sofia") is not None and find_voice("sofia").name == "Sofía"  # type: ignore[union-attr]
    assert find_voice("chloe") is not None  # exact case-insensitive match wins over Chloé
    assert find_voice("Nobody") is None
    assert suggest_voices("Sofa")[0] == "Sofía"
    assert {v.language for v in filter_voices("es")} == {"Español"}
    assert {v.language for v in filter_voices("French")} == {"Français"}
    assert len(filter_voices()) == 50
