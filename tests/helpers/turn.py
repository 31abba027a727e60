"""coturn, a real TURN server, on loopback with a static user and a loopback relay range."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .faults import free_port, stop_process, wait_for_port

TURN_USER, TURN_PASSWORD = "orga", "turn-secret-credential"


@dataclass
class Turn:
    port: int
    url: str  # turn:127.0.0.1:PORT
    log: Path


@contextlib.contextmanager
def running_coturn(folder: Path) -> Iterator[Turn]:
    port = free_port()
    log = folder / "turn.log"
    relay_base = 40000 + (port % 200) * 100
    proc = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--relay-ip=127.0.0.1",
            f"--min-port={relay_base}",
            f"--max-port={relay_base + 99}",
            "--lt-cred-mech",
            f"--user={TURN_USER}:{TURN_PASSWORD}",
            "--realm=orga.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--fingerprint",
            "--log-file=stdout",
            "--simple-log",
            f"--pidfile={folder / 'turn.pid'}",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port)
    try:
        yield Turn(port, f"turn:127.0.0.1:{port}", log)
    finally:
        stop_process(proc)
