"""One Prefect API server for the whole of `./dev test`, so that the tutorials (nbval) and the tests that run real flow
runs share it instead of each starting a temporary server of their own (about 20-40 s and 12 s of CPU each).

    python scripts/prefect_server.py start DIR   # prints "API_URL PID" at once; the server starts in the background
    python scripts/prefect_server.py wait URL    # until the server answers /health (exit 1 after --timeout s)
    python scripts/prefect_server.py stop PID    # stops it (SIGTERM, then SIGKILL) and waits until it is gone

The server is the one Prefect's own temporary servers and `prefect_test_harness` run (uvicorn on Prefect's app factory,
no UI), on 127.0.0.1 at a free port, its SQLite database and log in DIR. It runs in a session of its own: `dev` stops
it by its pid when the tests end, also when they fail (a Prefect server outlives a killed parent).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: Path) -> tuple[str, int]:
    "Start the server in the background; its API URL and pid."
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{directory / 'prefect.db'}"}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    with open(directory / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return f"http://127.0.0.1:{port}/api", proc.pid


def alive(pid: int) -> bool:
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    try: return os.waitpid(pid, os.WNOHANG) == (0, 0)   # our child: reap it if it ended
    except ChildProcessError: return True


def wait(url: str, timeout: float, pid: int | None = None) -> None:
    "Until `url`/health answers 200; SystemExit naming the reason after `timeout` s or when the server died."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200: return
        except OSError: pass
        if pid is not None and not alive(pid): raise SystemExit(f"the Prefect server (pid {pid}) exited")
        time.sleep(0.2)
    raise SystemExit(f"the Prefect server at {url} did not answer within {timeout:.0f} s")


def stop(pid: int, timeout: float = 10) -> None:
    "SIGTERM to the server's process group, SIGKILL after `timeout` s; returns once no process of it is left."
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try: os.killpg(pid, sig)
        except ProcessLookupError: return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try: os.killpg(pid, 0)
            except ProcessLookupError: return
            time.sleep(0.1)
    raise SystemExit(f"the Prefect server (pid {pid}) did not stop")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["start", "wait", "stop"])
    ap.add_argument("arg", help="start: the server's folder; wait: its API URL; stop: its pid")
    ap.add_argument("--pid", type=int, help="wait: fail early when this process has exited")
    ap.add_argument("--timeout", type=float, default=180)
    a = ap.parse_args(argv)
    if a.action == "start":
        url, pid = start(Path(a.arg))
        print(url, pid)
    elif a.action == "wait": wait(a.arg, a.timeout, a.pid)
    else: stop(int(a.arg))


if __name__ == "__main__":
    main()
