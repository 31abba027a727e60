"""Shared fixtures: a real `orga serve` on loopback, an isolated config, fault servers."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orga_cli import render
from orga_cli.cli import app
from orga_cli.errors import secrets

KNOWN_KEY = "sk_orga_ai_test_" + "K3yThatMustNeverLeak42"
LOOPBACK_PEER = "127.0.0.2"  # aioice never offers 127.0.0.1 as a host candidate


def _isolate_network() -> str:
    """Move this test process into a network namespace of its own that has only loopback.

    Every server, peer and TURN relay the tests start then lives on 127.0.0.0/8 and
    can reach nothing else; lo gets a second address so that aioice has a host
    candidate. Needs root (CI is root); elsewhere the tests use the host's network
    and WebRTC traffic stays on this machine.
    """
    if os.environ.get("ORGA_TEST_NETNS") == "0":
        return "disabled by ORGA_TEST_NETNS=0"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "not root: using the host network"
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    if libc.unshare(clone_newnet) != 0:
        return f"unshare failed (errno {ctypes.get_errno()}): using the host network"
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{LOOPBACK_PEER}/8", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)
    return f"own network namespace, loopback only (lo: 127.0.0.1, {LOOPBACK_PEER})"


def pytest_configure(config: pytest.Config) -> None:
    config._orga_network = _isolate_network()  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str:
    return f"network: {getattr(config, '_orga_network', '?')}"


REPO = Path(__file__).resolve().parent.parent


@dataclass
class Sandbox:
    base_url: str
    api_key: str
    process: subprocess.Popen[str]
    stderr_path: Path

    def log(self) -> str:
        return self.stderr_path.read_text()


def start_sandbox(tmp: Path, *args: str, api_key: str = KNOWN_KEY) -> Sandbox:
    """Run `python -m orga_cli serve --port 0 ...` and read its base URL."""
    stderr_path = tmp / f"serve-{time.monotonic_ns()}.log"
    err = stderr_path.open("w")
    cmd = [sys.executable, "-m", "orga_cli", "serve", "--port", "0", "--api-key", api_key, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=_clean_env())
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if not ready:
        proc.kill()
        raise RuntimeError(f"orga serve did not start: {stderr_path.read_text()}")
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"orga serve printed {line!r}: {stderr_path.read_text()}")
    return Sandbox(line, api_key, proc, stderr_path)


def stop_sandbox(sandbox: Sandbox) -> None:
    sandbox.process.terminate()
    try:
        sandbox.process.wait(10)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        sandbox.process.wait(5)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield box
    stop_sandbox(box)


@pytest.fixture
def sandbox_with(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with extra `orga serve` flags, stopped after the test."""
    started: list[Sandbox] = []

    def start(*args: str, api_key: str = KNOWN_KEY) -> Sandbox:
        box = start_sandbox(tmp_path, *args, api_key=api_key)
        started.append(box)
        return box

    yield start
    for box in started:
        stop_sandbox(box)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the user's config or ORGA_* environment."""
    for name in list(os.environ):
        if name.startswith("ORGA_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("ORGA_CONFIG", str(config))
    secrets.clear()
    # The consoles are made once per process and read COLUMNS then: a test that sets it
    # gets consoles of its own, whichever test ran before it in this worker.
    render.out_console.cache_clear()
    render.err_console.cache_clear()
    return config


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


def invoke(args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run the CLI in-process; stdout and stderr kept apart."""
    runner = CliRunner()
    result = runner.invoke(app, args, env=env, input=input, prog_name="orga")
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return Result(result.exit_code, result.stdout, result.stderr, exc)


@pytest.fixture
def cli() -> Callable[..., Result]:
    return invoke


# --------------------------------------------------------------------------- fault server


Reply = bytes | None | Callable[[bytes], bytes]


class ScriptedServer:
    """A raw TCP server on loopback answering each connection with the next scripted reply.

    A reply is bytes (sent, then the connection closed), None (accept and never
    answer: a server that hangs), or a function of the raw request returning bytes. For faults a real Orga-compatible
    server does not produce: truncated bodies, 503 sequences, HTML pages.
    """

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        need = int(line.split(b":")[1])
                        while len(body) < need:
                            chunk = conn.recv(65536)
                            if not chunk:
                                break
                            body += chunk
                data = head + b"\r\n\r\n" + body
                self.requests.append(data)
            except OSError:
                conn.close()
                continue
            reply = self.replies.pop(0) if self.replies else response(500, b"script exhausted")
            if reply is None:
                self._held.append(conn)
                continue
            if callable(reply):
                reply = reply(data)
            try:
                conn.sendall(reply)
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        for conn in self._held:
            conn.close()


def response(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    content_length: int | None = None,
) -> bytes:
    reason = {
        200: "OK",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, "X")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body) if content_length is None else content_length}",
        "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
def scripted() -> Iterator[Callable[[list[Reply]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(replies: list[Reply]) -> ScriptedServer:
        server = ScriptedServer(replies)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ORGA_* (no user config) and without a sound server.

    PULSE_* variables are dropped, and PULSE_SERVER points nowhere, so that a desktop's
    own PulseAudio (found at its default socket) does not give a test real devices;
    tests that want the fixture's PulseAudio pass its environment in *extra*.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "PULSE_"))}
    env["PULSE_SERVER"] = "unix:/nonexistent/orga-tests-have-no-sound-server"
    env.update(extra)
    return env


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """Read proc's stderr until a line contains *text*; returns what was read."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
    assert text in seen, seen
    return seen


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- PulseAudio


@dataclass
class Pulse:
    """A private PulseAudio daemon with two null sinks: a virtual speaker and microphone.

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


def _missing_for_devices() -> str | None:
    import shutil

    for tool in ("pulseaudio", "pactl", "paplay", "parecord", "pacat"):
        if not shutil.which(tool):
            return f"{tool} is not installed (Debian: pulseaudio pulseaudio-utils)"
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        return f"PortAudio is missing ({exc}; Debian: libportaudio2)"
    return None


@pytest.fixture
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulse]:
    missing = _missing_for_devices()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    runtime = tmp_path_factory.mktemp("pulse")
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
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- coturn

TURN_USER, TURN_PASSWORD = "orga", "turn-secret-credential"


@dataclass
class Turn:
    port: int
    url: str  # turn:127.0.0.1:PORT
    log: Path


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Turn]:
    """A real TURN server (coturn) on loopback with a static user and a loopback relay range."""
    import shutil

    if not shutil.which("turnserver"):
        reason = "coturn is not installed (Debian: coturn)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    log = tmp_path / "turn.log"
    relay_base = 40000 + (port % 200) * 100
    proc = subprocess.Popen(
        [
            "turnserver",
            "-n",
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--relay-ip=127.0.0.1",
            f"--min-port={relay_base}",
            f"--max-port={relay_base + 99}",
            "--lt-cred-mech",
            f"--user={TURN_USER}:{TURN_PASSWORD}",
            "--realm=orga.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--fingerprint",
            "--log-file=stdout",
            "--simple-log",
            f"--pidfile={tmp_path / 'turn.pid'}",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port)
    try:
        yield Turn(port, f"turn:127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
