"""`orga config`: profiles of settings (base_url, api_key, email) in a TOML file."""

from __future__ import annotations

from typing import Annotated

import typer

from ...errors import UsageError
from ..boundary import read_stdin_value, run
from ..options import JsonOpt, ProfileOpt
from ..terminal import current

KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="base_url, api_key or email.")]


def config_set(
    key: KeyArg,
    value: Annotated[
        str | None,
        typer.Argument(
            metavar="[VALUE|-]",
            help="The value; '-' reads stdin; left out, you are prompted (input hidden for api_key).",
            show_default=False,
        ),
    ] = None,
    profile: ProfileOpt = None,
) -> None:
    """Set KEY in a profile (the active one unless --profile)."""

    def work() -> None:
        from ...config import KEYS, SECRET_KEYS, Settings, check_key
        from .. import render

        check_key(key)
        given = value
        if given == "-":
            given = read_stdin_value(key)
        elif given is None:
            if not current().stdin_tty:
                given = read_stdin_value(key)
            else:
                given = typer.prompt(KEYS[key], hide_input=key in SECRET_KEYS).strip()
        if not given:
            raise UsageError(f"empty value for {key}")
        if key == "base_url":
            from ...api import check_base_url

            check_base_url(given, insecure_http=True)
        settings = Settings(profile=profile)
        name = settings.profile().value or "default"
        settings.file.set(name, key, given)
        render.note(f"set {key} in profile {name} ({settings.file.path})")

    run(work)


def config_get(key: KeyArg, profile: ProfileOpt = None) -> None:
    """Print the effective value of KEY (flag > env > profile > default) on stdout."""

    def work() -> None:
        from ...config import Settings
        from .. import render

        setting = Settings(profile=profile).get(key)
        if setting.value is None:
            raise UsageError(f"{key} is not set", f"set it with `orga config set {key}`")
        render.data(setting.value)

    run(work)


def config_unset(key: KeyArg, profile: ProfileOpt = None) -> None:
    """Remove KEY from a profile."""

    def work() -> None:
        from ...config import Settings
        from .. import render

        settings = Settings(profile=profile)
        name = settings.profile().value or "default"
        if settings.file.unset(name, key):
            render.note(f"removed {key} from profile {name}")
        else:
            render.note(f"{key} was not set in profile {name}")

    run(work)


def config_list(
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show every setting, its effective value (secrets masked) and where it comes from."""

    def work() -> None:
        from ...config import Settings
        from .. import render

        settings = Settings(profile=profile)
        active = settings.profile()
        values = settings.all()
        profiles = sorted(settings.file.profiles())
        if json_out:
            render.emit_json(
                {
                    "config_file": str(settings.file.path),
                    "profile": {"value": active.value, "source": active.source},
                    "profiles": profiles,
                    "settings": {
                        k: {"value": s.shown(k) or None, "source": s.source}
                        for k, s in values.items()
                    },
                }
            )
            return
        rows = [("profile", active.value or "", active.source)]
        rows += [(k, s.shown(k), s.source) for k, s in values.items()]
        render.settings_table(rows)
        render.note(f"config file: {settings.file.path}")
        if profiles:
            render.note(f"profiles: {', '.join(profiles)}")

    run(work)


def config_path_cmd() -> None:
    """Print the config file's path."""

    def work() -> None:
        from ...config import config_path
        from .. import render

        render.data(str(config_path()))

    run(work)


def config_use(name: Annotated[str, typer.Argument(metavar="PROFILE")]) -> None:
    """Make PROFILE the default one (ORGA_PROFILE and --profile still win)."""

    def work() -> None:
        from ...config import ConfigFile
        from .. import render

        file = ConfigFile()
        known = file.profiles()
        if name not in known:
            raise UsageError(
                f"no profile {name!r}",
                f"known: {', '.join(sorted(known)) or 'none'}; create one with `orga config set KEY VALUE --profile {name}`",
            )
        file.use(name)
        render.note(f"default profile is now {name}")

    run(work)
