"""orga calls as Locust users, to load the Orga API (or your sandbox) past one machine.

    pip install 'orga-cli[load]'
    locust -f "$(orga load --locustfile)" --host https://api.orga-ai.com   # web UI
    locust -f "$(orga load --locustfile)" --host URL --headless -u 50 -r 5 --run-time 5m \
        --stop-timeout 60 --csv run                                          # CI
    # many machines: --master on one, --worker --master-host HOST on the others

Each user makes real orga calls one after another, each in a process of its own
(``python -m orga_cli.load.one``: Locust runs on gevent, a call on asyncio), and reports
every phase the call reached as a Locust request (type ``orga``), so Locust's master
aggregates the percentiles of every worker machine in its page and its CSV:

    token        the token (from the API key, or ORGA_LOAD_TOKEN_URL)
    ice          the ICE servers
    connect      from dialing to ICE and DTLS connected
    first audio  from dialing to the first audio received
    turn         each turn's latency (speech in ORGA_LOAD_AUDIO_IN, a model that answers)
    call         the whole call: a success when it ran its duration, else a failure
                 named by its cause (rate limited (429), ICE failed, timeout, ...)

Give ``--stop-timeout`` (on the master) more than a call lasts: at the end of the run each
user finishes the call it is in, and the master waits for those too before it writes its
CSV (Locust's own --run-time quit would not wait for them). Loss and concealment are not times: `orga load` reports them (one machine).

``--host`` is the API's base URL; the key comes from ``ORGA_API_KEY`` or the profile, as
for `orga call`. The call's options, from the environment:

    ORGA_LOAD_DURATION         seconds each call stays connected (30)
    ORGA_LOAD_AUDIO_IN         a file to send, or tone:HZ (tone:440)
    ORGA_LOAD_VIDEO_IN         a video file or testsrc to send as the camera (none)
    ORGA_LOAD_TOKEN_URL        POST here for each call's token (your backend; the API's
                               token JSON back) instead of minting it with the key
    ORGA_LOAD_CONNECT_TIMEOUT  seconds to connect (10)
    ORGA_LOAD_TIMEOUT          seconds for each HTTP request (10)
    ORGA_LOAD_INSECURE_HTTP    1: allow http:// to a host that is not loopback
    ORGA_LOAD_PAUSE            seconds a user waits between its calls (1)
"""

from __future__ import annotations

import json
import os
import subprocess  # Locust's gevent makes it cooperative
import sys
import time
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

PHASES = {"token": "token", "ice": "ice", "connect": "connect", "first_audio": "first audio"}


def seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


class OrgaCaller(User):
    """One person calling, again and again."""

    wait_time = constant(seconds("ORGA_LOAD_PAUSE", 1.0))

    def report(self, name: str, ms: float, error: str | None = None) -> None:
        events.request.fire(  # type: ignore[no-untyped-call]
            request_type="orga",
            name=name,
            response_time=ms,
            response_length=0,
            exception=None if error is None else RuntimeError(error),
            context={},
        )

    @task
    def call(self) -> None:
        global in_flight
        if finishing:  # the run is ending: no call that could not be counted
            gevent.sleep(1)
            return
        in_flight += 1
        try:
            self.one_call()
        finally:
            in_flight -= 1

    def one_call(self) -> None:
        limit = seconds("ORGA_LOAD_DURATION", 30) + 3 * seconds("ORGA_LOAD_CONNECT_TIMEOUT", 10)
        limit += 60  # imports, token, ICE servers, hang-up
        began = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "orga_cli.load.one", self.host or ""],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            out, _ = child.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            self.report("call", 1000 * (time.perf_counter() - began), "no result in time")
            return
        except BaseException:  # Locust stopping this user: no orphan call left behind
            child.kill()
            child.wait()
            raise
        wall = 1000 * (time.perf_counter() - began)
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.report("call", wall, f"the call printed no result (exit {child.returncode})")
            return
        for key, name in PHASES.items():
            if result.get(key) is not None:
                self.report(name, result[key])
        for latency in result.get("turns") or []:
            self.report("turn", latency)
        self.report("call", wall, None if result.get("ok") else result.get("cause") or "failed")


# The end of a distributed run. Locust's headless --run-time quits at once: the master
# waits half a second for its workers, so a call that ends after that is never counted.
# With --stop-timeout, the master first tells the workers to start no more calls, waits
# until each says its calls have ended (within --stop-timeout), and one stats report
# more; then quits as Locust does. Custom messages are Locust's public API for this.
finishing = False  # on a worker: start no more calls
in_flight = 0  # on a worker: its calls now
idle: set[str] = set()  # on the master: the workers whose calls have all ended
REPORT_INTERVAL = 3.0  # a worker sends its stats this often (Locust's own interval)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _messages(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def finish(**_: Any) -> None:
            global finishing
            finishing = True
            gevent.spawn(say_idle, runner)

        runner.register_message("orga_finish", finish)
    elif isinstance(runner, MasterRunner):
        runner.register_message("orga_idle", lambda msg, **_: idle.add(msg.data))


def say_idle(runner: Any) -> None:
    while in_flight:
        gevent.sleep(0.2)
    runner.send_message("orga_idle", runner.client_id)


@events.test_stopping.add_listener  # type: ignore[untyped-decorator]
def _let_calls_finish(environment: Any, **_: Any) -> None:
    runner = environment.runner
    stop_timeout = float(environment.stop_timeout or 0)
    if not isinstance(runner, MasterRunner) or stop_timeout <= 0:
        return  # a local runner waits for its users itself (--stop-timeout)
    workers = len(runner.clients)
    idle.clear()
    runner.send_message("orga_finish")
    deadline = time.monotonic() + stop_timeout
    while len(idle) < workers and time.monotonic() < deadline:
        gevent.sleep(0.2)
    gevent.sleep(REPORT_INTERVAL + 0.5)  # the last calls' figures come with the next report
