"""Sections 8 and 9 of the MLOps tutorial as written (only the data differs: the bundled ERCOT data), without a
Prefect server: the tasks' `.fn()` under the tutorial's `get_run_logger` patch, the flows' `.fn()`, and the
Prefect 3 replacement of its `Deployment.build_from_flow` cell, built offline."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory, ):
    "Sections 1-3 in short: the data written to DATA_DIR, and the tutorial's forecaster (on ERCOT)."
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.models.ml import LIGHTGBMConfig
    base = tmp_path_factory.mktemp("tutorial")
    dirs = {k: base / "mlops_demo" / k for k in ("checkpoints", "reports", "data")}
    for d in dirs.values(): d.mkdir(parents=True)
    data = load_ercot("2019-09-01", "2020-01-01")
    train_df, test_df = data[data["timestamp"] < "2019-12-01"].reset_index(drop=True), data[data["timestamp"] >= "2019-12-01"].reset_index(drop=True)
    train_df.to_parquet(dirs["data"] / "train.parquet", index=False)
    test_df.to_parquet(dirs["data"] / "test.parquet", index=False)
    data_config = DataPipelineConfig(
        target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
        calendar_features=["hour", "day_night"], exogenous_features=["ghi_wm2", "temperature_c"], forecast_horizon=24,
        lookback_window_size=24 * 7, input_scaler=StandardScaler(), target_scaler=RobustScaler(), stride=24)
    forecaster_config = ForecasterConfig(split_freq="months", train_size=3, test_size=1,
                                         checkpoints_path=str(dirs["checkpoints"]))
    model_config = LIGHTGBMConfig(n_estimators=60, num_leaves=15, learning_rate=0.1, max_train_rows=20_000)
    rng = np.random.default_rng(42)
    current_df = test_df.copy()
    current_df["temperature_c"] = current_df["temperature_c"] + rng.normal(4, 1.5, len(current_df))
    return dict(dirs=dirs, data_config=data_config, forecaster_config=forecaster_config, model_config=model_config,
                seasonal_config=SEASONALNAIVEConfig(period="7D", freq="1h"), current_df=current_df,
                TwigaForecaster=TwigaForecaster)


def test_section_8_tasks_fn(tutorial):
    "The tutorial's cell as written, `get_run_logger` patch included (it changes nothing: `.fn()` needs no run context)."
    from unittest.mock import patch
    t = tutorial
    DATA_DIR, REPORT_DIR, current_df = t["dirs"]["data"], t["dirs"]["reports"], t["current_df"]
    plain_logger = logging.getLogger("tutorial")
    with patch("twiga.pipeline.tasks.get_run_logger", return_value=plain_logger):
        from twiga.pipeline.tasks import evaluate_model, fit_forecaster, load_data, run_drift_check, save_checkpoint
    tr, te = load_data.fn(data_path=DATA_DIR / "train.parquet", date_col="timestamp")
    assert (len(tr), len(te)) == (1747, 437) and tr["timestamp"].max() < te["timestamp"].min()
    fresh_forecaster = t["TwigaForecaster"](data_params=t["data_config"], model_params=[t["model_config"]],
                                            train_params=t["forecaster_config"])
    fitted = fit_forecaster.fn(forecaster=fresh_forecaster, train_df=tr, tune=False)
    assert fitted.model is not None
    preds_df, met_df = evaluate_model.fn(forecaster=fitted, test_df=te)
    assert met_df[["mae", "rmse"]].mean().to_dict()["mae"] > 0
    ckpt = save_checkpoint.fn(forecaster=fitted)
    assert Path(ckpt) == t["dirs"]["checkpoints"] and (Path(ckpt) / "_checkpoint_manifest.json").is_file()
    drift_raw = run_drift_check.fn(reference_df=tr, current_df=current_df.head(len(tr)), report_dir=str(REPORT_DIR))
    assert drift_raw["drift_detected"] and drift_raw["feature_drift"]["temperature_c"] < 0.05, drift_raw["feature_drift"]
    assert isinstance(drift_raw["dataset_drift_score"], float)


def test_section_9_flows_as_written(tutorial, tmp_path, monkeypatch):
    "The tutorial's two flow calls (run through `.fn` here; tests/test_pipeline_flows.py runs them as Prefect flow runs)."
    from twiga.pipeline import retraining_flow, training_flow
    from twiga.pipeline.schemas import DriftSummary, RetrainingResult, TrainingResult
    t = tutorial
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(t["dirs"]["data"].parents[1])  # the tutorial's paths are relative: mlops_demo/...
    forecaster = t["TwigaForecaster"](data_params=t["data_config"], model_params=[t["seasonal_config"]],
                                      train_params=t["forecaster_config"])
    result: TrainingResult = training_flow.fn(forecaster=forecaster, data_path="mlops_demo/data/train.parquet",
                                              date_col="timestamp", train_end="2019-11-30", test_start="2019-11-01",
                                              tune=False, experiment="tutorial-17", run_name="lgbm-flow-v1")
    assert Path(result.checkpoint_path).is_dir() and result.mlflow_run_id and result.metrics["seasonal_naive"]["mae"] > 0
    result: RetrainingResult = retraining_flow.fn(
        forecaster=forecaster, reference_data_path="mlops_demo/data/train.parquet",
        current_data_path="mlops_demo/data/test.parquet", drift_threshold=0.5, performance_threshold=None,
        metric_key="mae", minimize=True, experiment="tutorial-17-retrain", run_name="lgbm-retrain-v1",
        fastapi_reload_url="http://localhost:8000")
    assert isinstance(result.drift_summary, DriftSummary) and result.mlflow_run_id
    assert isinstance(result.retrained, bool) and isinstance(result.promoted, bool) and result.metrics
    ds = result.drift_summary
    assert result.retrained == (ds.dataset_drift_score > 0.5)  # performance_threshold=None: drift alone decides
    assert set(ds.feature_drift) == {"ghi_wm2", "temperature_c"} and Path(ds.report_path).is_file()
    if result.promoted: assert result.reload_status is not None or result.reload_error  # no server here: recorded


def test_section_9_deployment_the_prefect_3_way():
    "The replacement of `Deployment.build_from_flow(...)`: built offline, with its cron schedule."
    from prefect.client.schemas.schedules import CronSchedule

    from twiga.pipeline.flows import build_deployment
    deployment = build_deployment(name="weekly-retrain", cron="0 2 * * 1", parameters={
        "reference_data_path": "data/train.parquet", "current_data_path": "data/current.parquet",
        "experiment": "load-forecast-retrain", "fastapi_reload_url": "http://api:8000"})
    (sched,) = deployment.schedules
    assert isinstance(sched.schedule, CronSchedule) and (
        sched.schedule.cron, sched.schedule.timezone, sched.active) == ("0 2 * * 1", "UTC", True)
    assert deployment.entrypoint == "twiga.pipeline.flows.retraining_flow" and deployment.name == "weekly-retrain"
    assert deployment.parameters["fastapi_reload_url"] == "http://api:8000"
    import asyncio
    import datetime as dt

    from prefect.server.schemas.schedules import (
        CronSchedule as ServerCron,  # the server's schedule computes the run dates
    )
    dates = asyncio.run(ServerCron(cron=sched.schedule.cron, timezone=sched.schedule.timezone).get_dates(
        n=2, start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    assert [d.isoformat()[:16] for d in dates] == ["2026-01-05T02:00", "2026-01-12T02:00"]  # Mondays at 02:00
