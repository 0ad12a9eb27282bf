"""Shared tracking: an `mlflow server` whose backend store is PostgreSQL (a throwaway cluster from Debian's packages,
started here with initdb/pg_ctl on 127.0.0.1) and whose artefacts go to a local directory. `TwigaTracker` reaches it
only through `TWIGA_MLFLOW_TRACKING_URI`; model registration and the `champion` alias land in PostgreSQL; four
processes logging runs at the same moment all succeed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _mlflow_helpers import ENV, POSTGRES_INSTALL, Postgres, postgres_bindir, start_mlflow_server
from _pipeline_helpers import make_forecaster
from _serve_helpers import stop_group

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)
N_WRITERS = 4


@pytest.fixture(scope="module")
def postgres():
    "A PostgreSQL cluster in a temp dir, listening on 127.0.0.1 only; stopped and deleted afterwards."
    if postgres_bindir() is None:
        msg = f"PostgreSQL is not installed: {POSTGRES_INSTALL}"
        if os.environ.get("CI"): pytest.fail(msg)
        pytest.skip(msg)
    with Postgres() as pg:
        yield pg
    assert pg.postmaster_pid() is None and not pg.dir.exists()


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    "`mlflow server` (two uvicorn workers) on PostgreSQL, artefacts proxied into a temp dir."
    d = tmp_path_factory.mktemp("mlflow-pg")
    proc, url = start_mlflow_server(d, postgres.uri, workers=2)
    try:
        yield {"url": url, "dir": d, "pg": postgres}
    finally:
        stop_group(proc)
    assert proc.poll() is not None


@pytest.fixture()
def tracking_env(server, monkeypatch):
    "Select the server the way users do: TWIGA_MLFLOW_TRACKING_URI only (no MLFLOW_TRACKING_URI)."
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", server["url"])
    monkeypatch.setenv("TWIGA_MLFLOW_EXPERIMENT", "pg-shared")
    monkeypatch.setenv("TWIGA_MLFLOW_REGISTERED_MODEL", "pg-feeder")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return server


def test_backend_is_postgres(server):
    # the server created MLflow's schema in our database: the tables live in PostgreSQL, not in a file
    tables = {t for (t,) in server["pg"].query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"experiments", "runs", "params", "metrics", "registered_models", "model_versions",
            "registered_model_aliases"} <= tables
    assert not list(server["dir"].glob("*.db"))


def test_tracker_registers_and_moves_the_champion_alias(tracking_env):
    from mlflow import MlflowClient

    from twiga.datasets import load_ercot
    from twiga.tracking import TwigaTracker

    df = load_ercot("2019-01-01", "2019-03-01")
    train = df[df.timestamp < "2019-02-15"].reset_index(drop=True)
    test = df[df.timestamp >= "2019-02-01"].reset_index(drop=True)
    fc = make_forecaster(
        tracking_env["dir"] / "unused", models=("lightgbm", "seasonal_naive"), n_estimators=20).fit(train)
    preds, met = fc.evaluate_point_forecast(test)
    runs, versions = [], []
    for i in range(2):
        with TwigaTracker(run_name=f"pg-run-{i}") as tracker:
            assert tracker.tracking_uri == tracking_env["url"]
            tracker.log_dataset(train, name="ercot-train", source="twiga/data/ercot_2015_2019.parquet",
                                targets="demand_mwh")
            tracker.log_forecaster_metadata(fc)
            tracker.log_evaluation(met, results_df=preds)
            tracker.log_model(fc, sample_input=test.head(200))
            versions.append(tracker.register())  # TWIGA_MLFLOW_REGISTERED_MODEL, alias "champion"
            runs.append(tracker.run_id)

    assert versions[1] == versions[0] + 1
    client = MlflowClient(tracking_uri=tracking_env["url"])
    mv = client.get_model_version_by_alias("pg-feeder", "champion")
    assert (int(mv.version), mv.run_id) == (versions[1], runs[1])
    run = client.get_run(runs[0])
    assert run.info.status == "FINISHED" and client.get_experiment(run.info.experiment_id).name == "pg-shared"
    assert run.data.params["model_params.lightgbm.n_estimators"] == "20"
    assert run.data.metrics["lightgbm.mae"] == pytest.approx(met[met["model"] == "lightgbm"]["mae"].mean())
    assert run.inputs.dataset_inputs[0].dataset.name == "ercot-train"

    # what the client read through the server is what PostgreSQL holds
    pg = tracking_env["pg"]
    aliases = pg.query("SELECT alias, version FROM registered_model_aliases WHERE name = 'pg-feeder'")
    assert aliases == [("champion", versions[1])]
    registered = sorted(pg.query("SELECT version, run_id FROM model_versions WHERE name = 'pg-feeder'"))
    assert registered == list(zip(versions, runs, strict=True))
    assert {r for (r,) in pg.query("SELECT run_uuid FROM runs WHERE status = 'FINISHED'")} >= set(runs)
    # artefacts went through the server into its local artefact root
    assert any(p.name == "forecaster.pkl" for p in (tracking_env["dir"] / "artifacts").rglob("*"))


WRITER = r"""
import json, sys, time
from pathlib import Path
signals, worker = Path(sys.argv[1]), int(sys.argv[2])
from twiga.datasets import load_ercot
from twiga.tracking import TwigaTracker
df = load_ercot("2019-01-01", "2019-01-15").iloc[24 * worker:].reset_index(drop=True)
(signals / f"ready-{worker}").touch()
deadline = time.monotonic() + 120
while not (signals / "go").exists():
    if time.monotonic() > deadline: sys.exit("the start signal never came")
    time.sleep(0.01)
t0 = time.time()
# experiment, tracking URI: TWIGA_* only; the four processes race to create the same experiment
with TwigaTracker(run_name=f"writer-{worker}", tags={"worker": worker}) as tracker:
    tracker.log_params({"worker": worker, "model": {"num_leaves": 8 * (worker + 1), "learning_rate": 0.05}})
    for step in range(25):
        tracker.log_metrics({"loss": 1.0 / (step + 1) + worker, "rows": len(df)}, step=step)
    digest = tracker.log_dataset(df, name=f"slice-{worker}", source="twiga/data/ercot_2015_2019.parquet",
                                 targets="demand_mwh")
    tracker.set_tags({"done": "yes"})
print(json.dumps({"worker": worker, "run_id": tracker.run_id, "digest": digest, "rows": len(df), "start": t0,
                  "end": time.time()}))
"""


def test_four_processes_log_runs_at_once(tracking_env, tmp_path):
    from mlflow import MlflowClient

    signals = tmp_path / "signals"
    signals.mkdir()
    env = {**os.environ, **ENV, "TWIGA_MLFLOW_EXPERIMENT": "pg-concurrent", "TWIGA_LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(signals), str(i)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(N_WRITERS)]
    try:
        deadline = time.monotonic() + 240
        while len(list(signals.glob("ready-*"))) < N_WRITERS:
            assert time.monotonic() < deadline, "the writers did not get ready in 240 s"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.1)
        (signals / "go").touch()
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert [p.returncode for p in procs] == [0] * N_WRITERS, [err[-3000:] for _, err in outs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    # the runs really overlapped in time: every one started before any other ended
    assert max(r["start"] for r in results) < min(r["end"] for r in results)

    client = MlflowClient(tracking_uri=tracking_env["url"])
    exp = client.get_experiment_by_name("pg-concurrent")
    found = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_id for r in found) == sorted(r["run_id"] for r in results)  # one experiment, four runs
    for r in results:
        run = client.get_run(r["run_id"])
        assert run.info.status == "FINISHED" and run.info.run_name == f"writer-{r['worker']}"
        assert run.data.params["model.num_leaves"] == str(8 * (r["worker"] + 1)) and run.data.tags["done"] == "yes"
        history = client.get_metric_history(r["run_id"], "loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(25))
        assert min(m.value for m in history) == pytest.approx(1 / 25 + r["worker"])
        (inp,) = run.inputs.dataset_inputs
        assert (inp.dataset.name, inp.dataset.digest) == (f"slice-{r['worker']}", r["digest"])
        assert json.loads(inp.dataset.profile)["num_rows"] == r["rows"]
    assert tracking_env["pg"].query(
        f"SELECT count(*) FROM runs WHERE experiment_id = {int(exp.experiment_id)}") == [(N_WRITERS,)]
