"""A call as `orga report` sees it, from an orga record (`orga call --stats FILE`) or from a
browser's `chrome://webrtc-internals` dump: the moments on one time axis, the series
once a second, the phases of the connection, and what the call ended with.

Standard library only: a report of a 10-minute call loads in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError

# The plots, in order: (key, title, unit, [(series key, label)])
PLOTS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("bitrate", "Bitrates", "kbit/s", [
        ("sent_audio", "sent audio"), ("sent_video", "sent video"),
        ("received", "received"), ("estimate", "uplink estimate"),
    ]),
    ("network", "Network", "ms / %", [
        ("rtt", "RTT ms"), ("jitter", "jitter ms"), ("loss", "loss %"),
    ]),
    ("buffer", "Receive buffer", "ms / %", [
        ("buffer", "delay ms"), ("target", "target ms"), ("concealed", "concealed %"),
        ("fec", "FEC recoveries"),
    ]),
    ("levels", "Levels", "dBFS", [("mic", "microphone"), ("speaker", "speaker")]),
    ("turns", "Turn latency", "ms", [("turn", "latency")]),
    ("camera", "Camera", "px / fps", [("width", "width px"), ("fps", "frames/s")]),
]  # fmt: skip

# A browser's phases, from its update log (its app's token and ICE requests are not in it)
BROWSER_PHASES = [
    ("offer and gathering", "offer", "gathered"),
    ("negotiating (API)", "gathered", "answer"),
    ("connecting (ICE + DTLS)", "answer", "connected"),
]
# Phases of the connection: (name, the moment it starts after, the moment that ends it)
PHASES = [
    ("start-up (devices, files)", "start", "media"),
    ("token", "media", "token"),
    ("ICE servers", "token", "ice_servers"),
    ("gathering", "ice_servers", "gathered"),
    ("negotiating", "gathered", "answer"),
    ("connecting (ICE + DTLS)", "answer", "connected"),
    ("first audio", "connected", "first_audio_received"),
]

UNFINISHED = ": never finished"  # the phase a call ended in


@dataclass
class Moment:
    at_s: float
    name: str
    data: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """One line for a person: the name and what it carries."""
        shown = {k: v for k, v in self.data.items() if k not in ("candidates", "offer", "answer",
                                                                  "pairing", "summary")}  # fmt: skip
        if "candidates" in self.data:
            shown["candidates"] = ", ".join(
                f"{c['type']} {c['protocol']} {c['address']}" for c in self.data["candidates"]
            )
        parts = [f"{k} {v}" for k, v in shown.items() if v not in (None, "", [], {})]
        return self.name.replace("_", " ") + (": " + "; ".join(map(str, parts)) if parts else "")


@dataclass
class CallRecord:
    """One call, whichever client made it."""

    title: str
    client: str  # "orga" or "browser"
    started: float | None = None  # epoch
    header: dict[str, Any] = field(default_factory=dict)
    moments: list[Moment] = field(default_factory=list)
    series: dict[str, list[tuple[float, float | None]]] = field(default_factory=dict)
    end: dict[str, Any] | None = None
    sdp: dict[str, list[str]] | None = None

    @property
    def summary(self) -> dict[str, Any]:
        return (self.end or {}).get("summary") or {}

    @property
    def duration_s(self) -> float:
        last = [m.at_s for m in self.moments] + [t for s in self.series.values() for t, _ in s]
        if self.end and self.end.get("at_s") is not None:
            last.append(float(self.end["at_s"]))
        return max(last, default=0.0)

    def first(self, name: str) -> Moment | None:
        return next((m for m in self.moments if m.name == name), None)

    def phases(self) -> list[tuple[str, float, float]]:
        """(name, start, end) of each phase the call went through, in seconds."""
        out = []
        for name, after, until in PHASES if self.client == "orga" else BROWSER_PHASES:
            start = 0.0 if after == "start" else (m.at_s if (m := self.first(after)) else None)
            end = self.first(until)
            if start is not None and end is not None and end.at_s >= start:
                out.append((name, start, end.at_s))
            elif start is not None and end is None and self.end is not None:
                # the phase the call was in when it ended: where a failed call stopped
                stop = max(start, float(self.end.get("at_s") or self.duration_s))
                out.append((f"{name}{UNFINISHED}", start, stop))
                break
        return out

    def connected(self) -> bool:
        return self.first("connected") is not None


# --------------------------------------------------------------------------- orga


def load(path: Path) -> CallRecord:
    """A record of `orga call --stats`, or a webrtc-internals dump (told apart by content)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith("{") and '"PeerConnections"' in stripped[:200_000]:
        try:
            return from_webrtc_internals(json.loads(text), path.name)
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not a webrtc-internals dump I can read ({exc})") from exc
    return from_orga(text, path.name)


def from_orga(text: str, title: str) -> CallRecord:
    record = CallRecord(title, "orga")
    lines = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            if number == len(text.splitlines()):
                continue  # a last line cut short (a killed process): the rest stands
            raise UsageError(
                f"{title}, line {number}: not JSON",
                "pass the file `orga call --stats FILE` wrote, or a webrtc-internals dump",
            ) from None
        lines += 1
        kind = item.get("type")
        if kind == "call":
            record.header = item
            record.started = item.get("t")
        elif kind == "event":
            name = item.pop("name", "?")
            at = float(item.pop("at_s", 0.0))
            item.pop("type", None)
            item.pop("t", None)
            if name == "sdp":
                record.sdp = {k: item.get(k) or [] for k in ("offer", "answer", "pairing")}
            record.moments.append(Moment(at, name, item))
        elif kind == "end":
            record.end = item
        elif kind == "stats" or "since_connected_s" in item:  # record 0 had no type
            _orga_stats(record, item)
    if not lines:
        raise UsageError(f"{title} is empty", "`orga call --stats FILE` writes it during a call")
    if record.header == {} and record.moments == [] and not record.series:
        raise UsageError(f"{title} holds no call", "pass the file `orga call --stats FILE` wrote")
    return record


def _orga_stats(record: CallRecord, item: dict[str, Any]) -> None:
    if record.started is None:
        record.started = item.get("t")
    at = item["t"] - (record.started or item["t"])
    sent = item.get("sent_kbps") or {}
    uplink = item.get("uplink") or {}
    size = uplink.get("video_size")
    values = {
        "sent_audio": sent.get("audio"),
        "sent_video": sent.get("video"),
        "received": item.get("received_kbps"),
        "estimate": uplink.get("estimate_kbps"),
        "rtt": item.get("rtt_ms"),
        "jitter": item.get("jitter_ms"),
        "loss": item.get("loss_pct"),
        "buffer": item.get("buffer_ms"),
        "target": item.get("buffer_target_ms"),
        "concealed": item.get("concealed_pct"),
        "fec": item.get("fec_recovered"),
        "mic": item.get("mic_dbfs"),
        "speaker": item.get("speaker_dbfs"),
        "width": int(size.split("x")[0]) if size else None,
        "fps": uplink.get("video_fps") if size else None,
    }
    for key, value in values.items():
        record.series.setdefault(key, []).append((round(at, 2), value))


SECRET_PARAMS = re.compile(
    r"([?&](?:key|api_key|apikey|token|secret|password|auth|credential)=)([^&#\s]+)", re.I
)
API_KEY = re.compile(r"\bsk_[A-Za-z0-9_]{8,}")
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def scrub(text: str) -> str:
    """*text* without secrets: those this process knows, bearer values, API keys, JWTs, and
    the values of URL parameters that carry credentials (a web app's page URL)."""
    from ..errors import mask, redact_bearer, secrets

    text = redact_bearer(secrets.scrub(text))
    text = SECRET_PARAMS.sub(lambda m: m.group(1) + mask(m.group(2)), text)
    text = API_KEY.sub(lambda m: mask(m.group(0)), text)
    return JWT.sub(lambda m: mask(m.group(0)), text)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def finish(record: CallRecord) -> CallRecord:
    """Every text scrubbed of secrets (a record or a dump may come from anywhere); series
    that are per call (FEC recoveries, a count) become per second; the turns'
    latencies become points at their moments."""
    record.header = _scrubbed(record.header)
    record.moments = [Moment(m.at_s, m.name, _scrubbed(m.data)) for m in record.moments]
    record.end = _scrubbed(record.end)
    record.sdp = _scrubbed(record.sdp)
    fec = record.series.get("fec")
    if fec:
        previous = 0.0
        out: list[tuple[float, float | None]] = []
        for t, v in fec:
            out.append((t, None if v is None else max(0.0, v - previous)))
            previous = v if v is not None else previous
        record.series["fec"] = out
    turns = [(m.at_s, m.data.get("latency_ms")) for m in record.moments if m.name == "turn"]
    if turns:
        record.series["turn"] = turns
    return record


# --------------------------------------------------------------------------- browser


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def from_webrtc_internals(dump: dict[str, Any], title: str) -> CallRecord:
    """The first peer connection of a chrome://webrtc-internals dump that carried media:
    its update log as moments, its getStats history as the same series as orga's."""
    connections = dump["PeerConnections"]
    if not connections:
        raise ValueError("no peer connection in it")

    def media_stats(pc: dict[str, Any]) -> int:
        return sum(1 for v in pc.get("stats", {}).values() if v.get("statsType") == "outbound-rtp")

    _, pc = max(connections.items(), key=lambda kv: media_stats(kv[1]))
    record = CallRecord(title, "browser")
    record.header = {"url": pc.get("url"), "user_agent": dump.get("UserAgent")}  # scrubbed later
    stats: dict[str, dict[str, Any]] = pc.get("stats", {})
    starts = [_iso(s["startTime"]) for s in stats.values() if s.get("startTime")]
    log = pc.get("updateLog", [])
    log_times = [_log_time(e) for e in log]
    known = [t for t in [*starts, *log_times] if t is not None]
    record.started = min(known) if known else 0.0
    names = {
        "createOffer": "offer", "setLocalDescription": "local_description",
        "setRemoteDescription": "answer", "icegatheringstatechange": "gathering",
        "iceconnectionstatechange": "ice_state", "connectionstatechange": "connection_state",
        "icecandidate": "candidate", "datachannel": "channel", "track": "track",
        "createDataChannel": "channel",
    }  # fmt: skip
    for event, at in zip(log, log_times, strict=True):
        if at is None:
            continue
        kind = str(event.get("type", "?"))
        if kind.startswith("on") and kind[2:] in names:  # newer Chromium: "oniceconnection…"
            kind = kind[2:]
        value = str(event.get("value", ""))
        name = names.get(kind, kind)
        data: dict[str, Any] = {}
        if kind in ("iceconnectionstatechange", "connectionstatechange", "icegatheringstatechange"):
            data["state"] = value.strip('"')
            if kind == "connectionstatechange" and data["state"] == "connected":
                record.moments.append(Moment(at - record.started, "connected", {}))
            if kind == "icegatheringstatechange" and data["state"] == "complete":
                record.moments.append(Moment(at - record.started, "gathered", {}))
        elif kind == "icecandidate":
            data["candidate"] = _mask_candidate_line(value)
        record.moments.append(Moment(at - record.started, name, data))
    record.moments.sort(key=lambda m: m.at_s)
    _browser_series(record, stats)
    record.end = {"ended_by": "browser", "summary": {}, "at_s": record.duration_s}
    return record


def _log_time(event: dict[str, Any]) -> float | None:
    value = event.get("timestamp", event.get("time"))
    if isinstance(value, (int, float)):
        return value / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return _iso(value)
        except ValueError:
            try:
                return float(value) / 1000
            except ValueError:
                return None
    return None


def _mask_candidate_line(value: str) -> str:
    from ..ice import mask_address

    try:
        item = json.loads(value) if value.startswith("{") else {"candidate": value}
    except ValueError:
        return value[:80]
    words = str(item.get("candidate", "")).split()
    if len(words) >= 8:  # candidate:F C PROTO PRIO ADDR PORT typ TYPE
        return f"{words[7]} {words[2].lower()} {mask_address(words[4])}:{words[5]}"
    return " ".join(words)[:80]


def _browser_series(record: CallRecord, stats: dict[str, dict[str, Any]]) -> None:
    """getStats histories (one value a second, evenly between startTime and endTime)."""
    by_object: dict[str, dict[str, tuple[list[float], list[Any]]]] = {}
    kinds: dict[str, str] = {}
    types: dict[str, str] = {}
    for key, entry in stats.items():
        object_id, _, prop = key.rpartition("-")
        if not object_id:
            continue
        try:
            values = (
                json.loads(entry["values"]) if isinstance(entry["values"], str) else entry["values"]
            )
        except (ValueError, KeyError):
            continue
        if not values:
            continue
        start, end = _iso(entry["startTime"]), _iso(entry["endTime"])
        step = (end - start) / max(1, len(values) - 1)
        times = [start + i * step - (record.started or 0.0) for i in range(len(values))]
        by_object.setdefault(object_id, {})[prop] = (times, values)
        types[object_id] = entry.get("statsType", "")
        if prop in ("kind", "mediaType"):
            kinds[object_id] = str(values[-1])

    def series(object_type: str, kind: str | None, prop: str) -> tuple[list[float], list[Any]]:
        for oid, props in by_object.items():
            same = types.get(oid) == object_type and (kind is None or kinds.get(oid) == kind)
            if same and prop in props:
                return props[prop]
        return [], []

    def put(name: str, times: list[float], values: list[float | None]) -> None:
        record.series[name] = [(round(t, 2), v) for t, v in zip(times, values, strict=False)]

    def rate(times: list[float], counts: list[Any], scale: float = 8 / 1000) -> list[float | None]:
        out: list[float | None] = [None]
        for i in range(1, len(counts)):
            dt = times[i] - times[i - 1]
            out.append(None if dt <= 0 else (float(counts[i]) - float(counts[i - 1])) * scale / dt)
        return out

    for name, kind in (("sent_audio", "audio"), ("sent_video", "video")):
        t, v = series("outbound-rtp", kind, "bytesSent")
        put(name, t, rate(t, v))
    t, v = series("inbound-rtp", "audio", "bytesReceived")
    put("received", t, rate(t, v))
    t, v = series("candidate-pair", None, "availableOutgoingBitrate")
    put("estimate", t, [None if x is None else float(x) / 1000 for x in v])
    t, v = series("remote-inbound-rtp", "audio", "roundTripTime")
    put("rtt", t, [None if x is None else 1000 * float(x) for x in v])
    t, v = series("inbound-rtp", "audio", "jitter")
    put("jitter", t, [None if x is None else 1000 * float(x) for x in v])
    t, lost = series("inbound-rtp", "audio", "packetsLost")
    _, got = series("inbound-rtp", "audio", "packetsReceived")
    if lost and got:
        put(
            "loss",
            t,
            [
                100 * float(a) / max(1.0, float(a) + float(b))
                for a, b in zip(lost, got, strict=False)
            ],
        )
    t, delay = series("inbound-rtp", "audio", "jitterBufferDelay")
    _, emitted = series("inbound-rtp", "audio", "jitterBufferEmittedCount")
    if delay and emitted:
        out: list[float | None] = [None]
        for i in range(1, min(len(delay), len(emitted))):
            d = float(emitted[i]) - float(emitted[i - 1])
            out.append(None if d <= 0 else 1000 * (float(delay[i]) - float(delay[i - 1])) / d)
        put("buffer", t[: len(out)], out)
    t, concealed = series("inbound-rtp", "audio", "concealedSamples")
    _, total = series("inbound-rtp", "audio", "totalSamplesReceived")
    if concealed and total:
        put(
            "concealed",
            t,
            [100 * float(a) / max(1.0, float(b)) for a, b in zip(concealed, total, strict=False)],
        )
    t, fec = series("inbound-rtp", "audio", "fecPacketsReceived")
    put("fec", t, rate(t, fec, 1.0))
    for name, object_type in (("mic", "media-source"), ("speaker", "inbound-rtp")):
        t, level = series(object_type, "audio", "audioLevel")
        put(name, t, [None if not x else 20 * math.log10(max(float(x), 1e-5)) for x in level])
    t, width = series("outbound-rtp", "video", "frameWidth")
    put("width", t, [None if x is None else float(x) for x in width])
    t, fps = series("outbound-rtp", "video", "framesPerSecond")
    put("fps", t, [None if x is None else float(x) for x in fps])
    for name in list(record.series):
        if not record.series[name]:
            del record.series[name]
