"""`orga token` and `orga ice` against a real `orga serve` on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers.orga import KNOWN_KEY, Result, one_line_error, orga
from .helpers.sandbox import Sandbox
from .helpers.tokens import make_jwt

Cli = Callable[..., Result]


def test_token_prints_only_the_token(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(["token"], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1
    token = result.stdout.strip()
    assert token.count(".") == 2
    assert result.stderr == ""


def test_token_json(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(["token", "--json"], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"token", "token_type", "expires_at", "seconds_left", "claims"}
    assert data["token_type"] == "bearer"
    assert data["expires_at"].endswith("Z")
    assert 55 <= data["seconds_left"] <= 60
    assert set(data["claims"]) >= {"sub", "api_key_id", "scope", "iat", "exp"}
    assert data["claims"]["exp"] - data["claims"]["iat"] == 60


def test_token_expires_in_and_email(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(
        ["token", "--json", "--expires-in", "900", "--email", "ana+test@example.com"],
        env=sandbox.env(),
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["claims"]["exp"] - data["claims"]["iat"] == 900
    assert data["claims"]["sub"] != "sandbox-user"  # the email reached the server
    assert "email=ana%2Btest" in sandbox.log()  # "+" encoded, so the server reads it back intact


def test_token_decode(cli: Cli, sandbox: Sandbox) -> None:
    token = cli(["token"], env=sandbox.env()).stdout.strip()
    shown = cli(["token", "--decode", token])
    assert shown.exit_code == 0
    assert "api_key_id" in shown.stdout and "expires in" in shown.stdout
    piped = cli(["token", "--decode", "--json"], input=token + "\n")
    data = json.loads(piped.stdout)
    assert "token" not in data and data["claims"]["scope"] == "api"
    dash = cli(["token", "--decode", "-", "--json"], input=token)
    assert json.loads(dash.stdout)["claims"] == data["claims"]


def test_token_decode_rejects_garbage(cli: Cli) -> None:
    one_line_error(cli(["token", "--decode", "not-a-token"]), 2, "not a JWT")


def test_token_argument_needs_decode(cli: Cli) -> None:
    one_line_error(cli(["token", "abc"]), 2, "--decode")


def test_no_api_key(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(["token"], env={"ORGA_BASE_URL": sandbox.base_url})
    one_line_error(result, 2, "no API key", "ORGA_API_KEY")


def test_wrong_api_key_shows_innermost_message(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(
        ["token"],
        env={"ORGA_API_KEY": "sk_orga_ai_wrong_000000000000", "ORGA_BASE_URL": sandbox.base_url},
    )
    one_line_error(result, 3, "401", "Incorrect or inactive API key provided")
    assert "sk_orga_ai_wrong_000000000000" not in result.stderr


def test_require_email_422_and_404(cli: Cli, sandbox_with: Callable[..., Sandbox]) -> None:
    box = sandbox_with("--require-email", "--known-email", "ana@example.com")
    missing = cli(["token"], env=box.env())
    one_line_error(missing, 3, "422", "Field required", "--email")
    unknown = cli(["token", "--email", "bob@example.com"], env=box.env())
    one_line_error(unknown, 3, "404", "User not found")
    ok = cli(["token"], env=box.env(ORGA_USER_EMAIL="ana@example.com"))
    assert ok.exit_code == 0, ok.stderr


def test_ice_table_masks_and_json_includes_credentials(
    cli: Cli, sandbox_with: Callable[..., Sandbox]
) -> None:
    box = sandbox_with(
        "--ice-server",
        "stun:127.0.0.1:3478",
        "--ice-server",
        "turn:127.0.0.1:3478?transport=udp",
        "--ice-server",
        "turns:127.0.0.1:5349",
        "--ice-username",
        "alice",
        "--ice-credential",
        "s3cret-credential-value",
    )
    table = cli(["ice"], env=box.env(COLUMNS="200"))
    assert table.exit_code == 0, table.stderr
    assert "turn:127.0.0.1:3478?transport=udp" in table.stdout
    assert "s3cret-credential-value" not in table.stdout
    assert "s3c…alue" in table.stdout
    assert "tls" in table.stdout
    as_json = cli(["ice", "--json"], env=box.env())
    data = json.loads(as_json.stdout)
    assert data["iceServers"][0] == {"urls": ["stun:127.0.0.1:3478"]}
    assert data["iceServers"][1]["credential"] == "s3cret-credential-value"
    assert all(isinstance(s["urls"], list) for s in data["iceServers"])


def test_ice_with_token_from_stdin_and_env(cli: Cli, sandbox: Sandbox) -> None:
    token = cli(["token"], env=sandbox.env()).stdout.strip()
    base = {"ORGA_BASE_URL": sandbox.base_url}
    via_stdin = cli(["ice", "--json", "--token", "-"], env=base, input=token)
    assert via_stdin.exit_code == 0, via_stdin.stderr
    assert json.loads(via_stdin.stdout) == {"iceServers": []}
    via_env = cli(["ice", "--json"], env={**base, "ORGA_TOKEN": token})
    assert via_env.exit_code == 0, via_env.stderr


def test_ice_expired_token_sends_nothing(cli: Cli, sandbox: Sandbox) -> None:

    token = make_jwt({"exp": int(time.time()) - 5})  # a token whose exp has passed
    before = sandbox.log().count("ice-config")
    result = cli(["ice", "--token", token], env={"ORGA_BASE_URL": sandbox.base_url})
    one_line_error(result, 2, "expired", "s ago")
    time.sleep(0.2)
    assert sandbox.log().count("ice-config") == before


def test_ice_invalid_token(cli: Cli, sandbox: Sandbox) -> None:

    forged = make_jwt({"exp": int(time.time()) + 60})
    result = cli(["ice", "--token", forged], env={"ORGA_BASE_URL": sandbox.base_url})
    one_line_error(result, 3, "401", "Invalid ephemeral token", "orga token")


def test_http_to_remote_host_is_refused(cli: Cli) -> None:
    result = cli(
        ["token"], env={"ORGA_API_KEY": KNOWN_KEY, "ORGA_BASE_URL": "http://api.example.com"}
    )
    one_line_error(result, 2, "clear text", "--insecure-http")


def test_verbose_trace_masks_the_key(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(["token", "-v"], env=sandbox.env())
    assert result.exit_code == 0
    assert "Authorization: Bearer sk_…ak42" in result.stderr
    assert "← 200 OK" in result.stderr
    assert KNOWN_KEY not in result.stderr + result.stdout


def test_key_never_appears_anywhere(cli: Cli, sandbox: Sandbox, tmp_path: Path) -> None:
    """Run every command that touches the key, in every mode, and look for it."""
    env = sandbox.env()
    runs = [
        ["token", "-v"],
        ["token", "--json", "-vv"],
        ["ice", "-v"],
        ["ice", "--json", "-v"],
        ["config", "list"],
        ["config", "list", "--json"],
        ["token", "--base-url", "http://127.0.0.1:9"],  # connection refused
        ["token", "--base-url", "http://example.com"],  # refused: clear text
        ["token", "--api-key", KNOWN_KEY + "x", "-v"],  # wrong key, given as a flag
    ]
    captured = ""
    for args in runs:
        result = cli(args, env=env)
        captured += result.stdout + result.stderr
        if result.exception is not None:
            captured += repr(result.exception)
    cli(["config", "set", "api_key", KNOWN_KEY])
    for args in (["config", "list"], ["config", "list", "--json"], ["token", "-v"]):
        result = cli(args, env={"ORGA_BASE_URL": sandbox.base_url})
        captured += result.stdout + result.stderr
    assert "sk_…ak42" in captured
    assert KNOWN_KEY not in captured
    assert KNOWN_KEY not in sandbox.log()


def test_installed_orga_runs_as_a_subprocess(sandbox: Sandbox) -> None:
    import os
    import shutil
    import subprocess
    import sys

    exe = shutil.which("orga") or str(Path(sys.executable).parent / "orga")
    env = {**os.environ, "ORGA_API_KEY": sandbox.api_key, "ORGA_BASE_URL": sandbox.base_url}
    out = subprocess.run([exe, "token"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().count(".") == 2
    version = orga("--version", timeout=30)
    assert version.stdout.startswith("orga ")


def test_cli_import_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, orga_cli, orga_cli.cli, orga_cli.api, orga_cli.config, orga_cli.cli.render,"
        " orga_cli.sandbox;"
        "heavy = [m for m in ('aiortc', 'av', 'numpy', 'sounddevice', 'aiohttp', 'rich')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("args", [["voices", "--json"], ["voices", "-l", "it"]])
def test_voices(cli: Cli, args: list[str]) -> None:
    result = cli(args)
    assert result.exit_code == 0
    if "--json" in args:
        data = json.loads(result.stdout)
        assert len(data) == 50 and data[0]["name"] == "Sofía"
    else:
        assert "Giada" in result.stdout and "Sofía" not in result.stdout


def test_voices_unknown_language(cli: Cli) -> None:
    one_line_error(cli(["voices", "--language", "klingon"]), 2, "klingon", "English")
