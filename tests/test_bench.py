"""Every benchmark runs: each one in a quick mode (a call or two, a few seconds, one
profile), so that none rots when the code under it moves. The figures are not checked
here (a benchmark compares with its baseline in the same run, on a quiet machine); that
the benchmark ran to its report, with the figures it promises, is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .helpers.audio import need
from .helpers.orga import REPO, clean_env

# script, its quick arguments, what its report must hold, the tools it needs
QUICK: dict[str, tuple[str, list[str], list[str], tuple[str, ...]]] = {
    "connect": (
        "call_perf.py",
        ["connect", "--runs", "1"],
        ["orga_ms_to_connected_median", "ratio_connected"],
        (),
    ),
    "cpu": ("call_perf.py", ["cpu", "--seconds", "1"], ["cpu_pct_of_one_core"], ("pulseaudio",)),
    "client_latency": (
        "client_latency.py",
        ["--seconds", "5"],
        ["client_added_ms_median", "of_which_packet_to_speaker_pull_ms"],
        ("pulseaudio", "paplay"),
    ),
    "ice_probe": (
        "ice_probe.py",
        ["--runs", "1"],
        ["probe_good_median_s", "native_stun_client_median_s"],
        ("turnserver", "turnutils_stunclient"),
    ),
    "processing": (
        "processing.py",
        ["--seconds", "1.5"],
        ["cpu_added_pct_of_one_core", "ms_per_20ms_block_p99"],
        ("pulseaudio",),
    ),
    "load_cost": ("load.py", ["cost", "--seconds", "2", "--counts", "2"], ["goal_met"], ()),
    "load_capacity": (
        "load.py",
        ["capacity", "--seconds", "2", "--counts", "2"],
        ["most_calls_held", "sandbox_cpu_s_per_call"],
        (),
    ),
    "token_startup": ("token_startup.py", ["--runs", "1"], ["ratio", "heavy_modules_imported"], ()),
    "turns": (
        "turns.py",
        ["--turns", "1"],
        ["latency_median_ms", "detector"],
        ("espeak-ng", "sox"),
    ),
    "receive_sim": (
        "receive_sim.py",
        ["clean", "--seeds", "7"],
        ["whole", "steady"],
        ("espeak-ng",),
    ),
    "uplink_sim": (
        "uplink_sim.py",
        ["--scenario", "300k", "--seconds", "6"],
        ["queue median", "estimate"],
        (),
    ),
    "network": (
        "network.py",
        ["--calls", "1", "--seconds", "4", "--profile", "clean", "--json"],
        ["pesq_wb", "chromium"],
        ("chromium", "pulseaudio", "espeak-ng", "sox"),
    ),
    "uplink": (
        "uplink.py",
        ["--calls", "1", "--seconds", "4", "--profile", "60k-voice", "--json"],
        ["queue_median_ms", "dropped_pct", "pesq_wb"],
        ("chromium", "pulseaudio", "espeak-ng", "sox"),
    ),
}


@pytest.mark.timeout(180)
@pytest.mark.xdist_group("heavy")  # a benchmark loads the machine: never beside the timing tests
@pytest.mark.parametrize("name", list(QUICK))
def test_the_benchmark_runs(name: str) -> None:
    script, args, promised, tools = QUICK[name]
    need(*tools)
    if name in ("network", "uplink", "receive_sim"):
        pytest.importorskip("pesq", reason="PESQ-WB: pip install pesq (in the test extras)")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=REPO,
        env=clean_env(),
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    report = proc.stdout
    for figure in promised:
        assert figure in report, (figure, report[-2000:])
    if report.lstrip().startswith("{"):
        json.loads(report)  # a JSON report is whole
