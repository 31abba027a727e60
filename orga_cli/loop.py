"""The event loop of the commands that carry media (`orga call`, `orga serve`).

uvloop where it is installed (Linux and macOS): a call wakes the loop about
200 times a second (packets each way, a decoder thread handing frames back, the
pacing timer), and uvloop does that for a fraction of asyncio's cost.
ORGA_EVENT_LOOP=asyncio chooses the standard loop instead. Signal handlers are
installed on the running loop where the platform has them (not Windows).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from .errors import UsageError

T = TypeVar("T")
CHOICES = ("uvloop", "asyncio")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() on the loop ORGA_EVENT_LOOP names (default: uvloop if installed)."""
    choice = os.environ.get("ORGA_EVENT_LOOP", "").strip().lower() or None
    if choice is not None and choice not in CHOICES:
        coro.close()
        raise UsageError(
            f"ORGA_EVENT_LOOP={choice!r} is not a loop this client knows", "use uvloop or asyncio"
        )
    if choice != "asyncio" and sys.platform != "win32":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                coro.close()
                raise UsageError(
                    "ORGA_EVENT_LOOP=uvloop, but uvloop is not installed",
                    "pip install uvloop, or unset ORGA_EVENT_LOOP",
                ) from None
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


@contextlib.contextmanager
def handling(signals: Iterable[signal.Signals], handler: Callable[[], None]) -> Iterator[None]:
    """Run *handler* on the loop for each of *signals* while the block runs.

    On Windows the loop has no signal handlers; Ctrl-C then arrives as
    KeyboardInterrupt, which the CLI's error boundary turns into exit 130.
    """
    loop = asyncio.get_running_loop()
    installed = []
    if sys.platform != "win32":
        for sig in signals:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class Background:
    """One long-lived task of an object (a pacer, a feedback sender, a control loop):
    started once, cancelled and awaited on stop, its end never raised to the stopper."""

    def __init__(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._work = work
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._work())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
