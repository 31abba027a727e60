"""The fixtures: the helpers of tests/helpers/ turned into pytest fixtures, and the test
process moved into a network namespace of its own."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orga_cli.cli import terminal
from orga_cli.errors import secrets

from .helpers.faults import Reply, ScriptedServer
from .helpers.machine import machine
from .helpers.netns import OUTAGE_TABLE, drop_udp, isolate_network, nftables_problem
from .helpers.orga import KNOWN_KEY, Result, invoke
from .helpers.pulse import Pulse, missing_for_devices, running_pulse
from .helpers.sandbox import Sandbox, start_sandbox, stop_sandbox
from .helpers.turn import Turn, running_coturn


def pytest_configure(config: pytest.Config) -> None:
    config._orga_network = isolate_network()  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str:
    return f"network: {getattr(config, '_orga_network', '?')}"


def _missing(reason: str | None) -> None:
    """Skip where a service is missing; fail under CI, where everything must be there."""
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the user's config or ORGA_* environment."""
    for name in list(os.environ):
        if name.startswith("ORGA_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("ORGA_CONFIG", str(config))
    secrets.clear()
    # A console reads COLUMNS when it is made: each test gets consoles of its own.
    terminal.forget()
    return config


@pytest.fixture(autouse=True)
def share_the_machine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests marked `alone` have the machine's cores to themselves; the rest share them."""
    folder = tmp_path_factory.getbasetemp().parent  # every xdist worker's basetemp is in it
    with machine(folder, alone=request.node.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One `orga serve` for the whole session (tests that need flags: sandbox_with)."""
    box = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield box
    stop_sandbox(box)


@pytest.fixture
def sandbox_with(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with extra `orga serve` flags, stopped after the test."""
    started: list[Sandbox] = []

    def start(*args: str, api_key: str = KNOWN_KEY) -> Sandbox:
        box = start_sandbox(tmp_path, *args, api_key=api_key)
        started.append(box)
        return box

    yield start
    for box in started:
        stop_sandbox(box)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """The CLI in-process (Typer's CliRunner): exit code, stdout and stderr apart."""
    return invoke


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Reply]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(replies: list[Reply]) -> ScriptedServer:
        server = ScriptedServer(replies)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulse]:
    _missing(missing_for_devices())
    with running_pulse(tmp_path_factory.mktemp("pulse")) as box:
        yield box


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Turn]:
    import shutil

    _missing(None if shutil.which("turnserver") else "coturn is not installed (Debian: coturn)")
    with running_coturn(tmp_path) as turn:
        yield turn


@pytest.fixture
def udp_blackhole() -> Iterator[Callable[[bool], None]]:
    """Drop, then restore, all UDP in this (the tests' own) network namespace."""
    problem = nftables_problem()
    if problem:
        pytest.skip(problem)
    yield drop_udp
    subprocess.run(
        ["nft", "delete", "table", "inet", OUTAGE_TABLE], capture_output=True, timeout=10
    )
