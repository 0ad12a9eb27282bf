"""Section 7 of the user's MLOps tutorial, as written, on the bundled ERCOT data (the tutorial's own data file is not
shipped: column names and coordinates are ERCOT's, every call is the tutorial's): the in-process `TestClient`
cells, then its `serve.py` recipe run with `uvicorn serve:app --workers 2` on 127.0.0.1."""
import json
import textwrap
import time

import numpy as np
import pytest
from _serve_helpers import free_port, request

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    "Sections 1-6 of the tutorial, reduced to what section 7 uses: a fitted forecaster, a checkpoint, a monitor."
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.serve import ForecastMonitor
    base = tmp_path_factory.mktemp("tutorial")
    CHECKPOINT_DIR, REPORT_DIR = base / "mlops_demo/checkpoints", base / "mlops_demo/reports"
    for d in (CHECKPOINT_DIR, REPORT_DIR): d.mkdir(parents=True, exist_ok=True)
    data = load_ercot("2018-01-01", "2019-01-01", freq="30min")[["timestamp", "demand_mwh", "ghi_wm2", "temperature_c"]]
    train_df = data[data["timestamp"] < "2018-07-01T00:00:00Z"].reset_index(drop=True)
    val_df = data[(data["timestamp"] >= "2018-07-01T00:00:00Z") & (data["timestamp"] < "2018-09-01T00:00:00Z")].reset_index(drop=True)
    test_df = data[data["timestamp"] >= "2018-09-01T00:00:00Z"].reset_index(drop=True)
    data_config = DataPipelineConfig(
        target_feature="demand_mwh", period="30min", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
        calendar_features=["hour", "day_night"], exogenous_features=["ghi_wm2", "temperature_c"], forecast_horizon=48,
        lookback_window_size=48 * 7, input_scaler=StandardScaler(), target_scaler=RobustScaler(), stride=48)
    forecaster_config = ForecasterConfig(split_freq="months", train_size=3, test_size=1,
                                         checkpoints_path=str(CHECKPOINT_DIR))
    forecaster = TwigaForecaster(data_params=data_config, model_params=[SEASONALNAIVEConfig(period="7D", freq="30min")],
                                 train_params=forecaster_config)
    forecaster.fit(train_df=train_df, val_df=val_df)
    forecaster.on_save_checkpoint()
    monitor = ForecastMonitor(report_dir=str(REPORT_DIR), target_col="demand_mwh", prediction_col="pred_demand")
    monitor.set_reference(train_df)
    rng = np.random.default_rng(42)
    current_df = test_df.copy()
    current_df["temperature_c"] = current_df["temperature_c"] + rng.normal(4, 1.5, len(current_df))
    yield dict(base=base, forecaster=forecaster, REPORT_DIR=REPORT_DIR, CHECKPOINT_DIR=CHECKPOINT_DIR, test_df=test_df,
               current_df=current_df)


def test_section_7_in_process(tutorial):
    from fastapi.testclient import TestClient

    from twiga.serve import create_app
    forecaster, REPORT_DIR, test_df, current_df = (tutorial[k]
                                                   for k in ("forecaster", "REPORT_DIR", "test_df", "current_df"))

    app = create_app(forecaster=forecaster, report_dir=str(REPORT_DIR), title="Net Load Forecast API — Tutorial 17")
    assert {"/health", "/predict", "/predict-interval", "/monitor/drift", "/monitor/performance", "/reload"} <= {
        r.path for r in app.routes}
    client = TestClient(app)

    resp = client.get("/health")
    health = resp.json()
    assert (health.get("status"), health.get("models"), health.get("forecast_horizon"), health.get("targets")) == (
        "ok", ["seasonal_naive"], 48, ["demand_mwh"])

    batch_records = (test_df.head(1000).assign(
        timestamp=test_df.head(1000)["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")).to_dict("records"))
    resp = client.post("/predict", json={"records": batch_records, "ensemble_strategy": "mean"})
    resp.raise_for_status()
    forecast_resp = resp.json()
    assert "forecasts" in forecast_resp
    assert [(f["model"], len(f["predictions"])) for f in forecast_resp["forecasts"]] == [("seasonal_naive", 48)]

    drift_records = (current_df.head(500).assign(
        timestamp=current_df.head(500)["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")).to_dict("records"))
    resp = client.post("/monitor/drift", json={"records": drift_records})
    drift_api = resp.json()
    assert resp.status_code == 200, drift_api
    assert drift_api.get("drift_detected") is True and drift_api.get("n_drifted", 0) >= 1
    assert 0 < drift_api.get("dataset_drift_score", 0) <= 1

    resp = client.post("/reload")
    assert resp.status_code == 200 and resp.json()["new_version"] == 1, resp.json()
    assert app.state.twiga.bugs == []


def test_section_7_serve_py_recipe_under_uvicorn(tutorial):
    "The recipe's module, its unfitted forecaster pointing at the checkpoint directory, under `uvicorn serve:app --workers 2`."
    base, CHECKPOINT_DIR, REPORT_DIR, test_df = (tutorial[k]
                                                 for k in ("base", "CHECKPOINT_DIR", "REPORT_DIR", "test_df"))
    app_dir = base / "recipe"; app_dir.mkdir(exist_ok=True)
    (app_dir / "serve.py").write_text(textwrap.dedent(f'''
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
            checkpoints_path={str(CHECKPOINT_DIR)!r},
        )
        from twiga.models.ml import LIGHTGBMConfig
        forecaster = TwigaForecaster(
            data_params=data_config, model_params=[LIGHTGBMConfig()], train_params=train_params
        )
        app = create_app(forecaster, report_dir={str(REPORT_DIR)!r}, title="Net Load Forecast API")
    '''))
    import os
    import signal
    import subprocess
    import sys
    port = free_port()
    log = open(app_dir / "uvicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "serve:app", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], cwd=app_dir, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(app_dir)})
    try:
        deadline, health = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (app_dir / "uvicorn.log").read_text()
            try:
                status, health = request(port, "GET", "/health", timeout=5)
                if status == 200 and health["loaded"]: break
            except OSError: pass
            time.sleep(0.1)
        # the checkpoint is what is served: its model and its window, not the recipe's unfitted configuration
        assert health and health["loaded"] and health["version"] == 1 and health["models"] == ["seasonal_naive"], health
        assert health["lookback_window_size"] == 336
        recs = json.loads(test_df.head(400).assign(
            timestamp=test_df.head(400)["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")).to_json(orient="records"))
        status, body = request(port, "POST", "/predict", {"records": recs})
        assert status == 200 and body["version"] == 1 and len(body["forecasts"][0]["predictions"]) == 48, body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait(10)
        log.close()
