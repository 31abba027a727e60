"""libvpx's VP8 encoder itself, through ctypes: a bitrate that follows the link without keyframes.

FFmpeg (which PyAV wraps) sets libvpx's rate control only when an encoder opens,
so aiortc makes a new encoder whenever its target moves by 10 %, and every new
encoder starts with a keyframe: following a congested link costs a keyframe a
step. libvpx itself takes a new configuration at any time
(``vpx_codec_enc_config_set``), as libwebrtc's VP8 encoder does: the bitrate
moves between frames and the picture goes on. Keyframes come only when asked for.

The library is the one PyAV's wheel bundles (or the system's libvpx). Only a few
fields of ``vpx_codec_enc_cfg_t`` are written, at offsets checked when the library
is loaded against the defaults libvpx itself fills in (``self_check``): a libvpx
whose layout differs is not used, and the encoder falls back to PyAV
(media/video.py), with a keyframe per bitrate step.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import struct
from typing import Any

import numpy as np

from .bundled import load_library

log = logging.getLogger(__name__)


def _threads(pixels: int) -> int:
    """libvpx's worker threads for a picture, as libwebrtc chooses them: one up to VGA (a
    second thread there costs more CPU in handing work over than it saves: measured, a
    640x480 call's whole process +60 %), more only for larger pictures with cores to spare."""
    cores = os.cpu_count() or 1
    if pixels > 1280 * 960 and cores >= 6:
        return 3
    if pixels > 640 * 480 and cores >= 3:
        return 2
    return 1


# vpx_codec_enc_cfg_t: int32 fields, by index (vpx_encoder.h; checked in self_check()).
G_THREADS = 1
G_W, G_H = 3, 4
G_TIMEBASE_NUM, G_TIMEBASE_DEN = 7, 8
G_ERROR_RESILIENT = 9
G_LAG_IN_FRAMES = 11
RC_DROPFRAME_THRESH = 12
RC_RESIZE_ALLOWED = 13
RC_END_USAGE = 18
RC_TARGET_BITRATE = 28  # kbit/s
RC_MIN_QUANTIZER, RC_MAX_QUANTIZER = 29, 30
RC_UNDERSHOOT_PCT, RC_OVERSHOOT_PCT = 31, 32
RC_BUF_SZ, RC_BUF_INITIAL_SZ, RC_BUF_OPTIMAL_SZ = 33, 34, 35
KF_MODE = 40
KF_MAX_DIST = 42
# What vpx_codec_enc_config_default(vp8) puts there: the layout check.
DEFAULTS = {G_W: 320, G_H: 240, 5: 8, 6: 8, G_TIMEBASE_NUM: 1, G_TIMEBASE_DEN: 30,
            16: 60, 17: 30, RC_TARGET_BITRATE: 256, RC_MIN_QUANTIZER: 4,
            RC_MAX_QUANTIZER: 63, RC_UNDERSHOOT_PCT: 100, RC_OVERSHOOT_PCT: 100,
            RC_BUF_SZ: 6000, RC_BUF_INITIAL_SZ: 4000, RC_BUF_OPTIMAL_SZ: 5000,
            KF_MODE: 1, KF_MAX_DIST: 128}  # fmt: skip
CFG_BYTES = 4096  # more than sizeof(vpx_codec_enc_cfg_t) in any release
VPX_CBR = 1
VPX_KF_DISABLED = 0
VPX_IMG_FMT_I420 = 0x102
VPX_DL_REALTIME = 1
VPX_EFLAG_FORCE_KF = 1
VPX_CODEC_CX_FRAME_PKT = 0
VPX_FRAME_IS_KEY = 1
# vp8cx.h controls
VP8E_SET_CPUUSED = 13
VP8E_SET_NOISE_SENSITIVITY = 15
VP8E_SET_STATIC_THRESHOLD = 17
VP8E_GET_LAST_QUANTIZER_64 = 20
VP8E_SET_MAX_INTRA_BITRATE_PCT = 26

_lib: Any = None
_abi: int | None = None


class VpxUnavailable(RuntimeError):
    """libvpx cannot be used directly here (missing, or a layout this module does not know)."""


def libvpx() -> Any:
    """The loaded libvpx with its VP8 encoder, checked against the layout used here."""
    global _lib
    if _lib is not None:
        return _lib
    lib, errors = load_library("vpx", "vpx_codec_vp8_cx")
    if lib is None:
        raise VpxUnavailable("libvpx was not found" + (f" ({'; '.join(errors)})" if errors else ""))
    ptr, c_int, c_uint = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint
    lib.vpx_codec_version_str.restype = ctypes.c_char_p
    lib.vpx_codec_vp8_cx.restype = ptr
    lib.vpx_codec_enc_config_default.argtypes = [ptr, ptr, c_uint]
    lib.vpx_codec_enc_config_default.restype = c_int
    lib.vpx_codec_enc_init_ver.argtypes = [ptr, ptr, ptr, ctypes.c_long, c_int]
    lib.vpx_codec_enc_init_ver.restype = c_int
    lib.vpx_codec_enc_config_set.argtypes = [ptr, ptr]
    lib.vpx_codec_enc_config_set.restype = c_int
    lib.vpx_img_wrap.argtypes = [ptr, c_int, c_uint, c_uint, c_uint, ptr]
    lib.vpx_img_wrap.restype = ptr
    lib.vpx_codec_encode.argtypes = [
        ptr, ptr, ctypes.c_int64, ctypes.c_ulong, ctypes.c_long, ctypes.c_ulong,
    ]  # fmt: skip
    lib.vpx_codec_encode.restype = c_int
    lib.vpx_codec_get_cx_data.argtypes = [ptr, ptr]
    lib.vpx_codec_get_cx_data.restype = ptr
    lib.vpx_codec_destroy.argtypes = [ptr]
    lib.vpx_codec_destroy.restype = c_int
    lib.vpx_codec_error_detail.argtypes = [ptr]
    lib.vpx_codec_error_detail.restype = ctypes.c_char_p
    lib.vpx_codec_err_to_string.argtypes = [c_int]
    lib.vpx_codec_err_to_string.restype = ctypes.c_char_p
    self_check(lib)
    _lib = lib
    log.debug("using libvpx %s for VP8", lib.vpx_codec_version_str().decode())
    return lib


def self_check(lib: Any) -> None:
    """The configuration's fields are where this module writes them (else VpxUnavailable)."""
    cfg = ctypes.create_string_buffer(CFG_BYTES)
    if lib.vpx_codec_enc_config_default(lib.vpx_codec_vp8_cx(), cfg, 0) != 0:
        raise VpxUnavailable("libvpx gave no default VP8 configuration")
    fields = struct.unpack_from(f"<{KF_MAX_DIST + 1}i", cfg.raw)
    wrong = {i: fields[i] for i, want in DEFAULTS.items() if fields[i] != want}
    if wrong:
        raise VpxUnavailable(f"libvpx's configuration has another layout ({wrong})")


def _control(lib: Any, ctx: Any, control: int, value: int) -> None:
    # Variadic in C; every control used here takes one int.
    lib.vpx_codec_control_(ctx, ctypes.c_int(control), ctypes.c_int(value))


class Vp8Encoder:
    """One VP8 stream at one picture size: I420 frames in, VP8 frames out.

    ``bitrate`` can change between any two frames; a keyframe comes first and then
    only when ``encode(..., keyframe=True)`` asks for one.
    """

    def __init__(self, width: int, height: int, bitrate: int, *, fps: float = 30.0) -> None:
        global _abi
        lib = libvpx()
        self.width, self.height = width, height
        self._lib = lib
        self._cfg = ctypes.create_string_buffer(CFG_BYTES)
        lib.vpx_codec_enc_config_default(lib.vpx_codec_vp8_cx(), self._cfg, 0)
        self._set(G_W, width)
        self._set(G_H, height)
        self._set(G_TIMEBASE_NUM, 1)
        self._set(G_TIMEBASE_DEN, 90_000)
        self._set(G_THREADS, _threads(width * height))
        self._set(G_ERROR_RESILIENT, 0)
        self._set(G_LAG_IN_FRAMES, 0)
        self._set(RC_DROPFRAME_THRESH, 30)  # skip a frame rather than overshoot the buffer
        self._set(RC_RESIZE_ALLOWED, 0)  # the size is chosen by media/video.py
        self._set(RC_END_USAGE, VPX_CBR)
        self._set(RC_MIN_QUANTIZER, 2)
        self._set(RC_MAX_QUANTIZER, 56)
        self._set(RC_UNDERSHOOT_PCT, 100)
        self._set(RC_OVERSHOOT_PCT, 15)
        self._set(RC_BUF_INITIAL_SZ, 500)  # ms
        self._set(RC_BUF_OPTIMAL_SZ, 600)
        self._set(RC_BUF_SZ, 1000)
        self._set(KF_MODE, VPX_KF_DISABLED)  # keyframes when asked for (PLI, a new size)
        self.bitrate = max(10_000, int(bitrate))
        self._set(RC_TARGET_BITRATE, max(10, self.bitrate // 1000))
        self._ctx = ctypes.create_string_buffer(512)  # vpx_codec_ctx_t, opaque here
        iface = lib.vpx_codec_vp8_cx()
        if _abi is None:
            # VPX_ENCODER_ABI_VERSION differs between releases and a wrong one is
            # refused at once (VPX_CODEC_ABI_MISMATCH) without touching anything.
            for abi in range(10, 80):
                if lib.vpx_codec_enc_init_ver(self._ctx, iface, self._cfg, 0, abi) == 0:
                    _abi = abi
                    break
            else:
                raise VpxUnavailable("libvpx refused every encoder ABI version tried")
        else:
            code = lib.vpx_codec_enc_init_ver(self._ctx, iface, self._cfg, 0, _abi)
            if code != 0:
                raise VpxUnavailable(f"libvpx: {lib.vpx_codec_err_to_string(code).decode()}")
        self._open = True
        _control(lib, self._ctx, VP8E_SET_CPUUSED, -6)  # libwebrtc's speed for VGA
        _control(lib, self._ctx, VP8E_SET_STATIC_THRESHOLD, 1)
        _control(lib, self._ctx, VP8E_SET_NOISE_SENSITIVITY, 0)
        # A keyframe is at most three frames' worth of the budget (libwebrtc caps it too):
        # on a narrow link an unbounded one fills the bottleneck's queue by itself.
        _control(lib, self._ctx, VP8E_SET_MAX_INTRA_BITRATE_PCT, 300)
        self._img = ctypes.create_string_buffer(512)  # vpx_image_t
        self._frames = 0
        self._fps = fps

    def _set(self, index: int, value: int) -> None:
        struct.pack_into("<i", self._cfg, 4 * index, value)

    def set_bitrate(self, bitrate: int) -> None:
        """The target from the next frame on (no keyframe)."""
        bitrate = max(10_000, int(bitrate))
        if bitrate == self.bitrate:
            return
        self.bitrate = bitrate
        self._set(RC_TARGET_BITRATE, max(10, bitrate // 1000))
        code = self._lib.vpx_codec_enc_config_set(self._ctx, self._cfg)
        if code != 0:
            log.debug("libvpx refused bitrate %d: %s", bitrate, self._error(code))

    def _error(self, code: int) -> str:
        detail = self._lib.vpx_codec_error_detail(self._ctx)
        text = self._lib.vpx_codec_err_to_string(code).decode()
        return f"{text} ({detail.decode()})" if detail else text

    def encode(
        self, i420: np.ndarray, pts: int, duration: int, *, keyframe: bool = False
    ) -> tuple[bytes, bool] | None:
        """Encode one frame (I420, ``height * 3 // 2`` rows of ``width``; pts and duration in
        1/90000 s). Returns (the VP8 frame, is a keyframe), or None when the rate control
        skipped the frame."""
        lib = self._lib
        data = np.ascontiguousarray(i420)
        img = lib.vpx_img_wrap(
            self._img, VPX_IMG_FMT_I420, self.width, self.height, 1, data.ctypes.data
        )
        if not img:
            raise RuntimeError("libvpx could not wrap the picture")
        flags = VPX_EFLAG_FORCE_KF if keyframe else 0
        code = lib.vpx_codec_encode(self._ctx, img, pts, max(1, duration), flags, VPX_DL_REALTIME)
        if code != 0:
            raise RuntimeError(f"libvpx: encoding failed: {self._error(code)}")
        out, key = b"", False
        it = ctypes.c_void_p(None)
        while True:
            pkt = lib.vpx_codec_get_cx_data(self._ctx, ctypes.byref(it))
            if not pkt:
                break
            kind = ctypes.c_int.from_address(pkt).value
            if kind != VPX_CODEC_CX_FRAME_PKT:
                continue
            buf = ctypes.c_void_p.from_address(pkt + 8).value
            size = ctypes.c_size_t.from_address(pkt + 16).value
            flags_out = ctypes.c_uint32.from_address(pkt + 40).value
            if buf and size:
                out += ctypes.string_at(buf, size)
                key = key or bool(flags_out & VPX_FRAME_IS_KEY)
        self._frames += 1
        return (out, key) if out else None

    def close(self) -> None:
        if self._open:
            self._open = False
            self._lib.vpx_codec_destroy(self._ctx)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()
