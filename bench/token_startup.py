"""Wall time of `orga token` against `orga serve` on loopback, versus a bare httpx script.

Both are measured in the same run, alternating, N times each; the report gives the
medians and their ratio (target: orga / baseline <= 1.25), and checks that
`orga token` imports none of aiortc, av, numpy, sounddevice.

    python bench/token_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from call_perf import KEY, client_env, start_serve

HEAVY = ("aiortc", "av", "numpy", "sounddevice")
BASELINE = """
import sys, httpx
r = httpx.post(sys.argv[1] + "/v1/realtime/client-secrets",
               headers={"Authorization": "Bearer " + sys.argv[2], "Content-Type": "application/json"})
r.raise_for_status()
print(r.json()["ephemeral_token"])
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.perf_counter() - start
    if out.returncode != 0 or out.stdout.count(".") != 2:
        raise SystemExit(f"{cmd[0]} failed: {out.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()

    python = sys.executable
    orga = shutil.which("orga", path=str(Path(python).parent)) or shutil.which("orga")
    if not orga:
        raise SystemExit("orga is not installed next to this Python")
    serve, base = start_serve()
    try:
        env = client_env(base)
        baseline_script = Path(os.environ.get("TMPDIR", "/tmp")) / "orga_bench_baseline.py"
        baseline_script.write_text(BASELINE)

        # imports of the real command
        trace = subprocess.run(
            [python, "-X", "importtime", orga, "token"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        imported = {
            line.split("|")[-1].strip().split(".")[0]
            for line in trace.stderr.splitlines()
            if line.startswith("import time:")
        }
        heavy = sorted(set(HEAVY) & imported)

        for _ in range(3):  # warm the page cache for both
            timed([orga, "token"], env)
            timed([python, str(baseline_script), base, KEY], env)
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(timed([orga, "token"], env))
            theirs.append(timed([python, str(baseline_script), base, KEY], env))
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        report = {
            "runs": args.runs,
            "orga_token_median_ms": round(m_ours * 1000, 1),
            "httpx_script_median_ms": round(m_theirs * 1000, 1),
            "ratio": round(m_ours / m_theirs, 3),
            "target_ratio": 1.25,
            "heavy_modules_imported": heavy,
            "ok": m_ours / m_theirs <= 1.25 and not heavy,
        }
        print(json.dumps(report, indent=2))
    finally:
        serve.terminate()
        serve.wait(10)


if __name__ == "__main__":
    main()
