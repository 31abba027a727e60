"""`orga load` against `orga serve` on loopback: many real calls, their percentiles, the
sandbox's limit (429) counted as such, thresholds for CI, Ctrl-C, a token URL of one's own,
and bad input; the sandbox's answer to requests it refuses."""

from __future__ import annotations

import csv
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from orga_cli.errors import UsageError
from orga_cli.load.spec import parse_rate, parse_threshold

from .helpers.audio import needs_speech, speech_wav
from .helpers.faults import ScriptedServer, free_port, response
from .helpers.orga import KNOWN_KEY, clean_env, orga, start_orga, wait_for_line
from .helpers.sandbox import Sandbox

# real calls whose figures a busy machine would change: the machine to themselves
pytestmark = pytest.mark.alone

FIGURES = ("token", "ice", "connect", "first_audio", "turn", "loss", "concealed")


def load_json(proc) -> dict:  # type: ignore[no-untyped-def]
    assert proc.stdout.strip().startswith("{"), proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.timeout(120)
def test_twenty_calls_at_five_a_second(sandbox: Sandbox, tmp_path: Path) -> None:
    table = tmp_path / "calls.csv"
    proc = orga(
        "load", "--calls", "20", "--rate", "5/s", "--duration", "10", "--json",
        "--csv", str(table), "--max", "failures=0", env=sandbox.env(), timeout=100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = load_json(proc)
    assert data["connected"] == 20 and data["completed"] == 20 and data["failed"] == 0, data
    for name in ("token", "ice", "connect", "first_audio", "loss", "concealed"):
        row = data["figures"][name]
        assert row["n"] == 20 and None not in (row["p50"], row["p95"], row["max"]), (name, row)
        assert row["p50"] <= row["p90"] <= row["p95"] <= row["p99"] <= row["max"]
    assert 0 < data["figures"]["connect"]["p50"] < 10_000
    assert data["client"]["cpu_s"] > 0 and data["client"]["cores"] >= 1
    assert data["thresholds"] == [{"max": "failures=0", "value": 0, "ok": True}]
    # off a terminal: progress as plain lines, then the table and the verdicts on stderr
    assert "calls 20/20 started" in proc.stderr and "p95" in proc.stderr
    assert "client:" in proc.stderr
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 20 and {r["ok"] for r in rows} == {"True"}
    assert all(float(r["connect"]) > 0 for r in rows)
    assert KNOWN_KEY not in proc.stdout + proc.stderr + table.read_text()


@needs_speech
@pytest.mark.timeout(120)
def test_speech_gives_turn_latencies(sandbox_with: Callable[..., Sandbox], tmp_path: Path) -> None:
    box = sandbox_with("--reply", "parrot")
    said = speech_wav(tmp_path, "Hello there. What is the weather like today?")
    speech = tmp_path / "twice.wav"  # two utterances with pauses, for the parrot to answer
    subprocess.run(
        ["sox", str(said), str(speech), "pad", "0", "2.5", "repeat", "1"], check=True, timeout=30
    )
    proc = orga(
        "load", "--calls", "3", "--rate", "3/s", "--duration", "8", "--audio-in", str(speech),
        "--json", env=box.env(), timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    turn = load_json(proc)["figures"]["turn"]
    assert turn["n"] >= 3, turn  # every call heard a reply to its first utterance
    assert 300 < turn["p50"] < 3000, turn  # the parrot's 0.5 s, plus the path


@pytest.mark.timeout(120)
def test_the_sandbox_limit_is_a_counted_429(
    sandbox_with: Callable[..., Sandbox], tmp_path: Path
) -> None:
    box = sandbox_with("--max-calls", "5")
    proc = orga(
        "load", "--calls", "8", "--rate", "8/s", "--duration", "8", "--json",
        "--max", "failures=0", env=box.env(), timeout=100,
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr[-3000:]  # the threshold: 3 calls refused
    data = load_json(proc)
    assert data["completed"] == 5 and data["failures"] == {"rate limited (429)": 3}, data
    assert data["exit_codes"] == {"0": 5, "3": 3}
    assert "--max failures=0: MISSED" in proc.stderr
    log = box.log()
    assert log.count("-> 429") >= 3 and "refused a call: 5 of 5 running" in log
    # the five that got in lost nothing to the three that did not
    assert data["figures"]["concealed"]["max"] < 2.0, data["figures"]["concealed"]


@pytest.mark.timeout(60)
def test_a_missed_threshold_exits_7(sandbox: Sandbox) -> None:
    proc = orga(
        "load", "--calls", "2", "--rate", "4/s", "--duration", "2",
        "--max", "p50:connect=1ms", "--max", "p95:concealed=50%", env=sandbox.env(),
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr[-3000:]
    assert "--max p50:connect=1ms: MISSED" in proc.stderr
    assert "--max p95:concealed=50%: ok" in proc.stderr
    assert "connect (ms)" in proc.stdout  # the table still printed


@pytest.mark.timeout(90)
def test_ctrl_c_ends_every_call_and_prints_the_table(sandbox_with: Callable[..., Sandbox]) -> None:
    box = sandbox_with()
    proc = start_orga(
        "load", "--calls", "6", "--rate", "6/s", "--duration", "60", "--json", env=box.env()
    )
    wait_for_line(proc, "6 connected", timeout=40)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 130, err[-3000:]
    data = json.loads(out)
    assert data["interrupted"] and data["connected"] == 6
    assert data["failures"] == {"interrupted": 6}
    assert data["figures"]["connect"]["n"] == 6
    assert "Traceback" not in err and "connect (ms)" in err
    # the sandbox saw every call end (each hung up, not left to time out)
    wait_for_line_in_log(box, " ended after ", count=6)


def wait_for_line_in_log(box: Sandbox, text: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while box.log().count(text) < count:
        assert time.monotonic() < deadline, box.log()[-3000:]
        time.sleep(0.2)


@pytest.fixture
def token_backend(sandbox: Sandbox) -> Iterator[str]:
    """The user's own token server: a POST mints a token from the sandbox with the key."""
    minted: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            answer = httpx.post(
                f"{sandbox.base_url}/v1/realtime/client-secrets",
                headers={"Authorization": f"Bearer {sandbox.api_key}"},
                timeout=10,
            )
            minted.append(answer.status_code)
            body = answer.content
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()


@pytest.mark.timeout(60)
def test_tokens_from_your_own_backend(sandbox: Sandbox, token_backend: str) -> None:
    # no API key at all: every token comes from the backend
    proc = orga(
        "load", "--calls", "3", "--rate", "5/s", "--duration", "2", "--json",
        "--token-url", token_backend, env={"ORGA_BASE_URL": sandbox.base_url},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = load_json(proc)
    assert data["completed"] == 3 and data["figures"]["token"]["n"] == 3


def _html_server() -> ScriptedServer:
    page = response(
        200, b"<!doctype html><html><body>Sign in</body></html>", content_type="text/html"
    )
    return ScriptedServer([page])


@pytest.mark.timeout(30)
def test_bad_input_is_one_line(sandbox: Sandbox) -> None:
    cases: list[tuple[list[str], dict[str, str], int, str]] = [
        (["--rate", "0/s"], sandbox.env(), 2, "out of range"),
        (["--rate", "fast"], sandbox.env(), 2, "not a rate"),
        (["--calls", "0"], sandbox.env(), 2, "--calls 0: out of range"),
        (["--max", "p95:latency=1s"], sandbox.env(), 2, "unknown figure"),
        (["--max", "p95:loss=3s"], sandbox.env(), 2, "is a percentage"),
        (["--audio-in", "/nonexistent.wav"], sandbox.env(), 2, "no such file"),
        ([], {"ORGA_BASE_URL": sandbox.base_url}, 2, "no API key"),
    ]
    for args, env, code, text in cases:
        proc = orga("load", "--calls", "1", *args, env=env)
        assert proc.returncode == code, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0] and "Traceback" not in proc.stderr, (
            args,
            lines,
        )
    html = _html_server()
    try:
        proc = orga("load", "--calls", "1", "--token-url", html.base_url, env=sandbox.env())
    finally:
        html.close()
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.count("\n") == 1 and "token URL answered HTML" in proc.stderr


def test_rates_and_thresholds_parse() -> None:
    assert parse_rate("5/s") == 5 and parse_rate("30/m") == 0.5 and parse_rate("1/2s") == 0.5
    assert parse_rate("2") == 2
    t = parse_threshold("p95:connect=1.5s")
    assert (t.metric, t.stat, t.limit) == ("connect", "p95", 1500)
    t = parse_threshold("first-audio=800ms")
    assert (t.metric, t.stat, t.limit) == ("first_audio", "p95", 800)
    assert parse_threshold("failures=1%").stat == "rate"
    assert parse_threshold("failures=2").stat == "count"
    for bad in ("p95:connect", "p42:connect=1s", "failures=many", "p50:failures=1"):
        with pytest.raises(UsageError):
            parse_threshold(bad)


# --------------------------------------------------------------------------- the sandbox


@pytest.mark.timeout(60)
def test_orga_call_backs_off_on_429_then_says_so(sandbox_with: Callable[..., Sandbox]) -> None:
    box = sandbox_with("--max-calls", "1")
    first = start_orga(
        "call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--duration", "20",
        env=box.env(),
    )  # fmt: skip
    try:
        wait_for_line(first, "connected", timeout=20)
        proc = orga(
            "call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--duration", "1",
            env=box.env(),
        )  # fmt: skip
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=20)
    assert proc.returncode == 3, proc.stderr
    assert "rate limited (429) after 3 tries; the server asks to wait 2 s" in proc.stderr
    assert box.log().count("refused a call: 1 of 1 running") == 3  # it waited, then gave up


@pytest.mark.timeout(30)
def test_a_header_over_8_kib_gets_the_api_s_error_and_echoes_nothing(sandbox: Sandbox) -> None:
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    secret = "sk_orga_ai_" + "S3cr3t" * 2000  # 12 KB: over aiohttp's 8 KiB line
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            (
                "POST /v1/realtime/client-secrets HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {secret}\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.") and " 431 " in head.splitlines()[0], head
    assert "application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "8 KiB" in error["message"]
    assert "S3cr3t" not in raw.decode()
    log = sandbox.log()
    assert "S3cr3t" not in log and "Traceback" not in log
    assert log.count("refused a request it could not parse: 431") >= 1


@pytest.mark.timeout(150)
def test_locust_master_and_two_workers_count_every_call(
    sandbox_with: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """Past one machine: the shipped locustfile under a real Locust master and two workers
    (headless, bounded), against a sandbox of its own. The master's CSV counts each phase
    of every call the sandbox answered, and nothing failed."""
    if importlib.util.find_spec("locust") is None:  # not imported here: it patches with gevent
        pytest.skip("Locust: pip install 'orga-cli[load]'")
    box = sandbox_with()
    path = orga("load", "--locustfile").stdout.strip()
    assert path.endswith("locustfile.py") and Path(path).is_file()
    port = str(free_port())
    env = clean_env(
        ORGA_API_KEY=box.api_key,
        ORGA_CONFIG="/nonexistent/orga.toml",
        ORGA_LOAD_DURATION="3",
        ORGA_LOAD_PAUSE="0.5",
    )
    locust = [sys.executable, "-m", "locust", "-f", path]
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", port],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"worker{i}.log").open("w"),
            env=env,
        )
        for i in (1, 2)
    ]
    try:
        master = subprocess.run(
            [
                *locust,
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                port,
                "--expect-workers",
                "2",
                "--headless",
                "-u",
                "4",
                "-r",
                "2",
                "--run-time",
                "12s",
                "--stop-timeout",
                "30",
                "--csv",
                str(tmp_path / "run"),
                "--host",
                box.base_url,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        for worker in workers:
            worker.wait(timeout=30)  # the master's quit ends them
    finally:
        for worker in workers:
            worker.kill()
    assert master.returncode == 0, master.stderr[-3000:]
    with (tmp_path / "run_stats.csv").open() as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    answered = box.log().count(" answered (voice")
    assert answered >= 4, box.log()[-2000:]  # each user made a call at least
    for name in ("token", "ice", "connect", "first audio", "call"):
        assert int(rows[name]["Request Count"]) == answered, (name, rows[name], answered)
        assert rows[name]["Failure Count"] == "0", rows[name]
    assert int(float(rows["connect"]["95%"])) > 0


@pytest.mark.timeout(60)
async def test_a_sandbox_whose_loop_runs_late_refuses_new_calls() -> None:
    """Load shedding: while the sandbox's event loop runs late (here a real hog on that
    loop: 150 ms of blocking work at a time), a new call gets a 429 in the API's shape
    and the calls it holds keep it; once the loop is on time again, calls are taken."""
    import asyncio

    from aiortc import RTCPeerConnection

    from orga_cli.sandbox import start_sandbox

    async def offer() -> dict[str, str]:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return {"sdp": sdp, "type": "offer"}

    async with await start_sandbox() as box, httpx.AsyncClient(base_url=box.base_url) as http:
        key = {"Authorization": f"Bearer {box.api_key}"}
        token = (await http.post("/v1/realtime/client-secrets", headers=key)).json()
        auth = {"Authorization": f"Bearer {token['ephemeral_token']}"}

        async def dial() -> httpx.Response:
            return await http.post(
                "/v1/realtime/calls", headers=auth, json={"offer": await offer()}
            )

        assert (await dial()).status_code == 200  # the first call starts the loop's watch
        hogging = True

        async def hog() -> None:
            while hogging:
                time.sleep(0.15)  # blocking work on the sandbox's own loop
                await asyncio.sleep(0.005)

        task = asyncio.ensure_future(hog())
        await asyncio.sleep(2.5)
        refused = await dial()
        hogging = False
        await task
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "too_many_calls"
        assert "event loop runs" in error["message"] and refused.headers["Retry-After"] == "2"
        await asyncio.sleep(2.5)  # two seconds of on-time ticks
        assert (await dial()).status_code == 200
        assert box.peer is not None and len(box.peer.calls) == 2
