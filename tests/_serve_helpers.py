"""Shared machinery of the serving tests and benchmark: small forecasters fitted on the bundled ERCOT data, and
a real uvicorn process on 127.0.0.1 that is always stopped (by its pid) when the test ends: `wait_healthy` and
`stop_group` serve any server a test starts in its own process group."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    "A free TCP port on 127.0.0.1 (`twiga.serve.process.free_port`)."
    from twiga.serve.process import free_port as free  # imported on use: bench/serve.py loads this module with an
    return free()                                      # older twiga (its baseline) that has no `twiga.serve.process`


def stop_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    "Stop `proc` and its process group (`twiga.serve.process.stop_process_group`)."
    from twiga.serve.process import stop_process_group
    stop_process_group(proc, timeout)

ROOT = Path(__file__).resolve().parents[1]
HORIZON, LOOKBACK = 48, 336  # the shape of the benchmark: 30-min steps, one day ahead, one week back


def ercot(start="2018-02-01", end="2018-07-01"):
    "A slice of the bundled data at 30-min steps (the default one has no missing demand)."
    from twiga.datasets import load_ercot
    return load_ercot(start, end, freq="30min")


def ercot_split(cut="2018-05-15T00:00:00Z", start="2018-02-01", end="2018-07-01"):
    "The serving tests' ERCOT slice, split at `cut` into (train, test)."
    df = ercot(start, end)
    return (df[df["timestamp"] < cut].reset_index(drop=True), df[df["timestamp"] >= cut].reset_index(drop=True))


def make_forecaster(checkpoint_dir, n_estimators=60, seed=42, horizon=HORIZON, lookback=LOOKBACK, models=("lightgbm",)):
    "An unfitted forecaster of the benchmark's shape whose checkpoints go to `checkpoint_dir`."
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.models.ml import LIGHTGBMConfig
    data = DataPipelineConfig(target_feature="demand_mwh", period="30min", latitude=ERCOT_LATITUDE,
                              longitude=ERCOT_LONGITUDE, calendar_features=["hour", "dayofweek", "day_night"],
                              exogenous_features=["temperature_c", "ghi_wm2", "specific_humidity"],
                              forecast_horizon=horizon, lookback_window_size=lookback, stride=horizon,
                              input_scaler=StandardScaler(), target_scaler=RobustScaler())
    configs = {"lightgbm": LIGHTGBMConfig(n_estimators=n_estimators, seed=seed, max_train_rows=60_000),
               "seasonal_naive": SEASONALNAIVEConfig(period="7D", freq="30min")}
    return TwigaForecaster(data_params=data, model_params=[configs[m] for m in models],
                           train_params=ForecasterConfig(checkpoints_path=str(checkpoint_dir)))


def fit_and_save(checkpoint_dir, train, n_estimators=60, seed=42, **kw):
    "Fit a forecaster on `train`, save it as a new checkpoint version; return (forecaster, version)."
    from twiga.checkpoints import CheckpointStore
    fc = make_forecaster(checkpoint_dir, n_estimators=n_estimators, seed=seed, **kw).fit(train)
    fc.on_save_checkpoint()
    return fc, CheckpointStore(checkpoint_dir).current_version()


def records(df) -> list[dict]:
    "JSON-ready records of a frame (timestamps as ISO strings, NaN as null)."
    out = df.assign(timestamp=df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return json.loads(out.to_json(orient="records"))


def loaded(status: int, body) -> bool:
    "A twiga server is ready when /health answers 200 with a loaded model."
    return status == 200 and isinstance(body, dict) and bool(body.get("loaded"))


def wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90.0, path: str = "/health",
                 ready=loaded) -> None:
    "Poll 127.0.0.1:`port``path` until `ready(status, body)`; raise with the log's tail if `proc` exits or time is up."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-5000:]}")
        try:
            if ready(*request(port, "GET", path, timeout=5)): return
        except OSError: pass
        time.sleep(0.05)
    raise TimeoutError(f"the server was not ready in {timeout} s:\n{log.read_text(errors='replace')[-5000:]}")


def request(port, method, path, body=None, headers=None, timeout=60, raw=None):
    "One HTTP request on a fresh connection; returns (status, parsed JSON or text)."
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"content-type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        text = r.read().decode()
        try: return r.status, json.loads(text)
        except ValueError: return r.status, text
    finally: conn.close()


class Client:
    "A keep-alive HTTP client on one connection (one per thread), for load loops."
    def __init__(self, port, timeout=60):
        self.port, self.timeout, self.conn = port, timeout, None

    def post(self, path, data: bytes, headers=None):
        for attempt in range(2):
            if self.conn is None: self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", path, body=data,
                                  headers={"content-type": "application/json", **(headers or {})})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # the server closed an idle keep-alive connection: reconnect once
                if attempt: raise

    def close(self):
        if self.conn is not None: self.conn.close()
        self.conn = None


class Server:
    "A real uvicorn process serving `twiga.serve:app_from_env` (or `run_server`) on 127.0.0.1."
    def __init__(self, checkpoint_dir, report_dir, workers=1, env=None, via_run_server=False, log_path=None):
        self.port, self.workers, self.via_run_server = free_port(), workers, via_run_server
        self.env = {**os.environ, "TWIGA_MODEL_CHECKPOINT_DIR": str(checkpoint_dir),
                    "TWIGA_SERVE_REPORT_DIR": str(report_dir), "TWIGA_SERVE_RELOAD_POLL_SECONDS": "0.5",
                    "TWIGA_LOG_LEVEL": "INFO", **(env or {})}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log_path = Path(log_path or Path(report_dir) / f"uvicorn-{self.port}.log")
        self.proc = None

    def start(self, timeout=90.0) -> Server:
        if self.via_run_server:
            code = (f"from twiga.serve import run_server; run_server(host='127.0.0.1', port={self.port}, "
                    f"workers={self.workers}, log_level='warning')")
            cmd = [sys.executable, "-c", code]
        else:
            cmd = [sys.executable, "-m", "uvicorn", "twiga.serve:app_from_env", "--factory", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(self.workers), "--log-level", "warning"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_healthy(self.port, self.proc, self.log_path, timeout)
        self.healthy_after = time.perf_counter() - self.t0  # seconds from start until /health has a loaded model
        return self

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self):
        if self.proc is None: return
        stop_group(self.proc)
        self.log.close()

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()
