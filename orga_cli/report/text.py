"""What `orga report` prints on the terminal: the summary, the phases, sparklines."""

from __future__ import annotations

from .hints import hints
from .record import CallRecord

BARS = "▁▂▃▄▅▆▇█"
SPARKS = [
    ("estimate", "uplink estimate", "kbit/s"),
    ("sent_video", "video sent", "kbit/s"),
    ("rtt", "RTT", "ms"),
    ("buffer", "receive buffer", "ms"),
    ("concealed", "concealed", "%"),
]


def sparkline(values: list[float | None], width: int = 40) -> str:
    """*values* in at most *width* cells (each the mean of its share), scaled min to max."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    cells: list[float | None] = []
    per = max(1, -(-len(values) // width))  # ceil
    for i in range(0, len(values), per):
        chunk = [v for v in values[i : i + per] if v is not None]
        cells.append(sum(chunk) / len(chunk) if chunk else None)
    low, high = min(known), max(known)
    span = high - low or 1.0
    return "".join(
        " " if v is None else BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))]
        for v in cells
    )


def summary_lines(record: CallRecord) -> list[str]:
    s = record.summary
    end = record.end or {}
    lines = [f"{record.title} ({record.client}): {record.duration_s:.1f} s"]
    if record.client == "orga":
        how = end.get("ended_by", "no end recorded")
        connected = s.get("ms_to_connected")
        line = f"  ended by {how}"
        if connected is not None:
            line += f"; connected in {connected} ms"
        if s.get("ms_to_first_audio") is not None:
            line += f", first audio at {s['ms_to_first_audio']} ms"
        lines.append(line)
        if s:
            lines.append(
                f"  received {s.get('packets_received', 0)} packets, lost {s.get('loss_pct', 0)} %,"
                f" concealed {s.get('concealed_pct', 0)} %, FEC {s.get('fec_recovered', 0)},"
                f" outages {s.get('outage_ms', 0)} ms, re-dials {s.get('reconnects', 0)}"
            )
    phases = record.phases()
    width = max((len(name) for name, _, _ in phases), default=0)
    for name, start, stop in phases:
        lines.append(f"  {name:<{width}} {1000 * (stop - start):7.0f} ms  (at {start:.2f} s)")
    for key, label, unit in SPARKS:
        points = record.series.get(key) or []
        values = [v for _, v in points]
        known = [v for v in values if v is not None]
        if len(known) >= 2:
            lines.append(
                f"  {label:<16} {sparkline(values)}  {min(known):.0f}–{max(known):.0f} {unit}"
            )
    for hint in hints(record):
        lines.append(f"  ! {hint}")
    return lines
