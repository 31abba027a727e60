"""Pulling the receive buffer on the wall clock, when no sound card does (no speaker, or
one that stopped): what a device would have taken, every 20 ms, handed to the taps."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import numpy as np

from .opus import FRAME, RATE
from .receive import AudioReceiver


class WallClockPull:
    """Pulls from a receiver at the wall clock's pace when no sound card does (--no-speaker).

    Every 20 ms it pulls what the clock says is due, and hands it to the taps.
    """

    def __init__(self, receiver: AudioReceiver, taps: list[Callable[[np.ndarray], None]]) -> None:
        self.receiver = receiver
        self.taps = taps
        self._task: asyncio.Task[None] | None = None

    def start(self, since: float | None = None) -> None:
        """Pull from now on, or from *since* (a monotonic time: a sound card that stopped
        pulling then), so that what was missed is pulled too and nothing is cut out."""
        self._task = asyncio.ensure_future(self._run(time.monotonic() if since is None else since))

    async def _run(self, start: float) -> None:
        pulled = 0
        while True:
            await asyncio.sleep(FRAME / RATE)
            due = int((time.monotonic() - start) * RATE) - pulled
            if due < FRAME // 2:
                continue
            if due > 5 * RATE:  # the loop stalled for seconds: do not burst
                pulled += due - FRAME
                due = FRAME
            block = self.receiver.pull(due)
            pulled += due
            for tap in self.taps:
                tap(block)

    def stop_soon(self) -> None:
        """Stop pulling now (from the loop's thread: no pull runs after this returns)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
