"""`orga serve` as a server: CORS, validation, error bodies, logs, and the official Node SDK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .helpers.orga import KNOWN_KEY, REPO, orga, start_orga
from .helpers.sandbox import Sandbox

ORIGIN = "https://app.example.com"


def mint(box: Sandbox) -> str:
    r = httpx.post(
        f"{box.base_url}/v1/realtime/client-secrets",
        headers={"Authorization": f"Bearer {box.api_key}"},
    )
    return str(r.json()["ephemeral_token"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/realtime/client-secrets"),
        ("GET", "/v1/realtime/ice-config"),
        ("POST", "/v1/realtime/calls"),
    ],
)
def test_cors_preflight(sandbox: Sandbox, method: str, path: str) -> None:
    r = httpx.options(
        sandbox.base_url + path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert method in r.headers["access-control-allow-methods"]
    allowed = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_cors_headers_on_success_and_errors(sandbox: Sandbox) -> None:
    ok = httpx.post(
        f"{sandbox.base_url}/v1/realtime/client-secrets",
        headers={"Authorization": f"Bearer {KNOWN_KEY}", "Origin": ORIGIN},
    )
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    for r in (
        httpx.get(f"{sandbox.base_url}/v1/realtime/ice-config", headers={"Origin": ORIGIN}),
        httpx.get(
            f"{sandbox.base_url}/v1/realtime/ice-config",
            headers={"Origin": ORIGIN, "Authorization": "Bearer x"},
        ),
        httpx.get(f"{sandbox.base_url}/nope", headers={"Origin": ORIGIN}),
    ):
        assert r.status_code >= 400
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "message" in r.json()["error"]


def test_token_response_form_and_empty_json_body(sandbox: Sandbox) -> None:
    r = httpx.post(
        f"{sandbox.base_url}/v1/realtime/client-secrets",
        headers={"Authorization": f"Bearer {KNOWN_KEY}", "Content-Type": "application/json"},
    )
    body = r.json()
    assert set(body) == {"ephemeral_token", "token_type", "expires_at"}
    assert body["token_type"] == "bearer"
    assert "+" not in body["expires_at"] and not body["expires_at"].endswith(
        "Z"
    )  # the reference's form


def test_error_bodies(sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/v1/realtime/client-secrets"
    nested = httpx.post(url, headers={"Authorization": "Bearer sk_orga_ai_bad"}).json()
    assert (
        nested["error"]["message"]["error"]["message"] == "Incorrect or inactive API key provided."
    )
    missing = httpx.post(url)
    assert missing.status_code == 403 and missing.json()["error"]["message"] == "Not authenticated"
    bad_ttl = httpx.post(
        url, headers={"Authorization": f"Bearer {KNOWN_KEY}"}, json={"expires_in": "soon"}
    )
    assert bad_ttl.status_code == 400 and bad_ttl.json()["error"]["param"] == "expires_in"
    # what no route takes: 404 for a path it does not have, 405 for a method it does not
    nowhere = httpx.get(f"{sandbox.base_url}/v1/nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["message"] == "Not Found"
    wrong = httpx.delete(f"{sandbox.base_url}/v1/realtime/calls")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "offer"),
        ({"offer": {"sdp": "hello", "type": "offer"}}, "offer.sdp"),
        ({"offer": {"sdp": "v=0\r\n", "type": "answer"}}, "offer.type"),
        ({"offer": {"sdp": "v=0\r\n", "type": "offer", "candidates": [{}]}}, "offer.candidates[0]"),
        (
            {"offer": {"sdp": "v=0\r\n", "type": "offer"}, "params": {"temperature": 3}},
            "params.temperature",
        ),
        (
            {"offer": {"sdp": "v=0\r\n", "type": "offer"}, "params": {"voice": "Nobody"}},
            "params.voice",
        ),
        (
            {"offer": {"sdp": "v=0\r\n", "type": "offer"}, "params": {"model": "gpt"}},
            "params.model",
        ),
        (
            {"offer": {"sdp": "v=0\r\n", "type": "offer"}, "params": {"modalities": ["smell"]}},
            "params.modalities",
        ),
    ],
)
def test_calls_validation_names_the_field(
    sandbox: Sandbox, body: dict[str, object], param: str
) -> None:
    r = httpx.post(
        f"{sandbox.base_url}/v1/realtime/calls",
        headers={"Authorization": f"Bearer {mint(sandbox)}"},
        json=body,
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param
    assert param in r.json()["error"]["message"]


def test_calls_needs_a_valid_token(sandbox: Sandbox) -> None:
    r = httpx.post(
        f"{sandbox.base_url}/v1/realtime/calls", headers={"Authorization": "Bearer nope"}, json={}
    )
    assert r.status_code == 401 and r.json()["error"]["message"] == "Invalid ephemeral token"


def test_log_line_per_request_with_bearer_masked(sandbox: Sandbox) -> None:
    token = mint(sandbox)
    httpx.get(
        f"{sandbox.base_url}/v1/realtime/ice-config", headers={"Authorization": f"Bearer {token}"}
    )
    log = sandbox.log()
    assert "GET /v1/realtime/ice-config -> 200" in log
    assert KNOWN_KEY not in log and token not in log
    assert f"auth=Bearer {token[:3]}…{token[-4:]}" in log


def test_serve_generates_and_shows_a_key(tmp_path: Path) -> None:
    import select

    proc = start_orga("serve")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:")
        line = proc.stderr.readline()
        assert line.startswith("sandbox API key: sk_orga_ai_")
        key = line.split(": ", 1)[1].strip()
        r = httpx.post(
            f"{base}/v1/realtime/client-secrets", headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM is a clean stop


def test_serve_port_in_use(cli: Callable[..., object], sandbox: Sandbox) -> None:
    port = sandbox.base_url.rsplit(":", 1)[1]
    out = orga("serve", "--port", port, timeout=30)
    assert out.returncode == 2
    assert "cannot listen" in out.stderr and "Traceback" not in out.stderr


def test_serve_rejects_turn_without_credentials() -> None:
    out = orga("serve", "--ice-server", "turn:127.0.0.1:3478", timeout=30)
    assert out.returncode == 2 and "--ice-username" in out.stderr


NODE_DIR = REPO / "tests" / "node"


@pytest.mark.node
def test_official_node_sdk(sandbox_with: Callable[..., Sandbox]) -> None:
    node = shutil.which("node")
    installed = (NODE_DIR / "node_modules" / "@orga-ai" / "node").is_dir()
    if not node or not installed:
        reason = "Node.js or tests/node/node_modules missing (run `npm ci --prefix tests/node`)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    box = sandbox_with(
        "--require-email",
        "--known-email",
        "dev@example.com",
        "--ice-server",
        "stun:127.0.0.1:3478",
        "--ice-server",
        "turn:127.0.0.1:3478?transport=udp",
        "--ice-username",
        "u1",
        "--ice-credential",
        "p1-credential",
    )
    out = subprocess.run(
        [node, str(NODE_DIR / "session_config.js"), box.base_url, box.api_key, "dev@example.com"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    assert config["ephemeralToken"].count(".") == 2
    assert config["iceServers"][1] == {
        "urls": ["turn:127.0.0.1:3478?transport=udp"],
        "username": "u1",
        "credential": "p1-credential",
    }
    wrong = subprocess.run(
        [
            node,
            str(NODE_DIR / "session_config.js"),
            box.base_url,
            "sk_orga_ai_wrong",
            "dev@example.com",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert wrong.returncode == 1 and "OrgaAIAuthenticationError" in wrong.stderr


@pytest.mark.browser
def test_a_browser_on_another_origin_calls_all_three_endpoints(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Headless Chromium on one origin, the sandbox on another: preflights pass, errors are readable."""
    import http.server
    import threading

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed (Debian: chromium)")
    page_dir = REPO / "tests" / "browser"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(page_dir), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{site.server_address[1]}/cors.html?base={sandbox.base_url}&key={sandbox.api_key}"
        out = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        site.shutdown()
    dom = out.stdout.split('<pre id="out">', 1)[-1].split("</pre>", 1)[0]  # what the page wrote
    assert "token 200 3" in dom, out.stdout[:2000]
    assert 'ice 200 {"iceServers":[]}' in dom
    assert "calls 400 offer.sdp" in dom
    assert "badkey 401 Incorrect or inactive API key provided." in dom
    assert "ERROR" not in dom


def test_a_background_task_s_error_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """aiortc's SCTP transmit task fails with "not connected" when a call's DTLS closes
    under it and nobody awaits it: the sandbox logs one line, not asyncio's traceback."""
    import asyncio
    import gc
    import logging

    from orga_cli.sandbox import background_errors_in_one_line

    async def main() -> None:
        background_errors_in_one_line(asyncio.get_running_loop())

        async def _transmit() -> None:
            raise ConnectionError("Cannot send encrypted data, not connected")

        task = asyncio.ensure_future(_transmit())
        await asyncio.sleep(0.01)
        del task
        gc.collect()  # the unretrieved exception is reported when the task goes

    with caplog.at_level(logging.INFO, logger="orga_cli.sandbox"):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records]
    assert any("ConnectionError in " in m and "not connected" in m for m in lines), lines
    assert not any(r.exc_info for r in caplog.records)
