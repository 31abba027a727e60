"""The data channel's sender: JSON messages that are not lost at open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any


class ChannelSender:
    """Sends JSON on the data channel without losing the first messages.

    A message sent right at ``open`` can be lost when the far end has not yet
    attached its handler (aiortc #1194). Messages are queued until the channel
    is open and the server has spoken on it (proof that it listens), or 0.5 s
    after opening, whichever comes first.
    """

    def __init__(self, channel: Any, on_sent: Callable[[dict[str, Any]], None]) -> None:
        self.channel = channel
        self._on_sent = on_sent
        self._pending: list[dict[str, Any]] = []
        self._ready = False
        self._timer: asyncio.TimerHandle | None = None
        channel.on("open", self._opened)

    def _opened(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(0.5, self.mark_ready)

    def mark_ready(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ready or self.channel.readyState != "open":
            return
        self._ready = True
        pending, self._pending = self._pending, []
        for message in pending:
            self._send(message)

    def send(self, message: dict[str, Any]) -> None:
        if self._ready and self.channel.readyState == "open":
            self._send(message)
        else:
            self._pending.append(message)

    def _send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message))
        self._on_sent(message)
