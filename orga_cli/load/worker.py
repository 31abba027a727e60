"""One worker process of `orga load`: many real calls on one event loop.

Each call is `orga call`'s own (``call.Call``, no screen: a file or tone up, the model's
voice pulled on the wall clock, the turn detector on both), started at its moment of the
ramp. What each reaches is sent to the parent as it happens (started, connected, first
audio) and the call's figures when it ends; Ctrl-C in the parent sets *stop*, which
hangs up every running call (its figures still come) and cancels those not yet started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import time
from typing import Any

from ..call.lifecycle import Call
from ..errors import ExitCode, NetworkError, OrgaError
from .spec import LoadSpec

Message = tuple[Any, ...]


def quiet() -> None:
    """No log lines from a child process: a call's notes would be noise times N. (A
    handler that drops them, not logging.disable: the DTLS seam reads aiortc's records.)"""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.NullHandler())  # and Python's last-resort handler stays silent


class LoadCall(Call):
    """A call that notes when each moment of its connection came (epoch seconds)."""

    def __init__(self, *args: Any, on_moment: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.moments: dict[str, float] = {}
        self._on_moment = on_moment

    def _moment(self, name: str, data: dict[str, Any] | None = None, **more: Any) -> None:
        if name not in self.moments:
            self.moments[name] = time.time()
            if self._on_moment is not None:
                self._on_moment(name, self.moments)
        super()._moment(name, data, **more)


def cause_of(error: OrgaError | None, ended_by: str, connected: bool) -> str:
    """A failure's cause, short enough to count by: what the user would search for."""
    if error is None:
        return f"ended early ({ended_by})"
    text = error.message
    if "(429)" in text:
        return "rate limited (429)"
    for word, cause in (
        ("token URL", "token URL"),
        ("ICE", "ICE failed"),
        ("DTLS", "DTLS failed"),
        ("timed out", "timeout"),
        ("refused", "connection refused"),
    ):
        if word in text:
            return cause
    if not connected and error.exit_code == ExitCode.API:
        return f"API refused: {text.split(':')[0][:60]}"
    return text.split(":")[0][:60]


async def fetch_token(url: str, timeout: float) -> str:
    """A token from the user's own backend: POST *url*, the API's token JSON back."""
    import httpx

    from ..models import Token

    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.post(url, json={})
    except httpx.HTTPError as exc:
        raise NetworkError(f"token URL: {type(exc).__name__}: {exc}") from exc
    body = response.text
    kind = response.headers.get("content-type", "")
    if response.status_code >= 400:
        raise NetworkError(f"token URL answered {response.status_code}")
    if "html" in kind.lower() or body.lstrip().startswith("<"):
        raise NetworkError(
            "token URL answered HTML, not the token JSON",
            'it must answer a POST with {"token": ...} as the API does',
        )
    try:
        return Token.from_json(json.loads(body)).value
    except (ValueError, TypeError, AttributeError, OrgaError) as exc:
        raise NetworkError(
            "token URL answered no token", 'it must answer {"token": ...} as the API does'
        ) from exc


async def one_call(spec: LoadSpec, index: int, put: Any, calls: dict[int, Call]) -> dict[str, Any]:
    from ..call import CallRequest, Connection
    from ..media.local import MediaConfig
    from ..session import CallOptions

    began = time.time()
    put(("started", index))
    result: dict[str, Any] = {"index": index, "ok": False, "cause": None, "exit_code": None}
    token = None
    token_ms = None
    if spec.token_url is not None:
        try:
            token = await fetch_token(spec.token_url, spec.timeout)
        except OrgaError as exc:
            result.update(cause=cause_of(exc, "error", False), exit_code=int(exc.exit_code))
            result["error"] = exc.one_line()
            return result
        token_ms = 1000 * (time.time() - began)

    def moment(name: str, at: dict[str, float]) -> None:
        start = at.get("media", began)
        if name == "connected":
            put(("connected", index, 1000 * (at[name] - start)))
        elif name == "first_audio_received":
            put(("first_audio", index, 1000 * (at[name] - start)))

    request = CallRequest(
        connection=Connection(
            base_url=spec.base_url,
            api_key=spec.api_key,
            token=token,
            timeout=spec.timeout,
            insecure_http=spec.insecure_http,
            options=CallOptions(connect_timeout=spec.connect_timeout),
            reconnect=False,
        ),
        media=MediaConfig(
            audio_in=spec.audio_in,
            video_in=spec.video_in,
            no_video=spec.video_in is None,
            no_speaker=True,
        ),
        duration=spec.duration,
    )
    call = LoadCall(request, on_moment=moment)
    calls[index] = call
    try:
        outcome = await call.run()
    finally:
        calls.pop(index, None)
    at = call.moments
    start = at.get("media", began)

    def since(name: str, origin: float) -> float | None:
        return None if name not in at else round(1000 * (at[name] - origin), 1)

    summary = outcome.summary
    connected = "connected" in at
    result.update(
        token=round(token_ms, 1) if token_ms is not None else since("token", start),
        ice=since("ice_servers", at.get("token", start)),
        connect=since("connected", start),
        first_audio=since("first_audio_received", start),
        turns=[t["latency_ms"] for t in summary.get("turns") or [] if t.get("latency_ms")],
        loss=summary.get("loss_pct") if connected else None,
        concealed=summary.get("concealed_pct") if connected else None,
        ended_by=call.ended_by,
        exit_code=int(outcome.exit_code),
        connected=connected,
    )
    if outcome.exit_code == ExitCode.OK and call.ended_by == "duration":
        result["ok"] = True
    elif call.ended_by == "interrupt":
        result["cause"] = "interrupted"
    else:
        result["cause"] = cause_of(outcome.error, call.ended_by, connected)
        result["error"] = outcome.error.one_line() if outcome.error else None
    return result


async def run_calls(
    spec: LoadSpec, plan: list[tuple[int, float]], t0: float, put: Any, stop: Any
) -> None:
    calls: dict[int, Call] = {}

    async def scheduled(index: int, offset: float) -> None:
        wait = t0 + offset - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            result = await one_call(spec, index, put, calls)
        except Exception as exc:  # a bug in one call must not take the others down
            logging.getLogger(__name__).debug("call %d", index, exc_info=True)
            result = {"index": index, "ok": False, "cause": f"bug: {type(exc).__name__}"}
            result["exit_code"] = int(ExitCode.UNEXPECTED)
        put(("done", index, result))

    tasks = {index: asyncio.ensure_future(scheduled(index, offset)) for index, offset in plan}

    async def watch() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for index, task in tasks.items():
            if index in calls:
                calls[index].interrupt()  # hangs up; its figures still come
            elif not task.done():
                task.cancel()
                put(("done", index, {"index": index, "ok": False, "cause": "not started"}))

    watcher = asyncio.ensure_future(watch())
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher


def worker_main(
    spec: LoadSpec, plan: list[tuple[int, float]], t0: float, queue: Any, stop: Any
) -> None:
    """A worker process's entry (multiprocessing)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent says when to stop
    quiet()
    from ..loop import run

    try:
        run(run_calls(spec, plan, t0, queue.put, stop))
    except OrgaError as exc:  # ORGA_EVENT_LOOP names a loop that is not there
        queue.put(("fatal", exc.one_line(), int(exc.exit_code)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put(("worker", os.getpid(), usage.ru_utime + usage.ru_stime, usage.ru_maxrss))
