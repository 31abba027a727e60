"""Settings from flag > environment > profile > default, each with its source.

The config file is TOML in the platform's user config directory (or
``$ORGA_CONFIG``)::

    default_profile = "work"

    [profiles.work]
    base_url = "https://api.orga-ai.com"
    api_key = "sk_orga_ai_…"
    email = "me@example.com"

It is written with mode 0600 and refused when group or others can read it.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import models
from .errors import ConfigError, UsageError, mask, secrets

DEFAULT_BASE_URL = models.DEFAULT_BASE_URL
DEFAULT_PROFILE = "default"

KEYS: dict[str, str] = {
    "base_url": "API base URL",
    "api_key": "API key (secret)",
    "email": "user email sent with token requests",
}
SECRET_KEYS = frozenset({"api_key"})
ENV_VARS: dict[str, str] = {
    "base_url": "ORGA_BASE_URL",
    "api_key": "ORGA_API_KEY",
    "email": "ORGA_USER_EMAIL",
}
DEFAULTS: dict[str, str | None] = {"base_url": DEFAULT_BASE_URL, "api_key": None, "email": None}


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    override = env.get("ORGA_CONFIG")
    if override:
        return Path(override).expanduser()
    if sys.platform.startswith("linux"):
        # What platformdirs answers on Linux, without its import cost on every command.
        base = env.get("XDG_CONFIG_HOME", "").strip()
        root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
        return root / "orga" / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("orga", appauthor=False)) / "config.toml"


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # "flag", "env ORGA_API_KEY", "profile work", "default", "unset"

    def shown(self, key: str) -> str:
        if self.value is None:
            return ""
        return mask(self.value) if key in SECRET_KEYS else self.value


class ConfigFile:
    """The TOML file of profiles. Reads lazily; writes atomically with mode 0600."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()
        self._data: dict[str, Any] | None = None

    def load(self) -> dict[str, Any]:
        if self._data is not None:
            return self._data
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._data = {}
            return self._data
        except OSError as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc.strerror}") from exc
        if os.name == "posix" and st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise ConfigError(
                f"config file {self.path} has permissions {mode:04o}, so others can read"
                " the API key in it",
                f"run `chmod 600 {self.path}`",
            )
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised on 3.10 only
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        try:
            with self.path.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config file {self.path} is not valid TOML ({exc})",
                "fix it by hand or remove it",
            ) from exc
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not all(
            isinstance(p, dict) for p in profiles.values()
        ):
            raise ConfigError(f"config file {self.path}: [profiles] must hold tables")
        for profile in profiles.values():
            secrets.add(profile.get("api_key") if isinstance(profile.get("api_key"), str) else None)
        self._data = dict(data)
        return self._data

    def profiles(self) -> dict[str, dict[str, Any]]:
        profiles: dict[str, dict[str, Any]] = self.load().get("profiles", {})
        return profiles

    def default_profile(self) -> str | None:
        value = self.load().get("default_profile")
        return value if isinstance(value, str) and value else None

    def save(self, data: dict[str, Any]) -> None:
        import tomli_w

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                tomli_w.dump(data, fh)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write config file {self.path}: {exc.strerror}") from exc
        self._data = data

    def set(self, profile: str, key: str, value: str) -> None:
        check_key(key)
        data = dict(self.load())
        profiles = {name: dict(p) for name, p in data.get("profiles", {}).items()}
        profiles.setdefault(profile, {})[key] = value
        data["profiles"] = profiles
        self.save(data)

    def unset(self, profile: str, key: str) -> bool:
        check_key(key)
        data = dict(self.load())
        profiles = {name: dict(p) for name, p in data.get("profiles", {}).items()}
        removed = profiles.get(profile, {}).pop(key, None) is not None
        if removed:
            if not profiles[profile]:
                del profiles[profile]
            data["profiles"] = profiles
            self.save(data)
        return removed

    def use(self, profile: str) -> None:
        data = dict(self.load())
        data["default_profile"] = profile
        self.save(data)


def check_key(key: str) -> None:
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r}", f"use one of {', '.join(KEYS)}")


class Settings:
    """Resolves each setting as flag > environment > profile > default."""

    def __init__(
        self,
        flags: Mapping[str, str | None] | None = None,
        *,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
        file: ConfigFile | None = None,
    ) -> None:
        self.flags = {k: v for k, v in (flags or {}).items() if v is not None}
        self.env = os.environ if env is None else env
        self._file = file
        self._profile_flag = profile
        secrets.add(self.flags.get("api_key"))
        secrets.add(self.env.get(ENV_VARS["api_key"]))

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, str | None],
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from a command line whose parser folded the environment into the option
        values (Typer does): a value equal to its variable is left to the environment, so
        that its source reads "env ORGA_…", not "flag"."""
        env = os.environ if env is None else env
        flags = {k: v if v != env.get(ENV_VARS[k]) else None for k, v in options.items()}
        chosen = profile if profile != env.get("ORGA_PROFILE") else None
        return cls(flags, profile=chosen, env=env)

    @property
    def file(self) -> ConfigFile:
        if self._file is None:
            self._file = ConfigFile(config_path(self.env))
        return self._file

    def profile(self) -> Setting:
        if self._profile_flag:
            return Setting(self._profile_flag, "flag")
        if self.env.get("ORGA_PROFILE"):
            return Setting(self.env["ORGA_PROFILE"], "env ORGA_PROFILE")
        chosen = self.file.default_profile()
        if chosen:
            return Setting(chosen, "config default_profile")
        return Setting(DEFAULT_PROFILE, "default")

    def get(self, key: str) -> Setting:
        check_key(key)
        if key in self.flags:
            return Setting(self.flags[key], "flag")
        env_var = ENV_VARS[key]
        if self.env.get(env_var):
            return Setting(self.env[env_var], f"env {env_var}")
        profile = self.profile()
        profiles = self.file.profiles()
        if profile.source != "default" and profile.value not in profiles:
            raise ConfigError(
                f"profile {profile.value!r} (from {profile.source}) is not in {self.file.path}",
                "create it with `orga config set KEY VALUE --profile NAME`"
                if profiles == {}
                else f"known profiles: {', '.join(sorted(profiles))}",
            )
        value = profiles.get(profile.value or "", {}).get(key)
        if isinstance(value, str) and value:
            return Setting(value, f"profile {profile.value}")
        default = DEFAULTS[key]
        return Setting(default, "default" if default is not None else "unset")

    def value(self, key: str) -> str | None:
        return self.get(key).value

    def all(self) -> dict[str, Setting]:
        return {key: self.get(key) for key in KEYS}
