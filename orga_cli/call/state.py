"""What a call shows: its state as the call keeps it, for any screen to draw.

The call (`lifecycle.Call`) and its controls write it; a screen (the CLI's live panel or
plain lines, or a Python caller's own) reads it when it draws and is told of what does
not last (a line of the conversation, a note, a warning) through the ``Screen`` protocol.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..figures import CallFigures

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


@dataclass
class CallState:
    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    connected_at: float | None = None  # monotonic: when the call first connected
    conversation_id: str | None = None
    session_id: str | None = None
    figures: CallFigures | None = None  # the last snapshot, once a second
    mic_block: np.ndarray | None = None  # the last 20 ms sent (int16); its level is shown
    remote_block: np.ndarray | None = None  # the last 20 ms played
    muted: bool = False
    ptt: bool = False  # push-to-talk: "muted" means "not talking"
    command: str | None = None  # the command line being typed after "/", None when closed
    voice: str | None = None
    temperature: float | None = None
    video: str | None = None  # label of the video input, None without video
    video_on: bool = True
    audio_in: str = ""
    audio_out: str = ""
    echo_cancel: str | None = None


class Screen(Protocol):
    """Where a call shows itself."""

    def refresh(self) -> None:
        """The state changed (a screen that draws on its own clock may ignore it)."""

    def line(self, speaker: str, text: str) -> None:
        """A line of the conversation: *speaker* is "you" or "orga"."""

    def note(self, text: str) -> None:
        """Something that happened, for a person to read once."""

    def warning(self, text: str) -> None:
        """Something wrong that names its fix, said once when it starts."""


class LogScreen:
    """A screen for a Python caller that draws nothing: notes and warnings are logged."""

    def refresh(self) -> None:
        pass

    def line(self, speaker: str, text: str) -> None:
        log.info("%s: %s", speaker, text)

    def note(self, text: str) -> None:
        log.info("%s", text)

    def warning(self, text: str) -> None:
        log.warning("%s", text)
