"""`orga load`: many real calls at once, their percentiles, and thresholds for CI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from ...errors import UsageError
from ..boundary import run, setup
from ..options import (
    ApiKeyOpt,
    BaseUrlOpt,
    DebugOpt,
    InsecureOpt,
    JsonOpt,
    ProfileOpt,
    TimeoutOpt,
    opt,
    reply_option,
)
from .common import settings


def load(
    calls: Annotated[int, opt("--calls", "-n", metavar="N", help="How many calls.")] = 10,
    rate: Annotated[
        str, opt("--rate", metavar="N/s", help="How fast calls start: 5/s, 30/m, 1/2s.")
    ] = "2/s",
    duration: Annotated[
        float,
        opt("--duration", metavar="SECONDS", help="How long each call stays connected."),
    ] = 30.0,
    sandbox: Annotated[
        bool,
        opt("--sandbox", help="Call a sandbox started here, in a process of its own."),
    ] = False,
    sandbox_reply: Annotated[str, reply_option("--sandbox-reply")] = "parrot",
    sandbox_max_calls: Annotated[
        int | None,
        opt(
            "--sandbox-max-calls",
            min=1,
            metavar="N",
            help="With --sandbox: its --max-calls (the rest get 429).",
            show_default=False,
        ),
    ] = None,
    audio_in: Annotated[
        str,
        opt(
            "--audio-in",
            metavar="FILE|tone:HZ",
            help="What each call says (speech: each turn's latency is measured).",
        ),
    ] = "tone:440",
    video_in: Annotated[
        str | None,
        opt(
            "--video-in",
            metavar="FILE|testsrc",
            help="A camera for each call (default: none).",
            show_default=False,
        ),
    ] = None,
    token_url: Annotated[
        str | None,
        opt(
            "--token-url",
            metavar="URL",
            help="Each call's token from your backend: a POST answering the token JSON.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        opt(
            "--workers",
            min=1,
            max=256,
            metavar="N",
            help="Worker processes [default: one per core].",
            show_default=False,
        ),
    ] = None,
    maximum: Annotated[
        list[str] | None,
        opt(
            "--max",
            metavar="[STAT:]FIGURE=VALUE",
            help="Exit 7 when missed (repeatable): p95:connect=1500ms, failures=1%. Figures:"
            " token, ice, connect, first_audio, turn, loss, concealed; STAT p50|p90|p95|p99|max.",
            show_default=False,
        ),
    ] = None,
    connect_timeout: Annotated[
        float,
        opt("--connect-timeout", min=0.5, metavar="SECONDS", help="Bound on ICE and DTLS."),
    ] = 10.0,
    csv_out: Annotated[
        Path | None,
        opt("--csv", metavar="FILE.csv", help="One row per call.", show_default=False),
    ] = None,
    json_out: JsonOpt = False,
    locustfile: Annotated[
        bool,
        opt(
            "--locustfile",
            help="Print the path of the Locust file that runs these calls on many machines.",
        ),
    ] = False,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: TimeoutOpt = 10.0,
    insecure_http: InsecureOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run many real calls at once and report the percentiles that matter.

    Each call is `orga call`'s own, without a screen, spread over worker processes
    (one event loop each, many calls per loop) and started at --rate. While it runs,
    one line shows calls started, connected and failed and the running p50/p95 of
    connect and first audio; at the end a table gives p50/p90/p95/p99/max of the token,
    ICE servers, connect, first audio, turn latency, loss and concealment, failures by
    cause, and the client's own CPU (warned about when the client is the bottleneck).
    Times count from the moment a call starts dialing. Ctrl-C hangs up every call and
    still prints the table. Past one machine: `locust -f "$(orga load --locustfile)"`
    (pip install 'orga-cli[load]'; the file lists its settings).
    """
    setup(0, debug)
    if locustfile:  # past one machine: Locust's master and workers run the same calls
        from ... import load as package

        print(Path(package.__file__).resolve().parent / "locustfile.py")
        return

    def work() -> int:
        from ...load.runner import exit_code, run_load, sandbox_process
        from ...load.spec import (
            LoadSpec,
            check_counts,
            check_source,
            parse_rate,
            parse_threshold,
        )
        from .. import render
        from ..terminal import current

        check_counts(calls, duration)
        per_second = parse_rate(rate)
        thresholds = tuple(parse_threshold(t) for t in maximum or [])
        if sandbox_max_calls is not None and not sandbox:
            raise UsageError("--sandbox-max-calls needs --sandbox")
        if token_url is not None and not token_url.startswith(("http://", "https://")):
            raise UsageError(f"--token-url {token_url}: not an http(s) URL")
        chosen = None if sandbox else settings(api_key, base_url, None, profile)
        if chosen is not None and token_url is None and not chosen.value("api_key"):
            raise UsageError(
                "no API key",
                "pass --api-key, set ORGA_API_KEY, pass --token-url, or try --sandbox",
            )
        for flag, value in (("--audio-in", audio_in), ("--video-in", video_in)):
            check_source(f"{flag} {value}", value, "give an audio file or tone:HZ")
        if token_url is not None:  # one token first: a URL that answers HTML fails here, once
            import asyncio

            from ...load.worker import fetch_token

            asyncio.run(fetch_token(token_url, timeout))
        count = workers or min(os.cpu_count() or 1, calls)
        term = current()
        show = _live_line if term.stderr_tty else _plain_lines()

        def spec_for(url: str, key: str | None) -> LoadSpec:
            return LoadSpec(
                calls=calls,
                rate=per_second,
                duration=duration,
                base_url=url,
                api_key=key,
                token_url=token_url,
                audio_in=audio_in,
                video_in=video_in,
                workers=count,
                connect_timeout=connect_timeout,
                timeout=timeout,
                insecure_http=insecure_http,
                thresholds=thresholds,
            )

        if sandbox:
            with sandbox_process(sandbox_max_calls, sandbox_reply) as (url, key, cpu):
                result = run_load(spec_for(url, key), show)
            result.sandbox_cpu_s = cpu()
        else:
            assert chosen is not None
            result = run_load(spec_for(chosen.value("base_url"), chosen.value("api_key")), show)
        if term.stderr_tty:
            term.err().write("\n")
        if result.fatal:
            raise UsageError(result.fatal)
        if csv_out is not None:
            _write_csv(csv_out, result.calls)
        if json_out:
            render.emit_json(result.to_json())
        _table(result, render.err_console() if json_out else render.out_console())
        for line in _verdicts(result):
            render.note(line)
        return int(exit_code(result))

    run(work)


def _fmt(value: float | int | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if unit == "ms" else f"{value:.2f}"


def _progress_line(p: Any) -> str:
    from ...load.runner import statistic

    def pair(values: list[float]) -> str:
        ordered = sorted(values)
        return f"p50 {_fmt(statistic(ordered, 'p50'), 'ms')} p95 {_fmt(statistic(ordered, 'p95'), 'ms')} ms"

    state = " stopping…" if p.stopping else ""
    return (
        f"{p.elapsed:5.0f} s  calls {p.started}/{p.total} started, {p.connected} connected,"
        f" {p.failed} failed, {p.completed} done  │ connect {pair(p.connect_ms)}"
        f"  │ first audio {pair(p.first_audio_ms)}{state}"
    )


def _live_line(p: Any) -> None:
    from ..terminal import current

    err = current().err()
    err.write("\r\x1b[K" + _progress_line(p)[: _width() - 1])
    err.flush()


def _width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def _plain_lines() -> Any:
    """Off a terminal: a line every 5 s, and the last one."""
    last = [-10.0]

    def show(p: Any) -> None:
        from .. import render

        if p.elapsed - last[0] >= 5 or p.ended == p.total:
            last[0] = p.elapsed
            render.note(_progress_line(p))

    return show


def _table(result: Any, console: Any) -> None:
    from rich.table import Table

    from ...load.spec import METRICS, STATS

    data = result.to_json()
    table = Table(
        title=f"{data['calls']} calls, {data['connected']} connected,"
        f" {data['failed']} failed, in {data['wall_s']:.0f} s",
        header_style="bold",
    )
    table.add_column("figure")
    table.add_column("n", justify="right")
    for stat in STATS:
        table.add_column(stat, justify="right")
    for metric, row in data["figures"].items():
        unit, label = METRICS[metric]
        table.add_row(f"{label} ({unit})", str(row["n"]), *(_fmt(row[s], unit) for s in STATS))
    console.print(table)
    if data["failures"]:
        causes = Table(title="failures", header_style="bold")
        causes.add_column("cause")
        causes.add_column("calls", justify="right")
        for cause, n in data["failures"].items():
            causes.add_row(str(cause), str(n))
        console.print(causes)


def _verdicts(result: Any) -> list[str]:
    data = result.to_json()
    client = data["client"]
    lines = [
        f"client: {client['cpu_pct_of_machine']:.0f} % of {client['cores']} cores"
        f" ({client['cpu_s_per_call']:.2f} CPU s a call), {client['max_rss_mb_per_worker']:.0f} MB"
        " per worker at most"
        + (f"; sandbox {data['sandbox_cpu_s']:.1f} CPU s" if data["sandbox_cpu_s"] else "")
    ]
    busy = client["cpu_pct_of_machine"] + 100 * (data["sandbox_cpu_s"] or 0) / max(
        1e-6, data["wall_s"] * client["cores"]
    )
    if busy > 85:
        lines.append(
            f"warning: this machine was {busy:.0f} % busy: the figures may be the client's"
            " (or the sandbox's) limits, not the server's; use fewer calls or more machines"
        )
    if data["exit_codes"]:
        codes = ", ".join(f"{k}: {v}" for k, v in data["exit_codes"].items())
        lines.append(f"exit codes: {codes}")
    for check in data["thresholds"]:
        verdict = "ok" if check["ok"] else "MISSED"
        lines.append(f"--max {check['max']}: {verdict} (was {check['value']})")
    return lines


def _write_csv(path: Path, calls: list[dict[str, Any]]) -> None:
    import csv

    fields = ["index", "ok", "cause", "exit_code", "token", "ice", "connect", "first_audio"]
    fields += ["turns", "turn_median", "loss", "concealed", "ended_by"]
    try:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for c in calls:
                turns = sorted(c.get("turns") or [])
                row = dict(c, turns=len(turns), turn_median=turns[len(turns) // 2] if turns else "")
                writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
