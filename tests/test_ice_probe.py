"""`orga ice --probe` and relay-only calls against a real TURN server (coturn) on loopback."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers.faults import free_port, self_signed_cert, wait_for_port
from .helpers.orga import Result, orga
from .helpers.sandbox import Sandbox
from .helpers.turn import TURN_PASSWORD, TURN_USER, Turn

pytestmark = pytest.mark.turn
Cli = Callable[..., Result]


def test_probe_finds_a_relay(cli: Cli, coturn: Turn) -> None:
    result = cli(
        [
            "ice",
            "--probe",
            "--json",
            "--server",
            coturn.url,
            "--username",
            TURN_USER,
            "--credential",
            TURN_PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.stderr
    [probe] = json.loads(result.stdout)
    assert probe["dns"]["ok"] and probe["dns"]["addresses"] == ["127.0.0.1"]
    assert probe["stun"]["ok"] and probe["stun"]["address"].startswith("127.0.0.1:")
    assert probe["stun"]["ms"] >= 0
    by_transport = {t["transport"]: t for t in probe["turn"]}
    assert set(by_transport) == {"udp", "tcp"}
    for turn in by_transport.values():
        assert turn["ok"] and turn["relay"].startswith("127.0.0.1:") and turn["ms"] > 0
    assert "TURN works over TCP, UDP" in result.stderr
    assert TURN_PASSWORD not in result.stdout + result.stderr


def test_probe_wrong_password(cli: Cli, coturn: Turn) -> None:
    result = cli(
        [
            "ice",
            "--probe",
            "--server",
            coturn.url,
            "--username",
            TURN_USER,
            "--credential",
            "wrong-one",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 6
    assert "401" in result.stdout and "wrong credentials" in result.stdout
    line = [x for x in result.stderr.splitlines() if x.startswith("orga:")]
    assert line and "refused the credentials (401)" in line[0]


def test_unreachable_server_ends_within_the_bound(cli: Cli, coturn: Turn) -> None:
    started = time.monotonic()
    result = cli(
        [
            "ice",
            "--probe",
            "--json",
            "--timeout",
            "1.5",
            "--server",
            coturn.url,
            "--server",
            "turn:127.0.0.3:3478?transport=udp",
            "--username",
            TURN_USER,
            "--credential",
            TURN_PASSWORD,
        ]
    )
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 1.0  # the bound, plus process-free overhead of an in-process run
    assert result.exit_code == 0  # one server still gives a relay
    results = json.loads(result.stdout)
    dead = next(r for r in results if "127.0.0.3" in r["url"])
    assert dead["turn"][0]["error"] == "timeout" and dead["stun"]["error"] == "timeout"
    assert "no relay from turn:127.0.0.3:3478?transport=udp" in result.stderr


def test_probe_uses_the_api_servers(
    cli: Cli, coturn: Turn, sandbox_with: Callable[..., Sandbox]
) -> None:
    box = sandbox_with(
        "--ice-server", coturn.url, "--ice-username", TURN_USER, "--ice-credential", TURN_PASSWORD
    )
    result = cli(
        ["ice", "--probe", "--json"],
        env={"ORGA_API_KEY": box.api_key, "ORGA_BASE_URL": box.base_url},
    )
    assert result.exit_code == 0, result.stderr
    assert all(t["ok"] for t in json.loads(result.stdout)[0]["turn"])


def test_no_servers_at_all(cli: Cli, sandbox: Sandbox) -> None:
    result = cli(
        ["ice", "--probe"], env={"ORGA_API_KEY": sandbox.api_key, "ORGA_BASE_URL": sandbox.base_url}
    )
    assert result.exit_code == 6
    assert "no ICE servers configured" in result.stderr


def test_relay_only_call_through_coturn(coturn: Turn, sandbox_with: Callable[..., Sandbox]) -> None:
    box = sandbox_with(
        "--ice-server", coturn.url, "--ice-username", TURN_USER, "--ice-credential", TURN_PASSWORD
    )
    out = orga(
        "call", "--relay-only", "--audio-in", "tone:440", "--no-video", "--no-speaker",
        "--duration", "3", "--json", "-v", env=box.env(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["local_candidate"].startswith("relay ")
    assert summary["packets_received"] > 100
    assert f"using TURN {coturn.url}" in out.stderr
    assert TURN_PASSWORD not in out.stderr + out.stdout


def test_relay_only_without_turn_is_refused(sandbox: Sandbox) -> None:
    out = orga(
        "call", "--relay-only", "--audio-in", "tone:440", "--no-video", "--no-speaker",
        env=sandbox.env(),
    )  # fmt: skip
    assert out.returncode == 6
    assert "--relay-only needs a TURN server" in out.stderr


def test_turns_with_an_untrusted_certificate(cli: Cli, tmp_path: Path) -> None:
    """turns: goes over TLS; a self-signed server certificate is a TLS error, said as such."""
    import shutil

    if not shutil.which("turnserver"):
        pytest.skip("coturn is not installed")
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            f"--tls-listening-port={port}",
            "--no-udp",
            "--no-tcp",
            "--no-dtls",
            f"--cert={cert}",
            f"--pkey={key}",
            "--relay-ip=127.0.0.1",
            "--lt-cred-mech",
            f"--user={TURN_USER}:{TURN_PASSWORD}",
            "--realm=orga.test",
            "--no-cli",
            f"--pidfile={tmp_path / 'p'}",
            "--allow-loopback-peers",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        result = cli(
            [
                "ice",
                "--probe",
                "--json",
                "--server",
                f"turns:127.0.0.1:{port}",
                "--username",
                TURN_USER,
                "--credential",
                TURN_PASSWORD,
            ]
        )
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.exit_code == 6
    [probe] = json.loads(result.stdout)
    assert probe["stun"] is None  # no UDP STUN for a TLS-only URL
    assert [t["transport"] for t in probe["turn"]] == ["tls"]
    assert probe["turn"][0]["error"].startswith("TLS error")
