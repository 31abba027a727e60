"""Native libraries that PyAV's wheel bundles (libopus, libvpx), found without adding a package.

PyAV's wheels carry their codec libraries next to the package: ``av.libs`` on Linux
(auditwheel) and Windows (delvewheel), ``av/.dylibs`` on macOS (delocate). A system
copy (Debian: libopus0, libvpx7) is the fallback.
"""

from __future__ import annotations

import ctypes.util
import glob
import os


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
