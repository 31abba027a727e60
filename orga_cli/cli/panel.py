"""What a person sees during `orga call`: a live panel on a terminal, plain lines otherwise.

Both are screens of `orga_cli.call` (``Screen``): they draw the call's state
(``CallState``, its figures once a second) and print the conversation as it happens.
Everything goes to stderr; stdout stays for --json.
"""

from __future__ import annotations

import time
from typing import Any

from ..call.state import CallState
from .render import err_console, scrub
from .terminal import current

PHASES = ("token", "ICE config", "gathering", "negotiating", "connecting", "connected")


KEYS = "m mute · v camera · / command · q hang up"
KEYS_PTT = "space talk · v camera · / command · q hang up"


def meter(db: float, width: int = 16) -> str:
    """A level bar for -60..0 dBFS."""
    filled = round(max(0.0, min(1.0, (db + 60) / 60)) * width)
    return "█" * filled + "·" * (width - filled)


def clock(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes:02d}:{sec:02d}"


def _num(value: float | None, unit: str, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


def uplink_text(u: Any, video: bool) -> str:
    """The uplink estimate and its allocation, as the panel shows it."""
    mode = "transport-cc" if u.mode == "transport-cc" else "receiver reports"
    text = f"~{u.estimate_bps / 1000:.0f} kbit/s ({mode})   voice {u.audio_bps / 1000:.0f}"
    if video:
        if u.video_paused:
            text += f"   camera paused: uplink ~{u.estimate_bps / 1000:.0f} kbit/s"
        elif u.video_size:
            text += f"   picture {u.video_bps / 1000:.0f} kbit/s {u.video_size}@{u.video_fps:g}"
    if u.queue_ms is not None:
        text += f"   queue {u.queue_ms:.0f} ms"
    return text


class LivePanel:
    """A rich Live panel on stderr; keys are shown at the bottom."""

    def __init__(self, view: CallState) -> None:
        from rich.live import Live

        self.view = view
        self._final = False
        # rich redraws the panel from the view 4 times a second on its own thread;
        # levels are measured then, not on every 20 ms block.
        self._live = Live(
            console=err_console(),
            get_renderable=self._render,
            refresh_per_second=4,
            transient=False,
            redirect_stdout=False,
        )

    def __enter__(self) -> LivePanel:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._final = True
        self._live.__exit__(*exc)

    def refresh(self) -> None:
        """Nothing to do: the panel redraws itself from the view."""

    def line(self, speaker: str, text: str) -> None:
        from rich.text import Text

        style = {"you": "bold cyan", "orga": "bold magenta"}.get(speaker, "dim")
        out = Text()
        out.append(f"{speaker}: ", style=style)
        out.append(scrub(text))
        self._live.console.print(out)

    def note(self, text: str) -> None:
        from rich.text import Text

        self._live.console.print(Text(scrub(text), style="dim"))

    def warning(self, text: str) -> None:
        """Shown in the panel for as long as it lasts (the call's figures hold it)."""

    def _render(self) -> Any:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        from ..media.audio import level_dbfs

        v = self.view
        f = v.figures
        m = f.media if f is not None else None
        mic_db = -100.0 if v.mic_block is None else level_dbfs(v.mic_block)
        remote_db = -100.0 if v.remote_block is None else level_dbfs(v.remote_block)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        elapsed = time.monotonic() - (v.connected_at or v.started)
        label = "reconnecting…" if v.phase == "reconnecting" else v.phase
        phase = Text(label, style="green" if v.phase == "connected" else "bold yellow")
        phase.append(f"  {clock(elapsed)}", style="bold")
        if v.conversation_id:
            phase.append(f"  conversation {v.conversation_id}", style="dim")
        if v.session_id:
            phase.append(f"  session {v.session_id}", style="dim")
        grid.add_row("call", phase)
        if v.voice is not None:
            grid.add_row("session", f"voice {v.voice}   temperature {v.temperature:g}")
        net = f.session.net if f is not None else None
        if net is not None and (net.local_candidate or net.remote_candidate):
            grid.add_row("path", f"{net.local_candidate or '?'}  ⇄  {net.remote_candidate or '?'}")
        rtt, jitter = (f.rtt_ms, f.jitter_ms) if f is not None else (None, None)
        loss = m.loss_pct if m is not None else None
        grid.add_row(
            "network",
            f"RTT {_num(rtt, 'ms')}   jitter {_num(jitter, 'ms', 1)}   loss {_num(loss, '%', 1)}",
        )
        buffer, target, concealed = (
            (m.buffer_ms, m.buffer_target_ms, m.concealed_pct) if m is not None else (None,) * 3
        )
        grid.add_row(
            "buffer",
            f"{_num(buffer, 'ms')} (target {_num(target, 'ms')})"
            f"   concealed {_num(concealed, '%', 1)}",
        )
        if m is not None and m.turn_count:
            grid.add_row(
                "turns",
                f"last {_num(m.turn_ms, 'ms')}   median {_num(m.turn_median_ms, 'ms')}"
                f" ({m.turn_count} {'turn' if m.turn_count == 1 else 'turns'})",
            )
        sent = (f.sent_kbps if f is not None else None) or {}
        up = f"audio {_num(sent.get('audio'), 'kbit/s')}"
        if v.video is not None:
            up += f"   video {_num(sent.get('video'), 'kbit/s')}"
        down = f.received_kbps if f is not None else None
        grid.add_row("bitrate", f"up {up}   down audio {_num(down, 'kbit/s')}")
        uplink = f.session.uplink if f is not None else None
        if uplink is not None:
            grid.add_row("uplink", uplink_text(uplink, v.video is not None))
        mic = Text(f"{meter(mic_db)} {mic_db:6.1f} dBFS  ")
        if v.ptt:
            mic.append(
                " ● TALKING " if not v.muted else " PUSH SPACE TO TALK ",
                style="bold white on red" if not v.muted else "bold black on yellow",
            )
        else:
            mic.append("MUTED" if v.muted else "live", style="bold red" if v.muted else "green")
        mic.append(f"  {v.audio_in}", style="dim")
        if v.echo_cancel:
            mic.append(f"  {v.echo_cancel}", style="cyan")
        grid.add_row("mic", mic)
        grid.add_row(
            "model",
            Text(f"{meter(remote_db)} {remote_db:6.1f} dBFS  ").append(v.audio_out, style="dim"),
        )
        if v.video is not None:
            cam = Text("on" if v.video_on else "OFF", style="green" if v.video_on else "bold red")
            cam.append(f"  {v.video}", style="dim")
            grid.add_row("camera", cam)
        for warning in (m.warnings if m is not None else [])[-3:]:
            grid.add_row("warning", Text(warning, style="yellow"))
        if v.command is not None and not self._final:
            grid.add_row("command", Text(v.command + "▌", style="bold"))
        keys = "" if self._final else KEYS_PTT if v.ptt else KEYS
        if v.command is not None and not self._final:
            keys = "Enter run · Tab complete · Esc cancel"
        return Panel(grid, title="orga call", subtitle=keys, border_style="blue", expand=False)


class PlainLines:
    """Timestamped lines for a stderr that is not a terminal (logs, CI, pipes)."""

    def __init__(self, view: CallState) -> None:
        self.view = view
        self._last_phase = ""

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def _write(self, text: str) -> None:
        now = time.strftime("%H:%M:%S")
        err = current().err()
        err.write(f"{now} {scrub(text)}\n")
        err.flush()

    def refresh(self) -> None:
        v = self.view
        if v.phase != self._last_phase:
            self._last_phase = v.phase
            detail = ""
            net = v.figures.session.net if v.figures is not None else None
            if v.phase == "connected" and net and (net.local_candidate or net.remote_candidate):
                detail = f": {net.local_candidate} <-> {net.remote_candidate}"
            self._write(
                f"phase {'reconnecting…' if v.phase == 'reconnecting' else v.phase}{detail}"
            )

    def line(self, speaker: str, text: str) -> None:
        self._write(f"{speaker}: {text}")

    def note(self, text: str) -> None:
        self._write(text)

    def warning(self, text: str) -> None:
        self._write(f"warning: {text}")
