"""libopus itself, through ctypes: an encoder with in-band FEC, a decoder with PLC and FEC.

PyAV wraps libopus through FFmpeg, which hides what a receiver on a real network
needs: FFmpeg's decode API takes an empty packet as "flush", so there is no
packet loss concealment, and it never asks libopus for the FEC copy of a lost
frame (``decode_fec``). Its encoder sets FEC and the expected loss only when it
opens, and the loss must follow what the far end reports. So both ends talk to
libopus directly, through the handful of functions below (no protocol is
re-implemented: the RTP payload is the Opus packet).

The library is the one PyAV's wheel bundles (``av.libs`` on Linux and Windows,
``av/.dylibs`` on macOS), so nothing beyond aiortc's own dependencies is needed;
a system libopus (Debian: libopus0) is the fallback.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np

from ..errors import MediaError
from .bundled import load_library

log = logging.getLogger(__name__)

RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz
MAX_PACKET = 1500
MAX_FRAME = 5760  # 120 ms, the longest Opus packet

APPLICATION_VOIP = 2048
SET_BITRATE = 4002
SET_COMPLEXITY = 4010
SET_INBAND_FEC = 4012
SET_PACKET_LOSS_PERC = 4014
SET_DTX = 4016

_lib: Any = None


def libopus() -> Any:
    """The loaded libopus (PyAV's copy first), with argument types declared once."""
    global _lib
    if _lib is not None:
        return _lib
    lib, errors = load_library("opus", "opus_decoder_create")
    if lib is None:
        raise MediaError(
            "libopus was not found" + (f" ({'; '.join(errors)})" if errors else ""),
            "reinstall PyAV (`pip install --force-reinstall av`) or install libopus0",
        )
    c_int, c_int32, ptr = ctypes.c_int, ctypes.c_int32, ctypes.c_void_p
    lib.opus_get_version_string.restype = ctypes.c_char_p
    lib.opus_encoder_create.restype = ptr
    lib.opus_encoder_create.argtypes = [c_int32, c_int, c_int, ctypes.POINTER(c_int)]
    lib.opus_encode.restype = c_int32
    lib.opus_encode.argtypes = [ptr, ptr, c_int, ptr, c_int32]
    lib.opus_encoder_destroy.argtypes = [ptr]
    # Variadic in C; every request used here takes one int, so it is declared so
    # (the pointer must not be passed as a C int).
    lib.opus_encoder_ctl.restype = c_int
    lib.opus_encoder_ctl.argtypes = [ptr, c_int, c_int]
    lib.opus_decoder_create.restype = ptr
    lib.opus_decoder_create.argtypes = [c_int32, c_int, ctypes.POINTER(c_int)]
    lib.opus_decode.restype = c_int
    lib.opus_decode.argtypes = [ptr, ctypes.c_char_p, c_int32, ptr, c_int, c_int]
    lib.opus_decoder_destroy.argtypes = [ptr]
    lib.opus_strerror.restype = ctypes.c_char_p
    if hasattr(lib, "opus_packet_has_lbrr"):  # libopus 1.5 and later
        lib.opus_packet_has_lbrr.restype = c_int
        lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, c_int32]
    _lib = lib
    log.debug("using %s", version())
    return lib


def version() -> str:
    return str(libopus().opus_get_version_string().decode())


def _check(code: int, what: str) -> int:
    if code < 0:
        reason = libopus().opus_strerror(code).decode()
        raise MediaError(f"libopus: {what} failed ({reason})")
    return code


class Encoder:
    """Mono 20 ms Opus packets (voip), with in-band FEC following the expected loss.

    With an expected loss of 0 % libopus adds no FEC, so a clean link pays no
    bitrate for it; above 0 it carries a low-bitrate copy of each frame in the
    next packet, which the receiver decodes when a packet is lost.
    """

    def __init__(self, bitrate: int = 64_000, *, fec: bool = True) -> None:
        lib = libopus()
        error = ctypes.c_int(0)
        self._st = lib.opus_encoder_create(RATE, 1, APPLICATION_VOIP, ctypes.byref(error))
        _check(error.value, "creating the encoder")
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self.fec = False
        self.loss_pct = 0
        self.bitrate = bitrate
        self._ctl(SET_BITRATE, bitrate)
        self.set_fec(fec)

    def set_bitrate(self, bitrate: int) -> None:
        """The encoder's bitrate from the next frame on (what the uplink allows the voice)."""
        bitrate = max(6_000, min(510_000, int(bitrate)))
        if bitrate != self.bitrate:
            self.bitrate = bitrate
            self._ctl(SET_BITRATE, bitrate)

    def _ctl(self, request: int, value: int) -> None:
        _check(libopus().opus_encoder_ctl(self._st, request, value), "a setting")

    def set_fec(self, on: bool) -> None:
        """In-band FEC on or off (what the far end's fmtp ``useinbandfec`` asks for)."""
        if on != self.fec:
            self.fec = on
            self._ctl(SET_INBAND_FEC, 1 if on else 0)

    def set_expected_loss(self, pct: int) -> None:
        pct = max(0, min(100, int(pct)))
        if pct != self.loss_pct:
            self.loss_pct = pct
            self._ctl(SET_PACKET_LOSS_PERC, pct)

    def encode(self, block: np.ndarray) -> bytes:
        """One 20 ms block of 48 kHz mono int16 to an Opus packet."""
        pcm = np.ascontiguousarray(block, dtype=np.int16)
        n = libopus().opus_encode(self._st, pcm.ctypes.data, pcm.size, self._out, MAX_PACKET)
        _check(n, "encoding")
        return self._out.raw[:n]

    def __del__(self) -> None:
        st, self._st = getattr(self, "_st", None), None
        if st and _lib is not None:
            _lib.opus_encoder_destroy(st)


class Decoder:
    """48 kHz mono int16 from Opus packets; concealment (PLC) and FEC recovery of lost ones."""

    def __init__(self) -> None:
        lib = libopus()
        error = ctypes.c_int(0)
        self._st = lib.opus_decoder_create(RATE, 1, ctypes.byref(error))
        _check(error.value, "creating the decoder")
        self._pcm = np.zeros(MAX_FRAME, dtype=np.int16)

    def _run(self, data: bytes | None, samples: int, fec: int) -> np.ndarray:
        n = libopus().opus_decode(
            self._st, data, len(data) if data else 0, self._pcm.ctypes.data, samples, fec
        )
        if n < 0:  # a corrupt packet: conceal it instead
            if data is None:
                return np.zeros(samples, np.int16)
            return self._run(None, samples, 0)
        out: np.ndarray = self._pcm[:n].copy()
        return out

    def decode(self, packet: bytes) -> np.ndarray:
        return self._run(packet, MAX_FRAME, 0)

    def conceal(self, samples: int = FRAME) -> np.ndarray:
        """Packet loss concealment: what libopus predicts the missing *samples* held."""
        return self._run(None, samples, 0)

    def recover(self, next_packet: bytes, samples: int = FRAME) -> np.ndarray:
        """The lost frame before *next_packet*, from the FEC copy it carries."""
        return self._run(next_packet, samples, 1)

    def __del__(self) -> None:
        st, self._st = getattr(self, "_st", None), None
        if st and _lib is not None:
            _lib.opus_decoder_destroy(st)


def has_fec(packet: bytes) -> bool:
    """Does *packet* carry an FEC copy of the frame before it? (False on libopus < 1.5.)"""
    lib = libopus()
    if not hasattr(lib, "opus_packet_has_lbrr"):
        return False
    return bool(lib.opus_packet_has_lbrr(packet, len(packet)) > 0)
