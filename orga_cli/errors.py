"""The error tree, exit codes and secret redaction. Standard library only."""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2  # bad flags or input, missing credentials, config problems (Typer's own too)
    API = 3  # the API refused the request (4xx)
    NETWORK = 4  # network, timeout, TLS, 5xx after retries, an unusable response
    MEDIA = 5  # a media device or file
    CALL = 6  # the call failed: ICE, DTLS, closed by the peer
    THRESHOLD = 7  # orga load: a --max threshold was missed
    INTERRUPTED = 130  # Ctrl-C


class OrgaError(Exception):
    """Base of every error the library raises on purpose.

    ``message`` says what went wrong, ``hint`` what to do about it; both are
    one line and safe to show (secrets are scrubbed before printing).
    """

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        """``message — hint``: what went wrong, then what to do."""
        text = self.message.rstrip(".")
        return f"{text} — {self.hint}" if self.hint else text


class UsageError(OrgaError):
    """Bad input: a missing credential, an invalid value, an expired token."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The config file is unreadable, malformed or too open."""


class ApiError(OrgaError):
    """The API answered with a 4xx."""

    exit_code = ExitCode.API

    def __init__(self, message: str, hint: str | None = None, *, status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


class NetworkError(OrgaError):
    """The request did not get a usable answer: connection, DNS, TLS, timeout, 5xx."""

    exit_code = ExitCode.NETWORK

    def __init__(self, message: str, hint: str | None = None, *, status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


class MediaError(OrgaError):
    """A media device or file could not be used."""

    exit_code = ExitCode.MEDIA


class CallError(OrgaError):
    """The call failed or ended abnormally (ICE, DTLS, the peer hung up)."""

    exit_code = ExitCode.CALL


class Interrupted(OrgaError):
    """The user pressed Ctrl-C."""

    exit_code = ExitCode.INTERRUPTED


# --------------------------------------------------------------------------- settings

# Every setting an error, a warning or a note may tell its reader to change, as a Python
# caller sets it. The command line names the same settings by its flags (the CLI passes
# its table to ``naming``), so that one message serves both readers.
SETTINGS: dict[str, str] = {
    "api_key": "OrgaClient(api_key=…)",
    "base_url": "OrgaClient(base_url=…)",
    "timeout": "OrgaClient(timeout=…)",
    "insecure_http": "OrgaClient(insecure_http=True)",
    "email": "create_token(email=…)",
    "token": "CallSession(token=…)",
    "sandbox": "orga_cli.start_sandbox()",
    "ice_servers": "CallOptions.ice_servers",
    "relay_only": "CallOptions.relay_only",
    "dump_sdp": "CallOptions.dump_sdp",
    "reconnect_timeout": "CallOptions.reconnect_timeout",
    "audio_in": "MediaConfig.audio_in",
    "input_device": "MediaConfig.input_device",
    "output_device": "MediaConfig.output_device",
    "no_speaker": "MediaConfig.no_speaker",
    "video_in": "MediaConfig.video_in",
    "no_video": "MediaConfig.no_video",
    "camera": "MediaConfig.camera",
    "record": "MediaConfig.record",
    "no_processing": "MediaConfig(aec=False, ns=False, agc=False)",
    "transcript": "Transcript(path)",
    "port": "start_sandbox(port=…)",
    "ice_credentials": "ice_servers_from_urls(urls, usernames, credentials)",
}

_names: dict[str, str] = {}


def setting(name: str, value: str | None = None) -> str:
    """*name* (a key of SETTINGS) as the reader of a message sets it: ``--relay-only`` on
    the command line, ``CallOptions.relay_only`` from Python; with *value*, as set to it."""
    flag = _names.get(name)
    if flag is not None:
        return f"{flag} {value}" if value else flag
    where = SETTINGS[name]
    return f"{where}={value}" if value else where


class naming:
    """While the block runs, messages name settings by *names* (the CLI's flags)."""

    def __init__(self, names: dict[str, str]) -> None:
        self._names = names

    def __enter__(self) -> None:
        global _names
        self._saved, _names = _names, self._names

    def __exit__(self, *exc: object) -> None:
        global _names
        _names = self._saved


# --------------------------------------------------------------------------- secrets


def mask(secret: str) -> str:
    """Show a secret as its first three and last four characters.

    ``sk_orga_ai_abcdef123456`` becomes ``sk_…3456``. Short values are hidden whole.
    """
    if len(secret) < 12:
        return "…"
    return f"{secret[:3]}…{secret[-4:]}"


class _SecretRegistry:
    """Every secret the process has seen, so that any text can be scrubbed of them."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 6 and secret not in self._secrets:
            self._secrets.add(secret)
            self._pattern = None

    def clear(self) -> None:
        self._secrets.clear()
        self._pattern = None

    def scrub(self, text: str) -> str:
        if not self._secrets:
            return text
        if self._pattern is None:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return self._pattern.sub(lambda m: mask(m.group(0)), text)


secrets = _SecretRegistry()
"""The process-wide registry: credentials are added where they enter the program."""

# Twelve or more token characters: a value already masked (``sk_…1234``) is left alone.
_BEARER = re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/=-]{12,})(?!…)")


def redact_bearer(text: str) -> str:
    """Replace every ``Bearer <value>`` in *text* with its masked form."""
    return _BEARER.sub(lambda m: m.group(1) + mask(m.group(2)), text)
