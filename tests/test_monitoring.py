"""ForecastMonitor beyond the notebook: tutorial section 6 as written (on ERCOT), and several processes sharing one
report directory (reference replaced while others check; concurrent history appends)."""
import json
import logging
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twiga.datasets import load_ercot


@pytest.fixture(scope="module")
def ercot_splits():
    data = load_ercot(start="2018-01-01")
    train_df = data[data["timestamp"] < "2019-01-01"].reset_index(drop=True)
    val_df = data[(data["timestamp"] >= "2018-12-01") & (data["timestamp"] < "2019-01-01")].reset_index(drop=True)
    test_df = data[data["timestamp"] >= "2019-07-01"].reset_index(drop=True)
    return train_df, val_df, test_df


@pytest.mark.timeout(300)
def test_tutorial_section_6_as_written(tmp_path, monkeypatch, ercot_splits, caplog):
    "Section 6 of the user's tutorial, line for line, with ERCOT names (demand_mwh, temperature_c, ghi_wm2)."
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.core.utils import get_logger
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig

    monkeypatch.chdir(tmp_path)
    log = get_logger("tutorial")
    train_df, val_df, test_df = ercot_splits
    CHECKPOINT_DIR, REPORT_DIR = Path("mlops_demo/checkpoints"), Path("mlops_demo/reports")
    for d in [CHECKPOINT_DIR, REPORT_DIR]:
        d.mkdir(parents=True, exist_ok=True)
    # sections 3 and 5, shortened: a seasonal-naive forecaster saved and loaded back
    data_config = DataPipelineConfig(target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE,
                                     longitude=ERCOT_LONGITUDE, calendar_features=["hour", "day_night"],
                                     exogenous_features=["ghi_wm2", "temperature_c"], forecast_horizon=24,
                                     lookback_window_size=24 * 7, input_scaler=StandardScaler(),
                                     target_scaler=RobustScaler(), stride=24)
    forecaster_config = ForecasterConfig(checkpoints_path=str(CHECKPOINT_DIR))
    forecaster = TwigaForecaster(data_params=data_config, model_params=[SEASONALNAIVEConfig(period="7D", freq="1h")],
                                 train_params=forecaster_config)
    forecaster.fit(train_df=train_df, val_df=val_df)
    forecaster.on_save_checkpoint()
    loaded_forecaster = TwigaForecaster(data_params=data_config,
                                        model_params=[SEASONALNAIVEConfig(period="7D", freq="1h")],
                                        train_params=forecaster_config)
    loaded_forecaster.on_load_checkpoint()

    # ---- section 6, as written ----
    from twiga.serve import ForecastMonitor

    monitor = ForecastMonitor(
        report_dir=str(REPORT_DIR),
        target_col="demand_mwh",
        prediction_col="pred_demand",
    )
    monitor.set_reference(train_df)
    log.info("Reference set — %d rows from training split.", len(train_df))

    rng = np.random.default_rng(42)
    current_df = test_df.copy()
    current_df["temperature_c"] = current_df["temperature_c"] + rng.normal(4, 1.5, len(current_df))
    _, drift_summary = monitor.run_data_drift(
        current_df,
        feature_cols=["temperature_c", "ghi_wm2"],
    )
    with caplog.at_level(logging.INFO, logger="twiga"):
        log.info("Drift detected : %s", drift_summary["drift_detected"])
        log.info("Dataset score : %.3f", drift_summary["dataset_drift_score"])
        log.info("Drifted features : %d / %d", drift_summary["n_drifted"], drift_summary["total"])
        for feat, score in drift_summary.get("feature_drift", {}).items():
            log.info(" %-15s p-value = %.4f", feat, score)

    batch = test_df.head(1000).copy()
    preds_arr, _ = loaded_forecaster.predict(batch)
    first_model_key = list(preds_arr.keys())[0]
    pred = preds_arr[first_model_key]
    lookback = data_config.lookback_window_size
    stride = data_config.stride
    n_windows = pred.shape[0]
    pred_row_indices = [lookback + i * stride for i in range(n_windows)]
    monitor_batch = batch.iloc[pred_row_indices].copy()
    monitor_batch["pred_demand"] = pred[:, 0, 0]
    perf_summary = monitor.run_performance(monitor_batch)
    log.info("MAE : %.4f kW", perf_summary.get("mae", float("nan")))
    log.info("RMSE : %.4f kW", perf_summary.get("rmse", float("nan")))
    log.info("Report → %s", perf_summary.get("report_path", "n/a"))
    # ---- end of section 6 ----

    assert drift_summary["drift_detected"] is True
    assert drift_summary["feature_drifted"]["temperature_c"] is True and drift_summary["method"] == "ks"
    assert set(drift_summary["feature_drift"]) == {"temperature_c", "ghi_wm2"}
    assert any("temperature_c   p-value = 0.0000" in r.getMessage() for r in caplog.records)
    report = Path(drift_summary["report_path"])
    assert report.exists() and report.with_suffix(".json").exists()
    truth = monitor_batch["demand_mwh"].to_numpy()
    assert perf_summary["n"] == n_windows > 0
    assert perf_summary["mae"] == pytest.approx(np.mean(np.abs(pred[:, 0, 0] - truth)))
    assert Path(perf_summary["report_path"]).exists()
    assert ForecastMonitor(str(REPORT_DIR), "demand_mwh", "pred_demand").latest_performance() == perf_summary


def _checker(report_dir, n, queue):
    "Run `n` summary-only drift checks on a shared report directory; report errors and p-values seen."
    try:
        from twiga.monitoring import ForecastMonitor
        g = np.random.default_rng()
        mon = ForecastMonitor(report_dir, "y", "p")
        seen = set()
        for _ in range(n):
            _, s = mon.run_data_drift(pd.DataFrame({"a": g.normal(size=300)}), html=False)
            seen.add(s["n_reference"])
        queue.put(("ok", sorted(seen)))
    except Exception as e:  # reported to the parent, which fails the test
        queue.put(("error", repr(e)))


def _setter(report_dir, n, queue):
    "Replace the reference `n` times, alternating its size between 1,000 and 2,000 rows."
    try:
        from twiga.monitoring import ForecastMonitor
        mon = ForecastMonitor(report_dir, "y", "p")
        for i in range(n):
            mon.set_reference(pd.DataFrame({"a": np.random.default_rng(i).normal(size=1000 * (1 + i % 2))}))
        queue.put(("ok", n))
    except Exception as e:
        queue.put(("error", repr(e)))


@pytest.mark.timeout(180)
def test_processes_share_one_report_dir(tmp_path):
    "3 processes checking, a 4th replacing the reference: no error, every check recorded, only whole references seen."
    from twiga.monitoring import ForecastMonitor

    ForecastMonitor(tmp_path, "y", "p").set_reference(pd.DataFrame({"a": np.random.default_rng(0).normal(size=1000)}))
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_checker, args=(str(tmp_path), 20, queue)) for _ in range(3)]
    procs.append(ctx.Process(target=_setter, args=(str(tmp_path), 20, queue)))
    for p in procs:
        p.start()
    try:
        results = [queue.get(timeout=150) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [r[0] for r in results] == ["ok"] * 4, results
    sizes = set().union(*(r[1] for r in results if isinstance(r[1], list)))
    assert sizes <= {1000, 2000}, sizes
    lines = (tmp_path / "drift_history.jsonl").read_text().splitlines()
    assert len(lines) == 60
    assert all(json.loads(line)["total"] == 1 for line in lines)
