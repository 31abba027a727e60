"""One load call in a process of its own, for the locustfile: ``python -m orga_cli.load.one
BASE_URL``. The call's options come from the environment (``ORGA_LOAD_*``, the locustfile
lists them), the key as for `orga call` (``ORGA_API_KEY``, else the profile's). Prints one
JSON line, the call's figures as `orga load` counts them (times in ms from the moment it
starts dialing), and exits with the call's exit code.

Locust runs its users on gevent; a call runs on asyncio (and aiortc's threads), which do
not share a thread with gevent, so each call is a child process and Locust only waits.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from ..errors import ExitCode, OrgaError, UsageError
from .spec import LoadSpec, check_source


def number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number of seconds") from None
    if not 0 < value <= 86_400:
        raise UsageError(f"{name}={text!r} is out of range", "give seconds above 0")
    return value


def spec_from_env(base_url: str, env: Mapping[str, str] | None = None) -> LoadSpec:
    """The spec of one call: *base_url* (Locust's --host), the rest from the environment."""
    from ..config import Settings

    env = os.environ if env is None else env
    chosen = Settings({"base_url": base_url or None}, env=env)
    token_url = env.get("ORGA_LOAD_TOKEN_URL") or None
    key = chosen.value("api_key")
    if not key and token_url is None:
        raise UsageError(
            "no API key", "set ORGA_API_KEY (or a profile's api_key), or ORGA_LOAD_TOKEN_URL"
        )
    for name in ("ORGA_LOAD_AUDIO_IN", "ORGA_LOAD_VIDEO_IN"):
        value = env.get(name)
        check_source(f"{name}={value}", value)
    return LoadSpec(
        calls=1,
        rate=1.0,
        duration=number(env, "ORGA_LOAD_DURATION", 30.0),
        base_url=chosen.value("base_url") or "",
        api_key=key,
        token_url=token_url,
        audio_in=env.get("ORGA_LOAD_AUDIO_IN") or "tone:440",
        video_in=env.get("ORGA_LOAD_VIDEO_IN") or None,
        connect_timeout=number(env, "ORGA_LOAD_CONNECT_TIMEOUT", 10.0),
        timeout=number(env, "ORGA_LOAD_TIMEOUT", 10.0),
        insecure_http=env.get("ORGA_LOAD_INSECURE_HTTP", "") in ("1", "true", "yes"),
    )


def main(argv: list[str] | None = None) -> int:
    from ..loop import run
    from .worker import one_call, quiet

    args = sys.argv[1:] if argv is None else argv
    quiet()
    try:
        spec = spec_from_env(args[0] if args else "")
        result: dict[str, Any] = run(one_call(spec, 0, lambda message: None, {}))
    except OrgaError as exc:
        result = {"ok": False, "cause": exc.message.split(":")[0][:60], "error": exc.one_line()}
        result["exit_code"] = int(exc.exit_code)
    except KeyboardInterrupt:
        result = {"ok": False, "cause": "interrupted", "exit_code": int(ExitCode.INTERRUPTED)}
    print(json.dumps(result), flush=True)
    return int(result.get("exit_code") or 0)


if __name__ == "__main__":
    sys.exit(main())
