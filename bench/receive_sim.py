"""The receive buffer offline: scripted arrivals on a fake clock, scored with PESQ-WB.

    python bench/receive_sim.py [clean jitter inorder loss] [--seeds 7 8 ... 18]

No network, no sound card, no Chromium: the bench's speech passage is encoded once
(Opus, FEC on), each packet gets an arrival time from the profile (jitter: 40 ms plus
|N(0, 30 ms)|, reordering; inorder: the same never overtaking; loss: 5 % dropped),
and `AudioReceiver` is pulled every 10 ms of the fake clock for 20 s. Printed per
profile: the median PESQ-WB over the seeds of the whole 12 s, of the start (the
first 2 s, aligned on their own: what the speaker plays before the buffer has learnt
the link) and of the steady state (from 2 s), and the receiver's counts for the first seed. A quick way to
try a change to `media/receive.py` (a minute, not the 15 of bench/network.py);
confirm what it finds there. One event (a wait, a stretch) moves a call's PESQ-WB by
up to 0.7 depending on where in the passage it falls, so a change is judged over a
dozen seeds or more, never one.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from network import TEXT, read_wav, to16k

from orga_cli.media.opus import FRAME, Encoder
from orga_cli.media.receive import AudioReceiver

SECONDS = 20.0
PULL_S = 0.01


def speech() -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), TEXT], check=True)
        subprocess.run(["sox", str(raw), "-r", "48000", str(out), "trim", "0", "12"], check=True)
        return read_wav(out).astype(np.int16)


def encode(samples: np.ndarray, loss_pct: int) -> list[bytes]:
    encoder = Encoder()
    encoder.set_fec(True)
    encoder.set_expected_loss(loss_pct)
    return [
        encoder.encode(samples[i : i + FRAME]) for i in range(0, samples.size - FRAME + 1, FRAME)
    ]


def arrivals(profile: str, packets: list[bytes], seed: int) -> list[tuple[float, int, bytes]]:
    rng = random.Random(seed)
    out, last = [], 0.0
    for i, payload in enumerate(packets):
        t = FRAME / 48_000 * i + abs(rng.gauss(0, 0.004))
        if profile == "jitter":
            t += 0.04 + max(0.0, rng.gauss(0, 0.03))
        elif profile == "inorder":
            t = last = max(last, t + 0.04 + max(0.0, rng.gauss(0, 0.03)))
        elif profile == "loss" and rng.random() < 0.05:
            continue
        out.append((t, i * FRAME, payload))
    return sorted(out)


def play(schedule: list[tuple[float, int, bytes]]) -> tuple[np.ndarray, AudioReceiver]:
    now = [0.0]
    receiver = AudioReceiver(clock=lambda: now[0])
    out, t, j = [], 0.0, 0
    while t < SECONDS:
        while j < len(schedule) and schedule[j][0] <= t:
            now[0] = schedule[j][0]
            receiver.insert(schedule[j][2], schedule[j][1], 1)
            j += 1
        now[0] = t
        out.append(receiver.pull(int(PULL_S * 48_000)))
        t += PULL_S
    return np.concatenate(out), receiver


def scores(played: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    from pesq import pesq

    y = to16k(played.astype(np.float32))
    n = 1 << int(np.ceil(np.log2(y.size + reference.size)))
    corr = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(reference, n)), n)
    start = int(np.argmax(corr[: 3 * 16_000]))
    two = 2 * 16_000
    whole = pesq(16_000, reference, y[start : start + reference.size], "wb")
    # The first 2 s with their own alignment: the delay there is not yet the call's
    # (priming, the first cuts), and an offset PESQ-WB does not find would be scored as
    # distortion. Searched within 100 ms either side of the whole file's, in 2.5 ms steps.
    first = max(
        pesq(16_000, reference[:two], y[o : o + two], "wb")
        for o in range(max(0, start - 1600), start + 1600, 40)
    )
    steady = pesq(16_000, reference[two:], y[start + two : start + reference.size], "wb")
    return whole, first, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profiles", nargs="*", default=["clean", "jitter", "inorder", "loss"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(7, 19)))
    args = parser.parse_args()
    samples = speech()
    reference = to16k(samples.astype(np.float32))
    loop = np.concatenate([samples, samples])  # 24 s: the receiver is pulled for 20
    for profile in args.profiles:
        packets = encode(loop, 6 if profile == "loss" else 0)
        rows = []
        for seed in args.seeds:
            played, receiver = play(arrivals(profile, packets, seed))
            rows.append((*scores(played, reference), receiver))
        stats = rows[0][3].stats
        print(
            f"{profile:8s} whole {statistics.median(r[0] for r in rows):.2f}"
            f"  first 2 s {statistics.median(r[1] for r in rows):.2f}"
            f"  steady {statistics.median(r[2] for r in rows):.2f}"
            f"  | seed {args.seeds[0]}: accelerated {stats.accelerated / 48:.0f} ms,"
            f" expanded {stats.expanded / 48:.0f} ms, concealed {stats.concealed_pct:.2f} %,"
            f" lost {stats.lost}, late {stats.late}, mean delay {stats.mean_delay_ms or 0:.0f} ms"
        )


if __name__ == "__main__":
    main()
