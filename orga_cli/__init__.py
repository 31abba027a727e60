"""orga: a command-line voice and video client for the Orga AI realtime API.

The CLI is a thin layer over a library that a Python program can use on its own:
``OrgaClient`` (the HTTP API) and, for calls, ``orga_cli.session.CallSession``.
Heavy media modules are imported only by the code that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "CallError",
    "ExitCode",
    "IceServer",
    "MediaError",
    "NetworkError",
    "OrgaClient",
    "OrgaError",
    "Token",
    "UsageError",
    "__version__",
]

if TYPE_CHECKING:
    from .api import OrgaClient
    from .errors import (
        ApiError,
        CallError,
        ExitCode,
        MediaError,
        NetworkError,
        OrgaError,
        UsageError,
    )
    from .models import IceServer, Token


def __getattr__(name: str) -> Any:
    # Lazy, so that `import orga_cli` costs nothing until a name is used.
    if name == "OrgaClient":
        from .api import OrgaClient

        return OrgaClient
    if name in ("IceServer", "Token"):
        from . import models

        return getattr(models, name)
    if name in __all__:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(name)
