"""Serving speed for the issue's shape: ERCOT at 30 min, LightGBM, horizon 48, lookback 336, `/predict` from one
336-row window. Measures, in one run: the forecaster called directly (the floor), `/predict` in-process
(FastAPI TestClient), start to healthy and idle RSS of a real uvicorn, `/predict` through uvicorn at concurrency 8
(1 and 2 workers), and a 60-second load at concurrency 8 while `POST /reload` swaps versions every second.
The public library's figures (measured on its 30-min LightGBM model) are the baseline the ratios refer to.
Bounded loads only, on 127.0.0.1."""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._timing import timings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _serve_helpers import HORIZON, LOOKBACK, Client, Server, make_forecaster, records, request  # noqa: E402

PUBLIC = {"p50_ms": 928.0, "p95_ms": 1014.0, "start_to_healthy_s": 22.7, "idle_rss_mb": 580.0}
PUBLIC_RPS = 1000.0 / PUBLIC["p50_ms"]  # one request at a time at its p50: ~1.08 requests/s
CONCURRENCY, LOAD_S, RELOAD_LOAD_S = 8, 15.0, 60.0


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def _ms(xs):
    return {"p50_ms": round(_pct(xs, 50) * 1000, 2), "p95_ms": round(_pct(xs, 95) * 1000, 2), "n": len(xs)}


def _fit_versions(ckpt: Path):
    "Version 1: LightGBM with its default boosting config, early-stopped on two months; version 2: a smaller one."
    from twiga import TwigaForecaster
    from twiga.datasets import load_ercot
    from twiga.models.ml import LIGHTGBMConfig
    df = load_ercot("2017-01-01", "2019-03-01", freq="30min")
    train = df[df["timestamp"] < "2018-11-01T00:00:00Z"].reset_index(drop=True)
    val = df[(df["timestamp"] >= "2018-11-01T00:00:00Z") & (df["timestamp"] < "2019-01-01T00:00:00Z")]
    val = val.reset_index(drop=True)
    test = df[df["timestamp"] >= "2019-01-01T00:00:00Z"].reset_index(drop=True)
    template = make_forecaster(ckpt)
    def fit(config, val_df):
        fc = TwigaForecaster(data_params=template.data_params, model_params=[config],
                             train_params=template.train_params)
        fc.fit(train, val_df).on_save_checkpoint()
        return fc
    t0 = time.perf_counter()
    fc = fit(LIGHTGBMConfig(max_train_rows=150_000), val)  # default trees, leaves, rates; fewer rows sampled: faster
    fit_s = time.perf_counter() - t0
    fit(LIGHTGBMConfig(n_estimators=200, seed=7, max_train_rows=50_000), None)
    return fc, test, fit_s

def _windows(test, n=8):
    "n different one-lookback windows (336 rows each) and their encoded /predict bodies."
    frames = [test.iloc[i * HORIZON: i * HORIZON + LOOKBACK].reset_index(drop=True) for i in range(n)]
    return frames, [json.dumps({"records": records(f), "ensemble_strategy": "mean"}).encode() for f in frames]


def _in_process(ckpt, report_dir, frames, bodies, fc, n=300):
    from fastapi.testclient import TestClient

    from twiga.serve import create_app
    direct, _, _ = timings(lambda i: fc.forecast(frames[i % len(frames)], ensemble_strategy="mean"), n)
    app = create_app(make_forecaster(ckpt), report_dir=report_dir, title="bench")
    c = TestClient(app)
    post = lambda b: c.post("/predict", content=b, headers={"content-type": "application/json"}).status_code
    for b in bodies: assert post(b) == 200
    def predict(i):
        status = post(bodies[i % len(bodies)])
        assert status == 200, status
    lat, _, _ = timings(predict, n)
    return _ms(direct), _ms(lat)


def _load(port, bodies, seconds, reload_every=None, refs=None, concurrency=CONCURRENCY):
    "`concurrency` keep-alive clients for `seconds`; optionally POST /reload every `reload_every` s (alternating 1, 2)."
    stop, lock, lat, fails, inconsistent = threading.Event(), threading.Lock(), [], [], [0]
    def worker(k):
        c, i = Client(port), k
        while not stop.is_set():
            t0 = time.perf_counter()
            try: status, raw = c.post("/predict", bodies[i % len(bodies)])
            except OSError as e: status, raw = -1, str(e).encode()
            dt = time.perf_counter() - t0
            with lock:
                if status != 200: fails.append((status, raw[:200]))
                else:
                    lat.append(dt)
                    if refs is not None:
                        body = json.loads(raw)
                        if body["forecasts"] != refs[body["version"]][i % len(bodies)]: inconsistent[0] += 1
            i += concurrency
        c.close()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads: t.start()
    reloads, k = [], 0
    while time.perf_counter() - t0 < seconds:
        k += 1
        time.sleep(max(0.0, t0 + k * (reload_every or 0.2) - time.perf_counter()))  # a fixed grid: a reload a second
        if reload_every and time.perf_counter() - t0 < seconds:
            reloads.append(request(port, "POST", "/reload", {"version": 1 + len(reloads) % 2})[0])
    stop.set()
    for t in threads: t.join(120)
    elapsed = time.perf_counter() - t0
    out = {**_ms(lat), "requests_per_s": round(len(lat) / elapsed, 1), "failed": len(fails),
           "seconds": round(elapsed, 1)}
    if fails: out["first_failures"] = [str(f) for f in fails[:3]]
    if reload_every:
        out |= {"reloads": len(reloads), "reloads_failed": sum(s != 200 for s in reloads),
                "inconsistent_answers": inconsistent[0]}
    return out


def _rss_mb(pid) -> float:
    "Resident memory of a process (Linux /proc; a single-worker uvicorn serves in its own process)."
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    kb = next(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return round(kb / 1024, 1)


def _cpu_s(pid) -> float:
    "CPU seconds (user + system) used so far by a process and its descendants (Linux /proc)."
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") + sum(_cpu_s(int(c)) for c in children)


def _through_uvicorn(ckpt, base, bodies, workers):
    with Server(ckpt, base / f"reports-w{workers}", workers=workers) as srv:
        for b in bodies: assert request(srv.port, "POST", "/predict", raw=b)[0] == 200
        cpu0 = _cpu_s(srv.proc.pid)
        out = _load(srv.port, bodies, LOAD_S)
        out["server_cpu_ms_per_request"] = round((_cpu_s(srv.proc.pid) - cpu0) / out["n"] * 1000, 2)
        if workers == 1: out["concurrency_1"] = _load(srv.port, bodies, 5.0, concurrency=1)  # latency without queueing
        return out


def main() -> dict:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d); ckpt = base / "checkpoints"
        fc, test, fit_s = _fit_versions(ckpt)
        frames, bodies = _windows(test)
        direct, in_process = _in_process(ckpt, base / "reports-inproc", frames, bodies, fc)

        starts, rss = [], []
        for k in range(3):
            with Server(ckpt, base / f"reports-start{k}") as srv:
                starts.append(srv.healthy_after)
                request(srv.port, "POST", "/predict", raw=bodies[0]); time.sleep(1.0)
                rss.append(_rss_mb(srv.proc.pid))
        heavy = _heavy_imports(ckpt, base)

        uvicorn = {f"workers_{w}": _through_uvicorn(ckpt, base, bodies, w) for w in (1, 2)}
        best = max(uvicorn.values(), key=lambda r: r["requests_per_s"])

        with Server(ckpt, base / "reports-reload", workers=1) as srv:
            refs = {}
            for v in (1, 2):
                assert request(srv.port, "POST", "/reload", {"version": v})[0] == 200
                refs[v] = [request(srv.port, "POST", "/predict", raw=b)[1]["forecasts"] for b in bodies]
            reload_load = _load(srv.port, bodies, RELOAD_LOAD_S, reload_every=1.0, refs=refs)

    return {
        "shape": {"data": "ERCOT 2017-01..2018-10 at 30 min", "model": "LightGBM default config, early-stopped",
                  "trees": fc.models_["lightgbm"].best_iterations_,
                  "horizon": HORIZON, "lookback": LOOKBACK, "request": f"one {LOOKBACK}-row window, ensemble mean"},
        "fit_s": round(fit_s, 1),
        "forecaster_direct": direct,
        "in_process_predict": in_process | {"p50_vs_public_x": round(PUBLIC["p50_ms"] / in_process["p50_ms"], 1),
                                            "p50_vs_direct_call_x": round(in_process["p50_ms"] / direct["p50_ms"], 2)},
        "start_to_healthy_s": {"median": round(statistics.median(starts), 2), "runs": [round(s, 2) for s in starts],
                               "vs_public_x": round(PUBLIC["start_to_healthy_s"] / statistics.median(starts), 1)},
        "idle_rss_mb": {"median": statistics.median(rss), "runs": rss},
        "server_imports_heavy": heavy,
        "uvicorn_concurrency_8": uvicorn,
        "throughput_vs_public_x": round(best["requests_per_s"] / PUBLIC_RPS, 1),
        "throughput_note": (f"best requests/s at concurrency 8 / public library's {PUBLIC_RPS:.2f} requests/s "
                            f"(1 / its {PUBLIC['p50_ms'] / 1000} s p50, one request at a time)"),
        "reload_every_second_during_60s_load": reload_load,
        "public_library": PUBLIC,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 1) for x in load_before],
                    "loadavg_after": [round(x, 1) for x in os.getloadavg()]},
    }


def _heavy_imports(ckpt, base) -> list[str]:
    "Heavy libraries a serving process has imported after start-up and one /predict (must be none of these)."
    import subprocess
    code = ("import sys, json; from fastapi.testclient import TestClient; from twiga.serve import app_from_env; "
            "c = TestClient(app_from_env()); c.get('/health'); "
            "print(json.dumps([m for m in ('mlflow', 'prefect', 'evidently') if m in sys.modules]))")
    env = {**os.environ, "TWIGA_MODEL_CHECKPOINT_DIR": str(ckpt),
           "TWIGA_SERVE_REPORT_DIR": str(base / "reports-imports")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
