"""Running `orga`: in a subprocess (the installed program as a user runs it) or in-process
(Typer's CliRunner), with an environment that holds no user config and no sound server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORGA = (sys.executable, "-m", "orga_cli")
KNOWN_KEY = "sk_orga_ai_test_" + "K3yThatMustNeverLeak42"
REPO = Path(__file__).resolve().parent.parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ORGA_* (no user config) and without a sound server.

    PULSE_* variables are dropped, and PULSE_SERVER points nowhere, so that a desktop's
    own PulseAudio (found at its default socket) does not give a test real devices;
    tests that want the fixture's PulseAudio pass its environment in *extra*.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "PULSE_"))}
    env["PULSE_SERVER"] = "unix:/nonexistent/orga-tests-have-no-sound-server"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def account(base_url: str, api_key: str = KNOWN_KEY, **extra: str) -> dict[str, str]:
    """ORGA_API_KEY and ORGA_BASE_URL for a server (a sandbox, a scripted one), and *extra*."""
    return {"ORGA_API_KEY": api_key, "ORGA_BASE_URL": base_url, **extra}


def orga(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`orga ARGS` to its end; *env* is added to ``clean_env()``."""
    return subprocess.run(
        [*ORGA, *args],
        capture_output=True,
        text=True,
        input=input,
        env=clean_env(**(env or {})),
        timeout=timeout,
    )


def start_orga(
    *args: str, env: dict[str, str] | None = None, stdin: Any = None
) -> subprocess.Popen[str]:
    """`orga ARGS` in the background, stdout and stderr piped; *env* added to clean_env()."""
    return subprocess.Popen(
        [*ORGA, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=stdin,
        text=True,
        env=clean_env(**(env or {})),
    )


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The --json summary a call printed (empty when it printed none)."""
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (--events, --stats, --transcript x.jsonl)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """Read proc's stderr until a line contains *text*; returns what was read."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
    assert text in seen, seen
    return seen


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def invoke(args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run the CLI in-process; stdout and stderr kept apart."""
    from typer.testing import CliRunner

    from orga_cli.cli import app

    result = CliRunner().invoke(app, args, env=env, input=input, prog_name="orga")
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return Result(result.exit_code, result.stdout, result.stderr, exc)


def one_line_error(result: Result, code: int, *fragments: str) -> None:
    """The command failed with *code* and said so in one line naming *fragments*."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("orga: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
