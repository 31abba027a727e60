"""Native libraries that PyAV's wheel bundles (libopus, libvpx), found without adding a package.

PyAV's wheels carry their codec libraries next to the package: ``av.libs`` on Linux
(auditwheel) and Windows (delvewheel), ``av/.dylibs`` on macOS (delocate). A system
copy (Debian: libopus0, libvpx7) is the fallback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from typing import Any


def library_candidates(name: str) -> list[str]:
    """Paths to try for lib*name*, PyAV's copies first, then the system's."""
    paths: list[str] = []
    try:
        import av

        here = os.path.dirname(av.__file__)
        for pattern in (
            os.path.join(here + ".libs", f"*{name}*"),
            os.path.join(here, ".dylibs", f"*{name}*"),
            os.path.join(os.path.dirname(here), "av.libs", f"*{name}*"),
        ):
            paths += sorted(glob.glob(pattern))
    except ImportError:  # pragma: no cover - av is a dependency
        pass
    found = ctypes.util.find_library(name)
    if found:
        paths.append(found)
    return paths


def load_library(name: str, symbol: str) -> tuple[Any | None, list[str]]:
    """The first of lib*name*'s candidates that loads and has *symbol*, or None; and why
    each one tried was not it."""
    errors = []
    for path in library_candidates(name):
        try:
            lib = ctypes.CDLL(path)
            getattr(lib, symbol)
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        return lib, errors
    return None, errors
