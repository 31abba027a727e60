"""The code checks the README names: ruff (lint and format) and mypy --strict on orga_cli."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .helpers.orga import REPO


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", "orga_cli", "tests", "bench"],
        ["ruff", "format", "--check", "orga_cli", "tests", "bench"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
@pytest.mark.timeout(180)
def test_checks_pass(cmd: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", *cmd], cwd=REPO, capture_output=True, text=True, timeout=170
    )
    assert out.returncode == 0, out.stdout + out.stderr
