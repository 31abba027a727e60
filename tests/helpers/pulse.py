"""A private PulseAudio daemon with two null sinks: PortAudio gets real devices."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .faults import stop_process


@dataclass
class Pulse:
    """A virtual speaker and microphone.

    What is played into the sink "mic" is what PortAudio's default input records
    (its monitor is the default source); what PortAudio plays lands in "speaker",
    whose monitor a test can record.
    """

    runtime: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)

    def play(self, path: Path, device: str = "mic") -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["paplay", f"--device={device}", str(path)], env={**os.environ, **self.env}
        )

    def record(self, path: Path, device: str = "speaker.monitor") -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "parecord",
                f"--device={device}",
                "--rate=48000",
                "--channels=1",
                "--format=s16le",
                "--file-format=wav",
                str(path),
            ],
            env={**os.environ, **self.env},
        )

    def pactl(self, *args: str) -> str:
        out = subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout

    def unload_null_sinks(self) -> None:
        """Both virtual devices gone at once, as an unplugged headset: the microphone's sink
        first, so that the speaker's stream has nowhere to be moved to."""
        modules = [
            line.split("\t")[0]
            for line in self.pactl("list", "short", "modules").splitlines()
            if "module-null-sink" in line
        ]
        for module in reversed(modules):
            self.pactl("unload-module", module)


def missing_for_devices() -> str | None:
    """Why the device tests cannot run here, or None."""
    for tool in ("pulseaudio", "pactl", "paplay", "parecord", "pacat"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian: pulseaudio pulseaudio-utils)"
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        return f"PortAudio is missing ({exc}; Debian: libportaudio2)"
    return None


@contextlib.contextmanager
def running_pulse(runtime: Path) -> Iterator[Pulse]:
    """A PulseAudio daemon of its own in *runtime*, stopped at the end."""
    socket_path = runtime / "native"
    config = runtime / "default.pa"
    config.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}\n"
        "load-module module-null-sink sink_name=speaker rate=48000 channels=2"
        " sink_properties=device.description=orga-test-speaker\n"
        "load-module module-null-sink sink_name=mic rate=48000 channels=1"
        " sink_properties=device.description=orga-test-mic\n"
        "set-default-sink speaker\n"
        "set-default-source mic.monitor\n"
    )
    env = {
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_SERVER": f"unix:{socket_path}",
        "HOME": str(runtime),
    }
    proc = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            "-F",
            str(config),
            "--exit-idle-time=-1",
            "--daemonize=no",
            "--log-target=stderr",
            "--disallow-exit=no",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=(runtime / "pulse.log").open("w"),
    )
    deadline = time.monotonic() + 15
    while not socket_path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    box = Pulse(runtime, env, proc)
    try:
        while time.monotonic() < deadline:
            try:
                box.pactl("info")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        # A null sink that wakes from idle stalls its first stream for up to 2 s and
        # then catches up in a burst, which no sound card does: a silent stream keeps
        # the virtual speaker running, so that tests measure the client, not the stall.
        keep_alive = subprocess.Popen(
            ["pacat", "--playback", "--device=speaker", "--latency-msec=10", "--raw",
             "--format=s16le", "--rate=48000", "--channels=2", "/dev/zero"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        try:
            yield box
        finally:
            keep_alive.kill()
            keep_alive.wait(5)
    finally:
        stop_process(proc)
