"""The controls of a call: single keys, the command line they open, and `/` commands.

Keys come from a terminal (the CLI's key reader), command lines from the panel's command
line or from stdin; both end here, as calls on a ``Target`` (the call), so that every
control can be tried without a terminal. Push-to-talk is decided here and only here: it
starts the microphone muted, and the space bar switches talking on and off.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import UsageError
from ..session import CallParams
from ..voices import all_voices, resolve_voice
from . import commands
from .request import read_instructions
from .state import CallState


class Target(Protocol):
    """What the controls act on."""

    @property
    def params(self) -> CallParams: ...

    def connected(self) -> bool: ...

    def hang_up(self) -> None: ...

    def set_muted(self, muted: bool) -> None: ...

    def set_camera(self, on: bool) -> bool:
        """Turn the camera on or off; False when the call has no camera."""

    def send_session_update(self) -> None: ...

    def note(self, text: str) -> None: ...


class Controls:
    """Keys and commands to actions on *target*, shown in *state*."""

    def __init__(self, state: CallState, target: Target, *, ptt: bool = False) -> None:
        self.state = state
        self.target = target
        self.ptt = ptt
        state.ptt = ptt
        state.muted = state.muted or ptt  # push-to-talk starts silent
        self._queued: list[str] = []  # commands given before the call connected
        self.show_params()

    # ------------------------------------------------------------------ keys

    def key(self, char: str) -> None:
        """One key: the command line's while it is open, else a shortcut (m, v, q, space
        with push-to-talk, / to open the command line)."""
        if self.state.command is not None:
            self._edit(char)
        elif char == "/":
            self.state.command = "/"
        elif char == " " and self.ptt:
            self.set_muted(not self.state.muted)
        else:
            self._shortcut(char.lower())

    def _shortcut(self, char: str) -> None:
        if char == "q":
            self.target.hang_up()
        elif char == "m":
            self.set_muted(not self.state.muted)
        elif char == "v":
            self._toggle_camera()

    def _edit(self, char: str) -> None:
        line = self.state.command or ""
        if char in ("\r", "\n"):
            self.state.command = None
            self.command(line)
        elif char == "\x1b":  # Esc
            self.state.command = None
        elif char in ("\x7f", "\x08"):
            self.state.command = line[:-1] or None
        elif char == "\t":
            self.state.command, matches = commands.complete(line, [v.name for v in all_voices()])
            if matches:
                self.target.note("   ".join(matches[:12]) + ("   …" if len(matches) > 12 else ""))
        elif char.isprintable():
            self.state.command = line + char

    # ------------------------------------------------------------------ commands

    def command(self, line: str) -> None:
        """Carry out one command line (/voice, /temperature, /instructions, /mute, /camera,
        /help, /quit). A change sends one session.update. Before the call connects,
        commands wait for it, and then run in the order given."""
        if not self.target.connected():
            self._queued.append(line)
            return
        params = self.target.params
        try:
            cmd = commands.parse(line)
            if cmd is None:
                return
            if cmd.name == "voice":
                params.voice = resolve_voice(cmd.arg)
            elif cmd.name == "temperature":
                params.temperature = float(cmd.arg)
            elif cmd.name == "instructions":
                params.instructions = read_instructions(cmd.arg)
        except UsageError as exc:
            self.target.note(f"{exc.message}; {exc.hint}" if exc.hint else exc.message)
            return
        if cmd.name == "help":
            self.target.note(commands.help_text())
        elif cmd.name == "quit":
            self.target.hang_up()
        elif cmd.name == "mute":
            self.set_muted(not self.state.muted)
            self.target.note("microphone muted" if self.state.muted else "microphone on")
        elif cmd.name == "camera":
            self._toggle_camera()
        else:
            self.show_params()
            shown = {"voice": params.voice, "temperature": f"{params.temperature:g}"}
            self.target.note(f"{cmd.name}: {shown.get(cmd.name, 'updated')}")
            self.target.send_session_update()

    def connected(self) -> None:
        """The call connected: the commands given before run now."""
        queued, self._queued = self._queued, []
        for line in queued:
            self.command(line)

    # ------------------------------------------------------------------ actions

    def set_muted(self, muted: bool) -> None:
        self.state.muted = muted
        self.target.set_muted(muted)

    def _toggle_camera(self) -> None:
        on = not self.state.video_on
        if self.target.set_camera(on):
            self.state.video_on = on
        else:
            self.target.note("there is no camera in this call")

    def show_params(self) -> None:
        self.state.voice = self.target.params.voice
        self.state.temperature = self.target.params.temperature
