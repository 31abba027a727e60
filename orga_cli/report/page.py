"""The report page: one self-contained HTML file (no request leaves it: the plotting
library, its style and the data are inline, and a Content-Security-Policy forbids the
rest). Plots are drawn by uPlot (orga_cli/data/uplot, MIT): 50 KB, canvas, fast on a
10-minute call's thousands of points. The timeline is SVG made here."""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from .hints import hints
from .record import PLOTS, UNFINISHED, CallRecord, Moment

CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline';"
    " img-src data:; font-src 'none'; connect-src 'none'"
)
COLORS = ["#2f6fde", "#e0731d", "#2a9d55", "#b23ac6", "#1a9bb0", "#7a7a7a"]
FAILED = "#c9352b"  # trouble and a phase never finished, nothing else
# A moment's lane on the timeline: connection, media, you, turns, devices, trouble
LANES = {
    "connection": ("token", "ice_servers", "ice_choice", "gathered", "offer", "answer",
                   "answer_applied", "sdp", "pair", "ice_state", "dtls", "connected",
                   "channel_open", "connection_state", "local_description", "gathering",
                   "candidate", "track", "channel"),
    "media": ("media", "first_audio_sent", "first_audio_received", "media_lost", "media_back",
              "redial", "camera_paused", "camera_resumed"),
    "you": ("mute", "camera", "session_update"),
    "turns": ("turn",),
    "devices": ("device_lost", "device_reopened", "device_back"),
    "trouble": ("warning", "connect_failed", "peer_gone"),
}  # fmt: skip


def _asset(name: str) -> str:
    return (resources.files("orga_cli") / "data" / "uplot" / name).read_text(encoding="utf-8")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _lane(name: str) -> str:
    return next((lane for lane, names in LANES.items() if name in names), "connection")


def timeline_svg(record: CallRecord) -> str:
    """The phases as bars, the moments as ticks on their lanes, on one time axis."""
    duration = max(record.duration_s, 0.001)
    width, left = 1000, 90
    lanes = ["phases", *LANES]
    row = 22
    height = row * len(lanes) + 30
    scale = (width - left - 30) / duration  # room for the last tick's label

    def x(t: float) -> float:
        return left + max(0.0, t) * scale

    parts = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="timeline of {_e(record.title)}">'
    ]
    for i, lane in enumerate(lanes):
        y = 10 + i * row
        parts.append(f'<text x="4" y="{y + 14}" class="lane">{lane}</text>')
        parts.append(
            f'<line x1="{left}" x2="{width - 30}" y1="{y + 10}" y2="{y + 10}" class="rule"/>'
        )
    for j, (name, start, stop) in enumerate(record.phases()):
        w = max(2.0, (stop - start) * scale)
        parts.append(
            f'<rect x="{x(start):.1f}" y="14" width="{w:.1f}" height="14"'
            f' fill="{FAILED if name.endswith(UNFINISHED) else COLORS[j % len(COLORS)]}"><title>{_e(name)}: {1000 * (stop - start):.0f} ms'
            f"</title></rect>"
        )
    for moment in record.moments:
        row_of = lanes.index(_lane(moment.name))
        y = 10 + row_of * row
        color = FAILED if row_of == lanes.index("trouble") else "#333"
        parts.append(
            f'<line x1="{x(moment.at_s):.1f}" x2="{x(moment.at_s):.1f}" y1="{y + 3}" y2="{y + 17}"'
            f' stroke="{color}" stroke-width="2"><title>{moment.at_s:.2f} s: {_e(moment.text())}'
            f"</title></line>"
        )
    ticks = _ticks(duration)
    base = 10 + len(lanes) * row
    for t in ticks:
        anchor = "start" if t == 0 else "middle"
        parts.append(
            f'<text x="{x(t):.1f}" y="{base + 12}" class="tick" text-anchor="{anchor}">{t:g} s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(duration: float) -> list[float]:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 10:
            return [i * step for i in range(int(duration / step) + 1)]
    return [0.0, duration]


def _summary_table(record: CallRecord) -> str:
    s = record.summary
    rows: list[tuple[str, Any]] = []
    end = record.end or {}
    if record.client == "orga":
        rows += [
            ("ended by", end.get("ended_by", "— (no end recorded)")),
            ("exit code", end.get("exit_code", "—")),
            ("recorded", f"{record.duration_s:.1f} s"),
            ("connected for", f"{s['duration_s']:.1f} s"
             if record.connected() and isinstance(s.get("duration_s"), (int, float)) else "—"),
            ("connected in", f"{s['ms_to_connected']} ms" if s.get("ms_to_connected") is not None else "—"),
            ("first audio", f"{s['ms_to_first_audio']} ms" if s.get("ms_to_first_audio") is not None else "—"),
            ("path", f"{s.get('local_candidate') or '—'} ⇄ {s.get('remote_candidate') or '—'}"),
            ("received", f"{s.get('packets_received', 0)} packets, lost {s.get('loss_pct', 0)} %,"
             f" concealed {s.get('concealed_pct', 0)} %, FEC {s.get('fec_recovered', 0)}"),
            ("receive buffer", f"mean {buffer} ms" if (buffer := (s.get("jitter_buffer_ms") or {}).get("mean")) is not None else "—"),
            ("outages", f"{s.get('outage_ms', 0)} ms, {s.get('reconnects', 0)} re-dial(s)"),
        ]  # fmt: skip
        uplink = s.get("uplink") or {}
        if uplink and record.connected():
            estimate = uplink.get("estimate_kbps") or {}
            rows.append(
                ("uplink", f"{uplink.get('mode')}: ~{estimate.get('median')} kbit/s"
                 f" (least {estimate.get('min')})")
            )  # fmt: skip
        turns = s.get("turn_latency_ms") or {}
        if turns.get("p50") is not None:
            rows.append(("turn latency", f"p50 {turns['p50']} ms, p95 {turns.get('p95')} ms"))
        if end.get("error"):
            rows.append(("error", end["error"]))
    else:
        rows += [
            ("page", record.header.get("url") or "—"),
            ("browser", record.header.get("user_agent") or "—"),
            ("duration", f"{record.duration_s:.1f} s"),
        ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="summary">{body}</table>'


def _phases_table(record: CallRecord) -> str:
    phases = record.phases()
    if not phases:
        return '<p class="muted">No phase of the connection was reached.</p>'
    body = "".join(
        f"<tr><td>{_e(n)}</td><td>{1000 * (b - a):.0f} ms</td><td>at {a:.2f} s</td></tr>"
        for n, a, b in phases
    )
    return f'<table class="phases"><tr><th>phase</th><th>took</th><th>from</th></tr>{body}</table>'


def _moments_table(moments: list[Moment]) -> str:
    body = "".join(
        f'<tr class="lane-{_lane(m.name)}"><td>{m.at_s:.3f}</td><td>{_e(m.text())}</td></tr>'
        for m in moments
        if m.name != "sdp"
    )
    return (
        f"<details><summary>Every moment ({len(moments)})</summary>"
        f'<table class="moments"><tr><th>s</th><th>moment</th></tr>{body}</table></details>'
    )


def _sdp_block(record: CallRecord) -> str:
    if not record.sdp:
        return ""
    text = "\n".join([*record.sdp["pairing"], "", *record.sdp["offer"], "", *record.sdp["answer"]])
    return f"<details><summary>The offer and the answer, paired</summary><pre>{_e(text)}</pre></details>"


def _plot_data(record: CallRecord) -> dict[str, Any]:
    """Per plot: one x axis (the union of the series' times) and a y array per series."""
    out: dict[str, Any] = {}
    for key, title, unit, series in PLOTS:
        present = [(name, label) for name, label in series if record.series.get(name)]
        if not any(v is not None for name, _ in present for _, v in record.series[name]):
            out[key] = None
            continue
        xs = sorted({t for name, _ in present for t, _ in record.series[name]})
        index = {t: i for i, t in enumerate(xs)}
        ys = []
        for name, _ in present:
            column: list[float | None] = [None] * len(xs)
            for t, v in record.series[name]:
                column[index[t]] = v
            ys.append(column)
        out[key] = {"title": title, "unit": unit, "labels": [lb for _, lb in present],
                    "x": xs, "y": ys}  # fmt: skip
    return out


SCRIPT = """
(function () {
  const data = JSON.parse(document.getElementById("call-data").textContent);
  const colors = %s;
  let drawn = 0, empty = 0;
  const rgb = colors.map(function (c) {
    return [1, 3, 5].map(function (i) { return parseInt(c.slice(i, i + 2), 16); });
  });
  function ink(u, el) {  // pixels of the series' own colours: the lines, not the grid
    const c = u.ctx.canvas, px = u.ctx.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] === 0) { continue; }
      for (const [r, g, b] of rgb) {
        if (Math.abs(px[i] - r) < 12 && Math.abs(px[i + 1] - g) < 12 && Math.abs(px[i + 2] - b) < 12) { n++; break; }
      }
    }
    if (el.dataset.drawn !== "yes" && n > 0) { drawn++; }
    el.dataset.drawn = n > 0 ? "yes" : "blank";
    el.dataset.ink = String(n);
  }
  document.querySelectorAll(".plot").forEach(function (el) {
    const spec = data[+el.dataset.record][el.dataset.plot];
    if (!spec) { el.dataset.drawn = "empty"; el.textContent = "no data"; empty++; return; }
    const series = [{label: "s"}].concat(spec.labels.map(function (label, i) {
      return {label: label, stroke: colors[i %% colors.length], width: 1.5, spanGaps: false,
              points: {show: spec.x.length < 60}};
    }));
    const opts = {width: Math.max(320, el.clientWidth - 8), height: 190, series: series,
                  scales: {x: {time: false}}, legend: {live: true},
                  axes: [{label: "s since the call began"}, {label: spec.unit}],
                  hooks: {draw: [function (u) { ink(u, el); }]}};
    el.dataset.drawn = "pending";
    new uPlot(opts, [spec.x].concat(spec.y), el);
  });
  setTimeout(function () {
    document.body.dataset.plots = String(drawn);
    document.body.dataset.empty = String(empty);
    document.body.dataset.resources = String(performance.getEntriesByType("resource").length);
    document.body.dataset.ready = "yes";
  }, 200);
})();
"""


def render(records: list[CallRecord]) -> str:
    """The page for one call, or for several side by side (an orga call and a browser's)."""
    columns = len(records)
    title = " · ".join(r.title for r in records)
    heads, plots = [], []
    for record in records:
        warn = hints(record)
        hint_html = (
            "<ul class=hints>" + "".join(f"<li>{_e(h)}</li>" for h in warn) + "</ul>"
            if warn
            else '<p class="ok">Nothing to fix that the record shows.</p>'
        )
        heads.append(
            f'<section class="call"><h2>{_e(record.title)} <small>{_e(record.client)}</small></h2>'
            f"{_summary_table(record)}{hint_html}<h3>Connection</h3>{_phases_table(record)}"
            f"{timeline_svg(record)}{_sdp_block(record)}{_moments_table(record.moments)}</section>"
        )
    for key, plot_title, _, _ in PLOTS:
        cells = "".join(
            f'<div class="plot" data-plot="{key}" data-record="{i}"></div>' for i in range(columns)
        )
        plots.append(f"<h3>{_e(plot_title)}</h3><div class=row>{cells}</div>")
    payload = json.dumps([_plot_data(r) for r in records]).replace("</", "<\\/")
    style = (
        _asset("uPlot.min.css")
        + f"""
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }}
.row {{ display: grid; grid-template-columns: repeat({columns}, 1fr); gap: 12px; }}
.calls {{ display: grid; grid-template-columns: repeat({columns}, 1fr); gap: 16px; }}
table {{ border-collapse: collapse; margin: 6px 0; }} th, td {{ text-align: left; padding: 2px 8px; vertical-align: top; }}
table.summary th {{ color: #555; font-weight: 600; }} .moments td {{ font-family: monospace; font-size: 12px; }}
.hints li {{ color: #a0281f; }} .ok {{ color: #2a7a45; }} .muted {{ color: #777; }}
svg.timeline {{ width: 100%; height: auto; background: #fafafa; border: 1px solid #ddd; }}
svg .lane {{ font-size: 11px; fill: #555; }} svg .tick {{ font-size: 10px; fill: #777; }} svg .rule {{ stroke: #e4e4e4; }}
pre {{ font-size: 12px; background: #f6f6f6; padding: 8px; overflow-x: auto; }}
.plot {{ min-height: 200px; }} .plot[data-drawn=empty] {{ min-height: 0; color: #777; }} h2 small {{ color: #777; font-weight: normal; }}
"""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>orga report: {_e(title)}</title><style>{style}</style></head>
<body><h1>orga report</h1><div class="calls">{"".join(heads)}</div>
{"".join(plots)}
<script type="application/json" id="call-data">{payload}</script>
<script>{_asset("uPlot.iife.min.js")}</script>
<script>{SCRIPT % json.dumps(COLORS)}</script>
</body></html>
"""
