"""Turn latency: what it costs to measure, and how true it is.

    python bench/turns.py [--turns 10] [--delay 0.5]

1. The turn detector's CPU per 20 ms block (one block sent, one played), beside the
   Opus encode of the same block in the same run: the ratio says what it adds to the
   cheapest thing a call does per block anyway. Target: <= 1 % of a core.
2. A call against `orga serve --reply parrot --echo-delay DELAY` (each utterance repeated
   DELAY after it ends) with TURNS spoken utterances (espeak-ng): the measured turn
   latencies against DELAY plus the path (the sandbox's receive buffer, from its
   sandbox.stats events, plus orga's), median and spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from call_perf import client_env, start_serve

RATE, BLOCK = 48_000, 960


def detector_cost(blocks: int = 20_000) -> dict[str, float]:
    from orga_cli.media.opus import Encoder
    from orga_cli.media.turns import TurnTracker

    rng = np.random.default_rng(1)
    talk = (rng.standard_normal((200, BLOCK)) * 3000).astype(np.int16)
    talk[::3] = 0  # speech and pauses, so that turns start and end
    tracker = TurnTracker()
    t0 = time.perf_counter()
    for i in range(blocks):
        tracker.sent(talk[i % 200])
        tracker.played(talk[(i + 100) % 200])
    vad = (time.perf_counter() - t0) / blocks
    encoder = Encoder()
    n = blocks // 10
    t0 = time.perf_counter()
    for i in range(n):
        encoder.encode(talk[i % 200])
    encode = (time.perf_counter() - t0) / n
    return {
        "detector_us_per_block": round(vad * 1e6, 1),
        "opus_encode_us_per_block": round(encode * 1e6, 1),
        "ratio_to_encode": round(vad / encode, 3),
        "core_pct": round(100 * vad / 0.020, 3),
    }


def utterances(folder: Path, count: int, gap: float) -> Path:
    words = ["hello there", "good morning", "thank you", "see you soon", "all right", "very good"]
    parts = [np.zeros(RATE // 2, np.int16)]
    for i in range(count):
        raw, out = folder / f"w{i}.wav", folder / f"w{i}-48k.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), words[i % len(words)]], check=True)
        subprocess.run(["sox", str(raw), "-r", "48000", str(out)], check=True)
        with wave.open(str(out)) as w:
            parts.append(np.frombuffer(w.readframes(w.getnframes()), np.int16))
        parts.append(np.zeros(int(gap * RATE), np.int16))
    path = folder / "turns.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.concatenate(parts).tobytes())
    return path


def parrot_call(turns: int, delay: float) -> dict[str, object]:
    serve, base = start_serve("--reply", "parrot", "--echo-delay", str(delay))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = utterances(folder, turns, gap=delay + 1.5)
            with wave.open(str(source)) as w:
                seconds = w.getnframes() / RATE
            log = folder / "events.jsonl"
            out = subprocess.run(
                [sys.executable, "-m", "orga_cli", "call", "--audio-in", str(source),
                 "--no-video", "--no-speaker", "--json", "--events", str(log),
                 "--duration", str(seconds + 0.5)],
                capture_output=True, text=True, env=client_env(base), timeout=seconds + 60,
            )  # fmt: skip
            if out.returncode != 0:
                raise SystemExit(f"orga call failed: {out.stderr.strip()[-300:]}")
            summary = json.loads(out.stdout)
            stats = [json.loads(line)["event"] for line in log.read_text().splitlines()]
            buffers = [
                e["buffer_ms"]
                for e in stats
                if e.get("type") == "sandbox.stats" and e.get("buffer_ms")
            ]
    finally:
        serve.terminate()
        serve.wait(10)
    latencies = [t["latency_ms"] for t in summary["turns"] if t["latency_ms"] is not None]
    path_ms = statistics.median(buffers) + summary["jitter_buffer_ms"]["mean"]
    expected = 1000 * delay + path_ms
    errors = [lat - expected for lat in latencies]
    return {
        "turns_spoken": turns,
        "turns_measured": len(latencies),
        "echo_delay_ms": round(1000 * delay),
        "path_ms": round(path_ms, 1),
        "latency_median_ms": round(statistics.median(latencies)) if latencies else None,
        "latency_min_max_ms": [min(latencies), max(latencies)] if latencies else None,
        "error_median_ms": round(statistics.median(errors)) if errors else None,
        "error_spread_ms": round(max(errors) - min(errors)) if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.5)
    args = parser.parse_args()
    result = {"detector": detector_cost(), "parrot": parrot_call(args.turns, args.delay)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
