"""The load generator of bench/serve.py: `connections` keep-alive HTTP/1.1 clients on one asyncio loop, each POSTing
the given bodies in turn, bounded in time (`seconds`) and in answers (`max_requests`). Requests are encoded once
up front and answers are read by Content-Length (no HTTP library on the hot path), so the generator stays a small
share of one core; bench/serve.py measures that share. A 503's Retry-After is honoured (up to the deadline), as a
well-behaved client would. Loopback only.

Usage: `python -m bench._load <port> <path> <connections> <seconds> <max_requests> <body file>...`;
prints one JSON line (requests, duration_us, non_2xx, socket_errors, p50/p90/p99/max/mean latency in us, and of
the 2xx answers alone: ok, ok_p50/ok_p99/ok_max in us; answers by status)."""
from __future__ import annotations

import asyncio
import json
import sys
import time


def _encode(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, float]:
    ("Read one response; its status and Retry-After (seconds, 0 without). Needs Content-Length (every twiga and "
     "mlflow answer has it).")
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status, length, retry = int(lines[0].split()[1]), None, 0.0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:": length = int(line[15:])
        elif line[:12].lower() == b"retry-after:": retry = float(line[12:])
    if length is None: raise OSError("answer without Content-Length")
    await reader.readexactly(length)
    return status, retry


async def _client(k, port, reqs, deadline, state, lat, lat_ok):
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
            status, retry = await _read_answer(reader)
            lat.append(time.perf_counter() - t0)
            state["answers"] += 1
            if status >= 300: state["non_2xx"] += 1
            else: lat_ok.append(lat[-1])
            state["statuses"][status] = state["statuses"].get(status, 0) + 1
            if status == 503 and retry:  # as a client that honours Retry-After: wait, up to the deadline
                await asyncio.sleep(max(0.0, min(retry, deadline - time.perf_counter())))
            i += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        state["socket_errors"] += 1
    finally:
        writer.close()


async def run(port: int, path: str, connections: int, seconds: float, max_requests: int, bodies: list[bytes]):
    reqs = [_encode(path, b) for b in bodies]
    state, lat, lat_ok = {"answers": 0, "max": max_requests, "non_2xx": 0, "socket_errors": 0, "statuses": {}}, [], []
    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(_client(k, port, reqs, t0 + seconds, state, lat, lat_ok)
                                            for k in range(connections))), seconds + 30)
    dur = time.perf_counter() - t0
    us, ok = sorted(x * 1e6 for x in lat) or [0.0], sorted(x * 1e6 for x in lat_ok) or [0.0]
    pct = lambda q, v=us: v[min(len(v) - 1, int(q * len(v)))]
    return {"requests": len(lat), "duration_us": int(dur * 1e6), "non_2xx": state["non_2xx"],
            "socket_errors": state["socket_errors"], "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
            "max_us": us[-1], "mean_us": sum(us) / len(us),
            "statuses": state["statuses"], "ok": len(lat_ok), "ok_p50_us": pct(0.5, ok), "ok_p99_us": pct(0.99, ok),
            "ok_max_us": ok[-1]}


if __name__ == "__main__":
    port, path, conns, secs, cap, *files = sys.argv[1:]
    bodies = [open(f, "rb").read() for f in files]
    print(json.dumps(asyncio.run(run(int(port), path, int(conns), float(secs), int(cap), bodies))))
