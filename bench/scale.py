"""Many series: `many_series_flow` over 16 series on a local Dask cluster of 2 single-threaded worker processes
against the same flow run sequentially (one series after another in this process), in the same session.

The 16 series are derived from the one bundled real series (ERCOT hourly load, one year, 2018) by
`twiga.pipeline.many.synthetic_panel`: each is the real load scaled to a distinct size, offset in level, shifted
0-3 hours in time and given its own multiplicative noise; the weather covariates are the real, shared ones.
Each series: LightGBM (300 trees, 31 leaves, n_jobs=1) plus a one-day seasonal naive, horizon 24 h, lookback one week,
fitted on the first 80 % of the year and scored on the rest, checkpointed in its own store. MLflow tracking is off
(`track=False`): the benchmark measures the per-series work and its distribution; tracking adds per-series I/O.

Both variants are real Prefect flow runs against one temporary Prefect server (`prefect_test_harness`); the
cluster is started once (its start-up time is reported, not counted in the ratio, as a real cluster is already
up); one untimed run of each variant warms the imports of this process and of the workers. Timed runs alternate
sequential/dask; the ratio is of the median wall times. CPU seconds (user + system) of this process, the Dask
workers and the Prefect server are counted per run: on a machine shared with other work the wall-time ratio
depends on the others' load, and `cpu_per_wall` (cores kept busy) shows how much of the 2 cores a run got. Peak
memory is sampled every 0.1 s with psutil: the resident set of this process (sequential), and of this process
plus the Dask worker processes (dask); the Prefect server process is left out of both."""
from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

N_SERIES, N_WORKERS, REPEATS = 16, 2, 3


def _forecaster():
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.models.ml import LIGHTGBMConfig
    data = DataPipelineConfig(target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE,
                              longitude=ERCOT_LONGITUDE, calendar_features=["hour", "dayofweek", "day_night"],
                              exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=24,
                              lookback_window_size=168, stride=24, input_scaler=StandardScaler(),
                              target_scaler=RobustScaler())
    return TwigaForecaster(data_params=data, model_params=[
        LIGHTGBMConfig(n_estimators=300, num_leaves=31, learning_rate=0.05, max_train_rows=60_000, n_jobs=1),
        SEASONALNAIVEConfig(period="1D", freq="1h")])


class PeakRSS:
    "Sample the summed resident set of a set of processes every `period` seconds; `peak_mb` after `stop()`."
    def __init__(self, pids_fn, period=0.1):
        self.pids_fn, self.period, self.peak, self.per_pid = pids_fn, period, 0, {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil
        while not self._stop.is_set():
            total = 0
            for pid in self.pids_fn():
                try: rss = psutil.Process(pid).memory_info().rss
                except psutil.Error: continue
                total += rss
                self.per_pid[pid] = max(self.per_pid.get(pid, 0), rss)
            self.peak = max(self.peak, total)
            self._stop.wait(self.period)

    def __enter__(self): self._t.start(); return self
    def __exit__(self, *exc): self._stop.set(); self._t.join()

    @property
    def peak_mb(self) -> float: return round(self.peak / 2**20, 1)


def _cpu_s(pids) -> float:
    "User + system CPU seconds used so far by the processes `pids`."
    import psutil
    total = 0.0
    for pid in pids:
        try: t = psutil.Process(pid).cpu_times()
        except psutil.Error: continue
        total += t.user + t.system
    return total


def _run(flow, kind, data_path, ckpt, template, address=None):
    res = flow(data_path=str(data_path), forecaster=template, checkpoint_dir=str(ckpt), task_runner=kind,
               address=address, track=False)
    assert not res.failed and len(res.results) == N_SERIES, res.failed
    return res


def main() -> dict:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")  # as `./dev` runs everything
    import logging

    from distributed import Client, LocalCluster
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.testing.utilities import prefect_test_harness

    from twiga.datasets import load_ercot
    from twiga.pipeline.many import many_series_flow, synthetic_panel

    logging.getLogger("twiga").setLevel(logging.ERROR)
    load_before = os.getloadavg()
    me = os.getpid()
    with tempfile.TemporaryDirectory() as d, prefect_test_harness(server_startup_timeout=120):
        base = Path(d)
        server_pid = SubprocessASGIServer._instances[None].server_process.pid
        panel = synthetic_panel(load_ercot("2018-01-01", "2019-01-01"), n_series=N_SERIES, seed=7)
        panel.to_parquet(base / "panel.parquet", index=False)
        template = _forecaster()
        t0 = time.perf_counter()
        cluster_kw = dict(n_workers=N_WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None)
        with LocalCluster(**cluster_kw) as cluster, Client(cluster) as client:
            cluster_start_s = time.perf_counter() - t0
            worker_pids = list(client.run(os.getpid).values())
            address = {"sequential": None, "dask": cluster.scheduler_address}
            for kind in ("sequential", "dask"):  # warm-up, not timed: imports and caches here and in the workers
                _run(many_series_flow, kind, base / "panel.parquet", base / "warm", template, address[kind])
            runs = {k: {"wall": [], "cpu": [], "peak_mb": []} for k in ("sequential", "dask")}
            per_worker, used_workers, series_s = [], set(), []
            for _ in range(REPEATS):
                for kind in ("sequential", "dask"):
                    pids = [me] if kind == "sequential" else [me, *worker_pids]
                    cpu0, t = _cpu_s([me, server_pid, *worker_pids]), time.perf_counter()
                    with PeakRSS(lambda pids=pids: pids) as mem:
                        res = _run(many_series_flow, kind, base / "panel.parquet", base / f"ckpt-{kind}", template,
                                   address[kind])
                    wall, cpu = time.perf_counter() - t, _cpu_s([me, server_pid, *worker_pids]) - cpu0
                    runs[kind]["wall"].append(round(wall, 2)); runs[kind]["cpu"].append(round(cpu, 1))
                    runs[kind]["peak_mb"].append(mem.peak_mb)
                    if kind == "dask":
                        per_worker.append(max(mem.per_pid.get(p, 0) for p in worker_pids) / 2**20)
                        used_workers |= {r.worker for r in res.results.values()}
                        assert {int(r.worker.rsplit(":", 1)[1]) for r in res.results.values()} <= set(worker_pids)
                    else:
                        assert {r.worker.rsplit(":", 1)[1] for r in res.results.values()} == {str(me)}
                        series_s += [r.duration_s for r in res.results.values()]
    assert server_pid not in (me, *worker_pids)
    med = {k: {m: statistics.median(v[m]) for m in v} for k, v in runs.items()}
    return {
        "shape": {"series": N_SERIES, "rows_per_series": int(len(panel) / N_SERIES),
                  "data": "ERCOT 2018 hourly, 16 derived series "
                          "(distinct scale, level offset, 0-3 h shift and noise each; shared real weather)",
                  "models": "LightGBM 300 trees n_jobs=1 + seasonal naive", "horizon": 24, "lookback": 168,
                  "tracking": "off"},
        "cluster": {"workers": N_WORKERS, "threads_per_worker": 1, "start_s": round(cluster_start_s, 1),
                    "workers_used": len(used_workers)},
        "sequential": {"wall_s": runs["sequential"]["wall"], "cpu_s": runs["sequential"]["cpu"],
                       "median_wall_s": med["sequential"]["wall"],
                       "cpu_per_wall": round(med["sequential"]["cpu"] / med["sequential"]["wall"], 2)},
        "dask_2_workers": {"wall_s": runs["dask"]["wall"], "cpu_s": runs["dask"]["cpu"],
                           "median_wall_s": med["dask"]["wall"],
                           "cpu_per_wall": round(med["dask"]["cpu"] / med["dask"]["wall"], 2)},
        "speedup_x": round(med["sequential"]["wall"] / med["dask"]["wall"], 2),
        "speedup_x_per_pair": [round(a / b, 2)
                               for a, b in zip(runs["sequential"]["wall"], runs["dask"]["wall"], strict=True)],
        "cpu_overhead_x": round(med["dask"]["cpu"] / med["sequential"]["cpu"], 2),
        "median_series_task_s_sequential": round(statistics.median(series_s), 2),
        "peak_rss_mb": {"sequential_main": statistics.median(runs["sequential"]["peak_mb"]),
                        "dask_main_plus_workers": statistics.median(runs["dask"]["peak_mb"]),
                        "dask_largest_worker": round(max(per_worker), 1)},
        "cpus": os.cpu_count(),
        "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
