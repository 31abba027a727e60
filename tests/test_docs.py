"""completions/ and docs/cli.md are generated from the app and must not drift."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from orga_cli.cli import app
from orga_cli.cli.docs import COMPLETION_FILES, completion_script, reference_with_usage

from .helpers.orga import REPO


@pytest.mark.parametrize("shell", sorted(COMPLETION_FILES))
def test_completions_are_fresh(shell: str) -> None:
    committed = (REPO / "completions" / COMPLETION_FILES[shell]).read_text()
    assert committed == completion_script(shell, app), (
        "run `python -m orga_cli.cli.docs` and commit"
    )


def test_cli_reference_is_fresh() -> None:
    reference = (REPO / "docs" / "cli.md").read_text()
    assert reference == reference_with_usage(reference, app), (
        "run `python -m orga_cli.cli.docs` and commit"
    )


def complete_bash(*words: str) -> list[str]:
    script = REPO / "completions" / COMPLETION_FILES["bash"]
    quoted = " ".join(f"'{w}'" for w in words)
    program = f'source {script}; COMP_WORDS=(orga {quoted}); COMP_CWORD={len(words)}; _orga; printf "%s\\n" "${{COMPREPLY[@]}}"'
    out = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()


def test_bash_completion_works() -> None:
    assert "token" in complete_bash("to")
    assert complete_bash("config", "s") == ["set"]
    assert complete_bash("config", "set", "") == ["base_url", "api_key", "email"]
    assert "--expires-in" in complete_bash("token", "--exp")
    assert complete_bash("completions", "") == ["bash", "zsh", "fish"]


@pytest.mark.parametrize(
    ("shell", "check"), [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])]
)
def test_other_shells_parse(shell: str, check: list[str]) -> None:
    if not shutil.which(check[0]):
        if os.environ.get("CI"):
            pytest.fail(f"{check[0]} is not installed (.ci/setup installs it)")
        pytest.skip(f"{check[0]} is not installed")
    path = REPO / "completions" / COMPLETION_FILES[shell]
    subprocess.run([*check, str(path)], check=True, timeout=30)
