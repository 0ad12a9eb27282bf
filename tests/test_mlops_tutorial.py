"""The parts of the user's MLOps tutorial, as written, that its notebook (nbs/tutorials/02_mlops.ipynb, checked by
nbval in `./dev test`) cannot run: the section 7 `serve.py` recipe under `uvicorn serve:app --workers 2`, and the
section 9 flow calls with the tutorial's own arguments (relative `mlops_demo/` paths, a test period inside the
training period, a reload URL nobody answers), which the notebook adapts so that its results read well. Everything
else the tutorial writes runs in the notebook itself. Only the data differs: the bundled ERCOT data, at the
tutorial's shape (the `tutorial` fixture in conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _serve_helpers import free_port, records, request, stop_group, wait_healthy

pytestmark = pytest.mark.timeout(600)

SERVE_PY = '''
    # serve.py
    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.serve import create_app
    from sklearn.preprocessing import RobustScaler, StandardScaler

    data_config = DataPipelineConfig(
        target_feature="demand_mwh",
        period="30min",
        latitude=31.0,
        longitude=-97.5,
        calendar_features=["hour", "day_night"],
        exogenous_features=["ghi_wm2", "temperature_c"],
        forecast_horizon=48,
        lookback_window_size=96,
        input_scaler=StandardScaler(),
        target_scaler=RobustScaler(),
    )
    train_params = ForecasterConfig(
        split_freq="months", train_size=3, test_size=1,
        checkpoints_path={checkpoints!r},
    )
    from twiga.models.ml import LIGHTGBMConfig
    forecaster = TwigaForecaster(
        data_params=data_config, model_params=[LIGHTGBMConfig()], train_params=train_params
    )
    app = create_app(forecaster, report_dir={reports!r}, title="Net Load Forecast API")
'''


def test_section_7_serve_py_recipe_under_uvicorn(tutorial):
    "The recipe's module, its unfitted forecaster pointing at the checkpoint directory, under `--workers 2`."
    from twiga import TwigaForecaster
    from twiga.checkpoints import CheckpointStore
    t = tutorial
    forecaster = TwigaForecaster(data_params=t.data_config, model_params=[t.seasonal_config],
                                 train_params=t.forecaster_config)
    forecaster.fit(train_df=t.train_df, val_df=t.val_df)  # section 4, without the tracking
    forecaster.on_save_checkpoint()  # section 5
    version = CheckpointStore(t.CHECKPOINT_DIR).current_version()
    app_dir = t.base / "recipe"
    app_dir.mkdir()
    code = SERVE_PY.format(checkpoints=str(t.CHECKPOINT_DIR), reports=str(t.REPORT_DIR))
    (app_dir / "serve.py").write_text(textwrap.dedent(code))
    port, log_path = free_port(), app_dir / "uvicorn.log"
    cmd = [sys.executable, "-m", "uvicorn", "serve:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=app_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(app_dir)})
        try:
            wait_healthy(port, proc, log_path)
            status, health = request(port, "GET", "/health")
            # the checkpoint is what is served: its model and its window, not the recipe's unfitted configuration
            assert (status, health["version"], health["models"]) == (200, version, ["seasonal_naive"]), health
            assert health["lookback_window_size"] == 336
            status, body = request(port, "POST", "/predict", {"records": records(t.test_df.head(400))})
            assert status == 200 and body["version"] == version, body
            assert len(body["forecasts"][0]["predictions"]) == 48
        finally:
            stop_group(proc)
    assert proc.poll() is not None


def test_section_9_flows_as_written(tutorial, tmp_path, monkeypatch):
    "The tutorial's two flow calls with its own arguments (run through `.fn`; test_pipeline_flows runs flow runs)."
    from twiga import TwigaForecaster
    from twiga.pipeline import retraining_flow, training_flow
    from twiga.pipeline.schemas import DriftSummary, RetrainingResult, TrainingResult
    t = tutorial
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(t.base)  # the tutorial's paths are relative: mlops_demo/...
    forecaster = TwigaForecaster(data_params=t.data_config, model_params=[t.seasonal_config],
                                 train_params=t.forecaster_config)
    # as the tutorial: training to the end of train.parquet, testing on its last part (in-sample, the flow warns)
    result: TrainingResult = training_flow.fn(
        forecaster=forecaster, data_path="mlops_demo/data/train.parquet", date_col="timestamp",
        train_end="2018-06-30", test_start="2018-06-01", tune=False, experiment="tutorial-17", run_name="lgbm-flow-v1")
    assert Path(result.checkpoint_path).is_dir() and result.mlflow_run_id
    assert result.metrics["seasonal_naive"]["mae"] > 0
    assert result.test_period[0].startswith("2018-06-01") and result.train_period[1].startswith("2018-06-30")
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
