"""The machine's cores, shared between the test workers: most tests share them, a few
(many calls at once, the uplink's timing, the echo canceller's real-time audio) have them
to themselves, whatever the other xdist workers are doing.

A readers-writer lock on two files every worker sees: a test that wants the machine alone
first takes the gate, so that no new test starts, then waits for those running to end; a
test that shares passes through the gate and holds the machine shared. Every wait is
bounded."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

WAIT_S = 600.0


def _take(fh: object, how: int, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            fcntl.flock(fh, how | fcntl.LOCK_NB)  # type: ignore[arg-type]
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {WAIT_S:.0f} s for {what}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def machine(folder: Path, alone: bool) -> Iterator[None]:
    """Hold the machine, *alone* or shared with the other workers' tests."""
    with (folder / "machine.gate").open("a") as gate, (folder / "machine.lock").open("a") as lock:
        _take(gate, fcntl.LOCK_EX, "the gate")
        try:
            _take(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH, "the machine")
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
