"""A forecaster logged with `TwigaTracker` into a SQLite store: everything reads back through `MlflowClient`, and
the pyfunc model, loaded in a fresh process, forecasts exactly what the forecaster forecasts."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _mlflow_helpers import ENV, ercot_forecaster

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    "Fit a small forecaster on real ERCOT data and track it end to end; return what the tests read back."
    from mlflow import MlflowClient
    from sklearn.preprocessing import RobustScaler

    from twiga.core.config import ForecasterConfig
    from twiga.tracking import TwigaTracker

    d = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{d}/mlflow.db"
    fc, train, test = ercot_forecaster(RobustScaler(), ForecasterConfig(checkpoints_path=str(d / "ckpt")))
    with TwigaTracker("model-test", run_name="end-to-end", tags={"dataset": "ERCOT"}, tracking_uri=uri) as tracker:
        digest = tracker.log_dataset(train, name="ercot-train", source="twiga/data/ercot_2015_2019.parquet",
                                     targets="demand_mwh")
        fc.fit(train)
        params = tracker.log_forecaster_metadata(fc)
        model = tracker.log_model(fc, sample_input=test.head(300))
        predictions_df, metrics_df = fc.evaluate_point_forecast(test)
        summary = tracker.log_evaluation(metrics_df, results_df=predictions_df)
        ckpt_tags = tracker.log_checkpoint(fc.on_save_checkpoint())
    return dict(d=d, uri=uri, client=MlflowClient(tracking_uri=uri), run_id=tracker.run_id, fc=fc, train=train,
                test=test, digest=digest, params=params, model=model, metrics_df=metrics_df,
                predictions_df=predictions_df, summary=summary, ckpt_tags=ckpt_tags)


def test_params_flatten_every_config(tracked):
    run = tracked["client"].get_run(tracked["run_id"])
    p = run.data.params
    assert run.info.status == "FINISHED" and run.data.tags["dataset"] == "ERCOT"
    assert p["data_params.forecast_horizon"] == "24" and p["data_params.lookback_window_size"] == "168"
    assert p["data_params.target_scaler"] == "RobustScaler"
    assert p["data_params.target_scaler.quantile_range"] == "[25.0, 75.0]"
    assert p["data_params.input_scaler.with_mean"] == "True"
    assert p["model_params.seasonal_naive.period"] == "1D" and p["model_params.lightgbm.n_estimators"] == "20"
    assert p["train_params.checkpoints_path"] == str(tracked["d"] / "ckpt")
    assert p == {k: v for k, v in p.items() if k in tracked["params"]} == tracked["params"]
    assert run.data.tags["twiga.models"] == ",".join(tracked["fc"].model_names)
    assert run.data.tags["twiga.training_fingerprint"] == tracked["fc"].training_fingerprint_


def test_metrics_means_and_steps(tracked):
    client, run_id, mdf = tracked["client"], tracked["run_id"], tracked["metrics_df"]
    metrics = client.get_run(run_id).data.metrics
    window_col = "window" if "window" in mdf.columns else "fold"
    for name, g in mdf.groupby("model"):
        for m in ("mae", "rmse", "smape"):
            assert metrics[f"{name}.{m}"] == pytest.approx(g[m].mean())
        history = sorted(client.get_metric_history(run_id, f"{name}.{window_col}.mae"), key=lambda x: x.step)
        assert [h.value for h in history] == pytest.approx(g.sort_values(window_col)["mae"].tolist())
        assert len(history) == len(g) > 1
    assert tracked["summary"]["lightgbm.mae"] == metrics["lightgbm.mae"]


def test_dataset_input(tracked):
    (inp,) = tracked["client"].get_run(tracked["run_id"]).inputs.dataset_inputs
    assert (inp.dataset.name, inp.dataset.digest) == ("ercot-train", tracked["digest"])
    assert json.loads(inp.dataset.profile)["num_rows"] == len(tracked["train"])
    assert json.loads(inp.dataset.source)["uri"] == "twiga/data/ercot_2015_2019.parquet"
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"


def test_artefacts_and_logged_model(tracked):
    client, run_id, model = tracked["client"], tracked["run_id"], tracked["model"]
    run = client.get_run(run_id)
    paths = {a.path for folder in ("evaluation", "checkpoint") for a in client.list_artifacts(run_id, folder)}
    assert {"evaluation/metrics.csv", "evaluation/predictions.parquet", "checkpoint/_checkpoint_manifest.json"} <= paths
    assert f"checkpoint/{tracked['ckpt_tags']['twiga.checkpoint.file']}" in paths
    assert run.data.tags["twiga.checkpoint.version"] == "1"
    # MLflow 3: the model is a LoggedModel of the run's experiment, linked to the run as an output
    lm = client.get_logged_model(model.model_id)
    assert (lm.source_run_id, lm.experiment_id, str(lm.status)) == (run_id, run.info.experiment_id, "READY")
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
    files = {a.path for a in client.list_logged_model_artifacts(model.model_id)}
    assert {"MLmodel", "requirements.txt", "input_example.json", "python_model.pkl"} <= files
    from mlflow.models import Model

    local = Path(lm.artifact_location.removeprefix("file://"))
    mlmodel = Model.load(local)
    assert [c.name for c in mlmodel.signature.inputs.inputs] == tracked["fc"].input_columns
    outputs = {c.name for c in mlmodel.signature.outputs.inputs}
    assert outputs == {"origin", "timestamp", "model", "step", "target", "value"}
    assert mlmodel.metadata["forecaster_sha256"] == model.forecaster_sha256
    assert (local / "requirements.txt").read_text().split() == model.pip_requirements  # explicit and pinned


def _fresh_process_forecasts(model_uri: str, uri: str, frame: pd.DataFrame, d: Path,
                             params: list[dict | None]) -> list[pd.DataFrame]:
    "Load `model_uri` in one new Python process and forecast `frame` with it once per entry of `params`."
    frame.to_parquet(d / "in.parquet")
    code = ("import json, sys, mlflow, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]); "
            "frame = pd.read_parquet(sys.argv[2])\n"
            "for i, p in enumerate(json.loads(sys.argv[3])): "
            "m.predict(frame, params=p).to_parquet(f'{sys.argv[4]}/out{i}.parquet')")
    args = [sys.executable, "-c", code, model_uri, str(d / "in.parquet"), json.dumps(params), str(d)]
    done = subprocess.run(args, env={**os.environ, **ENV, "MLFLOW_TRACKING_URI": uri}, timeout=300, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return [pd.read_parquet(d / f"out{i}.parquet") for i in range(len(params))]


def test_pyfunc_in_fresh_process_predicts_exactly(tracked):
    fc, test = tracked["fc"], tracked["test"]
    frame = test.iloc[-400:].reset_index(drop=True)
    got, got_all = _fresh_process_forecasts(tracked["model"].model_uri, tracked["uri"], frame, tracked["d"],
                                            [None, {"all_windows": True}])
    pd.testing.assert_frame_equal(got, fc.forecast(frame))
    pd.testing.assert_frame_equal(got_all, fc.forecast(frame, all_windows=True))
    assert got_all["origin"].nunique() > 1


def test_tampered_model_artefact_is_refused(tracked, tmp_path):
    import shutil

    import mlflow

    from twiga.core.errors import CheckpointError

    lm = tracked["client"].get_logged_model(tracked["model"].model_id)
    copy = tmp_path / "model"
    shutil.copytree(lm.artifact_location.removeprefix("file://"), copy)
    pkl = next(copy.rglob("forecaster.pkl"))
    pkl.write_bytes(pkl.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        mlflow.pyfunc.load_model(str(copy))
