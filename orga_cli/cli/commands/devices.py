"""`orga devices` (what PortAudio and the camera APIs see) and `orga doctor` (is
everything ready for a call?)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..boundary import run, setup
from ..options import (
    ApiKeyOpt,
    BaseUrlOpt,
    DebugOpt,
    EmailOpt,
    InsecureOpt,
    JsonOpt,
    ProfileOpt,
    TimeoutOpt,
)
from .common import settings


def devices(json_out: JsonOpt = False, debug: DebugOpt = False) -> None:
    """List audio devices (PortAudio, the defaults marked) and cameras.

    `orga call --input-device` and `--output-device` take an index or a unique
    part of a name from the audio list; `--camera` takes a camera's first column
    (/dev/videoN on Linux, N:none on macOS, video=NAME on Windows). --json gives
    {"audio": [...], "cameras": [...]}.
    """
    setup(0, debug)

    def work() -> None:
        from ...media.cameras import list_cameras
        from ...media.devices import list_devices
        from .. import render

        found = list_devices()
        cameras = list_cameras()
        if json_out:
            render.emit_json({"audio": found, "cameras": [c.to_json() for c in cameras]})
        else:
            render.devices_table(found)
            render.cameras_table(cameras)

    run(work)


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
        from .. import render
        from ..doctor import Doctor

        chosen = settings(api_key, base_url, email, profile)
        doc = Doctor(chosen, play=play, timeout=timeout or 10.0, insecure_http=insecure_http)
        checks = doc.run(lambda check: None if json_out else render.doctor_line(check))
        if json_out:
            render.emit_json({"ok": doc.exit_code == 0, "checks": [c.to_json() for c in checks]})
        return doc.exit_code

    run(work)
