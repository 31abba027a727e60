"""A call's controls without a terminal: keys, the command line they open, `/` commands and
push-to-talk, acting on a stand-in for the call (orga_cli/call/controls.py)."""

from __future__ import annotations

from orga_cli.call.controls import Controls
from orga_cli.call.state import CallState
from orga_cli.session import CallParams


class FakeCall:
    """What the controls act on, recording every action."""

    def __init__(self, *, connected: bool = True, camera: bool = True) -> None:
        self.params = CallParams()
        self.is_connected = connected
        self.camera = camera
        self.actions: list[tuple[str, object]] = []
        self.notes: list[str] = []

    def connected(self) -> bool:
        return self.is_connected

    def hang_up(self) -> None:
        self.actions.append(("hang_up", None))

    def set_muted(self, muted: bool) -> None:
        self.actions.append(("muted", muted))

    def set_camera(self, on: bool) -> bool:
        if self.camera:
            self.actions.append(("camera", on))
        return self.camera

    def send_session_update(self) -> None:
        self.actions.append(("session.update", self.params.voice))

    def note(self, text: str) -> None:
        self.notes.append(text)


def typed(controls: Controls, keys: str) -> None:
    for key in keys:
        controls.key(key)


def test_shortcuts_mute_the_camera_and_hang_up() -> None:
    call, state = FakeCall(), CallState()
    controls = Controls(state, call)
    typed(controls, "mVm")
    assert call.actions == [("muted", True), ("camera", False), ("muted", False)]
    assert not state.muted and not state.video_on
    typed(controls, "q")
    assert call.actions[-1] == ("hang_up", None)


def test_a_call_without_a_camera_says_so() -> None:
    call = FakeCall(camera=False)
    controls = Controls(CallState(), call)
    controls.key("v")
    assert call.actions == [] and call.notes == ["there is no camera in this call"]


def test_the_command_line_edits_completes_and_runs() -> None:
    call, state = FakeCall(), CallState()
    controls = Controls(state, call)
    typed(controls, "/vo")
    assert state.command == "/vo"
    controls.key("\t")  # the command completes, with a space for its argument
    assert state.command == "/voice "
    typed(controls, "Ethx\x7f")  # a typo, and backspace
    assert state.command == "/voice Eth"
    controls.key("\t")  # the voice completes
    assert state.command == "/voice Ethan"
    controls.key("\r")
    assert state.command is None
    assert call.params.voice == "Ethan" and state.voice == "Ethan"
    assert call.actions == [("session.update", "Ethan")]  # one update for one change
    assert call.notes[-1] == "voice: Ethan"


def test_escape_closes_the_command_line_without_running_it() -> None:
    call, state = FakeCall(), CallState()
    controls = Controls(state, call)
    typed(controls, "/quit\x1b")
    assert state.command is None and call.actions == []
    typed(controls, "m")  # shortcuts work again
    assert call.actions == [("muted", True)]


def test_bad_commands_say_what_to_do_and_change_nothing() -> None:
    call = FakeCall()
    controls = Controls(CallState(), call)
    controls.command("/temperature 2")
    controls.command("/voic Ethan")
    controls.command("/voice Nobody")
    controls.command("hello")
    assert call.actions == []
    assert "out of range" in call.notes[0] and "0 to 1" in call.notes[0]
    assert "did you mean /voice?" in call.notes[1]
    assert "unknown voice" in call.notes[2]
    assert "commands start with /" in call.notes[3]


def test_commands_before_the_call_connects_wait_and_run_in_order() -> None:
    call, state = FakeCall(connected=False), CallState()
    controls = Controls(state, call)
    controls.command("/temperature 0.9")
    controls.command("/voice Ethan")
    assert call.actions == []
    call.is_connected = True
    controls.connected()
    assert call.params.temperature == 0.9 and call.params.voice == "Ethan"
    assert [a for a, _ in call.actions] == ["session.update", "session.update"]


def test_push_to_talk_starts_silent_and_space_switches() -> None:
    call, state = FakeCall(), CallState()
    controls = Controls(state, call, ptt=True)
    assert state.ptt and state.muted  # nothing is sent until space
    typed(controls, " ")
    assert not state.muted and call.actions == [("muted", False)]
    typed(controls, " ")
    assert state.muted and call.actions[-1] == ("muted", True)
    typed(controls, "/mute\r")  # the command works too, and says so
    assert not state.muted and call.notes[-1] == "microphone on"


def test_without_push_to_talk_space_is_nothing() -> None:
    call = FakeCall()
    typed(Controls(CallState(), call), " ")
    assert call.actions == []
