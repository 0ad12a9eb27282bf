"""Serving speed side by side, in one run (issue 17): twiga's server against `mlflow models serve` of the very pyfunc
model `TwigaTracker.log_model` logs, each with twiga as it is in this tree (`now`) and as it was at the baseline
commit (`before`, `TWIGA_BENCH_BASELINE`, default the main of before issue 17; its `twiga/` is taken with
`git archive` and put first on the servers' PYTHONPATH, so `mlflow models serve` runs the old forecast path
`before` and the new one `now`). Each twiga fits, saves, pickles and logs the model itself (`bench._serve_prepare`,
same data, seed and trees): an older twiga cannot read a newer one's pickles.

Shape: ERCOT at 30 min, LightGBM of exactly 200 trees, horizon 48, lookback 336; one request is one 336-row
window (the model's input columns, timestamps as ISO strings), ensemble mean; 8 different windows in turn.
Measured, per round, for `before` and `now`:
- in process (`bench._serve_inproc`, own process): `forecast` and `predict_interval` of one window, called directly,
  and `forecast_columns` (what `/predict` runs) where the twiga has it;
- twiga behind a real uvicorn, started as `twiga serve` starts it (`run_server`): /predict at concurrency 1 and 8
  with 1 worker, /predict-interval at concurrency 8, /predict at concurrency 8 with 2 workers (and how the 8
  connections spread over the 2 workers: `connections_per_process`); start to healthy and RSS;
- `mlflow models serve -m <logged model> --env-manager local -w 1`: /invocations (`dataframe_split` of the same
  window) at concurrency 8 and 1; start to ready and RSS. Its answer is checked against twiga's (same numbers).
Then, `now` only: 30 s of /predict at concurrency 8 while `POST /reload` swaps two versions every second (a Python
client that checks every answer against the sequential answer of the version that gave it), and one worker under
four times the load (32 connections): without a limit, and with `TWIGA_SERVE_MAX_IN_FLIGHT=8`, where what it cannot
take is answered 503 at once (`ok_*`: the 200 answers alone; `statuses`: every answer by status).

Load generator: `bench._load` in its own process (asyncio, keep-alive connections, requests encoded once, answers
read by Content-Length), each load bounded in time and in answers (`MAX_REQUESTS`). Its own CPU use is measured
(`load_cpu_share`: its CPU seconds / wall seconds) and reported beside each figure: on 2 cores what it takes is not
serving. Loopback only.
`ROUNDS` rounds, in alternating order; every figure is the median over rounds (`runs` keeps each). Timing is
noisy on a shared machine: the load average before and after is recorded; compare ratios within one run.
Run: `./dev bench serve` (about 12 minutes), results in bench/results/serve.json."""
from __future__ import annotations

import json
import os
import pickle
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _serve_helpers import HORIZON, LOOKBACK, Client, free_port, request, stop_group, wait_healthy  # noqa: E402

BASELINE = os.environ.get("TWIGA_BENCH_BASELINE", "da8055e")  # main before issue 17
ROUNDS = int(os.environ.get("TWIGA_BENCH_ROUNDS", "3"))
LOAD_S = float(os.environ.get("TWIGA_BENCH_LOAD_SECONDS", "10"))
MAX_REQUESTS, RELOAD_LOAD_S, TREES, INPROC_CALLS = 20_000, 30.0, 200, 400
OVERLOAD_CONNECTIONS, SHED_AT = 32, 8


def _fit(ckpt: Path):
    "Version 1: LightGBM of exactly 200 trees (no early stopping), saved; version 2 (reload test): 100 trees."
    from _serve_helpers import make_forecaster

    from twiga.datasets import load_ercot
    df = load_ercot("2017-01-01", "2019-03-01", freq="30min")
    train = df[df["timestamp"] < "2018-11-01T00:00:00Z"].reset_index(drop=True)
    test = df[df["timestamp"] >= "2019-01-01T00:00:00Z"].reset_index(drop=True)
    t0 = time.perf_counter()
    fc = make_forecaster(ckpt, n_estimators=TREES, seed=42).fit(train)
    fit_s = time.perf_counter() - t0
    fc.on_save_checkpoint()
    make_forecaster(ckpt, n_estimators=TREES // 2, seed=7).fit(train).on_save_checkpoint()
    from twiga.checkpoints import CheckpointStore
    CheckpointStore(ckpt).rollback(1)
    return fc, test, fit_s


def _iso(frame):
    return frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S%z"))


def _bodies(fc, test, d: Path, n=8):
    "n one-lookback windows (the model's input columns), and their /predict and mlflow bodies written to files."
    cols = fc.input_columns
    frames = [test.iloc[i * HORIZON: i * HORIZON + LOOKBACK][cols].reset_index(drop=True) for i in range(n)]
    files = {"predict": [], "interval": [], "mlflow": []}
    for i, f in enumerate(frames):
        recs = json.loads(_iso(f).to_json(orient="records"))
        split = json.loads(_iso(f).to_json(orient="split", index=False))
        for kind, body in (("predict", {"records": recs, "ensemble_strategy": "mean"}),
                           ("interval", {"records": recs, "ensemble_strategy": "mean", "coverage": 0.9}),
                           ("mlflow", {"dataframe_split": split})):
            p = d / f"{kind}-{i}.json"
            p.write_text(json.dumps(body))
            files[kind].append(p)
    return frames, files


def _log_model(fc, sample, d: Path) -> Path:
    "Log `fc` with `TwigaTracker.log_model` into a SQLite store under `d`; the local copy of the model's files."
    import mlflow

    from twiga.tracking import TwigaTracker
    uri = f"sqlite:///{d}/mlflow.db"
    with TwigaTracker("bench-serve", run_name="serve", tracking_uri=uri) as tracker:
        model = tracker.log_model(fc, sample_input=sample)
    mlflow.set_tracking_uri(uri)
    return Path(mlflow.artifacts.download_artifacts(model.model_uri, dst_path=str(d / "mlflow-model")))


def _baseline(commit: str, d: Path) -> Path | None:
    "The `twiga/` package of `commit` under `d` (None without the commit in git)."
    r = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "twiga"], capture_output=True)
    if r.returncode: return None
    with tarfile.open(fileobj=BytesIO(r.stdout)) as tar: tar.extractall(d, filter="data")
    return d


class Proc:
    "A server process in its own group on 127.0.0.1 (twiga's uvicorn or `mlflow models serve`), stopped by pid."
    def __init__(self, cmd, env, cwd, port, log, health="/health", ready=None):
        self.cmd, self.env, self.cwd, self.port, self.log_path = cmd, env, cwd, port, log
        self.health, self.ready = health, ready

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        kw = {"ready": self.ready} if self.ready else {}
        wait_healthy(self.port, self.proc, self.log_path, 180, path=self.health, **kw)
        self.started_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc):
        stop_group(self.proc)
        self.log.close()


def _env(code: Path | None, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = ":".join(str(p) for p in (code, ROOT) if p is not None)
    return env | extra


def _twiga(code, ckpt, base: Path, workers: int, tag: str, extra: dict | None = None) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-c", "from twiga.serve import run_server; "  # what `twiga serve` runs
           f"run_server(host='127.0.0.1', port={port}, workers={workers}, log_level='warning')"]
    env = _env(code, {"TWIGA_MODEL_CHECKPOINT_DIR": str(ckpt), "TWIGA_SERVE_REPORT_DIR": str(base / f"reports-{tag}"),
                      "TWIGA_SERVE_RELOAD_POLL_SECONDS": "1", "TWIGA_LOG_LEVEL": "INFO"} | (extra or {}))
    return Proc(cmd, env, base, port, base / f"twiga-{tag}.log")


def _mlflow(code, model_dir: Path, base: Path, tag: str) -> Proc:
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", str(model_dir), "--env-manager",
           "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    env = _env(code, {"MLFLOW_DISABLE_TELEMETRY": "true"})
    return Proc(cmd, env, base, port, base / f"mlflow-{tag}.log", health="/ping", ready=lambda s, _: s == 200)


def _cpu_s(pid) -> float:
    "CPU seconds (user + system) used so far by a process and its descendants (Linux /proc)."
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError: return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") + sum(_cpu_s(int(c)) for c in children)


def _rss_mb(pid) -> float:
    "Resident memory of a process and its descendants, MB (Linux /proc)."
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError: return 0.0
    kb = next(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return round(kb / 1024 + sum(_rss_mb(int(c)) for c in children), 1)


def _connections(port: int) -> list[int]:
    "Established connections to `port` per server process, most first (`ss`; empty where `ss` is missing)."
    try: out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired): return []
    pids = [w.split("pid=")[1].split(",")[0] for w in out.split() if "pid=" in w]
    return sorted((pids.count(p) for p in set(pids)), reverse=True)


def _load(srv: Proc, path: str, files: list[Path], connections: int, seconds: float = LOAD_S) -> dict:
    ("`connections` keep-alive clients for `seconds` (or MAX_REQUESTS answers): latency, throughput, CPU of both "
     "sides, and how the clients' connections were spread over the server's processes (sampled half-way).")
    cmd = [sys.executable, "-m", "bench._load", str(srv.port), path, str(connections), f"{seconds:g}",
           str(MAX_REQUESTS), *map(str, files)]
    spread: list[int] = []
    probe = threading.Timer(seconds / 2, lambda: spread.extend(_connections(srv.port)))
    c0, t0, s0 = os.times(), time.perf_counter(), _cpu_s(srv.proc.pid)
    probe.start()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True, cwd=ROOT)
    probe.join()
    wall, c1, s1 = time.perf_counter() - t0, os.times(), _cpu_s(srv.proc.pid)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    n, secs = r["requests"], r["duration_us"] / 1e6
    load_cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return {"requests_per_s": round(n / secs, 1), "p50_ms": round(r["p50_us"] / 1000, 2),
            "p90_ms": round(r["p90_us"] / 1000, 2), "p99_ms": round(r["p99_us"] / 1000, 2),
            "max_ms": round(r["max_us"] / 1000, 1), "n": n, "failed": r["non_2xx"] + r["socket_errors"],
            "server_cpu_ms_per_request": round((s1 - s0) / max(n, 1) * 1000, 2),
            "load_cpu_share": round(load_cpu / wall, 3), "connections_per_process": spread,
            "ok_per_s": round(r["ok"] / secs, 1), "ok_p50_ms": round(r["ok_p50_us"] / 1000, 2),
            "ok_p99_ms": round(r["ok_p99_us"] / 1000, 2), "ok_max_ms": round(r["ok_max_us"] / 1000, 1),
            "statuses": r["statuses"]}


def _check_first(srv: Proc, path: str, files: list[Path]) -> list:
    "POST each body once (warm-up); every answer must be 200. Returns the answers."
    out = []
    for f in files:
        status, body = request(srv.port, "POST", path, raw=f.read_bytes())
        assert status == 200, (path, status, str(body)[:500])
        out.append(body)
    return out


def _inproc(code, pkl: Path, base: Path) -> dict:
    env = _env(code, {})
    out = subprocess.run([sys.executable, "-m", "bench._serve_inproc", str(pkl), str(INPROC_CALLS)], env=env,
                         cwd=base, capture_output=True, text=True, timeout=600)
    if out.returncode: raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _all_workers_up(srv: Proc, workers: int, timeout: float = 120) -> None:
    "Wait until `workers` different processes have answered /health (fresh connections), as a deployment would."
    pids, deadline = set(), time.monotonic() + timeout
    while len(pids) < workers and time.monotonic() < deadline:
        pids.add(request(srv.port, "GET", "/health")[1]["pid"])
        time.sleep(0.05)
    if len(pids) < workers: raise RuntimeError(f"only {len(pids)} of {workers} workers answered in {timeout:.0f} s")


def _values(answer: dict, model="lightgbm") -> list[float]:
    return [p["value"] for f in answer["forecasts"] if f["model"] == model for p in f["predictions"]]


def _round(code, tag, ckpt, model_dir, pkl, files, base) -> dict:
    "Every measurement of one twiga (`code` first on PYTHONPATH, None: this tree)."
    out = {"in_process": _inproc(code, pkl, base)}
    with _twiga(code, ckpt, base, 1, f"{tag}-w1") as srv:
        twiga_answers = _check_first(srv, "/predict", files["predict"])
        _check_first(srv, "/predict-interval", files["interval"])
        out["twiga_start_s"], out["twiga_rss_mb"] = round(srv.started_s, 2), _rss_mb(srv.proc.pid)
        out["twiga_w1_c1"] = _load(srv, "/predict", files["predict"], 1)
        out["twiga_w1_c8"] = _load(srv, "/predict", files["predict"], 8)
        out["twiga_interval_w1_c8"] = _load(srv, "/predict-interval", files["interval"], 8)
    with _twiga(code, ckpt, base, 2, f"{tag}-w2") as srv:
        _all_workers_up(srv, 2)
        _check_first(srv, "/predict", files["predict"])
        out["twiga_w2_c8"] = _load(srv, "/predict", files["predict"], 8)
    with _mlflow(code, model_dir, base, tag) as srv:
        answers = _check_first(srv, "/invocations", files["mlflow"])
        mine = [a["predictions"] for a in answers]
        assert [[p["value"] for p in m] for m in mine] == [_values(a) for a in twiga_answers], \
            "mlflow's pyfunc and twiga's server answer different forecasts for the same windows"
        out["mlflow_start_s"], out["mlflow_rss_mb"] = round(srv.started_s, 2), _rss_mb(srv.proc.pid)
        out["mlflow_w1_c8"] = _load(srv, "/invocations", files["mlflow"], 8)
        out["mlflow_w1_c1"] = _load(srv, "/invocations", files["mlflow"], 1)
    return out


def _reload_load(ckpt, base, files, seconds=RELOAD_LOAD_S, concurrency=8) -> dict:
    "/predict at `concurrency` for `seconds` while POST /reload alternates versions 1 and 2 every second."
    bodies = [f.read_bytes() for f in files]
    with _twiga(None, ckpt, base, 1, "reload") as srv:
        refs = {}
        for v in (1, 2):
            assert request(srv.port, "POST", "/reload", {"version": v})[0] == 200
            refs[v] = [a["forecasts"] for a in _check_first(srv, "/predict", files)]
        stop, lock, lat, fails, inconsistent = threading.Event(), threading.Lock(), [], [], [0]
        def worker(k):
            c, i = Client(srv.port), k
            while not stop.is_set() and i < 50_000:
                t0 = time.perf_counter()
                try: status, raw = c.post("/predict", bodies[i % len(bodies)])
                except OSError as e: status, raw = -1, str(e).encode()
                dt = time.perf_counter() - t0
                with lock:
                    if status != 200: fails.append((status, raw[:200]))
                    else:
                        lat.append(dt)
                        body = json.loads(raw)
                        if body["forecasts"] != refs[body["version"]][i % len(bodies)]: inconsistent[0] += 1
                i += concurrency
            c.close()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
        t0 = time.perf_counter()
        for t in threads: t.start()
        reloads = []
        for k in range(1, int(seconds) + 1):
            time.sleep(max(0.0, t0 + k - time.perf_counter()))
            reloads.append(request(srv.port, "POST", "/reload", {"version": 1 + k % 2})[0])
        stop.set()
        for t in threads: t.join(120)
        elapsed = time.perf_counter() - t0
    lat.sort()
    return {"requests": len(lat), "failed": len(fails), "requests_per_s": round(len(lat) / elapsed, 1),
            "p50_ms": round(lat[len(lat) // 2] * 1000, 2), "reloads": len(reloads),
            "reloads_failed": sum(s != 200 for s in reloads), "inconsistent_answers": inconsistent[0],
            "first_failures": [str(f) for f in fails[:3]]}


def _overload(ckpt, base, files, connections=OVERLOAD_CONNECTIONS) -> dict:
    ("One worker of this tree under `connections` clients (four times the c=8 load): without a limit, and with "
     "`TWIGA_SERVE_MAX_IN_FLIGHT=SHED_AT` (what it cannot take answered 503 at once). Loads as `_load`'s, one each.")
    out = {}
    for tag, cap in (("no limit", None), (f"TWIGA_SERVE_MAX_IN_FLIGHT={SHED_AT}", SHED_AT)):
        extra = {} if cap is None else {"TWIGA_SERVE_MAX_IN_FLIGHT": str(cap)}
        with _twiga(None, ckpt, base, 1, f"overload-{cap}", extra) as srv:
            _check_first(srv, "/predict", files)
            out[tag] = _load(srv, "/predict", files, connections)
    return out


def _median(runs: list[dict]) -> dict:
    "The median of every figure over the runs (nested dicts alike)."
    out = {}
    for k, v in runs[0].items():
        if isinstance(v, dict): out[k] = _median([r[k] for r in runs])
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = round(statistics.median(r[k] for r in runs), 3)
        elif isinstance(v, list): out[k] = [r[k] for r in runs]  # e.g. connections per process: each run's
        else: out[k] = v
    return out


ROWS = [("in-process forecast, one window: p50 ms", ("in_process", "forecast", "p50_ms")),
        ("in-process predict_interval: p50 ms", ("in_process", "predict_interval", "p50_ms")),
        ("in-process forecast_columns (the server's path): p50 ms", ("in_process", "forecast_columns", "p50_ms")),
        ("twiga 1 worker, c=1: requests/s", ("twiga_w1_c1", "requests_per_s")),
        ("twiga 1 worker, c=1: p50 ms", ("twiga_w1_c1", "p50_ms")),
        ("twiga 1 worker, c=8: requests/s", ("twiga_w1_c8", "requests_per_s")),
        ("twiga 1 worker, c=8: p50 ms", ("twiga_w1_c8", "p50_ms")),
        ("twiga 1 worker, c=8: p99 ms", ("twiga_w1_c8", "p99_ms")),
        ("twiga 1 worker, c=8: slowest answer ms", ("twiga_w1_c8", "max_ms")),
        ("twiga 1 worker, c=8: server CPU ms/request", ("twiga_w1_c8", "server_cpu_ms_per_request")),
        ("twiga 2 workers, c=8: requests/s", ("twiga_w2_c8", "requests_per_s")),
        ("twiga 2 workers, c=8: p50 ms", ("twiga_w2_c8", "p50_ms")),
        ("twiga 2 workers, c=8: p99 ms", ("twiga_w2_c8", "p99_ms")),
        ("twiga /predict-interval 1 worker, c=8: requests/s", ("twiga_interval_w1_c8", "requests_per_s")),
        ("twiga /predict-interval 1 worker, c=8: p50 ms", ("twiga_interval_w1_c8", "p50_ms")),
        ("mlflow models serve, c=8: requests/s", ("mlflow_w1_c8", "requests_per_s")),
        ("mlflow models serve, c=8: p50 ms", ("mlflow_w1_c8", "p50_ms")),
        ("mlflow models serve, c=8: p99 ms", ("mlflow_w1_c8", "p99_ms")),
        ("mlflow models serve, c=1: p50 ms", ("mlflow_w1_c1", "p50_ms")),
        ("twiga start to healthy s", ("twiga_start_s",)), ("twiga RSS MB", ("twiga_rss_mb",)),
        ("mlflow start to ready s", ("mlflow_start_s",)), ("mlflow RSS MB", ("mlflow_rss_mb",))]


def _get(d, keys):
    "`d[k1][k2]...`, or None where a twiga has no such figure (the baseline has no `forecast_columns`)."
    for k in keys:
        if not isinstance(d, dict) or k not in d: return None
        d = d[k]
    return d


def _table(med: dict) -> list[dict]:
    rows = []
    for label, keys in ROWS:
        row = {"figure": label, **{tag: _get(m, keys) for tag, m in med.items()}}
        if "before" in med and med["before"] and _get(med["before"], keys) and _get(med["now"], keys) is not None:
            row["now/before"] = round(_get(med["now"], keys) / _get(med["before"], keys), 2)
        rows.append(row)
    return rows


def _targets(med: dict) -> dict:
    "The issue's targets: each with its figure, its bound and whether it is met."
    now, before = med["now"], med.get("before")
    w1, w2, mlf = now["twiga_w1_c8"], now["twiga_w2_c8"], now["mlflow_w1_c8"]
    mlflow_today = (before or now)["mlflow_w1_c8"]["requests_per_s"]  # mlflow serving the baseline's forecast path
    best = max(w1["requests_per_s"], w2["requests_per_s"])
    checks = [("in-process forecast p50 ms", now["in_process"]["forecast"]["p50_ms"], "<=", 2),
              ("1 worker c=8 requests/s", w1["requests_per_s"], ">=", 250),
              ("1 worker c=8 p50 ms", w1["p50_ms"], "<=", 30), ("1 worker c=8 p99 ms", w1["p99_ms"], "<=", 80),
              ("2 workers / 1 worker", round(w2["requests_per_s"] / w1["requests_per_s"], 2), ">=", 1.7),
              ("best twiga / mlflow before", round(best / mlflow_today, 2), ">=", 2.5),
              ("twiga / mlflow now, 1 worker each", round(w1["requests_per_s"] / mlf["requests_per_s"], 2), ">=", 1.5),
              ("/predict-interval p50 / /predict p50", round(now["twiga_interval_w1_c8"]["p50_ms"] / w1["p50_ms"], 2),
               "<=", 1.2)]
    return {name: {"value": v, "bound": f"{op} {b}", "met": v <= b if op == "<=" else v >= b}
            for name, v, op, b in checks}


def _prepare(code: Path | None, d: Path) -> dict:
    "The model of one twiga (`code` first on PYTHONPATH; None: this tree), made by that twiga in its own process."
    d.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "bench._serve_prepare", str(d)], env=_env(code, {}), cwd=d.parent,
                         capture_output=True, text=True, timeout=1800)  # not in ROOT: `-m` puts the cwd first
    if out.returncode: raise RuntimeError(f"preparing the model failed:\n{out.stderr[-3000:]}")
    made = json.loads(out.stdout.strip().splitlines()[-1])
    want = str(code / "twiga") if code is not None else str(ROOT / "twiga")
    if not made["twiga"].startswith(want): raise RuntimeError(f"the model was made by {made['twiga']}, not {want}")
    return made


def main() -> dict:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        from twiga.datasets import load_ercot
        test = load_ercot("2019-01-01", "2019-03-01", freq="30min")  # the windows of `_fit`'s test period
        test = test[test["timestamp"] >= "2019-01-01T00:00:00Z"].reset_index(drop=True)
        codes = {"now": None}
        if (old := _baseline(BASELINE, base / "baseline")) is not None: codes = {"before": old, "now": None}
        made = {tag: _prepare(code, base / f"model-{tag}") for tag, code in codes.items()}
        fc = pickle.loads(Path(made["now"]["pickle"]).read_bytes())[0]
        _, files = _bodies(fc, test, base)
        runs = {tag: [] for tag in codes}
        for r in range(ROUNDS):
            for tag in (list(codes) if r % 2 == 0 else list(codes)[::-1]):
                print(f"round {r + 1}/{ROUNDS}: {tag}", flush=True)
                m = made[tag]
                runs[tag].append(_round(codes[tag], f"{tag}{r}", Path(m["checkpoints"]), Path(m["model_dir"]),
                                        Path(m["pickle"]), files, base))
        reload_load = _reload_load(Path(made["now"]["checkpoints"]), base, files["predict"])
        overload = _overload(Path(made["now"]["checkpoints"]), base, files["predict"])
    med = {tag: _median(rs) for tag, rs in runs.items()}
    return {"shape": {"data": "ERCOT 2017-01..2018-10 at 30 min", "model": f"LightGBM {TREES} trees",
                      "horizon": HORIZON, "lookback": LOOKBACK, "request": f"one {LOOKBACK}-row window, 8 in turn"},
            "baseline_commit": BASELINE if "before" in codes else None, "rounds": ROUNDS, "load_seconds": LOAD_S,
            "load_generator": "bench._load (asyncio, keep-alive)",
            "fit_s": {tag: m["fit_s"] for tag, m in made.items()},
            "table": _table(med), "targets": _targets(med), "reload_every_second_under_load": reload_load,
            f"overload_1_worker_c{OVERLOAD_CONNECTIONS}": overload,
            "median": med, "runs": runs,
            "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                        "loadavg_after": [round(x, 2) for x in os.getloadavg()]}}
