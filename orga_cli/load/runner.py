"""`orga load`'s parent process: the sandbox (with --sandbox) and the worker processes, the
live progress, Ctrl-C, and the figures gathered into one result."""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import queue as queues
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExitCode, OrgaError
from .spec import METRICS, STATS, LoadSpec, Threshold


@dataclass
class Progress:
    """What the live display shows."""

    total: int
    started: int = 0
    connected: int = 0
    failed: int = 0
    completed: int = 0
    connect_ms: list[float] = field(default_factory=list)
    first_audio_ms: list[float] = field(default_factory=list)
    stopping: bool = False
    elapsed: float = 0.0

    @property
    def ended(self) -> int:
        return self.failed + self.completed


@dataclass
class LoadResult:
    spec: LoadSpec
    calls: list[dict[str, Any]]
    wall_s: float
    client_cpu_s: float
    client_rss_kb: int
    sandbox_cpu_s: float | None
    interrupted: bool
    fatal: str | None = None

    # ------------------------------------------------------------------ figures

    def values(self, metric: str) -> list[float]:
        if metric == "turn":
            return [t for c in self.calls for t in c.get("turns") or []]
        return [c[metric] for c in self.calls if c.get(metric) is not None]

    def figures(self) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
        for metric in METRICS:
            values = sorted(self.values(metric))
            row: dict[str, float | int | None] = {"n": len(values)}
            for stat in STATS:
                row[stat] = statistic(values, stat)
            out[metric] = row
        return out

    def failures(self) -> Counter[str]:
        return Counter(c["cause"] for c in self.calls if not c.get("ok"))

    def exit_codes(self) -> Counter[int]:
        return Counter(int(c["exit_code"]) for c in self.calls if c.get("exit_code") is not None)

    @property
    def cores(self) -> int:
        return os.cpu_count() or 1

    def client_cpu_pct(self) -> float:
        """The client's CPU over the run, as a share of all the machine's cores."""
        return 100 * self.client_cpu_s / max(1e-6, self.wall_s * self.cores)

    def checks(self) -> list[tuple[Threshold, float | None, bool]]:
        """Each --max threshold, the figure it was held to, and whether it held."""
        out = []
        failed = sum(self.failures().values())
        for t in self.spec.thresholds:
            if t.metric == "failures":
                value: float | None = (
                    100 * failed / max(1, len(self.calls)) if t.stat == "rate" else failed
                )
            else:
                value = statistic(sorted(self.values(t.metric)), t.stat)
            out.append((t, value, value is not None and value <= t.limit))
        return out

    def to_json(self) -> dict[str, Any]:
        failures = self.failures()
        return {
            "calls": self.spec.calls,
            "rate_per_s": self.spec.rate,
            "duration_s": self.spec.duration,
            "workers": self.spec.workers,
            "started": sum(1 for c in self.calls if c.get("cause") != "not started"),
            "connected": sum(1 for c in self.calls if c.get("connected")),
            "completed": sum(1 for c in self.calls if c.get("ok")),
            "failed": sum(failures.values()),
            "failures": dict(failures.most_common()),
            "exit_codes": {str(k): v for k, v in sorted(self.exit_codes().items())},
            "figures": self.figures(),
            "wall_s": round(self.wall_s, 2),
            "client": {
                "cores": self.cores,
                "cpu_s": round(self.client_cpu_s, 2),
                "cpu_pct_of_machine": round(self.client_cpu_pct(), 1),
                "cpu_s_per_call": round(self.client_cpu_s / max(1, len(self.calls)), 3),
                "max_rss_mb_per_worker": round(self.client_rss_kb / 1024, 1),
            },
            "sandbox_cpu_s": None if self.sandbox_cpu_s is None else round(self.sandbox_cpu_s, 2),
            "thresholds": [
                {"max": t.text, "value": None if v is None else round(v, 2), "ok": ok}
                for t, v, ok in self.checks()
            ],
            "interrupted": self.interrupted,
        }


def statistic(values: list[float], stat: str) -> float | None:
    """A statistic of sorted *values*: a percentile by nearest rank, or the max."""
    if not values:
        return None
    if stat == "max":
        return values[-1]
    q = float(stat[1:]) / 100
    return values[max(0, math.ceil(q * len(values)) - 1)]


@contextlib.contextmanager
def _sigint_ignored() -> Any:
    """While processes start: a child started with SIGINT ignored keeps it ignored (and
    Python then installs no KeyboardInterrupt), so a Ctrl-C during its imports is no
    traceback; the parent asks it to stop instead."""
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


# --------------------------------------------------------------------------- sandbox


def _sandbox_main(conn: Any, max_calls: int | None, reply: str, stop: Any) -> None:
    import asyncio
    import signal

    from .worker import quiet

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet()

    async def serve() -> None:
        from ..sandbox import background_errors_in_one_line, start_sandbox
        from ..sandbox.peer import PeerConfig

        box = await start_sandbox(None, PeerConfig(reply=reply, max_calls=max_calls))
        background_errors_in_one_line(asyncio.get_running_loop())
        conn.send((box.base_url, box.api_key))
        try:
            while not stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            await box.stop()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(usage.ru_utime + usage.ru_stime)

    from ..loop import run

    run(serve())


@contextlib.contextmanager
def sandbox_process(max_calls: int | None, reply: str) -> Any:
    """A sandbox in a process of its own (its CPU is not the client's); yields
    (base_url, api_key, cpu) where cpu() gives its CPU seconds once it has stopped."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_sandbox_main, args=(child, max_calls, reply, stop), daemon=True)
    with _sigint_ignored():
        proc.start()
    cpu: list[float] = []
    try:
        if not parent.poll(30):
            raise OrgaError("the sandbox did not start within 30 s", "try --debug")
        base_url, api_key = parent.recv()
        yield base_url, api_key, (lambda: cpu[0] if cpu else None)
    finally:
        stop.set()
        with contextlib.suppress(EOFError, OSError):
            if parent.poll(10):
                cpu.append(parent.recv())
        proc.join(5)
        if proc.is_alive():
            proc.kill()


# --------------------------------------------------------------------------- run


def run_load(
    spec: LoadSpec,
    show: Callable[[Progress], None],
    interval: float = 0.5,
) -> LoadResult:
    """Run *spec*'s calls over its worker processes; *show* is called with the progress
    every *interval* seconds and once at the end. Ctrl-C (KeyboardInterrupt) hangs up
    every call and still returns what they measured."""
    from .worker import worker_main

    ctx = mp.get_context("spawn")
    messages: Any = ctx.Queue()
    stop = ctx.Event()
    t0 = time.time() + 1.5  # the workers' imports before the first call
    plans: list[list[tuple[int, float]]] = [[] for _ in range(spec.workers)]
    for index in range(spec.calls):
        plans[index % spec.workers].append((index, index / spec.rate))
    workers = [
        ctx.Process(target=worker_main, args=(spec, plan, t0, messages, stop), daemon=True)
        for plan in plans
        if plan
    ]
    with _sigint_ignored():  # the children start ignoring Ctrl-C: the parent stops them
        for w in workers:
            w.start()
    progress = Progress(spec.calls)
    results: dict[int, dict[str, Any]] = {}
    cpu, rss, reported = 0.0, 0, 0
    fatal: str | None = None
    interrupted = False
    started = time.monotonic()
    last_shown = 0.0
    while reported < len(workers):
        try:
            try:
                message = messages.get(timeout=interval / 2)
            except queues.Empty:
                message = None
                if not any(w.is_alive() for w in workers):
                    break  # a worker died without a word: what it had is lost
            if message is not None:
                kind = message[0]
                if kind == "started":
                    progress.started += 1
                elif kind == "connected":
                    progress.connected += 1
                    progress.connect_ms.append(message[2])
                elif kind == "first_audio":
                    progress.first_audio_ms.append(message[2])
                elif kind == "done":
                    results[message[1]] = message[2]
                    if message[2].get("ok"):
                        progress.completed += 1
                    else:
                        progress.failed += 1
                elif kind == "worker":
                    reported += 1
                    cpu += message[2]
                    rss = max(rss, int(message[3]))
                elif kind == "fatal":
                    fatal = message[1]
                    stop.set()
            now = time.monotonic()
            if now - last_shown >= interval:
                last_shown = now
                progress.elapsed = now - started
                show(progress)
        except KeyboardInterrupt:
            if interrupted:  # a second Ctrl-C: no more waiting
                for w in workers:
                    w.kill()
                break
            interrupted = True
            progress.stopping = True
            stop.set()
    for w in workers:
        w.join(5)
        if w.is_alive():
            w.kill()
    progress.elapsed = time.monotonic() - started
    show(progress)
    own = resource.getrusage(resource.RUSAGE_SELF)
    calls = [
        results.get(i, {"index": i, "ok": False, "cause": "lost (worker ended)"})
        for i in range(spec.calls)
    ]
    return LoadResult(
        spec,
        calls,
        wall_s=time.monotonic() - started,
        client_cpu_s=cpu + own.ru_utime + own.ru_stime,
        client_rss_kb=rss,
        sandbox_cpu_s=None,
        interrupted=interrupted,
        fatal=fatal,
    )


def exit_code(result: LoadResult) -> ExitCode:
    if result.interrupted:
        return ExitCode.INTERRUPTED
    if any(not ok for _, _, ok in result.checks()):
        return ExitCode.THRESHOLD
    if result.calls and not any(c.get("ok") for c in result.calls):
        codes = [int(c["exit_code"]) for c in result.calls if c.get("exit_code")]
        return ExitCode(codes[0]) if codes else ExitCode.CALL
    return ExitCode.OK
