"""What microphone processing (AEC, NS, AGC, HPF) costs a call: CPU and latency.

    python bench/processing.py [--seconds 30]

CPU: the same `orga call --sandbox` through PulseAudio null sinks (real PortAudio
microphone and speaker), once with processing and once with --no-aec --no-ns
--no-agc, in the same run; the difference in CPU share of one core (target: at most
15 points). Latency: processing works in place on the 10 ms frames of each 20 ms
block, so what it adds is the time it takes per block: median and 99th percentile
over 1000 blocks (target: at most 10 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from call_perf import proc_cpu_seconds
from client_latency import start_pulse


def call_cpu(seconds: float, *flags: str) -> float:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orga_cli",
            "call",
            "--sandbox",
            "--no-video",
            "--duration",
            str(seconds + 2.0),  # a second to settle, *seconds* measured, one to spare
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = ""
    while "phase connected" not in line:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise SystemExit("the call failed")
    time.sleep(1.0)  # let the processing module load and settle
    cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
    proc.communicate(timeout=30)
    return 100 * (cpu1 - cpu0) / (t1 - t0)


def block_times(blocks: int = 1000) -> list[float]:
    from orga_cli.media.processing import MicProcessor, ProcessingOptions

    processor = MicProcessor(ProcessingOptions(), 80)
    if not processor.wait_ready():
        raise SystemExit(f"processing did not start: {processor.failed}")
    rng = np.random.default_rng(1)
    far = (rng.standard_normal(blocks * 960) * 3000).astype(np.int16)
    times = []
    for i in range(blocks):
        processor.far_end(far[i * 960 : (i + 1) * 960])
        near = (far[max(0, i - 5) * 960 : max(0, i - 5) * 960 + 960] // 2).astype(np.int16)
        started = time.perf_counter()
        processor.process(near)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    times = block_times()
    with tempfile.TemporaryDirectory() as tmp:
        pulse = start_pulse(Path(tmp))
        try:
            cpu_on = call_cpu(args.seconds)
            cpu_off = call_cpu(args.seconds, "--no-aec", "--no-ns", "--no-agc")
        finally:
            pulse.terminate()
            pulse.wait(10)
    p99 = float(np.percentile(times, 99))
    print(
        json.dumps(
            {
                "cpu_pct_with_processing": round(cpu_on, 1),
                "cpu_pct_without": round(cpu_off, 1),
                "cpu_added_pct_of_one_core": round(cpu_on - cpu_off, 1),
                "ms_per_20ms_block_median": round(statistics.median(times), 2),
                "ms_per_20ms_block_p99": round(p99, 2),
                "targets": {"cpu_added_pct": 15, "latency_ms": 10},
                "ok": bool(cpu_on - cpu_off <= 15 and p99 <= 10),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    os.environ.pop("ORGA_API_KEY", None)
    main()
