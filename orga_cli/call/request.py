"""What a call is asked to do, by concern; the CLI builds it once from its flags, a Python
caller from keywords. Nothing here does anything: `lifecycle.Call` reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..media.local import MediaConfig
from ..session import CallOptions, CallParams


@dataclass
class Connection:
    """Where and how to call: the API, the credentials, ICE, reconnection."""

    base_url: str | None = None  # None: the Orga API
    api_key: str | None = None
    token: str | None = None  # an ephemeral token to use instead of minting one
    timeout: float = 10.0
    insecure_http: bool = False
    options: CallOptions = field(default_factory=CallOptions)
    reconnect: bool = True  # dial again when media stays away past options.reconnect_timeout


@dataclass
class SandboxSpec:
    """A sandbox in this process to call instead of the API (offline), and what its peer does.

    With one, the connection's base URL, key and email are not used, and missing devices
    are stood in for (a tone, no speaker, a test pattern) instead of failing."""

    reply: str = "echo"  # echo, parrot, silence or a file looped as the model's voice
    save_received: Path | None = None  # one WAV per call of what the sandbox received


@dataclass
class Outputs:
    """Files the call keeps besides its recordings (those are MediaConfig's)."""

    events: Path | None = None  # every data-channel message, both ways, as JSON lines
    transcript: Path | None = None  # the conversation; the extension picks the format
    stats: Path | None = None  # the call's figures, one JSON line a second


@dataclass
class CallRequest:
    """Everything a call was asked to do."""

    connection: Connection = field(default_factory=Connection)
    params: CallParams = field(default_factory=CallParams)
    media: MediaConfig = field(default_factory=MediaConfig)
    outputs: Outputs = field(default_factory=Outputs)
    sandbox: SandboxSpec | None = None
    ptt: bool = False  # push-to-talk: the microphone sends only while talking is on
    duration: float | None = None  # hang up after this long connected


def read_instructions(value: str | None) -> str | None:
    """Instructions as given, or the text of a file for ``@FILE``."""
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read instructions file {path}: {exc.strerror or exc}") from exc
