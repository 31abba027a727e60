"""Received audio leaves aiortc's jitter buffer as soon as it arrives.

aiortc releases an audio frame only once four later frames are buffered: 80 ms
of delay that absorbs no jitter at all (frames then leave one per arriving
packet, at the network's pace). Every Opus RTP packet carries one whole 20 ms
frame, so a packet can go to the decoder the moment it arrives; jitter is the
playout buffer's job (media/audio.py), which adapts to it. A packet that arrives
after a later one is dropped, as a lost one would be, instead of stalling the
stream; a lost packet costs its own 20 ms and no lasting delay. (aiortc's buffer
stalls until sixteen later packets are in, then keeps that backlog: a single
loss adds 300 ms for the rest of the call.)

This replaces one private attribute of aiortc's RTCRtpReceiver with an instance
of a subclass of aiortc's own JitterBuffer; a test checks that the installed
aiortc still has it, and without it the call goes on with aiortc's buffer.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.utils import uint16_add

log = logging.getLogger(__name__)

_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


class ArrivalOrderJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing each audio packet as it arrives in order."""

    def __init__(self, capacity: int = 16) -> None:
        super().__init__(capacity=capacity)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        # add() has dropped anything older than what was already released; this
        # packet is the newest: forget the gap before it and release it.
        assert self._origin is not None
        packet = self._packets[sequence_number % self.capacity]
        if packet is None:
            return None
        self.remove(uint16_add(sequence_number, -self._origin) + 1)
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def release_on_arrival(receiver: Any) -> bool:
    """Give an audio RTCRtpReceiver the arrival-order buffer; False if aiortc has changed."""
    if not isinstance(getattr(receiver, _ATTRIBUTE, None), JitterBuffer):
        log.info("this aiortc has no audio jitter buffer to replace; received audio waits 80 ms")
        return False
    setattr(receiver, _ATTRIBUTE, ArrivalOrderJitterBuffer())
    return True
