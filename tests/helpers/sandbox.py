"""`orga serve` as a process on loopback, as a user or another client meets it."""

from __future__ import annotations

import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .faults import stop_process
from .orga import KNOWN_KEY, ORGA, clean_env


@dataclass
class Sandbox:
    base_url: str
    api_key: str
    process: subprocess.Popen[str]
    stderr_path: Path

    def log(self) -> str:
        return self.stderr_path.read_text()

    def env(self, **extra: str) -> dict[str, str]:
        """ORGA_API_KEY and ORGA_BASE_URL for a client of this sandbox, and *extra*."""
        return {"ORGA_API_KEY": self.api_key, "ORGA_BASE_URL": self.base_url, **extra}


def start_sandbox(tmp: Path, *args: str, api_key: str = KNOWN_KEY) -> Sandbox:
    """Run `orga serve --port 0 ...` and read its base URL.

    Its load shedding is off unless *args* set it: on a CI machine busy with four test
    workers its loop may run late, and a 429 would fail whichever test called then (the
    shedding has tests of its own)."""
    stderr_path = tmp / f"serve-{time.monotonic_ns()}.log"
    err = stderr_path.open("w")
    shedding = [] if "--max-loop-lag" in args else ["--max-loop-lag", "0"]
    cmd = [*ORGA, "serve", "--port", "0", "--api-key", api_key, *shedding, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=clean_env())
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if not ready:
        proc.kill()
        raise RuntimeError(f"orga serve did not start: {stderr_path.read_text()}")
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"orga serve printed {line!r}: {stderr_path.read_text()}")
    return Sandbox(line, api_key, proc, stderr_path)


def stop_sandbox(sandbox: Sandbox) -> None:
    stop_process(sandbox.process, 10)
