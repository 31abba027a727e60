"""The options more than one command takes, each declared once, and the flag each library
setting is named by in messages (``FLAGS``: see ``errors.setting``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

# The library's settings (errors.SETTINGS) as the command line sets them.
FLAGS: dict[str, str] = {
    "api_key": "--api-key",
    "base_url": "--base-url",
    "timeout": "--timeout",
    "insecure_http": "--insecure-http",
    "email": "--email",
    "token": "--token",
    "sandbox": "`orga call --sandbox`",
    "ice_servers": "--ice-server",
    "relay_only": "--relay-only",
    "dump_sdp": "--dump-sdp",
    "reconnect_timeout": "--reconnect-timeout",
    "audio_in": "--audio-in",
    "input_device": "--input-device",
    "output_device": "--output-device",
    "no_speaker": "--no-speaker",
    "video_in": "--video-in",
    "no_video": "--no-video",
    "camera": "--camera",
    "record": "--record",
    "no_processing": "--no-aec --no-ns --no-agc",
    "transcript": "--transcript",
    "port": "--port",
    "ice_credentials": "--ice-username and --ice-credential",
}


def opt(*names: str, help: str, metavar: str | None = None, **kw: Any) -> Any:
    """An option without its default shown unless asked (most defaults say nothing)."""
    return typer.Option(
        *names, help=help, metavar=metavar, show_default=kw.pop("show_default", False), **kw
    )


ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="ORGA_API_KEY",
        show_envvar=True,
        help="API key (sk_orga_ai_…). Prefer the environment or a profile: flags land in shell history.",
        show_default=False,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar="ORGA_BASE_URL",
        show_envvar=True,
        help="API base URL [default: https://api.orga-ai.com].",
        show_default=False,
    ),
]
EmailOpt = Annotated[
    str | None,
    typer.Option(
        "--email",
        envvar="ORGA_USER_EMAIL",
        show_envvar=True,
        help="User email, sent as ?email= when minting a token.",
        show_default=False,
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        envvar="ORGA_PROFILE",
        show_envvar=True,
        help="Config profile to read settings from.",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="Seconds to wait for each HTTP request."),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--insecure-http", help="Allow http:// to a host that is not loopback."),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="Log each request and response (secrets masked)."
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]

# ---------------------------------------------------------------- shared by serve and call
# `orga serve` sets them for every call it answers; `orga call --sandbox` for the sandbox
# it starts, under a --sandbox- prefix (its own --ice-server is the client's).

REPLY_HELP = (
    "What the sandbox's peer sends back: an echo of what it hears, each utterance again "
    "--echo-delay after it ends (parrot: turn-taking like a model's), silence, or a file "
    "looped as the model's voice."
)
SAVE_RECEIVED_HELP = "Write one WAV per call of exactly what the sandbox received."


def reply_option(name: str, help: str = REPLY_HELP, **kw: Any) -> Any:
    return typer.Option(name, metavar="echo|parrot|silence|FILE", help=help, **kw)


def save_received_option(name: str, help: str = SAVE_RECEIVED_HELP) -> Any:
    return typer.Option(name, metavar="DIR", help=help, show_default=False)


def ice_server_option(help: str) -> Any:
    return typer.Option("--ice-server", metavar="URL", help=help, show_default=False)


def ice_username_option(help: str) -> Any:
    return typer.Option("--ice-username", help=help, show_default=False)


def ice_credential_option(help: str) -> Any:
    return typer.Option("--ice-credential", help=help, show_default=False)


IceUsernames = list[str] | None
IceCredentials = list[str] | None
SaveReceived = Path | None
