"""A call in parts, without its terminal: what it was asked (`request`), its life (`lifecycle`:
dial, redial, end), its controls (`controls`, `commands`: keys and `/` commands), what it shows
(`state`, `figures`: one snapshot a second) and what it keeps (`records`, `transcript`).
"""

from __future__ import annotations

from .lifecycle import Call, CallOutcome
from .request import CallRequest, Connection, Outputs, SandboxSpec, read_instructions
from .state import CallState, LogScreen, Screen

__all__ = [
    "Call",
    "CallOutcome",
    "CallRequest",
    "CallState",
    "Connection",
    "LogScreen",
    "Outputs",
    "SandboxSpec",
    "Screen",
    "read_instructions",
]
