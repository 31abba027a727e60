"""The tests' own network namespace: loopback only, with a second loopback address."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

LOOPBACK_PEER = "127.0.0.2"  # aioice never offers 127.0.0.1 as a host candidate


def isolate_network() -> str:
    """Move this test process into a network namespace of its own that has only loopback.

    Every server, peer and TURN relay the tests start then lives on 127.0.0.0/8 and
    can reach nothing else; lo gets a second address so that aioice has a host
    candidate. Needs root (CI is root); elsewhere the tests use the host's network
    and WebRTC traffic stays on this machine.
    """
    if os.environ.get("ORGA_TEST_NETNS") == "0":
        return "disabled by ORGA_TEST_NETNS=0"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "not root: using the host network"
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    if libc.unshare(clone_newnet) != 0:
        return f"unshare failed (errno {ctypes.get_errno()}): using the host network"
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{LOOPBACK_PEER}/8", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)
    return f"own network namespace, loopback only (lo: 127.0.0.1, {LOOPBACK_PEER})"


def nftables_problem() -> str | None:
    """Why all UDP cannot be dropped here (no nft, no permission), or None."""
    if not shutil.which("nft"):
        return "needs nftables (nft)"
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        return f"nftables is not usable here: {probe.stderr.decode().strip()}"
    return None


OUTAGE_TABLE = "orga_outage"


def drop_udp(on: bool) -> None:
    """Drop all UDP leaving this network namespace (a real outage of everything a call
    sends), or stop dropping it."""
    if on:
        script = (
            f"add table inet {OUTAGE_TABLE}\n"
            f"add chain inet {OUTAGE_TABLE} out {{ type filter hook output priority 0; }}\n"
            f"add rule inet {OUTAGE_TABLE} out meta l4proto udp drop\n"
        )
    else:
        script = f"delete table inet {OUTAGE_TABLE}\n"
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)
