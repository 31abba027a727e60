"""What `orga load` is asked: how many calls, how fast, for how long, where, and the
thresholds a CI job holds it to. Plain values only: a spec crosses into worker processes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import UsageError

MAX_CALLS = 10_000
# What each figure is, for the table, the thresholds and the CSV: name -> (unit, label)
METRICS: dict[str, tuple[str, str]] = {
    "token": ("ms", "token"),
    "ice": ("ms", "ICE servers"),
    "connect": ("ms", "connect"),
    "first_audio": ("ms", "first audio"),
    "turn": ("ms", "turn latency"),
    "loss": ("%", "loss"),
    "concealed": ("%", "concealed"),
}
STATS = ("p50", "p90", "p95", "p99", "max")


@dataclass(frozen=True)
class Threshold:
    """``--max p95:connect=1500ms`` (a figure's statistic) or ``--max failures=1%``."""

    metric: str  # a METRICS name, or "failures"
    stat: str  # a STATS name; "rate" or "count" for failures
    limit: float  # in the metric's unit (ms, %), or a count of failures
    text: str  # as given

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class LoadSpec:
    calls: int
    rate: float  # calls started a second
    duration: float  # seconds each call stays connected
    base_url: str = ""
    api_key: str | None = None
    token_url: str | None = None
    audio_in: str = "tone:440"
    video_in: str | None = None
    workers: int = 1
    connect_timeout: float = 10.0
    timeout: float = 10.0
    insecure_http: bool = False
    thresholds: tuple[Threshold, ...] = field(default_factory=tuple)


def parse_rate(text: str) -> float:
    """Calls a second from ``5/s``, ``30/m``, ``2`` (a second) or ``1/2s``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?)?\s*(s|sec|m|min)?)?\s*", text)
    if not m or (m.group(2) and not m.group(3)):
        raise UsageError(f"--rate {text}: not a rate", "e.g. --rate 5/s, --rate 30/m, --rate 1/2s")
    count = float(m.group(1))
    per = float(m.group(2) or 1) * (60.0 if (m.group(3) or "s").startswith("m") else 1.0)
    rate = count / per
    if not 0.01 <= rate <= 1000:
        raise UsageError(
            f"--rate {text}: {rate:g} calls a second is out of range",
            "between 0.01/s (one a 100 s) and 1000/s",
        )
    return rate


def parse_threshold(text: str) -> Threshold:
    """``[STAT:]METRIC=VALUE[ms|s|%]`` (STAT defaults to p95), or ``failures=N`` / ``N%``."""
    hint = "e.g. --max p95:connect=1500ms, --max p50:first_audio=2s, --max failures=1%"
    name, sep, value = text.partition("=")
    if not sep or not value.strip():
        raise UsageError(f"--max {text}: expected [STAT:]FIGURE=VALUE", hint)
    stat, _, metric = name.strip().rpartition(":")
    metric = metric.strip().replace("-", "_")
    value = value.strip()
    if metric == "failures":
        if stat:
            raise UsageError(f"--max {text}: failures take no statistic", hint)
        m = re.fullmatch(r"(\d+(?:\.\d+)?)(%?)", value)
        if not m:
            raise UsageError(f"--max {text}: {value} is not a count or a percentage", hint)
        return Threshold("failures", "rate" if m.group(2) else "count", float(m.group(1)), text)
    if metric not in METRICS:
        raise UsageError(
            f"--max {text}: unknown figure {metric!r}",
            f"one of {', '.join(METRICS)}, failures",
        )
    stat = stat.strip().lower() or "p95"
    if stat not in STATS:
        raise UsageError(f"--max {text}: unknown statistic {stat!r}", f"one of {', '.join(STATS)}")
    unit = METRICS[metric][0]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|%)?", value)
    if not m:
        raise UsageError(f"--max {text}: {value} is not a number", hint)
    number, given = float(m.group(1)), m.group(2)
    if unit == "ms":
        if given == "%":
            raise UsageError(f"--max {text}: {metric} is a time (ms or s)", hint)
        number = number * 1000 if given == "s" else number
    elif given not in (None, "%"):
        raise UsageError(f"--max {text}: {metric} is a percentage", hint)
    return Threshold(metric, stat, number, text)


def check_counts(calls: int, duration: float) -> None:
    if not 1 <= calls <= MAX_CALLS:
        raise UsageError(f"--calls {calls}: out of range", f"between 1 and {MAX_CALLS}")
    if not 0.5 <= duration <= 24 * 3600:
        raise UsageError(f"--duration {duration:g}: out of range", "between 0.5 s and a day")


def check_source(label: str, value: str | None, hint: str | None = None) -> None:
    """What each call sends must be there: a file, unless tone:HZ or testsrc (made here)."""
    if value and not value.startswith(("tone:", "testsrc")) and not os.path.isfile(value):
        raise UsageError(f"{label}: no such file", hint)
