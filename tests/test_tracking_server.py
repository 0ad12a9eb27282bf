"""`TwigaTracker` against a real `mlflow server` on 127.0.0.1 (the deployment users grow into), chosen only by
`TWIGA_MLFLOW_TRACKING_URI`; and against a server that is not there."""
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from _mlflow_helpers import ENV, ercot_forecaster, start_mlflow_server
from _serve_helpers import free_port, stop_group

pytestmark = pytest.mark.timeout(600)

@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    "A real MLflow tracking server: SQLite backend, proxied artefact store, both in a temporary directory."
    d = tmp_path_factory.mktemp("mlflow-server")
    proc, url = start_mlflow_server(d, f"sqlite:///{d}/backend.db")
    try:
        yield {"url": url, "dir": d}
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def fitted():
    "A small, fast forecaster on real ERCOT data: hourly, horizon 24, lookback 168, seasonal naive + a tiny LightGBM."
    fc, train, test = ercot_forecaster()
    fc.fit(train)
    return fc, train, test


def test_tracker_against_real_server(mlflow_server, fitted, monkeypatch):
    from mlflow import MlflowClient

    from twiga.tracking import TwigaTracker

    fc, train, test = fitted
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", mlflow_server["url"])  # the only thing that selects the server
    monkeypatch.setenv("TWIGA_MLFLOW_EXPERIMENT", "server-test")
    monkeypatch.setenv("TWIGA_MLFLOW_REGISTERED_MODEL", "ercot-load")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    with TwigaTracker(run_name="on-server", tags={"suite": "server"}) as tracker:
        assert tracker.tracking_uri == mlflow_server["url"]
        tracker.log_dataset(train, name="ercot-train", source="twiga/data/ercot_2015_2019.parquet",
                            targets="demand_mwh")
        tracker.log_forecaster_metadata(fc)
        model = tracker.log_model(fc, sample_input=test.head(300))
        predictions_df, metrics_df = fc.evaluate_point_forecast(test)
        summary = tracker.log_evaluation(metrics_df, results_df=predictions_df)
        version = tracker.register()  # default name from TWIGA_MLFLOW_REGISTERED_MODEL, alias "champion"

    client = MlflowClient(tracking_uri=mlflow_server["url"])
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "server-test"
    assert run.data.params["data_params.forecast_horizon"] == "24"
    assert run.data.params["data_params.input_scaler"] == "StandardScaler"
    assert run.data.params["model_params.lightgbm.n_estimators"] == "20"
    assert run.data.tags["suite"] == "server"
    expected_mae = metrics_df.groupby("model")["mae"].mean()
    for name, mae in expected_mae.items():
        assert run.data.metrics[f"{name}.mae"] == pytest.approx(mae)
        assert summary[f"{name}.mae"] == pytest.approx(mae)
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.name == "ercot-train" and json.loads(inp.dataset.profile)["num_rows"] == len(train)
    assert {a.path for a in client.list_artifacts(tracker.run_id, "evaluation")} == {"evaluation/metrics.csv",
                                                                                      "evaluation/predictions.parquet"}

    # the registry: a version of the logged model, with the alias pointing at it
    mv = client.get_model_version_by_alias("ercot-load", "champion")
    assert (int(mv.version), mv.run_id, mv.source) == (version, tracker.run_id, model.artifact_uri)
    # MLflow's REST model version carries no model_id; the server records the link on the logged model instead
    versions = json.loads(client.get_logged_model(model.model_id).tags["mlflow.modelVersions"])
    assert ("ercot-load", version) in [(v["name"], int(v["version"])) for v in versions]
    # artefacts went through the server (proxied), into its artefact store
    assert any(p.name == "forecaster.pkl" for p in (mlflow_server["dir"] / "artifacts").rglob("*"))

    # a fresh process loads the champion from the server by alias and forecasts exactly what the forecaster does
    sample = test.tail(200).reset_index(drop=True)
    expected = fc.forecast(sample)
    with_env = {**os.environ, **ENV, "MLFLOW_TRACKING_URI": mlflow_server["url"]}
    code = ("import sys, mlflow, pandas as pd; m = mlflow.pyfunc.load_model('models:/ercot-load@champion'); "
            "m.predict(pd.read_parquet(sys.argv[1])).to_parquet(sys.argv[2])")
    d = mlflow_server["dir"]
    sample.to_parquet(d / "in.parquet")
    done = subprocess.run([sys.executable, "-c", code, str(d / "in.parquet"), str(d / "out.parquet")], env=with_env,
                          timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(d / "out.parquet"), expected)


def test_second_version_moves_the_alias(mlflow_server, fitted):
    from mlflow import MlflowClient

    from twiga.tracking import TwigaTracker

    fc, train, test = fitted
    versions = []
    for _ in range(2):
        with TwigaTracker("server-test", tracking_uri=mlflow_server["url"]) as tracker:
            tracker.log_model(fc, sample_input=test.head(200))
            versions.append(tracker.register("alias-test"))
    client = MlflowClient(tracking_uri=mlflow_server["url"])
    assert versions[1] == versions[0] + 1
    assert int(client.get_model_version_by_alias("alias-test", "champion").version) == versions[1]


def test_artefact_into_an_ended_run(mlflow_server, tmp_path):
    "`log_artifact_to_run` files a job's output with a run that has ended, through the server, without a tracker."
    from mlflow import MlflowClient

    from twiga.core.errors import TrackingError
    from twiga.tracking import TwigaTracker, log_artifact_to_run

    with TwigaTracker("server-test", run_name="job", tracking_uri=mlflow_server["url"]) as tracker:
        pass
    (tmp_path / "retrain.ipynb").write_text("{}")
    log_artifact_to_run(tracker.run_id, tmp_path / "retrain.ipynb", "job", tracking_uri=mlflow_server["url"])
    client = MlflowClient(tracking_uri=mlflow_server["url"])
    assert [a.path for a in client.list_artifacts(tracker.run_id, "job")] == ["job/retrain.ipynb"]
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    with pytest.raises(TrackingError, match="MLflow could not log artefacts"):
        log_artifact_to_run("0" * 32, tmp_path / "retrain.ipynb", tracking_uri=mlflow_server["url"])


def test_unreachable_server_fails_fast_with_one_error(monkeypatch):
    from twiga.core.errors import TrackingError
    from twiga.tracking import TwigaTracker

    port = free_port()  # nothing listens on it
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=f"Cannot reach the MLflow tracking server at `http://127.0.0.1:{port}`"):
        with TwigaTracker("nowhere"):
            pass
    # MLflow's own client would retry with back-off for minutes; the tracker gives up after one short probe
    assert time.monotonic() - t0 < 10
