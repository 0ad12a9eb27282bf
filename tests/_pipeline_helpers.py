"""Shared machinery of the pipeline tests and benchmark: ERCOT slices written to parquet as a user's files would be,
and small hourly forecasters (horizon 24, lookback 168, LightGBM with few trees)."""
from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prefect_env() -> None:
    "Settings every pipeline test process needs before Prefect is imported (as CI sets them)."
    os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def task_runs(flow_run_id, done, timeout: float = 30.0) -> list:
    "The task runs of a flow run as the Prefect API records them, polled until `done(runs)` (they arrive as events)."
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    deadline, runs = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if done(runs): break
        time.sleep(0.5)
    return runs


def write_slices(directory: Path, reference=("2019-01-01", "2019-05-01"),
                 current=("2019-05-01", "2019-08-01")) -> dict[str, Path]:
    "Reference and current slices of the bundled hourly data as parquet files; returns their paths."
    from twiga.datasets import load_ercot
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"reference": directory / "reference.parquet", "current": directory / "current.parquet"}
    load_ercot(*reference).to_parquet(paths["reference"], index=False)
    load_ercot(*current).to_parquet(paths["current"], index=False)
    return paths


def make_forecaster(checkpoint_dir, models=("lightgbm", "seasonal_naive"), n_estimators=60,
                    exogenous=("temperature_c", "ghi_wm2")):
    "An unfitted hourly forecaster (horizon 24, lookback 168) whose checkpoints go to `checkpoint_dir`."
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.models.ml import LIGHTGBMConfig
    data = DataPipelineConfig(target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE,
                              longitude=ERCOT_LONGITUDE, calendar_features=["hour", "dayofweek", "day_night"],
                              exogenous_features=list(exogenous), forecast_horizon=24, lookback_window_size=168,
                              stride=24, input_scaler=StandardScaler(), target_scaler=RobustScaler())
    configs = {"lightgbm": LIGHTGBMConfig(n_estimators=n_estimators, learning_rate=0.1, num_leaves=15,
                                          max_train_rows=20_000, n_jobs=1),
               "seasonal_naive": SEASONALNAIVEConfig(period="1D", freq="1h"),
               "seasonal_naive_7d": SEASONALNAIVEConfig(period="7D", freq="1h")}
    return TwigaForecaster(data_params=data, model_params=[configs[m] for m in models],
                           train_params=ForecasterConfig(checkpoints_path=str(checkpoint_dir)))
