"""Turns: when you stopped speaking, and how long the model took to answer.

A voice-activity detector on what is sent (after processing) marks the start and end
of each of your turns; the first received audio above its noise floor after the end
(an onset: received audio that was quiet and is not any more) marks the reply.

The detector is an energy detector with an adaptive noise floor and a hangover, by
choice: what it looks at has already been through noise suppression (a real
microphone) or is a clean file, so energy separates speech from silence well; it
costs a dot product per 20 ms block (a few µs; `bench/turns.py`), needs no model
file and no new dependency. WebRTC's GMM VAD (py-webrtcvad) is unmaintained and
flags noise as speech more often; Silero would add onnxruntime (~15 MB) and ~1 ms
per block for a decision the energy makes as well here.

Times are the listener's: a sent block's capture is its send time minus the input's
latency, a played block is heard at its pull time plus the output's latency.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .audio import level_dbfs


@dataclass
class Turn:
    start: float  # epoch seconds: your speech began
    end: float  # your speech ended
    reply: float | None = None  # the model's first audio after the end
    barged_in: bool = False  # you spoke again before any reply

    @property
    def latency_ms(self) -> float | None:
        return None if self.reply is None else 1000 * (self.reply - self.end)

    def to_json(self) -> dict[str, float | None]:
        latency = self.latency_ms
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "latency_ms": None if latency is None else round(latency),
        }


class EnergyVad:
    """Speech or not for each block: energy above an adaptive floor, with a hangover.

    The floor starts at the first block's level and follows the quietest blocks: down at
    once, up by 3 dB a second (so that
    steady noise becomes the floor and speech, which is never steady for long, does
    not). Speech is a block more than *margin_db* above the floor and above
    *min_dbfs*; it starts after *attack_s* of such blocks and ends after *hangover_s*
    without one (the end is the last loud block's end).
    """

    def __init__(
        self,
        margin_db: float = 12.0,
        min_dbfs: float = -50.0,
        attack_s: float = 0.06,
        hangover_s: float = 0.35,
    ) -> None:
        self.margin_db, self.min_dbfs = margin_db, min_dbfs
        self.attack_s, self.hangover_s = attack_s, hangover_s
        self.floor: float | None = None  # from the first block on
        self.speaking = False
        self.started: float | None = None  # the first loud block of this run
        self.last_loud: float | None = None  # the end of the last loud block
        self.loud = False  # the last block's decision

    def update(self, db: float, at: float, seconds: float) -> str | None:
        """One block of *seconds* ending at *at*: "start", "end" (of speech) or None."""
        if self.floor is None or db < self.floor:
            self.floor = max(-90.0, db)
        else:
            self.floor = min(db, self.floor + 3.0 * seconds)
        loud = self.loud = db > max(self.min_dbfs, self.floor + self.margin_db)
        if loud:
            if self.started is None:
                self.started = at - seconds
            self.last_loud = at
            if not self.speaking and at - self.started >= self.attack_s:
                self.speaking = True
                return "start"
            return None
        if self.last_loud is not None and at - self.last_loud >= self.hangover_s:
            self.started = None
            if self.speaking:
                self.speaking = False
                return "end"
        return None


class TurnTracker:
    """Your turns from the sent blocks, the replies from the played ones.

    ``sent`` runs on the event loop, ``played`` on PortAudio's thread (only a level and
    a few comparisons there); both take the lock.
    """

    def __init__(
        self,
        in_latency: float = 0.0,
        out_latency: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_turn: Callable[[Turn], None] | None = None,
    ) -> None:
        self.in_latency, self.out_latency = in_latency, out_latency
        self._clock = clock
        self._on_turn = on_turn
        self._you = EnergyVad()
        # Received audio: a shorter hangover (a reply's onset is what counts) and no attack.
        self._model = EnergyVad(attack_s=0.0, hangover_s=0.25)
        self._onsets: deque[float] = deque(maxlen=32)
        self._lock = threading.Lock()
        self.turns: list[Turn] = []
        self._waiting: Turn | None = None  # ended, no reply yet
        # (model speaking, your microphone loud) for each sent block of the last 10 s
        self._overlap: deque[tuple[bool, bool]] = deque(maxlen=500)
        self._current_start = 0.0

    def sent(self, block: np.ndarray) -> None:
        at = self._clock() - self.in_latency
        seconds = block.size / 48_000
        with self._lock:
            event = self._you.update(level_dbfs(block), at, seconds)
            self._overlap.append((self._model.speaking, self._you.loud))
            if event == "start":
                if self._waiting is not None:
                    self._waiting.barged_in = True
                    self._waiting = None
                assert self._you.started is not None
                self._current_start = self._you.started
            elif event == "end":
                assert self._you.last_loud is not None
                turn = Turn(self._current_start, self._you.last_loud)
                self.turns.append(turn)
                self._waiting = turn
                self._match()

    def played(self, samples: np.ndarray) -> None:
        at = self._clock() + self.out_latency
        seconds = samples.size / 48_000
        with self._lock:
            was = self._model.speaking
            self._model.update(level_dbfs(samples), at, seconds)
            if self._model.speaking and not was:
                assert self._model.started is not None
                self._onsets.append(self._model.started)
                self._match()

    def _match(self) -> None:
        """The waiting turn's reply: the first onset after its end (with the lock held)."""
        turn = self._waiting
        if turn is None:
            return
        reply = next((t for t in self._onsets if t > turn.end), None)
        if reply is None:
            return
        turn.reply = reply
        self._waiting = None
        if self._on_turn is not None:
            self._on_turn(turn)

    def echo_suspected(self) -> bool:
        """The microphone is loud through most of what the model said lately (at least 2 s
        of it in the last 10 s): that is the model's voice coming back, not you."""
        with self._lock:
            during = [loud for speaking, loud in self._overlap if speaking]
        return len(during) >= 100 and sum(during) > 0.6 * len(during)

    def utterance_times(self, speaker: str) -> tuple[float, float | None]:
        """When the utterance a transcript line is about was said: your last turn, or the
        reply to it if it came in the last few seconds; else now."""
        now = self._clock()
        with self._lock:
            last = self.turns[-1] if self.turns else None
        if last is not None and speaker == "you" and now - last.end < 10:
            return last.start, last.end
        if last is not None and speaker == "orga" and last.reply and now - last.reply < 5:
            return last.reply, None
        return now, None

    def latencies_ms(self) -> list[float]:
        with self._lock:
            return [t.latency_ms for t in self.turns if t.latency_ms is not None]

    def summary(self) -> dict[str, object]:
        latencies = self.latencies_ms()
        with self._lock:
            turns = [t.to_json() for t in self.turns]
        return {
            "turns": turns,
            "turn_latency_ms": {
                "p50": round(statistics.median(latencies)) if latencies else None,
                "p95": round(percentile(latencies, 0.95)) if latencies else None,
            },
        }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
