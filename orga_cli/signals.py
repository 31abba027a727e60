"""Signal handlers on the running event loop, where the platform has them (not Windows)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterable, Iterator


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
