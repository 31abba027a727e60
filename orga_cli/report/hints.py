"""What a call's record says is wrong, each with what to do, as `orga doctor` would say it."""

from __future__ import annotations

from .record import CallRecord


def hints(record: CallRecord) -> list[str]:
    out: list[str] = []
    s = record.summary
    end = record.end or {}
    if end.get("error") and not record.connected():
        out.append(
            f"the call never connected: {end['error']}. `orga ice --probe` shows which servers"
            " answer; the phases show the step it stopped at"
        )
    elif end.get("error"):
        out.append(f"the call ended with an error: {end['error']}")
    elif record.client == "orga" and not end:
        out.append(
            "the record has no end: the process was killed (or is still running);"
            " what was written stands"
        )
    loss = s.get("loss_pct")
    if isinstance(loss, (int, float)) and loss >= 3:
        out.append(
            f"the link lost {loss:.1f} % of what the model said: a wired connection or another"
            " network helps; the receive buffer concealed what it could"
        )
    concealed = s.get("concealed_pct")
    if isinstance(concealed, (int, float)) and concealed >= 3:
        out.append(
            f"{concealed:.1f} % of the model's voice was concealed: the network is jittery or"
            " lossy (see RTT, jitter and loss)"
        )
    if s.get("outage_ms"):
        out.append(
            f"media stopped for {s['outage_ms'] / 1000:.1f} s in all"
            + (
                f" and the call dialled again {s['reconnects']} time(s)"
                if s.get("reconnects")
                else ""
            )
        )
    if s.get("playout_underruns", 0) >= 5:
        out.append(f"the speaker ran dry {s['playout_underruns']} times: the network is jittery")
    uplink = s.get("uplink") or {}
    estimate = (uplink.get("estimate_kbps") or {}).get("min")
    if s.get("video_paused_ms"):
        out.append(
            f"the camera was paused {s['video_paused_ms'] / 1000:.1f} s for the voice: the"
            f" uplink went down to ~{estimate:.0f} kbit/s"
            if isinstance(estimate, (int, float))
            else f"the camera was paused {s['video_paused_ms'] / 1000:.1f} s for the voice"
        )
    warnings = {m.data.get("text") for m in record.moments if m.name == "warning"}
    out += sorted(w for w in warnings if w)
    return out
