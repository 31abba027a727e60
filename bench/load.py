"""`orga load`'s own cost per call, beside minimal aiortc clients, and what one sandbox holds.

    python bench/load.py cost [--seconds 20] [--counts 1,10,30]
    python bench/load.py capacity [--seconds 20] [--counts 20,30,40,50]

`cost`: against one `orga serve` on loopback, audio only (a tone up, the echo back),
10 calls started a second, each held --seconds:
- `orga load --workers 1` with each count: all calls on one worker's event loop;
- a minimal aiortc client with the largest count, its calls on one event loop too
  (aiortc's own Opus encoder on a generated tone, every received frame decoded and
  dropped: what any Python WebRTC load client pays);
- 10 `orga call` processes (a tone, no speaker), as a user would start them.
Every figure is the client's own: CPU seconds of its processes from start to exit
(getrusage of the waited children: connect, media, hang-up) per call, and its peak RSS
per call. The ratio to the minimal client is per call, in the same run. Goal: 30 calls
from one worker cost less CPU than 10 `orga call` processes.

`capacity`: `orga load` with every worker it wants against one sandbox on this machine,
the clients on the same cores, at each count: how many connected, the concealment of
what each client received (the echo is what the sandbox received, so a call whose
sandbox side lost audio conceals it here), the sandbox's own audio received per call
(from its log), the sandbox's CPU per call, and connect p50/p95. Goal: 30 calls, all
connected, none concealing more than 2 %.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from call_perf import KEY, TONE_TRACK, client_env, proc_cpu_seconds, start_serve

ORGA = [sys.executable, "-m", "orga_cli"]

MINIMAL_MANY = (
    TONE_TRACK
    + r"""
import json, resource
async def one(c, key, secs, out):
    tok = (await c.post("/v1/realtime/client-secrets", headers={"Authorization": "Bearer " + key})).json()["ephemeral_token"]
    h = {"Authorization": "Bearer " + tok}
    await c.get("/v1/realtime/ice-config", headers=h)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(Tone(), direction="sendrecv"); pc.createDataChannel("orga-realtime-client-events")
    @pc.on("track")
    def on(track):
        async def r():
            while True: await track.recv()
        asyncio.ensure_future(r())
    await pc.setLocalDescription(await pc.createOffer())
    r = await c.post("/v1/realtime/calls", headers=h, json={"offer": {"sdp": pc.localDescription.sdp, "type": "offer"}})
    await pc.setRemoteDescription(RTCSessionDescription(**r.json()["answer"]))
    while pc.connectionState != "connected": await asyncio.sleep(0.01)
    out.append(1)
    await asyncio.sleep(secs)
    await pc.close()
async def main(base, key, n, secs):
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        async def later(i):
            await asyncio.sleep(i / 10)
            await one(c, key, secs, out)
        await asyncio.gather(*(later(i) for i in range(n)))
    print(json.dumps({"connected": len(out), "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""
)


def serve(log: Path) -> tuple[subprocess.Popen[str], str]:
    """`orga serve` on a free loopback port, its log in *log*, and its base URL."""
    return start_serve("--max-calls", "200", stderr=log.open("w"))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_children(
    commands: list[list[str]], env: dict[str, str], every: float
) -> tuple[float, list[str]]:
    """Start *commands* *every* seconds apart, wait for all: their CPU seconds, their stdout."""
    before = children_cpu()
    procs = []
    for command in commands:
        procs.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
        time.sleep(every)
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"{command[:4]} failed ({proc.returncode}): {err[-1500:]}")
        outs.append(out)
    return children_cpu() - before, outs


def orga_load(base: str, calls: int, seconds: float, *extra: str) -> tuple[float, dict]:
    cpu, (out,) = run_children(
        [
            [
                *ORGA,
                "load",
                "--calls",
                str(calls),
                "--rate",
                "10/s",
                "--duration",
                str(seconds),
                "--json",
                *extra,
            ]
        ],
        client_env(base),
        0,
    )
    return cpu, json.loads(out)


def cost(seconds: float, counts: list[int]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        box, base = serve(Path(tmp) / "serve.log")
        try:
            rows: dict[str, object] = {}
            for n in counts:
                cpu, report = orga_load(base, n, seconds, "--workers", "1")
                rows[f"orga load, {n} call{'s' * (n > 1)}, 1 worker"] = {
                    "connected": report["connected"],
                    "cpu_s_per_call": round(cpu / n, 3),
                    "rss_mb_per_call": round(report["client"]["max_rss_mb_per_worker"] / n, 1),
                    "rss_mb_worker": report["client"]["max_rss_mb_per_worker"],
                    "concealed_max_pct": report["figures"]["concealed"]["max"],
                }
            n = max(counts)
            script = Path(tmp) / "minimal.py"
            script.write_text(MINIMAL_MANY)
            cpu, (out,) = run_children(
                [[sys.executable, str(script), base, KEY, str(n), str(seconds)]],
                client_env(base),
                0,
            )
            minimal = json.loads(out)
            rows[f"minimal aiortc, {n} calls, 1 process"] = {
                "connected": minimal["connected"],
                "cpu_s_per_call": round(cpu / n, 3),
                "rss_mb_per_call": round(minimal["rss_kb"] / 1024 / n, 1),
            }
            calls = [  # 10 processes, or as many as the largest count when fewer
                [
                    *ORGA,
                    "call",
                    "--audio-in",
                    "tone:440",
                    "--no-speaker",
                    "--no-video",
                    "--json",
                    "--duration",
                    str(seconds),
                ]
                for _ in range(min(10, n))  # 10, or fewer in a quick run
            ]
            cpu_calls, outs = run_children(calls, client_env(base), 0.1)
            rows[f"orga call, {len(calls)} processes"] = {
                "connected": sum(
                    1 for o in outs if json.loads(o).get("ms_to_connected") is not None
                ),
                "cpu_s_per_call": round(cpu_calls / len(calls), 3),
            }
            cpu10 = cpu_calls * 10 / len(calls)  # what 10 cost
        finally:
            box.terminate()
            box.wait(10)
    load_n = rows[f"orga load, {n} calls, 1 worker"]
    minimal_row = rows[f"minimal aiortc, {n} calls, 1 process"]
    all_n = load_n["cpu_s_per_call"] * n  # type: ignore[index,operator]
    return {
        "seconds_per_call": seconds,
        "rows": rows,
        "ratio_cpu_per_call_to_minimal": round(
            load_n["cpu_s_per_call"] / minimal_row["cpu_s_per_call"], 2
        ),  # type: ignore[index,operator]
        "ratio_rss_per_call_to_minimal": round(
            load_n["rss_mb_per_call"] / minimal_row["rss_mb_per_call"], 2
        ),  # type: ignore[index,operator]
        f"cpu_s_{n}_load_calls": round(all_n, 2),
        "cpu_s_10_orga_call_processes": round(cpu10, 2),
        "goal_met": all_n < cpu10,
    }


ENDED = re.compile(r"ended after ([\d.]+) s: ([\d.]+) s of audio")


def capacity(seconds: float, counts: list[int]) -> dict[str, object]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            log = Path(tmp) / f"serve{n}.log"
            box, base = serve(log)
            try:
                cpu0 = proc_cpu_seconds(box.pid)
                per_call = Path(tmp) / f"calls{n}.csv"
                _, report = orga_load(base, n, seconds, "--csv", str(per_call))
                box_cpu = proc_cpu_seconds(box.pid) - cpu0
            finally:
                box.terminate()
                box.wait(10)
            with per_call.open() as fh:
                concealed = [float(r["concealed"] or 0) for r in csv.DictReader(fh)]
            ended = [(float(a), float(b)) for a, b in ENDED.findall(log.read_text())]
            # the sandbox's audio received against the call's length after its connect
            fig = report["figures"]
            rows.append(
                {
                    "calls": n,
                    "connected": report["connected"],
                    "failures": report["failures"],
                    "connect_p50_ms": fig["connect"]["p50"],
                    "connect_p95_ms": fig["connect"]["p95"],
                    "client_concealed_p50_pct": fig["concealed"]["p50"],
                    "client_concealed_max_pct": fig["concealed"]["max"],
                    "calls_concealing_over_2pct": sum(1 for c in concealed if c > 2),
                    "sandbox_audio_received_min_s": min((b for _, b in ended), default=None),
                    "sandbox_cpu_s_per_call": round(box_cpu / n, 2),
                    "client_cpu_pct_of_machine": report["client"]["cpu_pct_of_machine"],
                    "held": report["connected"] == n and (fig["concealed"]["max"] or 0) <= 2,
                }
            )
    held = [r["calls"] for r in rows if r["held"]]
    return {"seconds_per_call": seconds, "rows": rows, "most_calls_held": max(held, default=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cost", "capacity"])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--counts", default=None)
    args = parser.parse_args()
    default = "1,10,30" if args.what == "cost" else "20,30,40,50"
    counts = [int(c) for c in (args.counts or default).split(",")]
    report = (cost if args.what == "cost" else capacity)(args.seconds, counts)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
