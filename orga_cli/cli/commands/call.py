"""`orga call`: the flags become one CallRequest (each flag in one place), and the call
runs with a screen (the live panel on a terminal, plain lines otherwise), keys, commands
on stdin and Ctrl-C wired to it. The call itself is `orga_cli.call`."""

from __future__ import annotations

import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from ... import models
from ...errors import UsageError
from ..boundary import read_stdin_value, run, setup
from ..options import (
    ApiKeyOpt,
    BaseUrlOpt,
    DebugOpt,
    EmailOpt,
    InsecureOpt,
    ProfileOpt,
    TimeoutOpt,
    VerboseOpt,
    ice_credential_option,
    ice_server_option,
    ice_username_option,
    opt,
    reply_option,
    save_received_option,
)
from .common import settings


class VideoQuality(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


def call(
    sandbox: Annotated[
        bool,
        opt(
            "--sandbox", help="Call a sandbox started in this process (offline; echoes your voice)."
        ),
    ] = False,
    token_opt: Annotated[
        str | None,
        opt(
            "--token",
            "-t",
            envvar="ORGA_TOKEN",
            show_envvar=True,
            metavar="TOKEN|-",
            help="Use this ephemeral token ('-' reads stdin) instead of minting one.",
        ),
    ] = None,
    voice: Annotated[
        str, opt("--voice", help="Voice (see `orga voices`).", show_default=True)
    ] = models.DEFAULT_VOICE,
    model: Annotated[str, opt("--model", help="Model.", show_default=True)] = models.MODEL,
    temperature: Annotated[
        float,
        opt(
            "--temperature",
            min=0.0,
            max=1.0,
            help="Sampling temperature, 0 to 1.",
            show_default=True,
        ),
    ] = 0.5,
    instructions: Annotated[
        str | None,
        opt(
            "--instructions",
            metavar="TEXT|@FILE",
            help="System instructions, or @FILE to read them.",
        ),
    ] = None,
    transcribe: Annotated[
        bool, opt("--transcribe", help="Ask for transcripts of what you say.")
    ] = False,
    no_history: Annotated[
        bool, opt("--no-history", help="Do not keep conversation history.")
    ] = False,
    audio_in: Annotated[
        str | None,
        opt(
            "--audio-in",
            metavar="FILE|tone:HZ",
            help="Send a file (anything ffmpeg decodes, in real time) or a sine instead of the microphone.",
        ),
    ] = None,
    input_device: Annotated[
        str | None,
        opt(
            "--input-device",
            metavar="INDEX|NAME",
            help="Microphone: index or part of its name (see `orga devices`).",
        ),
    ] = None,
    video_in: Annotated[
        str | None,
        opt(
            "--video-in",
            metavar="FILE|testsrc",
            help="Send a video file (looped) or a test pattern instead of the camera.",
        ),
    ] = None,
    no_video: Annotated[bool, opt("--no-video", help="Send no video.")] = False,
    camera: Annotated[
        str | None,
        opt(
            "--camera",
            metavar="DEVICE",
            help="Camera device (/dev/video0; avfoundation index; dshow name).",
        ),
    ] = None,
    video_quality: Annotated[
        VideoQuality,
        opt(
            "--video-quality",
            help="SDK preset: low 640x480@24, medium 1280x720@30, high 1920x1080@30.",
            show_default=True,
        ),
    ] = VideoQuality.low,
    output_device: Annotated[
        str | None,
        opt("--output-device", metavar="INDEX|NAME", help="Speaker: index or part of its name."),
    ] = None,
    no_speaker: Annotated[bool, opt("--no-speaker", help="Play nothing.")] = False,
    aec: Annotated[
        bool | None,
        opt(
            "--aec/--no-aec",
            help="Echo cancellation: on by default for a real microphone; --aec also processes --audio-in.",
        ),
    ] = None,
    no_ns: Annotated[bool, opt("--no-ns", help="No noise suppression on the microphone.")] = False,
    no_agc: Annotated[
        bool, opt("--no-agc", help="No automatic gain control on the microphone.")
    ] = False,
    record: Annotated[
        Path | None,
        opt("--record", metavar="FILE.wav", help="Write what the model says to a WAV file."),
    ] = None,
    record_mic: Annotated[
        Path | None,
        opt(
            "--record-mic",
            metavar="FILE.wav",
            help="Write what was sent (after muting) to a WAV file.",
        ),
    ] = None,
    record_both: Annotated[
        Path | None,
        opt(
            "--record-both",
            metavar="FILE.wav",
            help="Write the conversation as one stereo WAV: left what was sent, right what was played, on one clock.",
        ),
    ] = None,
    transcript: Annotated[
        Path | None,
        opt(
            "--transcript",
            metavar="FILE",
            help="Keep the conversation with times and speakers, written as it happens; "
            "the extension picks the format: .md, .txt, .srt, .vtt or .jsonl. Implies --transcribe.",
        ),
    ] = None,
    muted: Annotated[
        bool, opt("--muted", help="Start with the microphone muted (m unmutes).")
    ] = False,
    ptt: Annotated[
        bool,
        opt(
            "--ptt",
            help="Push-to-talk: the microphone sends only while talking is switched on with the "
            "space bar (terminals do not report a key's release, so space switches on and off). "
            "Needs a terminal.",
        ),
    ] = False,
    events: Annotated[
        Path | None,
        opt(
            "--events",
            metavar="FILE.jsonl",
            help="Log every data-channel message, both ways, with time and direction.",
        ),
    ] = None,
    stats: Annotated[
        Path | None,
        opt(
            "--stats",
            metavar="FILE.jsonl",
            help="Keep the call's record as it happens: every moment of the connection (token,"
            " candidates, pair checks, DTLS, first audio, outages, re-dials, turns, the end) and"
            " its figures once a second; `orga report FILE` makes it a page.",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        opt("--duration", min=0.1, metavar="SECONDS", help="Hang up after this long connected."),
    ] = None,
    json_out: Annotated[
        bool, opt("--json", help="Print a JSON summary on stdout at the end.")
    ] = False,
    ice_timeout: Annotated[
        float,
        opt(
            "--ice-timeout",
            min=0.1,
            metavar="SECONDS",
            help="Bound on ICE candidate gathering.",
            show_default=True,
        ),
    ] = 2.0,
    ice_server: Annotated[
        list[str] | None,
        ice_server_option("Use these STUN/TURN servers instead of the API's (repeatable)."),
    ] = None,
    ice_username: Annotated[
        list[str] | None, ice_username_option("TURN username (like `orga serve`).")
    ] = None,
    ice_credential: Annotated[list[str] | None, ice_credential_option("TURN credential.")] = None,
    relay_only: Annotated[
        bool, opt("--relay-only", help="Use TURN relay candidates only.")
    ] = False,
    connect_timeout: Annotated[
        float,
        opt(
            "--connect-timeout",
            min=0.5,
            metavar="SECONDS",
            help="Bound on ICE and DTLS after the answer.",
            show_default=True,
        ),
    ] = 10.0,
    reconnect_timeout: Annotated[
        float,
        opt(
            "--reconnect-timeout",
            min=1.0,
            metavar="SECONDS",
            help="When media stops, ride out the outage this long, then dial again.",
            show_default=True,
        ),
    ] = 20.0,
    no_reconnect: Annotated[
        bool,
        opt(
            "--no-reconnect",
            help="End the call (exit 6) when media has not come back within --reconnect-timeout.",
        ),
    ] = False,
    dump_sdp: Annotated[
        Path | None,
        opt(
            "--dump-sdp",
            metavar="DIR",
            help="Write offer.sdp, answer.sdp and the /calls request and response (tokens redacted).",
        ),
    ] = None,
    sandbox_reply: Annotated[
        str,
        reply_option(
            "--sandbox-reply", "With --sandbox: what its peer sends back.", show_default=True
        ),
    ] = "echo",
    sandbox_save_received: Annotated[
        Path | None,
        save_received_option(
            "--sandbox-save-received", "With --sandbox: one WAV per call of what it received."
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
    from ..render import setup_logging

    setup_logging(verbose)  # warnings (a device lost mid-call) go through the panel's console

    def work() -> int:
        from ...call import CallRequest, Connection, Outputs, SandboxSpec, read_instructions
        from ...media.local import MediaConfig
        from ...models import ice_servers_from_urls
        from ...session import CallOptions, CallParams
        from ...voices import resolve_voice
        from ..terminal import current

        chosen = settings(api_key, base_url, email, profile)
        token_value = read_stdin_value("token") if token_opt == "-" else token_opt
        try:
            servers = (
                ice_servers_from_urls(ice_server, ice_username or [], ice_credential or [])
                if ice_server
                else None
            )
        except ValueError as exc:
            raise UsageError(f"--ice-server: {exc}") from exc
        term = current()
        if ptt and not term.keys:
            raise UsageError(
                "--ptt needs a terminal: talking is switched with the space bar",
                "run it in a terminal, or use --muted and /mute commands on stdin",
            )
        request = CallRequest(
            connection=Connection(
                base_url=chosen.value("base_url"),
                api_key=chosen.value("api_key"),
                token=token_value,
                timeout=timeout,
                insecure_http=insecure_http,
                options=CallOptions(
                    ice_timeout=ice_timeout,
                    connect_timeout=connect_timeout,
                    relay_only=relay_only,
                    ice_servers=servers,
                    email=chosen.value("email"),
                    dump_sdp=dump_sdp,
                    reconnect_timeout=reconnect_timeout,
                ),
                reconnect=not no_reconnect,
            ),
            params=CallParams(
                voice=resolve_voice(voice),
                model=model,
                temperature=temperature,
                return_transcription=transcribe or transcript is not None,
                instructions=read_instructions(instructions),
                history=not no_history,
            ),
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
                muted=muted,
            ),
            outputs=Outputs(events=events, transcript=transcript, stats=stats),
            sandbox=SandboxSpec(sandbox_reply, sandbox_save_received) if sandbox else None,
            ptt=ptt,
            duration=duration,
        )
        if transcript is not None:
            from ...call.transcript import transcript_format

            transcript_format(transcript)  # an unknown extension fails before the call
        commands_from_stdin = not term.stdin_tty and token_opt != "-"
        from ... import loop

        outcome = loop.run(_call(request, term, commands_from_stdin))
        from .. import render

        if json_out:
            render.emit_json(outcome.summary)
        if outcome.error is not None:
            raise outcome.error
        render.note(_summary_line(outcome.summary))
        return int(outcome.exit_code)

    run(work)


async def _call(request: Any, term: Any, commands_from_stdin: bool) -> Any:
    """The call with its screen, keys, stdin commands and signals."""
    import signal

    from ...call import Call
    from ...loop import handling
    from ..keys import open_keys, read_command_lines
    from ..panel import LivePanel, PlainLines
    from ..terminal import native_stderr

    with native_stderr():
        call = Call(request, origin=process_start())
        screen = LivePanel(call.state) if term.stderr_tty else PlainLines(call.state)
        call.screen = screen
        with handling((signal.SIGINT, signal.SIGTERM), call.interrupt), screen:
            keys = open_keys(call.key, screen.note) if term.keys else None
            if commands_from_stdin:
                read_command_lines(call.command)
            try:
                return await call.run()
            finally:
                if keys is not None:
                    keys.close()


def _summary_line(s: dict[str, Any]) -> str:
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
    return line


def process_start() -> float:
    """When this process started (epoch seconds, ±10 ms); from /proc on Linux, else now:
    what a user of `orga call` waited for, from which the call's milestones count.

    The process's age is the system uptime minus its start time since boot (both
    in /proc, in clock ticks and centiseconds); btime would only give whole seconds.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        start_ticks = int(fields[19])
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.time()
