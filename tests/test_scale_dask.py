"""Many series on a Dask cluster: `many_series_flow` as a real Prefect flow run (the session's temporary Prefect
server) whose series are task runs on a `distributed.LocalCluster` of two worker processes started here on
127.0.0.1. Every series gets its own checkpoint store, MLflow run (SQLite store) and registered model with the
`champion` alias; the series really ran in the cluster's worker processes; the cluster is closed afterwards."""
from __future__ import annotations

import os
import time

import pytest
from _pipeline_helpers import make_forecaster, task_runs

pytestmark = pytest.mark.timeout(900)
N_SERIES = 4


@pytest.fixture(scope="module")
def cluster():
    "Two single-threaded Dask worker processes on 127.0.0.1; closed (and their processes gone) afterwards."
    import psutil
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c:
        with Client(c) as client:
            pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        yield {"address": c.scheduler_address, "pids": pids}
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
        assert time.monotonic() < deadline, f"Dask worker processes {pids} still running after the cluster closed"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    "Four series derived from the bundled hourly data (three months each), as a parquet file with a `unique_id` column."
    from twiga.datasets import load_ercot
    from twiga.pipeline.many import synthetic_panel
    d = tmp_path_factory.mktemp("scale_dask")
    df = synthetic_panel(load_ercot("2019-01-01", "2019-04-01"), n_series=N_SERIES, prefix="feeder", seed=1)
    df.to_parquet(d / "panel.parquet", index=False)
    return {"dir": d, "path": d / "panel.parquet", "ids": [f"feeder-{i:02d}" for i in range(N_SERIES)], "df": df}


def task_run_states(flow_run_id, n, timeout=30.0) -> dict[str, str]:
    "Name -> state of the flow run's task runs, once `n` of them have completed (or the time is up)."
    def states(runs): return {r.name: r.state_type.value for r in runs if r.state_type is not None}
    def done(runs): return len(s := states(runs)) >= n and all(v == "COMPLETED" for v in s.values())
    return states(task_runs(flow_run_id, done, timeout))


def test_many_series_flow_on_a_dask_cluster(prefect_server, cluster, panel, monkeypatch):
    from mlflow import MlflowClient

    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline.many import ManySeriesResult, list_series, load_series_checkpoint, many_series_flow, read_series

    d = panel["dir"]
    uri = f"sqlite:///{d}/mlflow.db"
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", uri)  # resolved by the flow, handed to the workers
    template = make_forecaster(d / "unused", models=("lightgbm", "seasonal_naive"), n_estimators=30)
    state = many_series_flow(data_path=str(panel["path"]), forecaster=template, checkpoint_dir=str(d / "checkpoints"),
                             test_start="2019-03-10", task_runner="dask", address=cluster["address"],
                             experiment="dask-many", registered_model="feeder-model", return_state=True)
    assert state.is_completed(), state
    res = state.result()
    assert isinstance(res, ManySeriesResult)
    assert (list(res.results), res.failed) == (panel["ids"], {})
    assert res.task_runner == f"DaskTaskRunner({cluster['address']})"

    # the series ran in the cluster's two worker processes, not in this one
    worker_pids = {int(r.worker.rsplit(":", 1)[1]) for r in res.results.values()}
    assert worker_pids == cluster["pids"], (worker_pids, cluster["pids"])

    # every series its own checkpoint store, and "feeder-02, version 1" in one call
    assert list_series(d / "checkpoints") == panel["ids"]
    for sid, r in res.results.items():
        assert r.checkpoint_path == str(d / "checkpoints" / sid) and r.checkpoint_version == 1
        info = CheckpointStore(r.checkpoint_path).current()
        assert info.version == 1 and info.metrics["lightgbm"]["mae"] == pytest.approx(r.metrics["lightgbm"]["mae"])
        assert r.n_test == len(panel["df"].query("unique_id == @sid and timestamp >= '2019-03-10T00:00:00Z'"))
    fc = load_series_checkpoint(d / "checkpoints", "feeder-02", version=1)
    history = read_series(panel["path"], "feeder-02").tail(200)
    forecast = fc.forecast(history)
    assert fc.checkpoint_info_.version == 1 and len(forecast.query("model == 'lightgbm'")) == 24
    # the series differ: each forecaster learnt its own series' scale
    levels = {sid: load_series_checkpoint(d / "checkpoints", sid).forecast(read_series(panel["path"], sid).tail(200))
              .query("model == 'lightgbm'")["value"].mean() for sid in panel["ids"]}
    actual = panel["df"].groupby("unique_id")["demand_mwh"].mean()
    for sid, level in levels.items():
        assert level == pytest.approx(actual[sid], rel=0.35), (sid, level, actual[sid])
    assert len({round(v) for v in levels.values()}) == N_SERIES

    # every series its own MLflow run (child of the flow's run) and registered model @champion
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dask-many")
    for sid, r in res.results.items():
        (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`twiga.series_id` = '{sid}'")
        assert run.info.run_id == r.mlflow_run_id and run.info.status == "FINISHED" and run.info.run_name == sid
        assert run.data.tags["mlflow.parentRunId"] == res.mlflow_run_id
        assert run.data.metrics["lightgbm.mae"] == pytest.approx(r.metrics["lightgbm"]["mae"])
        assert (r.registered_model, r.registered_version) == (f"feeder-model-{sid}", 1)
        mv = client.get_model_version_by_alias(f"feeder-model-{sid}", "champion")
        assert (int(mv.version), mv.run_id, mv.tags["checkpoint_version"]) == (1, r.mlflow_run_id, "1")
    parent = client.get_run(res.mlflow_run_id)
    assert (parent.data.metrics["n_series"], parent.data.metrics["n_failed"]) == (N_SERIES, 0)
    assert parent.data.metrics["feeder-03.lightgbm.mae"] == pytest.approx(
        res.results["feeder-03"].metrics["lightgbm"]["mae"])

    # Prefect recorded one completed task run per series
    states = task_run_states(state.state_details.flow_run_id, N_SERIES)
    assert states == {f"train_series-{sid}": "COMPLETED" for sid in panel["ids"]}, states


def test_many_series_flow_on_a_process_pool(prefect_server, panel, tmp_path):
    "The one-machine alternative to a cluster: Prefect's ProcessPoolTaskRunner, tracking to SQLite from each process."
    from mlflow import MlflowClient

    from twiga.pipeline.many import many_series_flow
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    res = many_series_flow(data_path=str(panel["path"]),
                           forecaster=make_forecaster(tmp_path / "unused", n_estimators=20), series=panel["ids"][:3],
                           checkpoint_dir=str(tmp_path / "checkpoints"), task_runner="processes", max_workers=2,
                           tracking_uri=uri, experiment="pool-many", log_model=False, register_model=False)
    assert (list(res.results), res.failed, res.task_runner) == (panel["ids"][:3], {}, "ProcessPoolTaskRunner")
    pids = {int(r.worker.rsplit(":", 1)[1]) for r in res.results.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("pool-many").experiment_id],
                              filter_string="tags.`twiga.flow` = 'many_series'")
    assert sorted(r.data.tags.get("twiga.series_id", "parent") for r in runs) == sorted([*panel["ids"][:3], "parent"])
