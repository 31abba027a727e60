"""`orga report`: records of real calls against the sandbox (clean, a bad link, an outage
and a re-dial, a call that never connected, Ctrl-C) and a browser's webrtc-internals dump,
each page loaded in headless Chromium from disk with no network: every plot drew, no
request left the page, and no secret is in it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .helpers.browser import devtools, dump_dom, webrtc_internals_dump
from .helpers.faults import ICE_REPLY, ScriptedServer, answer_then_vanish, token_reply
from .helpers.orga import KNOWN_KEY, REPO, account, jsonl, orga, start_orga, wait_for_line
from .helpers.sandbox import Sandbox
from .helpers.video import camera_file

pytestmark = pytest.mark.browser


def record_of(path: Path) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for line in jsonl(path):
        by_type.setdefault(line["type"], []).append(line)
    return by_type


def names(path: Path) -> list[str]:
    return [e["name"] for e in record_of(path).get("event", [])]


def recorded_call(
    box: Sandbox, rec: Path, seconds: float, camera: str = "testsrc", **kw: Any
) -> None:
    """A tone and a camera up to *box* for *seconds*, its record kept in *rec*."""
    proc = orga(
        "call", "--audio-in", "tone:440", "--video-in", camera, "--no-speaker",
        "--duration", str(seconds), "--stats", str(rec), env=box.env(), **kw,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def report(tmp: Path, *records: Path) -> tuple[Path, str]:
    out = tmp / "report.html"
    proc = orga("report", *map(str, records), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    return out, proc.stderr


def page(html: Path, tmp: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The page as headless Chromium made it: the body's figures, each plot's state."""
    dom = dump_dom(html.as_uri(), tmp / "chromium")
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1)))
    plots = [
        dict(re.findall(r'data-([a-z]+)="([^"]*)"', tag))
        for tag in re.findall(r'<div class="plot"[^>]*>', dom)
    ]
    assert attrs.get("ready") == "yes", attrs
    assert attrs["resources"] == "0", attrs  # nothing was fetched: the file stands alone
    return attrs, plots


def drawn(plots: list[dict[str, str]], *kinds: str) -> None:
    for plot in plots:
        assert plot["drawn"] in ("yes", "empty"), plot  # nothing half drawn
    for kind in kinds:
        assert any(p["plot"] == kind and p["drawn"] == "yes" for p in plots), (kind, plots)


def no_secret(*paths: Path, also: tuple[str, ...] = ()) -> None:
    for path in paths:
        text = path.read_text()
        for secret in (KNOWN_KEY, *also):
            assert secret not in text, (path, secret)
        assert not re.search(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", text), path


@pytest.mark.timeout(120)
def test_a_clean_call(sandbox: Sandbox, tmp_path: Path) -> None:
    rec = tmp_path / "call.jsonl"
    recorded_call(sandbox, rec, 5)
    r = record_of(rec)
    assert r["call"][0]["record"] == 1 and len(r["stats"]) >= 4
    seen = names(rec)
    for name in ("token", "ice_servers", "gathered", "pair", "dtls", "connected", "channel_open",
                 "first_audio_sent", "first_audio_received", "session_update"):  # fmt: skip
        assert name in seen, (name, seen)
    assert seen.index("token") < seen.index("gathered") < seen.index("connected")
    gathered = next(e for e in r["event"] if e["name"] == "gathered")
    assert gathered["candidates"] and {"type", "protocol", "address", "port"} <= set(
        gathered["candidates"][0]
    )
    assert any(e["name"] == "pair" and e["state"].startswith("succeeded") for e in r["event"])
    (end,) = r["end"]
    assert (
        end["ended_by"] == "duration" and end["exit_code"] == 0 and end["summary"]["packets_sent"]
    )
    html, shown = report(tmp_path, rec)
    for text in ("token", "gathering", "connecting (ICE + DTLS)", "uplink estimate", "RTT"):
        assert text in shown, shown
    _, plots = page(html, tmp_path)
    drawn(plots, "bitrate", "network", "buffer", "levels", "camera")
    no_secret(rec, html)


@pytest.mark.timeout(150)
def test_a_lossy_bottleneck(sandbox_with: Callable[..., Sandbox], tmp_path: Path) -> None:
    box = sandbox_with("--network", "down=loss:8%;up=rate:300kbit,queue:200ms", "--seed", "3")
    rec = tmp_path / "bad.jsonl"
    recorded_call(box, rec, 8, str(camera_file(tmp_path)), timeout=90)
    html, shown = report(tmp_path, rec)
    assert "the link lost" in shown, shown  # the hint orga doctor would give
    stats = record_of(rec)["stats"]
    assert max(s["uplink"]["estimate_kbps"] for s in stats[3:]) < 400  # it followed the link
    _, plots = page(html, tmp_path)
    drawn(plots, "bitrate", "network", "buffer", "camera")
    assert "the link lost" in html.read_text()


@pytest.mark.timeout(150)
def test_an_outage_and_a_redial(
    sandbox: Sandbox, tmp_path: Path, udp_blackhole: Callable[[bool], None]
) -> None:
    """All UDP dropped for 4.5 s mid-call (nftables): media lost, dialled again."""
    rec = tmp_path / "outage.jsonl"
    proc = start_orga(
        "call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--duration", "9",
        "--reconnect-timeout", "2", "--stats", str(rec), env=sandbox.env(),
    )  # fmt: skip
    wait_for_line(proc, "phase connected")
    time.sleep(2)
    udp_blackhole(True)
    wait_for_line(proc, "reconnecting", timeout=5)
    time.sleep(2.5)  # past --reconnect-timeout: dialling again
    udp_blackhole(False)
    proc.communicate(timeout=40)
    assert proc.returncode == 0
    seen = names(rec)
    assert "media_lost" in seen and "redial" in seen, seen
    assert seen.count("connected") >= 2  # dialled again, and connected again
    html, shown = report(tmp_path, rec)
    assert "dialled again" in shown, shown
    _, plots = page(html, tmp_path)
    drawn(plots, "bitrate", "buffer")


@pytest.mark.timeout(90)
def test_a_call_that_never_connected(
    scripted: Callable[[list], ScriptedServer], tmp_path: Path
) -> None:
    server = scripted([token_reply(), ICE_REPLY, answer_then_vanish])
    rec = tmp_path / "failed.jsonl"
    proc = orga(
        "call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--connect-timeout", "2",
        "--stats", str(rec), env=account(server.base_url),
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    r = record_of(rec)
    seen = names(rec)
    assert "gathered" in seen and "connect_failed" in seen and "connected" not in seen, seen
    assert any(e["name"] == "pair" for e in r["event"])  # the checks that went unanswered
    (end,) = r["end"]
    assert end["exit_code"] == 6 and "ICE" in end["error"]
    html, shown = report(tmp_path, rec)
    assert "never connected" in shown, shown
    assert "connecting (ICE + DTLS): never finished" in shown  # where it stopped, and how long
    _, plots = page(html, tmp_path)
    drawn(plots)  # no call, no series: every plot says so
    assert "never connected" in html.read_text()
    no_secret(rec, html)


@pytest.mark.timeout(90)
def test_ctrl_c_mid_call(sandbox: Sandbox, tmp_path: Path) -> None:
    rec = tmp_path / "cut.jsonl"
    proc = start_orga(
        "call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--duration", "60",
        "--stats", str(rec), env=sandbox.env(),
    )  # fmt: skip
    wait_for_line(proc, "phase connected")
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    (end,) = record_of(rec)["end"]
    assert end["ended_by"] == "interrupt" and end["summary"]["duration_s"] > 2
    html, _ = report(tmp_path, rec)
    _, plots = page(html, tmp_path)
    drawn(plots, "bitrate", "network", "buffer")


def test_a_record_cut_short_still_reads(tmp_path: Path) -> None:
    """A killed process leaves its last line half written: the rest of the record stands."""
    rec = tmp_path / "killed.jsonl"
    lines = [
        {"type": "call", "record": 1, "t": 1000.0},
        {"type": "event", "t": 1000.5, "at_s": 0.5, "name": "token"},
        {"type": "stats", "t": 1001.0, "since_connected_s": 0.2, "sent_kbps": {"audio": 60.0}},
    ]
    rec.write_text("\n".join(map(json.dumps, lines)) + '\n{"type": "eve')
    proc = orga("report", str(rec))
    assert proc.returncode == 0, proc.stderr
    assert "no end" in proc.stderr  # said, not hidden
    assert orga("report", str(tmp_path / "missing.jsonl")).returncode == 2


@pytest.mark.timeout(150)
def test_a_browser_call_beside_an_orga_call(sandbox: Sandbox, tmp_path: Path) -> None:
    """Headless Chromium calls the sandbox from a page (fake camera and microphone) while
    chrome://webrtc-internals watches; its dump and an orga call's record on one page."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(REPO / "tests" / "browser"), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    url = (
        f"http://127.0.0.1:{site.server_address[1]}/call.html"
        f"?base={sandbox.base_url}&key={sandbox.api_key}&seconds=5"
    )
    try:
        with devtools(
            tmp_path / "profile", "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection",  # the tests' network is loopback only
            "--disable-features=WebRtcHideLocalIpsWithMdns",
        ) as ws:  # fmt: skip
            dump = asyncio.run(webrtc_internals_dump(ws, url, 5))
    finally:
        site.shutdown()
    browser = tmp_path / "webrtc_internals_dump.txt"
    browser.write_text(json.dumps(dump))
    assert dump["PeerConnections"], "the internals saw no call"
    rec = tmp_path / "orga.jsonl"
    recorded_call(sandbox, rec, 4)
    html, shown = report(tmp_path, rec, browser)
    assert "(browser)" in shown and "(orga)" in shown
    assert "connecting (ICE + DTLS)" in shown.split("(browser)", 1)[1]
    _, plots = page(html, tmp_path)
    drawn(plots)
    for record in ("0", "1"):  # both calls drew their bitrates and the network
        for kind in ("bitrate", "network"):
            assert any(
                p["record"] == record and p["plot"] == kind and p["drawn"] == "yes" for p in plots
            ), (record, kind, plots)
    no_secret(html)  # the page's URL carried the key: masked
