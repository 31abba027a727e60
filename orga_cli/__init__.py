"""orga: a command-line voice and video client for the Orga AI realtime API.

The CLI (`orga_cli.cli`) is a thin layer over a library a Python program can use on its
own, and everything it needs is importable from here:

- the HTTP API: ``OrgaClient``; its answers ``Token``, ``IceServer``, ``ChannelEvent``;
- one call: ``CallSession`` with ``CallParams`` and ``CallOptions``, a track to send
  (``AudioSourceTrack`` over any block source) and a receive buffer (``AudioReceiver``)
  pulled by a device or by ``WallClockPull``;
- the local media as `orga call` opens them: ``LocalMedia(MediaConfig(...))``;
- a whole call as `orga call` runs it, without a terminal: ``Call(CallRequest(...))``;
- the offline sandbox: ``start_sandbox()``;
- the error tree: ``OrgaError`` and its kinds, each with an ``exit_code`` and a ``hint``.

Names are imported when first used, so `import orga_cli` costs nothing.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# httpx imports its own command line (click, rich's console and progress, pygments) as soon
# as click is installed, which Flask (Locust's, in the [load] extra) and many tools bring:
# 50-70 ms more on every `orga token`. orga never runs httpx's command line, so that
# import is declined (httpx then defines a stub `main` that says what is missing).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

# name -> the module that defines it
_WHERE: dict[str, str] = {
    "OrgaClient": ".api",
    "Token": ".models",
    "IceServer": ".models",
    "ChannelEvent": ".models",
    "CallSession": ".session",
    "CallParams": ".session",
    "CallOptions": ".session",
    "AudioReceiver": ".media.receive",
    "WallClockPull": ".media.wallclock",
    "AudioSourceTrack": ".media.sources",
    "LocalMedia": ".media.local",
    "MediaConfig": ".media.local",
    "Call": ".call",
    "CallRequest": ".call",
    "Connection": ".call",
    "Outputs": ".call",
    "SandboxSpec": ".call",
    "start_sandbox": ".sandbox",
    "OrgaError": ".errors",
    "UsageError": ".errors",
    "ApiError": ".errors",
    "NetworkError": ".errors",
    "MediaError": ".errors",
    "CallError": ".errors",
    "ExitCode": ".errors",
}

__all__ = [
    "ApiError",
    "AudioReceiver",
    "AudioSourceTrack",
    "Call",
    "CallError",
    "CallOptions",
    "CallParams",
    "CallRequest",
    "CallSession",
    "ChannelEvent",
    "Connection",
    "ExitCode",
    "IceServer",
    "LocalMedia",
    "MediaConfig",
    "MediaError",
    "NetworkError",
    "OrgaClient",
    "OrgaError",
    "Outputs",
    "SandboxSpec",
    "Token",
    "UsageError",
    "WallClockPull",
    "__version__",
    "start_sandbox",
]

if TYPE_CHECKING:
    from .api import OrgaClient
    from .call import Call, CallRequest, Connection, Outputs, SandboxSpec
    from .errors import (
        ApiError,
        CallError,
        ExitCode,
        MediaError,
        NetworkError,
        OrgaError,
        UsageError,
    )
    from .media.local import LocalMedia, MediaConfig
    from .media.receive import AudioReceiver
    from .media.sources import AudioSourceTrack
    from .media.wallclock import WallClockPull
    from .models import ChannelEvent, IceServer, Token
    from .sandbox import start_sandbox
    from .session import CallOptions, CallParams, CallSession


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(module, __name__), name)
