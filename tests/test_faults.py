"""Network and server faults: each one line on stderr, a documented exit code, no traceback."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orga_cli.api import OrgaClient
from orga_cli.errors import ApiError, NetworkError

from .helpers.faults import ScriptedServer, free_port, response, self_signed_cert
from .helpers.orga import KNOWN_KEY, Result, account, one_line_error
from .helpers.sandbox import Sandbox

Cli = Callable[..., Result]
Scripted = Callable[[list[bytes | None]], ScriptedServer]
GOOD = json.dumps({"ephemeral_token": "aaa.bbb.ccc"}).encode()


def test_503_then_success_is_retried(cli: Cli, scripted: Scripted) -> None:
    server = scripted(
        [
            response(503, b"busy", headers={"Retry-After": "0"}),
            response(
                502,
                b"<html><title>502 Bad Gateway</title></html>",
                content_type="text/html",
                headers={"Retry-After": "0"},
            ),
            response(200, GOOD),
        ]
    )
    result = cli(["token"], env=account(server.base_url))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "aaa.bbb.ccc\n"
    assert len(server.requests) == 3


def test_5xx_three_times_gives_up(cli: Cli, scripted: Scripted) -> None:
    body = json.dumps({"error": {"message": "database is down"}}).encode()
    server = scripted([response(500, body, headers={"Retry-After": "0"})] * 3)
    result = cli(["token"], env=account(server.base_url))
    one_line_error(result, 4, "500", "after 3 tries", "database is down")
    assert len(server.requests) == 3


def test_429_honours_retry_after_then_says_so(cli: Cli, scripted: Scripted) -> None:
    server = scripted(
        [response(429, b'{"error": {"message": "slow down"}}', headers={"Retry-After": "0"})] * 3
    )
    result = cli(["token"], env=account(server.base_url))
    one_line_error(result, 3, "rate limited", "3 tries", "slow down")


def test_429_with_long_retry_after_is_not_waited_out(cli: Cli, scripted: Scripted) -> None:
    server = scripted([response(429, b"{}", headers={"Retry-After": "3600"})])
    result = cli(["token"], env=account(server.base_url))
    one_line_error(result, 3, "rate limited", "3600 s")
    assert len(server.requests) == 1


async def test_backoff_is_exponential_with_jitter() -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"message": "x"}})

    client = OrgaClient(
        "https://api.example.test",
        KNOWN_KEY,
        transport=httpx.MockTransport(handler),
        sleep=fake_sleep,
    )
    with pytest.raises(NetworkError):
        await client.create_token()
    await client.aclose()
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0


@pytest.mark.parametrize(
    ("reply", "fragments"),
    [
        (
            response(200, b"<html><body>Welcome to nginx</body></html>", content_type="text/html"),
            ["200", "HTML", "Welcome to nginx"],
        ),
        (response(200, b"this is not json"), ["200", "not JSON"]),
        (response(200, b'{"token_type": "bearer"}'), ["no ephemeral_token"]),
        (response(200, b'{"ephemeral_token": "abc', content_length=400), ["closed the connection"]),
    ],
    ids=["html", "not-json", "no-token", "truncated"],
)
def test_unusable_200(cli: Cli, scripted: Scripted, reply: bytes, fragments: list[str]) -> None:
    server = scripted([reply])
    one_line_error(cli(["token"], env=account(server.base_url)), 4, *fragments)


def test_ice_answer_without_servers(cli: Cli, scripted: Scripted) -> None:
    server = scripted([response(200, b'{"something": []}')])
    result = cli(
        ["ice", "--token", "opaque-token-1234567890"], env={"ORGA_BASE_URL": server.base_url}
    )
    one_line_error(result, 4, "no iceServers")


def test_ice_bare_list_form(cli: Cli, scripted: Scripted) -> None:
    server = scripted([response(200, b'[{"urls": "stun:127.0.0.1:3478"}]')])
    result = cli(
        ["ice", "--json", "--token", "opaque-token-1234567890"],
        env={"ORGA_BASE_URL": server.base_url},
    )
    assert json.loads(result.stdout) == {"iceServers": [{"urls": ["stun:127.0.0.1:3478"]}]}


def test_connection_refused(cli: Cli) -> None:
    port = free_port()
    result = cli(["token"], env=account(f"http://127.0.0.1:{port}"))
    one_line_error(result, 4, "refused", f"127.0.0.1:{port}")


def test_timeout(cli: Cli, scripted: Scripted) -> None:
    server = scripted([None])  # accepts, never answers
    result = cli(["token", "--timeout", "0.5"], env=account(server.base_url))
    one_line_error(result, 4, "no answer", "0.5 s", "--timeout")


def test_dns_failure(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # Resolving a real name would leave this machine: make the resolver fail instead.
    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    result = cli(["token"], env=account("https://api.orga-ai.invalid"))
    one_line_error(result, 4, "cannot resolve host", "api.orga-ai.invalid")


def test_tls_to_a_plain_http_port(cli: Cli, sandbox: Sandbox) -> None:
    https_url = sandbox.base_url.replace("http://", "https://")
    result = cli(["token"], env=account(https_url))
    one_line_error(result, 4, "TLS")


def test_tls_untrusted_certificate(cli: Cli, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    import threading

    def serve() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True):
                pass
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    result = cli(["token"], env=account(f"https://127.0.0.1:{port}"))
    thread.join(5)
    listener.close()
    one_line_error(result, 4, "TLS certificate", "not trusted", "SSL_CERT_FILE")


def test_debug_shows_the_traceback(cli: Cli) -> None:
    result = cli(["token", "--debug"], env=account(f"http://127.0.0.1:{free_port()}"))
    assert result.exit_code != 0
    assert isinstance(result.exception, NetworkError)


async def test_library_raises_the_error_tree(sandbox: Sandbox) -> None:
    async with OrgaClient(sandbox.base_url, "sk_orga_ai_wrong_key_value_123") as client:
        with pytest.raises(ApiError) as info:
            await client.create_token()
    assert info.value.status == 401
    assert "Incorrect or inactive API key provided" in info.value.message
