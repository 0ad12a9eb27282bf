"""The load generator of bench/serve.py: `connections` keep-alive HTTP/1.1 clients on one asyncio loop, each POSTing
the given bodies in turn, bounded in time (`seconds`) and in answers (`max_requests`). Requests are encoded once
up front and answers are read by Content-Length (no HTTP library on the hot path), so the generator stays a small
share of one core; bench/serve.py measures that share. Loopback only.

Usage: `python -m bench._load <port> <path> <connections> <seconds> <max_requests> <body file>...`;
prints one JSON line (requests, duration_us, non_2xx, socket_errors, p50/p90/p99/max/mean latency in us)."""
from __future__ import annotations

import asyncio
import json
import sys
import time


def _encode(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> int:
    "Read one response; its status. Needs Content-Length (every twiga and mlflow answer has it)."
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status, length = int(lines[0].split()[1]), None
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:": length = int(line[15:])
    if length is None: raise OSError("answer without Content-Length")
    await reader.readexactly(length)
    return status


async def _client(k, port, reqs, deadline, state, lat):
    n = len(reqs)
    try: reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        state["socket_errors"] += 1
        return
    i = k
    try:
        while time.perf_counter() < deadline and state["answers"] < state["max"]:
            t0 = time.perf_counter()
            writer.write(reqs[i % n])
            status = await _read_answer(reader)
            lat.append(time.perf_counter() - t0)
            state["answers"] += 1
            if status >= 300: state["non_2xx"] += 1
            i += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        state["socket_errors"] += 1
    finally:
        writer.close()


async def run(port: int, path: str, connections: int, seconds: float, max_requests: int, bodies: list[bytes]):
    reqs = [_encode(path, b) for b in bodies]
    state, lat = {"answers": 0, "max": max_requests, "non_2xx": 0, "socket_errors": 0}, []
    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(_client(k, port, reqs, t0 + seconds, state, lat)
                                            for k in range(connections))), seconds + 30)
    dur = time.perf_counter() - t0
    us = sorted(x * 1e6 for x in lat) or [0.0]
    pct = lambda q: us[min(len(us) - 1, int(q * len(us)))]
    return {"requests": len(lat), "duration_us": int(dur * 1e6), "non_2xx": state["non_2xx"],
            "socket_errors": state["socket_errors"], "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
            "max_us": us[-1], "mean_us": sum(us) / len(us)}


if __name__ == "__main__":
    port, path, conns, secs, cap, *files = sys.argv[1:]
    bodies = [open(f, "rb").read() for f in files]
    print(json.dumps(asyncio.run(run(int(port), path, int(conns), float(secs), int(cap), bodies))))
