"""The cameras `--camera` can name, on each platform.

- Linux: video4linux capture nodes (/dev/videoN), named from sysfs.
- macOS: FFmpeg's avfoundation device list (``-f avfoundation -list_devices true``),
  read from PyAV's log: ``[0] FaceTime HD Camera`` under "AVFoundation video devices".
- Windows: FFmpeg's dshow device list (``-f dshow -list_devices true``):
  ``"Integrated Webcam" (video)``, or a name under "DirectShow video devices" in
  older FFmpeg.

The parsers are plain functions of the log lines, tested here on every platform; only
the FFmpeg call itself needs the platform.
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Camera:
    camera: str  # what --camera takes
    name: str
    format: str  # FFmpeg's input format

    def to_json(self) -> dict[str, Any]:
        return {"camera": self.camera, "name": self.name, "format": self.format}


def list_cameras() -> list[Camera]:
    if sys.platform == "darwin":
        return [
            Camera(f"{index}:none", name, "avfoundation")
            for index, name in parse_avfoundation(ffmpeg_device_log("avfoundation", ""))
        ]
    if sys.platform.startswith("win"):
        return [
            Camera(f"video={name}", name, "dshow")
            for name in parse_dshow(ffmpeg_device_log("dshow", "dummy"))
        ]
    return v4l2_cameras()


def v4l2_cameras(root: Path = Path("/sys/class/video4linux")) -> list[Camera]:
    """Capture nodes: a USB camera also has a metadata node (index 1), which is left out."""
    found = []
    for node in sorted(root.glob("video*"), key=lambda p: int(p.name[5:] or 0)):
        index = _read(node / "index")
        if index not in (None, "0"):
            continue
        name = _read(node / "name") or node.name
        found.append(Camera(f"/dev/{node.name}", name, "v4l2"))
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def ffmpeg_device_log(fmt: str, url: str) -> list[str]:
    """What FFmpeg logs when asked to list *fmt*'s devices (the open itself fails)."""
    import av
    import av.logging

    old = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with (
            av.logging.Capture(True) as logs,
            contextlib.suppress(av.FFmpegError, OSError, ValueError),
        ):
            av.open(url, format=fmt, options={"list_devices": "true"}).close()
    finally:
        av.logging.set_level(old)
    return [str(message) for _level, _name, message in logs]


def parse_avfoundation(lines: list[str]) -> list[tuple[int, str]]:
    found = []
    video = False
    for line in lines:
        if "AVFoundation video devices" in line:
            video = True
        elif "AVFoundation audio devices" in line:
            video = False
        elif video and (m := re.search(r"\[(\d+)\]\s+(.+?)\s*$", line)):
            found.append((int(m.group(1)), m.group(2)))
    return found


def parse_dshow(lines: list[str]) -> list[str]:
    found = []
    section = None
    for line in lines:
        if "DirectShow video devices" in line:
            section = "video"
            continue
        if "DirectShow audio devices" in line:
            section = "audio"
            continue
        if "Alternative name" in line:
            continue
        m = re.search(r'"([^"]+)"(?:\s+\((video|audio|none)\))?', line)
        if not m:
            continue
        kind = m.group(2) or section
        if kind == "video" and m.group(1) not in found:
            found.append(m.group(1))
    return found
