"""Faults a real server does not produce, and the network plumbing for them: a raw TCP
server that answers each connection with what a script says, a self-signed certificate,
free ports."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


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


def stop_process(proc: subprocess.Popen[Any], wait: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within *wait* seconds."""
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --------------------------------------------------------------------------- an API's replies


def token_reply() -> bytes:
    """/client-secrets answering a token that expires in a minute."""
    from .tokens import make_jwt

    token = make_jwt({"exp": int(time.time()) + 60})
    return response(200, json.dumps({"ephemeral_token": token}).encode())


ICE_REPLY = response(200, b'{"iceServers": []}')


def answer_then_vanish(raw: bytes) -> bytes:
    """/calls answering a real aiortc answer whose peer is closed at once: the ICE checks
    go unanswered (a call that never connects)."""
    import asyncio

    from aiortc import RTCPeerConnection, RTCSessionDescription

    body = json.loads(raw.partition(b"\r\n\r\n")[2])

    async def make() -> str:
        pc = RTCPeerConnection()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["offer"]["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return str(sdp)

    sdp = asyncio.run(make())
    answer = {"conversation_id": "c-vanished", "answer": {"type": "answer", "sdp": sdp}}
    return response(200, json.dumps(answer).encode())
