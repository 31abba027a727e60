"""The commands typed during a call: `/voice Ethan`, `/temperature 0.8`, `/mute`, ...

Typed on the live panel after `/`, or read line by line from stdin when stdin is
not a terminal (``printf '/voice Ethan\\n' | orga call ...``). This module parses,
checks and completes them; `controls.py` carries them out. Nothing heavy is imported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import UsageError

# name -> (argument, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "voice": ("NAME", "the model's voice (see `orga voices`)"),
    "temperature": ("X", "sampling temperature, 0 to 1"),
    "instructions": ("TEXT|@FILE", "the system instructions, or a file's text"),
    "mute": ("", "mute or unmute the microphone"),
    "camera": ("", "turn the camera off or on"),
    "help": ("", "list the commands"),
    "quit": ("", "hang up"),
}


@dataclass(frozen=True)
class Command:
    name: str
    arg: str = ""


def help_text() -> str:
    return "   ".join(f"/{name} {arg}".rstrip() for name, (arg, _) in COMMANDS.items())


def parse(line: str) -> Command | None:
    """A command from one line; None for an empty line. UsageError names what is wrong."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("/"):
        raise UsageError(f"not a command: {text[:40]!r}", "commands start with /; /help lists them")
    name, _, arg = text[1:].partition(" ")
    name, arg = name.lower(), arg.strip()
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"did you mean /{close[0]}?" if close else "/help lists the commands"
        raise UsageError(f"unknown command /{name}", hint)
    wants = COMMANDS[name][0]
    if wants and not arg:
        raise UsageError(f"/{name} needs {wants}", f"for example: /{name} {_example(name)}")
    if not wants and arg:
        raise UsageError(f"/{name} takes no argument")
    if name == "temperature":
        try:
            value = float(arg)
        except ValueError:
            raise UsageError(f"/temperature {arg}: not a number", "a number from 0 to 1") from None
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"/temperature {arg}: out of range", "a number from 0 to 1")
    return Command(name, arg)


def _example(name: str) -> str:
    return {"voice": "Ethan", "temperature": "0.7", "instructions": "Answer briefly."}.get(name, "")


def complete(line: str, voices: list[str]) -> tuple[str, list[str]]:
    """Tab: the line completed as far as it is unambiguous (commands, then voice names),
    and the candidates when more than one remains."""
    if not line.startswith("/"):
        return line, []
    name, space, arg = line[1:].partition(" ")
    if not space:
        done, matches = _extend(name, list(COMMANDS), suffix=" ")
        return "/" + done, ["/" + m for m in matches]
    if name.lower() == "voice":
        done, matches = _extend(arg, voices, suffix="")
        return f"/{name} " + done, matches
    return line, []


def _extend(prefix: str, options: list[str], suffix: str) -> tuple[str, list[str]]:
    matches = [o for o in options if o.lower().startswith(prefix.lower())]
    if not matches:
        return prefix, []
    if len(matches) == 1:
        return matches[0] + suffix, []
    common = matches[0]
    for other in matches[1:]:
        while not other.lower().startswith(common.lower()):
            common = common[:-1]
    return (common if len(common) > len(prefix) else prefix), matches
