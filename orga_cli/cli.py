"""The `orga` command line: options, environment, one asyncio.run() per command.

No logic of its own: every command resolves its settings, calls the library,
and renders the result. OrgaError becomes a one-line message and an exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from . import __version__, models
from .errors import ExitCode, Interrupted, OrgaError, UsageError

T = TypeVar("T")

_APP_SETTINGS: dict[str, Any] = {
    "name": "orga",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
app = typer.Typer(
    help="Voice and video client for the Orga AI realtime API, with an offline sandbox.",
    **_APP_SETTINGS,
)
config_app = typer.Typer(
    help="Read and write config profiles (base_url, api_key, email).",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


class _State:
    debug = False


state = _State()


# --------------------------------------------------------------------------- plumbing


def fail(exc: OrgaError) -> NoReturn:
    from . import render

    render.error(exc)
    raise typer.Exit(int(exc.exit_code))


def _leave_if_stuck(code: int) -> None:
    """Exit now if a device open is still blocked in PortAudio (the call's outputs are
    written by then): PortAudio's own exit handler would wait on it for good."""
    devices = sys.modules.get("orga_cli.media.devices")
    if devices is not None and devices.stuck():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(work: Callable[[], T]) -> T:
    """The error boundary of every command."""
    try:
        return work()
    except OrgaError as exc:
        if state.debug:
            raise
        fail(exc)
    except KeyboardInterrupt:
        if state.debug:
            raise
        fail(Interrupted("interrupted"))
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if state.debug:
            raise
        fail(
            OrgaError(
                f"unexpected error: {type(exc).__name__}: {exc}",
                "this is a bug: please report it with the output of --debug",
            )
        )


def setup(verbose: int, debug: bool, *, always_info: tuple[str, ...] = ()) -> None:
    state.debug = debug
    if verbose or always_info:
        from .render import setup_logging

        setup_logging(verbose, always_info=always_info)


def read_stdin_value(what: str) -> str:
    if sys.stdin.isatty():
        raise UsageError(
            f"expected the {what} on standard input",
            "pipe it in, e.g. `orga token | orga ice --token -`",
        )
    value = sys.stdin.read().strip()
    if not value:
        raise UsageError(f"standard input held no {what}")
    return value


# --------------------------------------------------------------------------- options

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
ReplyOpt = Annotated[
    str,
    typer.Option(
        "--reply",
        metavar="echo|parrot|silence|FILE",
        help="What the sandbox's peer sends back: an echo of what it hears, each utterance again "
        "--echo-delay after it ends (parrot: turn-taking like a model's), silence, or a file "
        "looped as the model's voice.",
    ),
]
EchoDelayOpt = Annotated[
    float,
    typer.Option(
        "--echo-delay", min=0.0, max=10.0, help="Seconds before the sandbox echoes what it hears."
    ),
]
SaveReceivedOpt = Annotated[
    Path | None,
    typer.Option(
        "--save-received",
        metavar="DIR",
        help="Write one WAV per call of exactly what the sandbox received.",
        show_default=False,
    ),
]


def _settings(
    api_key: str | None, base_url: str | None, email: str | None, profile: str | None
) -> Any:
    from .config import Settings

    # Typer folds the environment into the option values; a value equal to its
    # variable is left to Settings, so that its source reads "env ORGA_…".
    flags = {
        "api_key": api_key if api_key != os.environ.get("ORGA_API_KEY") else None,
        "base_url": base_url if base_url != os.environ.get("ORGA_BASE_URL") else None,
        "email": email if email != os.environ.get("ORGA_USER_EMAIL") else None,
    }
    chosen_profile = profile if profile != os.environ.get("ORGA_PROFILE") else None
    return Settings(flags, profile=chosen_profile)


def _client(settings: Any, timeout: float, insecure_http: bool) -> Any:
    from .api import SyncOrgaClient

    return SyncOrgaClient(
        settings.value("base_url"),
        settings.value("api_key"),
        timeout=timeout,
        insecure_http=insecure_http,
    )


# --------------------------------------------------------------------------- app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orga {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Voice and video client for the Orga AI realtime API, with an offline sandbox."""


@app.command()
def token(
    token_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="[TOKEN|-]",
            help="With --decode: the token to decode ('-' or nothing reads stdin).",
            show_default=False,
        ),
    ] = None,
    decode: Annotated[
        bool,
        typer.Option("--decode", help="Decode a token's claims and time left; no request."),
    ] = False,
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            min=1,
            metavar="SECONDS",
            help='Ask for this lifetime (sent as {"expires_in": N}).',
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    email: EmailOpt = None,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: TimeoutOpt = 10.0,
    insecure_http: InsecureOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Mint an ephemeral token (a JWT) from the API key; print it on stdout.

    `TOKEN=$(orga token)` captures just the token. With --decode, show the
    claims and time left of a token instead, without any request.
    """
    setup(verbose, debug)
    from . import render

    if decode:

        def show() -> None:
            from .models import Token

            value = token_arg if token_arg not in (None, "-") else read_stdin_value("token")
            assert value is not None
            parsed = Token.from_string(value)
            if not parsed.claims:
                raise UsageError("that is not a JWT", "pass the token `orga token` printed")
            from .errors import secrets

            secrets.add(parsed.value)
            if json_out:
                summary = parsed.summary()
                summary.pop("token")
                render.emit_json(summary)
            else:
                render.token_claims(parsed)

        run(show)
        return
    if token_arg is not None:
        fail(UsageError("a TOKEN argument goes only with --decode"))

    def mint() -> None:
        settings = _settings(api_key, base_url, email, profile)
        with _client(settings, timeout, insecure_http) as client:
            minted = client.create_token(email=settings.value("email"), expires_in=expires_in)
        if json_out:
            render.emit_json(minted.summary())
        else:
            render.data(minted.value)
            if sys.stderr.isatty():
                render.note(render.expiry_phrase(minted))

    run(mint)


@app.command()
def ice(
    token_opt: Annotated[
        str | None,
        typer.Option(
            "--token",
            "-t",
            envvar="ORGA_TOKEN",
            show_envvar=True,
            metavar="TOKEN|-",
            help="Ephemeral token to use ('-' reads stdin); otherwise one is minted with the API key.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"iceServers": [...]} for an RTCPeerConnection (with --probe: the results).',
        ),
    ] = False,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe", help="Check every server: DNS, STUN Binding, TURN Allocate per transport."
        ),
    ] = False,
    server: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="With --probe: probe this stun:/turn:/turns: URL instead of the API's (repeatable).",
            show_default=False,
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", help="TURN username for --server.", show_default=False),
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option("--credential", help="TURN credential for --server.", show_default=False),
    ] = None,
    email: EmailOpt = None,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.1,
            help="Seconds for each HTTP request [default: 10], or for the whole probe [default: 5].",
            show_default=False,
        ),
    ] = None,
    insecure_http: InsecureOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Fetch the ICE servers (STUN/TURN) for a session, or probe them with --probe.

    The table masks TURN credentials; --json includes them, since that is what
    a peer connection needs. --probe exits 0 when a relay address (or, with no
    TURN server, a server-reflexive one) was obtained, else 6, with a diagnosis.
    """
    setup(verbose, debug)
    from . import render

    def fetch() -> int:
        from .models import IceServer

        servers: list[IceServer]
        if server:
            if not probe:
                raise UsageError("--server goes with --probe")
            servers = [IceServer((url,), username, credential) for url in server]
        else:
            settings = _settings(api_key, base_url, email, profile)
            given = read_stdin_value("token") if token_opt == "-" else token_opt
            with _client(settings, timeout or 10.0, insecure_http) as client:
                use: Any = given if given else client.create_token(email=settings.value("email"))
                servers = client.ice_servers(use)
        if not probe:
            if json_out:
                render.emit_json({"iceServers": [s.to_json() for s in servers]})
            else:
                render.ice_table(servers)
            return 0
        import asyncio

        from .probe import probe_servers, verdict

        results = asyncio.run(probe_servers(servers, timeout or 5.0))
        usable, diagnosis = verdict(results)
        if json_out:
            render.emit_json([r.to_json() for r in results])
        else:
            render.probe_table(results)
        if usable:
            render.note(diagnosis)
            return 0
        from .errors import CallError

        render.error(CallError(diagnosis))
        return int(ExitCode.CALL)

    code = run(fetch)
    if code:
        raise typer.Exit(code)


@app.command()
def voices(
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            "-l",
            help="Only voices of this language (name, English name or code: es, Spanish, Español).",
            show_default=False,
        ),
    ] = None,
    gender: Annotated[
        str | None,
        typer.Option(
            "--gender", help="Only voices of this gender (feminine, masculine).", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the voices the model speaks with (shipped with orga; no request)."""
    from . import render
    from .voices import filter_voices, languages

    found = filter_voices(language, gender)
    if not found and language:
        fail(UsageError(f"no voice speaks {language!r}", f"languages: {', '.join(languages())}"))
    if json_out:
        render.emit_json([v.to_json() for v in found])
    else:
        render.voices_table(found)


# --------------------------------------------------------------------------- config

KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="base_url, api_key or email.")]


@config_app.command("set")
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
        from . import render
        from .config import KEYS, SECRET_KEYS, Settings, check_key

        check_key(key)
        given = value
        if given == "-":
            given = read_stdin_value(key)
        elif given is None:
            if not sys.stdin.isatty():
                given = read_stdin_value(key)
            else:
                given = typer.prompt(KEYS[key], hide_input=key in SECRET_KEYS).strip()
        if not given:
            raise UsageError(f"empty value for {key}")
        if key == "base_url":
            from .api import check_base_url

            check_base_url(given, insecure_http=True)
        settings = Settings(profile=profile)
        name = settings.profile().value or "default"
        settings.file.set(name, key, given)
        render.note(f"set {key} in profile {name} ({settings.file.path})")

    run(work)


@config_app.command("get")
def config_get(key: KeyArg, profile: ProfileOpt = None) -> None:
    """Print the effective value of KEY (flag > env > profile > default) on stdout."""

    def work() -> None:
        from . import render
        from .config import Settings

        setting = Settings(profile=profile).get(key)
        if setting.value is None:
            raise UsageError(f"{key} is not set", f"set it with `orga config set {key}`")
        render.data(setting.value)

    run(work)


@config_app.command("unset")
def config_unset(key: KeyArg, profile: ProfileOpt = None) -> None:
    """Remove KEY from a profile."""

    def work() -> None:
        from . import render
        from .config import Settings

        settings = Settings(profile=profile)
        name = settings.profile().value or "default"
        if settings.file.unset(name, key):
            render.note(f"removed {key} from profile {name}")
        else:
            render.note(f"{key} was not set in profile {name}")

    run(work)


@config_app.command("list")
def config_list(
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show every setting, its effective value (secrets masked) and where it comes from."""

    def work() -> None:
        from . import render
        from .config import Settings

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


@config_app.command("path")
def config_path_cmd() -> None:
    """Print the config file's path."""
    from . import render
    from .config import config_path

    render.data(str(config_path()))


@config_app.command("use")
def config_use(name: Annotated[str, typer.Argument(metavar="PROFILE")]) -> None:
    """Make PROFILE the default one (ORGA_PROFILE and --profile still win)."""

    def work() -> None:
        from . import render
        from .config import ConfigFile

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


# --------------------------------------------------------------------------- serve


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")
    ] = 0,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="ORGA_SANDBOX_API_KEY",
            show_envvar=True,
            help="The API key the sandbox accepts; generated and shown on stderr if left out.",
            show_default=False,
        ),
    ] = None,
    token_ttl: Annotated[
        int, typer.Option("--token-ttl", min=1, help="Lifetime of minted tokens, in seconds.")
    ] = 60,
    require_email: Annotated[
        bool,
        typer.Option("--require-email", help="Answer 422 to token requests without ?email=."),
    ] = False,
    known_email: Annotated[
        list[str] | None,
        typer.Option(
            "--known-email",
            help="A user that exists (repeatable); other emails get 404 User not found.",
            show_default=False,
        ),
    ] = None,
    ice_server: Annotated[
        list[str] | None,
        typer.Option(
            "--ice-server",
            metavar="URL",
            help="An ICE server URL to hand out (repeatable): stun:, turn: or turns:.",
            show_default=False,
        ),
    ] = None,
    ice_username: Annotated[
        list[str] | None,
        typer.Option(
            "--ice-username",
            help="TURN username: one for all TURN URLs, or one per TURN URL in order.",
            show_default=False,
        ),
    ] = None,
    ice_credential: Annotated[
        list[str] | None,
        typer.Option(
            "--ice-credential",
            help="TURN credential, paired like --ice-username.",
            show_default=False,
        ),
    ] = None,
    reply: ReplyOpt = "echo",
    echo_delay: EchoDelayOpt = 0.5,
    save_received: SaveReceivedOpt = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            metavar="SPEC",
            help="Impair each call's media through a UDP relay, per direction, e.g."
            " 'down=loss:5%,delay:40ms,jitter:30ms,reorder:5%;up=rate:500kbit,queue:200ms'"
            " (items: loss, delay, jitter, inorder, reorder, outage:3s@5s, rate:500kbit,"
            " rate:300kbit@10s, queue:200ms; both= sets the two).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Make --network's random choices repeat.", show_default=False),
    ] = None,
    no_fec: Annotated[
        bool,
        typer.Option("--no-fec", help="Never answer useinbandfec=1 nor send Opus in-band FEC."),
    ] = False,
    no_remb: Annotated[
        bool,
        typer.Option(
            "--no-remb",
            help="Send no REMB bandwidth estimate (with --no-transport-cc: receiver reports"
            " only, as some servers do).",
        ),
    ] = False,
    no_transport_cc: Annotated[
        bool,
        typer.Option(
            "--no-transport-cc",
            help="Decline transport-cc: no transport-wide feedback for the caller's packets.",
        ),
    ] = False,
    video_codec: Annotated[
        str | None,
        typer.Option(
            "--video-codec",
            metavar="vp8|h264",
            help="Answer video with this codec when the offer has it (default: the offer's first).",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Run an Orga-compatible API server on loopback, for offline use and tests.

    The first line on stdout is the base URL. One log line per request goes
    to stderr, with bearer values masked. Stop it with Ctrl-C.
    """
    setup(verbose, debug, always_info=("orga_cli.sandbox",))

    def work() -> None:
        from .api import is_loopback_host
        from .errors import secrets
        from .sandbox.network import parse_network
        from .sandbox.peer import PeerConfig
        from .sandbox.serve import build_config, serve_forever

        if video_codec is not None and video_codec.lower() not in ("vp8", "h264"):
            raise UsageError(f"--video-codec {video_codec}: unknown", "use vp8 or h264")
        try:
            impairments = None if network is None else parse_network(network, seed)
        except ValueError as exc:
            raise UsageError(
                f"--network: {exc}", "e.g. --network 'down=loss:5%,jitter:30ms;up=rate:500kbit'"
            ) from exc

        config = build_config(
            api_key=api_key,
            token_ttl=token_ttl,
            require_email=require_email,
            known_emails=known_email or [],
            ice_servers=ice_server or [],
            ice_usernames=ice_username or [],
            ice_credentials=ice_credential or [],
        )
        from . import render

        if not is_loopback_host(host):
            render.note(f"warning: listening on {host}, which is not loopback: others can reach it")
        if api_key is None:
            # Shown on purpose: the user needs it to call the sandbox.
            sys.stderr.write(f"sandbox API key: {config.api_key}\n")
        else:
            secrets.add(config.api_key)
        from . import loop

        peer_config = PeerConfig(
            delay=echo_delay,
            reply=reply,
            save_received=save_received,
            ice_servers=config.ice_servers,
            fec=not no_fec,
            network=impairments,
            remb=not no_remb,
            transport_cc=not no_transport_cc,
            video_codec=None if video_codec is None else video_codec.lower(),
        )
        if impairments is not None:
            sys.stderr.write(f"network: {impairments.describe()}\n")
        loop.run(serve_forever(config, peer_config, host=host, port=port))

    try:
        run(work)
    except typer.Exit as exc:
        if exc.exit_code == ExitCode.INTERRUPTED:
            # Ctrl-C is how a server is stopped: not an error.
            raise typer.Exit(0) from None
        raise


# --------------------------------------------------------------------------- devices


@app.command()
def devices(json_out: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List audio devices (PortAudio, the defaults marked) and cameras.

    `orga call --input-device` and `--output-device` take an index or a unique
    part of a name from the audio list; `--camera` takes a camera's first column
    (/dev/videoN on Linux, N:none on macOS, video=NAME on Windows). --json gives
    {"audio": [...], "cameras": [...]}.
    """
    setup(0, debug)

    def work() -> None:
        from . import render
        from .media.cameras import list_cameras
        from .media.devices import list_devices

        found = list_devices()
        cameras = list_cameras()
        if json_out:
            render.emit_json({"audio": found, "cameras": [c.to_json() for c in cameras]})
        else:
            render.devices_table(found)
            render.cameras_table(cameras)

    run(work)


@app.command()
def doctor(
    play: Annotated[
        bool, typer.Option("--play", help="Sound a short tone on the speaker too.")
    ] = False,
    json_out: JsonOpt = False,
    email: EmailOpt = None,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: TimeoutOpt = 10.0,
    insecure_http: InsecureOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check that everything is ready for a call, each line ✓ or ✗ with the fix.

    PortAudio, the default devices, a 2 s microphone level check, the speaker
    (--play), the configuration and API key, a token minted, the ICE servers
    probed, and a call to an in-process sandbox on loopback. Needs no network and
    no account: the checks that do are skipped, with the reason. Exits 0 when
    nothing failed, else with the exit code of the first failure's kind.
    """
    setup(0, debug)

    def work() -> int:
        from . import render
        from .doctor import Doctor

        settings = _settings(api_key, base_url, email, profile)
        doc = Doctor(settings, play=play, timeout=timeout or 10.0, insecure_http=insecure_http)
        checks = doc.run(lambda check: None if json_out else render.doctor_line(check))
        if json_out:
            render.emit_json({"ok": doc.exit_code == 0, "checks": [c.to_json() for c in checks]})
        return doc.exit_code

    code = run(work)
    if code:
        raise typer.Exit(code)


# --------------------------------------------------------------------------- call


class VideoQuality(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


def _opt(*names: str, help: str, metavar: str | None = None, **kw: Any) -> Any:
    return typer.Option(
        *names, help=help, metavar=metavar, show_default=kw.pop("show_default", False), **kw
    )


@app.command()
def call(
    sandbox: Annotated[
        bool,
        _opt(
            "--sandbox", help="Call a sandbox started in this process (offline; echoes your voice)."
        ),
    ] = False,
    token_opt: Annotated[
        str | None,
        _opt(
            "--token",
            "-t",
            envvar="ORGA_TOKEN",
            show_envvar=True,
            metavar="TOKEN|-",
            help="Use this ephemeral token ('-' reads stdin) instead of minting one.",
        ),
    ] = None,
    voice: Annotated[
        str, _opt("--voice", help="Voice (see `orga voices`).", show_default=True)
    ] = models.DEFAULT_VOICE,
    model: Annotated[str, _opt("--model", help="Model.", show_default=True)] = models.MODEL,
    temperature: Annotated[
        float,
        _opt(
            "--temperature",
            min=0.0,
            max=1.0,
            help="Sampling temperature, 0 to 1.",
            show_default=True,
        ),
    ] = 0.5,
    instructions: Annotated[
        str | None,
        _opt(
            "--instructions",
            metavar="TEXT|@FILE",
            help="System instructions, or @FILE to read them.",
        ),
    ] = None,
    transcribe: Annotated[
        bool, _opt("--transcribe", help="Ask for transcripts of what you say.")
    ] = False,
    no_history: Annotated[
        bool, _opt("--no-history", help="Do not keep conversation history.")
    ] = False,
    audio_in: Annotated[
        str | None,
        _opt(
            "--audio-in",
            metavar="FILE|tone:HZ",
            help="Send a file (anything ffmpeg decodes, in real time) or a sine instead of the microphone.",
        ),
    ] = None,
    input_device: Annotated[
        str | None,
        _opt(
            "--input-device",
            metavar="INDEX|NAME",
            help="Microphone: index or part of its name (see `orga devices`).",
        ),
    ] = None,
    video_in: Annotated[
        str | None,
        _opt(
            "--video-in",
            metavar="FILE|testsrc",
            help="Send a video file (looped) or a test pattern instead of the camera.",
        ),
    ] = None,
    no_video: Annotated[bool, _opt("--no-video", help="Send no video.")] = False,
    camera: Annotated[
        str | None,
        _opt(
            "--camera",
            metavar="DEVICE",
            help="Camera device (/dev/video0; avfoundation index; dshow name).",
        ),
    ] = None,
    video_quality: Annotated[
        VideoQuality,
        _opt(
            "--video-quality",
            help="SDK preset: low 640x480@24, medium 1280x720@30, high 1920x1080@30.",
            show_default=True,
        ),
    ] = VideoQuality.low,
    output_device: Annotated[
        str | None,
        _opt("--output-device", metavar="INDEX|NAME", help="Speaker: index or part of its name."),
    ] = None,
    no_speaker: Annotated[bool, _opt("--no-speaker", help="Play nothing.")] = False,
    aec: Annotated[
        bool | None,
        _opt(
            "--aec/--no-aec",
            help="Echo cancellation: on by default for a real microphone; --aec also processes --audio-in.",
        ),
    ] = None,
    no_ns: Annotated[bool, _opt("--no-ns", help="No noise suppression on the microphone.")] = False,
    no_agc: Annotated[
        bool, _opt("--no-agc", help="No automatic gain control on the microphone.")
    ] = False,
    record: Annotated[
        Path | None,
        _opt("--record", metavar="FILE.wav", help="Write what the model says to a WAV file."),
    ] = None,
    record_mic: Annotated[
        Path | None,
        _opt(
            "--record-mic",
            metavar="FILE.wav",
            help="Write what was sent (after muting) to a WAV file.",
        ),
    ] = None,
    record_both: Annotated[
        Path | None,
        _opt(
            "--record-both",
            metavar="FILE.wav",
            help="Write the conversation as one stereo WAV: left what was sent, right what was played, on one clock.",
        ),
    ] = None,
    transcript: Annotated[
        Path | None,
        _opt(
            "--transcript",
            metavar="FILE",
            help="Keep the conversation with times and speakers, written as it happens; "
            "the extension picks the format: .md, .txt, .srt, .vtt or .jsonl. Implies --transcribe.",
        ),
    ] = None,
    muted: Annotated[
        bool, _opt("--muted", help="Start with the microphone muted (m unmutes).")
    ] = False,
    ptt: Annotated[
        bool,
        _opt(
            "--ptt",
            help="Push-to-talk: the microphone sends only while talking is switched on with the "
            "space bar (terminals do not report a key's release, so space switches on and off). "
            "Needs a terminal.",
        ),
    ] = False,
    events: Annotated[
        Path | None,
        _opt(
            "--events",
            metavar="FILE.jsonl",
            help="Log every data-channel message, both ways, with time and direction.",
        ),
    ] = None,
    stats: Annotated[
        Path | None,
        _opt(
            "--stats",
            metavar="FILE.jsonl",
            help="Write the call's figures once a second (the uplink estimate and what each"
            " medium gets, bitrates each way, RTT, loss, jitter, the receive buffer).",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        _opt("--duration", min=0.1, metavar="SECONDS", help="Hang up after this long connected."),
    ] = None,
    json_out: Annotated[
        bool, _opt("--json", help="Print a JSON summary on stdout at the end.")
    ] = False,
    ice_timeout: Annotated[
        float,
        _opt(
            "--ice-timeout",
            min=0.1,
            metavar="SECONDS",
            help="Bound on ICE candidate gathering.",
            show_default=True,
        ),
    ] = 2.0,
    ice_server: Annotated[
        list[str] | None,
        _opt(
            "--ice-server",
            metavar="URL",
            help="Use these STUN/TURN servers instead of the API's (repeatable).",
        ),
    ] = None,
    ice_username: Annotated[
        list[str] | None, _opt("--ice-username", help="TURN username (like `orga serve`).")
    ] = None,
    ice_credential: Annotated[
        list[str] | None, _opt("--ice-credential", help="TURN credential.")
    ] = None,
    relay_only: Annotated[
        bool, _opt("--relay-only", help="Use TURN relay candidates only.")
    ] = False,
    connect_timeout: Annotated[
        float,
        _opt(
            "--connect-timeout",
            min=0.5,
            metavar="SECONDS",
            help="Bound on ICE and DTLS after the answer.",
            show_default=True,
        ),
    ] = 10.0,
    reconnect_timeout: Annotated[
        float,
        _opt(
            "--reconnect-timeout",
            min=1.0,
            metavar="SECONDS",
            help="When media stops, ride out the outage this long, then dial again.",
            show_default=True,
        ),
    ] = 20.0,
    no_reconnect: Annotated[
        bool,
        _opt(
            "--no-reconnect",
            help="End the call (exit 6) when media has not come back within --reconnect-timeout.",
        ),
    ] = False,
    dump_sdp: Annotated[
        Path | None,
        _opt(
            "--dump-sdp",
            metavar="DIR",
            help="Write offer.sdp, answer.sdp and the /calls request and response (tokens redacted).",
        ),
    ] = None,
    sandbox_reply: Annotated[
        str,
        _opt(
            "--sandbox-reply",
            metavar="echo|parrot|silence|FILE",
            help="With --sandbox: what its peer sends back.",
            show_default=True,
        ),
    ] = "echo",
    sandbox_save_received: Annotated[
        Path | None,
        _opt(
            "--sandbox-save-received",
            metavar="DIR",
            help="With --sandbox: one WAV per call of what it received.",
        ),
    ] = None,
    email: EmailOpt = None,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: TimeoutOpt = 10.0,
    insecure_http: InsecureOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Talk to the model: microphone and camera up, its voice down, the conversation on screen.

    On a terminal a live panel shows the call; keys: m mutes, v turns the
    camera off and on, q hangs up, / opens a command line (/voice NAME,
    /temperature X, /instructions TEXT|@FILE, /mute, /camera, /help, /quit; Tab
    completes). When stdin is not a terminal, each line it gives is such a
    command. `orga call --sandbox` needs no account.
    """
    setup(verbose, debug)
    from .render import setup_logging

    setup_logging(verbose)  # warnings (a device lost mid-call) go through the panel's console

    def work() -> int:
        from . import render
        from .call import (
            CallRequest,
            CallRunner,
            Connection,
            Outputs,
            Sandbox,
            Screen,
            read_instructions,
            resolve_voice,
        )
        from .media.local import MediaConfig
        from .models import ice_servers_from_urls
        from .session import CallOptions, CallParams

        settings = _settings(api_key, base_url, email, profile)
        token_value = read_stdin_value("token") if token_opt == "-" else token_opt
        try:
            servers = (
                ice_servers_from_urls(ice_server, ice_username or [], ice_credential or [])
                if ice_server
                else None
            )
        except ValueError as exc:
            raise UsageError(f"--ice-server: {exc}") from exc
        params = CallParams(
            voice=resolve_voice(voice),
            model=model,
            temperature=temperature,
            return_transcription=transcribe or transcript is not None,
            instructions=read_instructions(instructions),
            history=not no_history,
        )
        tty = sys.stderr.isatty()
        keys = tty and sys.stdin.isatty()
        if ptt and not keys:
            raise UsageError(
                "--ptt needs a terminal: talking is switched with the space bar",
                "run it in a terminal, or use --muted and /mute commands on stdin",
            )
        if transcript is not None:
            from .transcript import transcript_format

            transcript_format(transcript)  # an unknown extension fails before the call
        request = CallRequest(
            connection=Connection(
                base_url=None if sandbox else settings.value("base_url"),
                api_key=None if sandbox else settings.value("api_key"),
                token=token_value,
                timeout=timeout,
                insecure_http=insecure_http,
                options=CallOptions(
                    ice_timeout=ice_timeout,
                    connect_timeout=connect_timeout,
                    relay_only=relay_only,
                    ice_servers=servers,
                    email=None if sandbox else settings.value("email"),
                    dump_sdp=dump_sdp,
                    reconnect_timeout=reconnect_timeout,
                ),
                reconnect=not no_reconnect,
            ),
            params=params,
            media=MediaConfig(
                audio_in=audio_in,
                input_device=input_device,
                video_in=video_in,
                no_video=no_video,
                camera=camera,
                video_quality=video_quality.value,
                output_device=output_device,
                no_speaker=no_speaker,
                aec=aec,
                ns=not no_ns,
                agc=not no_agc,
                record=record,
                record_mic=record_mic,
                record_both=record_both,
                muted=muted or ptt,
            ),
            outputs=Outputs(events=events, transcript=transcript, stats=stats),
            screen=Screen(
                tty=tty,
                keys=keys,
                ptt=ptt,
                commands_from_stdin=not sys.stdin.isatty() and token_opt != "-",
            ),
            sandbox=Sandbox(
                enabled=sandbox, reply=sandbox_reply, save_received=sandbox_save_received
            ),
            duration=duration,
        )
        if not sandbox and token_value is None and not request.connection.api_key:
            raise UsageError(
                "no API key",
                "pass --api-key, set ORGA_API_KEY, run `orga config set api_key`, or try `orga call --sandbox`",
            )
        from . import loop

        outcome = loop.run(CallRunner(request).run())
        if json_out:
            render.emit_json(outcome.summary)
        if outcome.error is not None:
            if state.debug and not isinstance(outcome.error, Interrupted):
                raise outcome.error
            render.error(outcome.error)
        else:
            s = outcome.summary
            line = (
                f"call ended ({s['ended_by']}) after {s['duration_s']:.1f} s;"
                f" connected in {s['ms_to_connected']} ms"
            )
            uplink = s.get("uplink")
            if uplink:
                line += f"; uplink ~{uplink['estimate_kbps']['median']:.0f} kbit/s"
            if s.get("video_paused_ms") and uplink:
                line += (
                    f"; camera paused {s['video_paused_ms'] / 1000:.1f} s"
                    f" (uplink down to ~{uplink['estimate_kbps']['min']:.0f} kbit/s)"
                )
            render.note(line)
        return int(outcome.exit_code)

    code = run(work)
    _leave_if_stuck(code)
    if code:
        raise typer.Exit(code)


# --------------------------------------------------------------------------- sdp


@app.command()
def sdp(
    first: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-", help="An SDP, or the JSON that --dump-sdp writes; '-' reads stdin."
        ),
    ],
    second: Annotated[
        str | None,
        typer.Argument(
            metavar="[ANSWER]", help="The answer to pair with FILE (the offer).", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show an SDP's structure; given an offer and an answer, pair them and warn.

    The warnings name what really breaks calls: no common codec, a rejected
    m-line, an inactive or mismatched direction, no candidates in a non-trickle
    answer, an actpass or conflicting setup role, a missing fingerprint, a data
    channel without sctp-port. ICE passwords are never shown.
    """
    setup(0, debug)

    def read(name: str) -> str:
        if name == "-":
            return read_stdin_value("SDP")
        try:
            return Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc

    def work() -> None:
        from . import render
        from .sdp import describe, load, pair

        offer, kind = load(read(first))
        if second is None:
            if json_out:
                render.emit_json({"type": kind, **offer.to_json()})
            else:
                render.data("\n".join(describe(offer, f"{kind or 'SDP'}: {first}")))
            return
        answer, _ = load(read(second))
        pairing = pair(offer, answer)
        if json_out:
            render.emit_json(
                {"offer": offer.to_json(), "answer": answer.to_json(), "pairing": pairing.to_json()}
            )
            return
        lines = [
            *describe(offer, f"offer: {first}"),
            "",
            *describe(answer, f"answer: {second}"),
            "",
            "pairing",
        ]
        for item in pairing.media:
            lines.append(
                f"  m-line {item.index} {item.kind} mid {item.mid or '-'}: {item.offer_direction} -> "
                f"{item.answer_direction or 'missing'}"
                + (f", codec {item.codec}" if item.codec else "")
            )
        if pairing.warnings:
            lines.append("warnings")
            lines += [f"  ! {w}" for w in pairing.warnings]
        else:
            lines.append("no problems found")
        render.data("\n".join(lines))

    run(work)


# --------------------------------------------------------------------------- completions


@app.command()
def completions(
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    """Print a completion script for SHELL (the same as completions/ in the repo).

    bash: `orga completions bash > ~/.local/share/bash-completion/completions/orga`;
    zsh: into a directory of $fpath as `_orga`; fish: into ~/.config/fish/completions/orga.fish.
    """
    from . import render
    from .docs import SHELLS, completion_script

    if shell not in SHELLS:
        fail(UsageError(f"unknown shell {shell!r}", f"use one of {', '.join(SHELLS)}"))
    render.data(completion_script(shell, app))


def _app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command that argv names, when it names one.

    Typer builds every command's options before parsing; with a dozen commands
    that is most of a short command's start-up. Help, --version and typos get
    the whole app.
    """
    if not argv or argv[0].startswith("-"):
        return app
    name = argv[0]
    commands = [
        c
        for c in app.registered_commands
        if (c.name or getattr(c.callback, "__name__", "").replace("_", "-")) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    lite = typer.Typer(**_APP_SETTINGS)
    lite.registered_callback = app.registered_callback
    lite.registered_commands = commands
    lite.registered_groups = groups
    return lite


def main() -> None:
    try:
        _app_for(sys.argv[1:])(prog_name="orga")
    except KeyboardInterrupt:
        sys.stderr.write("orga: interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
