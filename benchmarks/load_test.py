"""Load on the HTTP service over loopback: N requests at C concurrent, bounded in count and time.

Starts `personcut serve` on 127.0.0.1 (or uses --url, which must be a loopback address), sends
the sample photo, and reports p50/p95 latency, throughput, responses by status code, requests
lost or hung, and the server's RSS before and after.

    python benchmarks/load_test.py --requests 200 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fire(url: str, body: bytes, n: int, concurrency: int, deadline: float, timeout: float):
    codes: Counter = Counter()
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=timeout) as client:

        async def one() -> None:
            async with sem:
                if time.monotonic() > deadline:
                    codes["not sent (time budget)"] += 1
                    return
                start = time.perf_counter()
                try:
                    r = await client.post(
                        url + "/api/remove",
                        content=body,
                        headers={"content-type": "application/octet-stream"},
                    )
                    codes[r.status_code] += 1
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - start)
                except httpx.TimeoutException:
                    codes["hung (client timeout)"] += 1
                except httpx.HTTPError as exc:
                    codes[f"lost ({type(exc).__name__})"] += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - start
    return codes, latencies, wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=300, help="stop sending after this")
    p.add_argument("--image", type=Path, default=ROOT / "examples" / "astronaut.jpg")
    p.add_argument("--url", help="an already running server on loopback")
    p.add_argument("--workers", type=int, help="default: the server's own default")
    p.add_argument("--queue", type=int, help="default: the server's own default")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_test.json")
    args = p.parse_args()

    proc = None
    if args.url:
        host = urllib.parse.urlparse(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("load tests only go to loopback addresses")
        url = args.url.rstrip("/")
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        flags = [
            f
            for name in ("workers", "queue")
            if getattr(args, name) is not None
            for f in (f"--{name}", str(getattr(args, name)))
        ]
        proc = subprocess.Popen(
            [sys.executable, "-m", "personcut", "serve", "--port", str(port), *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    try:
        body = args.image.read_bytes()
        httpx.post(url + "/api/remove", content=body, timeout=60)  # warm-up
        before = rss_mb(proc.pid) if proc else float("nan")
        deadline = time.monotonic() + args.max_seconds
        codes, lat, wall = asyncio.run(
            fire(url, body, args.requests, args.concurrency, deadline, timeout=120)
        )
        after = rss_mb(proc.pid) if proc else float("nan")
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
    lat.sort()
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: 0)
    report = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "image": args.image.name,
        "workers": args.workers or "default",
        "queue": args.queue or "default",
        "codes": {str(k): v for k, v in codes.items()},
        "ok": len(lat),
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "throughput_ok_per_s": len(lat) / wall,
        "wall_s": wall,
        "server_rss_mb_before": before,
        "server_rss_mb_after": after,
    }
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    answered = sum(v for k, v in codes.items() if k in (200, 503))
    return 0 if answered == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
