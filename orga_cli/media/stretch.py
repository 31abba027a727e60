"""Time-stretching for the receive buffer: 20 ms of 48 kHz mono made a little longer or
shorter without an audible seam (WSOLA's idea, one pitch period at a time).

- ``expand``: one pitch period repeated, cross-faded in;
- ``accelerate``: one pitch period taken out, cross-faded;
- ``restretch_quiet``: a quiet frame (a pause) made up to 15 ms longer or shorter at once;
- ``period``: the pitch period at the start of a frame and how well it repeats (a coarse
  search on a decimated copy, refined at the full rate); ``quiet``: below -50 dBFS.

Pure numpy, no state: `receive.py` decides when and by how much.
"""

from __future__ import annotations

import math

import numpy as np

from .opus import RATE

QUIET = 100.0  # RMS below this (-50 dBFS) is stretched without looking for a period
MIN_PERIOD, MAX_PERIOD = RATE // 400, RATE // 100  # 2.5 to 10 ms: 100 to 400 Hz
DECIMATE = 4


def _similarity(x: np.ndarray, lag: int) -> float:
    a, b = x[:lag], x[lag : 2 * lag]
    energy = float(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b)) / math.sqrt(energy) if energy > 0 else 0.0


def period(frame: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The pitch period (samples) that best repeats at the start of *frame*, and how well.

    A coarse search on a low-passed, decimated copy (means of DECIMATE samples), then
    the best lag refined sample by sample at the full rate.
    """
    head = frame[: 2 * MAX_PERIOD].astype(np.float32)
    coarse = head[: head.size // DECIMATE * DECIMATE].reshape(-1, DECIMATE).mean(axis=1)
    best = 0
    best_c = 0.0
    for lag in range(MIN_PERIOD // DECIMATE, max_lag // DECIMATE + 1):
        c = _similarity(coarse, lag)
        if c > best_c:
            best, best_c = lag * DECIMATE, c
    if best == 0:
        return 0, 0.0
    fine, fine_c = best, _similarity(head, best)
    for lag in range(max(MIN_PERIOD, best - DECIMATE), min(max_lag, best + DECIMATE) + 1):
        c = _similarity(head, lag)
        if c > fine_c:
            fine, fine_c = lag, c
    return fine, fine_c


def quiet(frame: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(np.square(frame.astype(np.float32))))) < QUIET


def _fade(n: int) -> tuple[np.ndarray, np.ndarray]:
    up = (np.arange(n, dtype=np.float32) + 0.5) / n
    return 1.0 - up, up


def accelerate(frame: np.ndarray, want: int) -> np.ndarray:
    """*frame* shortened by one period (<= *want* samples), or unchanged if it has none.

    out = crossfade(x[0:L] fading out, x[L:2L] fading in) + x[2L:]: seamless at
    both ends, and inaudible where x repeats with period L.
    """
    if quiet(frame):
        return restretch_quiet(frame, -want)
    lag = _stretch_lag(frame, want)
    if lag == 0:
        return frame
    down, up = _fade(lag)
    head = frame[:lag] * down + frame[lag : 2 * lag] * up
    return np.concatenate([np.round(head).astype(np.int16), frame[2 * lag :]])


def restretch_quiet(frame: np.ndarray, change: int) -> np.ndarray:
    """A quiet *frame* made *change* samples longer (> 0) or shorter (< 0) at once.

    out = x[:j] + crossfade(x[j:j+F] fading out, x[k:k+F] fading in) + x[k+F:] with
    k = j - change, both around the middle: a stretch of the frame is repeated or taken
    out, joined by a 2.5 ms cross-fade F. At most 15 ms per 20 ms frame.
    """
    fade = RATE // 400
    limit = frame.size - 2 * fade
    change = max(-limit, min(limit, change))
    if change == 0:
        return frame
    j = (frame.size - fade + change) // 2
    k = j - change
    down, up = _fade(fade)
    joint = frame[j : j + fade] * down + frame[k : k + fade] * up
    return np.concatenate([frame[:j], np.round(joint).astype(np.int16), frame[k + fade :]])


def expand(frame: np.ndarray, want: int) -> np.ndarray:
    """*frame* lengthened by one period (<= *want* samples), or unchanged if it has none.

    out = x[0:L] + crossfade(x[L:2L] fading out, x[0:L] fading in) + x[L:].
    """
    lag = _stretch_lag(frame, want)
    if lag == 0:
        return frame
    down, up = _fade(lag)
    middle = frame[lag : 2 * lag] * down + frame[:lag] * up
    return np.concatenate([frame[:lag], np.round(middle).astype(np.int16), frame[lag:]])


def _stretch_lag(frame: np.ndarray, want: int) -> int:
    want = min(want, MAX_PERIOD, frame.size // 2)
    if want < MIN_PERIOD:
        return 0
    if quiet(frame):
        return want
    lag, c = period(frame, want)
    return lag if c >= 0.9 else 0
