"""`orga ice --probe` against coturn on loopback: how long it takes, good and bad.

    python bench/ice_probe.py [--runs 10]

Runs, alternating, in the same run: the probe of one good TURN server (target:
median under 1 s), the probe of that server plus an unreachable one with
--timeout 2 (target: under 2.5 s, the bound plus 0.5 s), and coturn's own native
STUN client (turnutils_stunclient) as the baseline of a bare STUN round trip
from a fresh process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER, PASSWORD = "bench", "bench-credential"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, capture_output=True, timeout=60)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("turnserver"):
        raise SystemExit("coturn is not installed (Debian: coturn)")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        turn = subprocess.Popen(
            [
                "turnserver",
                "-n",
                "--listening-ip=127.0.0.1",
                f"--listening-port={port}",
                "--relay-ip=127.0.0.1",
                "--min-port=49000",
                "--max-port=49200",
                "--lt-cred-mech",
                f"--user={USER}:{PASSWORD}",
                "--realm=orga.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                f"--pidfile={Path(tmp) / 'turn.pid'}",
                "--log-file=stdout",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        url = f"turn:127.0.0.1:{port}"
        orga = [
            sys.executable,
            "-m",
            "orga_cli",
            "ice",
            "--probe",
            "--username",
            USER,
            "--credential",
            PASSWORD,
        ]
        good, bad, base = [], [], []
        try:
            for _ in range(args.runs):
                good.append(timed([*orga, "--server", url]))
                bad.append(
                    timed(
                        [
                            *orga,
                            "--server",
                            url,
                            "--server",
                            "turn:127.0.0.3:3478",
                            "--timeout",
                            "2",
                        ]
                    )
                )
                base.append(timed(["turnutils_stunclient", "-p", str(port), "127.0.0.1"]))
        finally:
            turn.terminate()
            turn.wait(10)
    g, b, s = statistics.median(good), statistics.median(bad), statistics.median(base)
    print(
        json.dumps(
            {
                "runs": args.runs,
                "probe_good_median_s": round(g, 3),
                "probe_with_unreachable_timeout_2_median_s": round(b, 3),
                "native_stun_client_median_s": round(s, 3),
                "ratio_probe_to_native_stun": round(g / s, 2),
                "targets_s": {"good": 1.0, "with_unreachable": 2.5},
                "ok": g < 1.0 and b <= 2.5,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
