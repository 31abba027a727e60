"""Config profiles: precedence with sources, 0600 files, refusal of readable files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from orga_cli.config import ConfigFile, Settings

from .helpers.orga import KNOWN_KEY, Result, one_line_error
from .helpers.sandbox import Sandbox

Cli = Callable[..., Result]


def test_set_writes_0600_and_list_shows_sources(cli: Cli, isolated: Path) -> None:
    assert cli(["config", "set", "api_key", KNOWN_KEY]).exit_code == 0
    assert cli(["config", "set", "email", "ana@example.com"]).exit_code == 0
    assert stat.S_IMODE(isolated.stat().st_mode) == 0o600
    listed = cli(["config", "list", "--json"], env={"ORGA_USER_EMAIL": "env@example.com"})
    data = json.loads(listed.stdout)
    assert data["settings"]["api_key"] == {"value": "sk_…ak42", "source": "profile default"}
    assert data["settings"]["email"] == {
        "value": "env@example.com",
        "source": "env ORGA_USER_EMAIL",
    }
    assert data["settings"]["base_url"]["source"] == "default"
    assert KNOWN_KEY not in listed.stdout + listed.stderr


def test_precedence_flag_env_profile_default(isolated: Path) -> None:
    file = ConfigFile(isolated)
    file.set("default", "base_url", "http://127.0.0.1:1")
    env = {"ORGA_CONFIG": str(isolated)}
    assert Settings(env=env, file=file).get("base_url").source == "profile default"
    env["ORGA_BASE_URL"] = "http://127.0.0.1:2"
    got = Settings(env=env, file=file).get("base_url")
    assert (got.value, got.source) == ("http://127.0.0.1:2", "env ORGA_BASE_URL")
    got = Settings({"base_url": "http://127.0.0.1:3"}, env=env, file=file).get("base_url")
    assert (got.value, got.source) == ("http://127.0.0.1:3", "flag")
    assert (
        Settings(env={}, file=ConfigFile(isolated.parent / "none.toml")).get("base_url").source
        == "default"
    )


def test_named_profiles_and_use(cli: Cli, sandbox: Sandbox) -> None:
    assert cli(["config", "set", "api_key", KNOWN_KEY, "--profile", "work"]).exit_code == 0
    assert cli(["config", "set", "base_url", sandbox.base_url, "-p", "work"]).exit_code == 0
    missing = cli(["token"])  # the default profile has no key
    one_line_error(missing, 2, "no API key")
    assert cli(["token", "--profile", "work"]).exit_code == 0
    assert cli(["token"], env={"ORGA_PROFILE": "work"}).exit_code == 0
    assert cli(["config", "use", "work"]).exit_code == 0
    used = cli(["token"])
    assert used.exit_code == 0, used.stderr
    assert cli(["config", "get", "base_url"]).stdout.strip() == sandbox.base_url
    unknown = cli(["token", "--profile", "home"])
    one_line_error(unknown, 2, "profile 'home'", "work")


def test_value_from_stdin_and_unset(cli: Cli) -> None:
    assert cli(["config", "set", "api_key", "-"], input=KNOWN_KEY + "\n").exit_code == 0
    assert (
        cli(["config", "get", "api_key"]).stdout.strip() == KNOWN_KEY
    )  # get prints the value, for scripts
    assert cli(["config", "unset", "api_key"]).exit_code == 0
    one_line_error(cli(["config", "get", "api_key"]), 2, "not set")


def test_unknown_key(cli: Cli) -> None:
    one_line_error(cli(["config", "set", "colour", "blue"]), 2, "unknown config key", "api_key")


def test_readable_config_is_refused(cli: Cli, isolated: Path) -> None:
    cli(["config", "set", "api_key", KNOWN_KEY])
    os.chmod(isolated, 0o644)
    result = cli(["token"])
    one_line_error(result, 2, "0644", f"chmod 600 {isolated}")


def test_malformed_config(cli: Cli, isolated: Path) -> None:
    isolated.parent.mkdir(parents=True, exist_ok=True)
    isolated.write_text("[profiles.default\napi_key = 1")
    os.chmod(isolated, 0o600)
    one_line_error(cli(["config", "list"]), 2, "not valid TOML")


def test_config_path(cli: Cli, isolated: Path) -> None:
    assert cli(["config", "path"]).stdout.strip() == str(isolated)


def test_default_path_follows_xdg(tmp_path: Path) -> None:
    from orga_cli.config import config_path

    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "orga" / "config.toml"
