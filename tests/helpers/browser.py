"""Headless Chromium for the tests: a page's DOM after its scripts ran, a screenshot, and
a chrome://webrtc-internals dump of a call a page made (through the DevTools protocol)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--no-default-browser-check",
]  # fmt: skip


def chromium() -> str:
    """Debian's chromium, or a skip (a failure under CI) naming the package."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed (Debian: chromium)")
    return found


def dump_dom(url: str, profile: Path, *, budget_ms: int = 10_000) -> str:
    """The DOM of *url* once its scripts ran (virtual time lets timers run at once)."""
    out = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    return out.stdout


def screenshot(url: str, png: Path, profile: Path, size: str = "1400,2600") -> None:
    subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
         "--virtual-time-budget=5000", f"--screenshot={png}", url],
        capture_output=True, timeout=90, check=False,
    )  # fmt: skip


@contextlib.contextmanager
def devtools(profile: Path, *extra: str) -> Iterator[str]:
    """Chromium with the DevTools protocol on a free port: the browser's websocket URL."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         *extra, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    port_file = profile / "DevToolsActivePort"
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Cdp:
    """The DevTools protocol over one websocket (flattened sessions)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            future = self.pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def page(self, url: str) -> str:
        """A new tab on *url*: its session id."""
        target = await self.send("Target.createTarget", url=url)
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        return str(attached["sessionId"])

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", session, expression=expression, awaitPromise=True,
            returnByValue=True,
        )  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(str(result["exceptionDetails"])[:500])
        return result["result"].get("value")


# What the internals page's "Download the webrtc-internals dump" button saves, read from the
# page's own module (dump_creator.js keeps the peer connections' updates and stats).
DUMP = """
import("chrome://webrtc-internals/dump_creator.js").then((m) => JSON.stringify({
  getUserMedia: m.userMediaRequests, PeerConnections: m.peerConnectionDataStore,
  UserAgent: navigator.userAgent}))
"""


async def webrtc_internals_dump(browser_ws: str, url: str, seconds: float) -> dict[str, Any]:
    """Open chrome://webrtc-internals, then *url* (a page that makes a call), wait for the
    page to say it is done (its title), and return the dump of what the internals saw."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(browser_ws, max_msg_size=0) as ws:
        cdp = Cdp(ws)
        try:
            internals = await cdp.page("chrome://webrtc-internals")
            ready = "import('chrome://webrtc-internals/dump_creator.js').then(() => true)"
            deadline = time.monotonic() + 20
            while not await cdp.evaluate(
                internals, f"document.readyState === 'complete' && {ready}"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("chrome://webrtc-internals did not load")
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # it asks the browser for the peer connections
            caller = await cdp.page(url)
            deadline = time.monotonic() + seconds + 30
            while time.monotonic() < deadline:
                if await cdp.evaluate(caller, "document.title") == "done":
                    break
                await asyncio.sleep(0.5)
            text = await cdp.evaluate(caller, "document.getElementById('out').textContent")
            assert text.startswith("done"), text
            dump = await cdp.evaluate(internals, DUMP)
            return dict(json.loads(dump))
        finally:
            cdp.reader.cancel()
