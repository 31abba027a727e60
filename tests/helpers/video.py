"""A camera-like video file: what loads a link as a real camera does."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def camera_file(folder: Path, seconds: float = 3.0) -> Path:
    """A y4m that loads a link as a camera does: a detailed background, a textured shape
    moving across it, a little noise each frame (a flat pattern would not fill 300 kbit/s)."""
    w, h, fps = 640, 480, 24
    path = folder / "camera.y4m"
    rng = np.random.default_rng(3)
    background = np.kron(rng.integers(30, 220, (h // 16, w // 16)), np.ones((16, 16)))
    background = np.clip(background + rng.normal(0, 18, (h, w)), 0, 255)
    yy, xx = np.mgrid[0:h, 0:w]
    texture = 128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    chroma = np.full(w * h // 2, 128, np.uint8).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(int(seconds * fps)):
            cx = w / 2 + w / 4 * np.sin(2 * np.pi * i / (seconds * fps))
            shape = ((xx - cx) / 80) ** 2 + ((yy - h / 2) / 100) ** 2 < 1
            y = background.copy()
            y[shape] = texture[shape]
            y += rng.normal(0, 2, (h, w))
            out.write(b"FRAME\n" + np.clip(y, 0, 255).astype(np.uint8).tobytes() + chroma)
    return path
