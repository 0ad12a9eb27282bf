"""Forecasting core on the bundled ERCOT data (issue 3): accuracy on 2019, fit time, one-window predict latency.

Run: `./dev bench core`. Settings were chosen on a selection split (train 2015-07..2017-09, validation
2017-10..2017-12, scored on 2018), never on 2019. Our weather is a reanalysis (perfect weather), so
beating ERCOT's day-ahead forecast means beating the operator *with perfect weather*, not in real operation.
Timings are medians of `RUNS` runs, wall clock and process CPU time (the machine may be shared: see `load_avg`).
"""
import os
import statistics

import pandas as pd
from sklearn.preprocessing import RobustScaler, StandardScaler

from bench._timing import median_time, timings
from twiga import TwigaForecaster
from twiga.core.config import DataPipelineConfig
from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
from twiga.models.ml import LIGHTGBMConfig

RUNS = int(os.environ.get("TWIGA_BENCH_RUNS", "3"))
REFERENCE = {"seasonal_naive_7d_mae_2019": 4190, "ercot_day_ahead_mae_2019": 1030,
             "quick_untuned_lightgbm_mae_2019": 1365, "public_twiga_tutorial_shape_fit_s": 196}


def _utc(s): return pd.Timestamp(s, tz="UTC")


def _timed_fit(make, train, val):
    "Fit `RUNS` fresh forecasters; the last one, and median wall and CPU seconds."
    wall, cpu, fc = timings(lambda fc: fc.fit(train, val), RUNS, setup=lambda _: make())
    return fc, round(statistics.median(wall), 2), round(statistics.median(cpu), 2)


def _scores(fc, test, ercot, model):
    "MAE of `model` over every forecast point, the operator's MAE on the same points, and 90 % interval coverage."
    pred, _ = fc.evaluate_point_forecast(test, ensemble_strategy=None, coverage=0.9)
    p = pred[pred["model"] == model].merge(ercot, on="timestamp", how="left")
    both = p.dropna(subset=["actual", "ercot_forecast_mwh"])
    inside = (p["actual"] >= p["lower"]) & (p["actual"] <= p["upper"])
    return {"mae": round(float((p["value"] - p["actual"]).abs().mean()), 1),
            "mae_on_points_with_ercot_forecast": round(float((both["value"] - both["actual"]).abs().mean()), 1),
            "ercot_mae_same_points": round(float((both["ercot_forecast_mwh"] - both["actual"]).abs().mean()), 1),
            "coverage_90": round(float(inside[p["actual"].notna()].mean()), 4),
            "mean_interval_width": round(float((p["upper"] - p["lower"]).mean()), 1),
            "n_points": int(p["actual"].notna().sum()), "skipped_windows": len(pred.attrs.get("skipped_windows", []))}


def _latency_ms(fc, frame, n=200):
    "Median milliseconds of `fc.predict(frame)` (one window) and of the model call alone."
    fc.predict(frame)
    return round(1000 * median_time(lambda _: fc.predict(frame), n)[0], 3)


def hourly():
    "Goal 1: hourly, horizon 24, lookback 168, stride 24; train 2015-07..2018-12 (last 3 months validation), test 2019."
    d = load_ercot()
    t = d["timestamp"]
    train, val = d[t < _utc("2018-10-01")], d[(t >= _utc("2018-10-01")) & (t < _utc("2019-01-01"))]
    test = d[t >= _utc("2019-01-01") - pd.Timedelta("168h")]  # a week of history: the first forecast is 2019-01-01
    cfg = DataPipelineConfig(
        target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
        calendar_features=["hour", "dayofweek", "dayofyear", "us_holiday", "day_night"], timezone="America/Chicago",
        exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=24, lookback_window_size=168,
        input_scaler=StandardScaler(), target_scaler=RobustScaler(), stride=24)
    ercot = d[["timestamp", "ercot_forecast_mwh"]]
    fc, wall, cpu = _timed_fit(lambda: TwigaForecaster(cfg, [LIGHTGBMConfig()]), train, val)
    out = {"lightgbm": {**_scores(fc, test, ercot, "lightgbm"), "fit_s": wall, "fit_cpu_s": cpu,
                        "boosting_rounds": fc.model["lightgbm"].best_iterations_[0],
                        "predict_one_window_ms": _latency_ms(fc, test.iloc[:168 + 24])}}
    sn = TwigaForecaster(cfg, [SEASONALNAIVEConfig(period="7D", freq="1h")]).fit(train, val)
    out["seasonal_naive_7d"] = _scores(sn, test, ercot, "seasonal_naive")
    # the tutorial's calendar features only (no local time zone, no weekday or holiday): what the extra features buy
    basic = cfg.model_copy(update={"calendar_features": ["hour", "day_night"], "timezone": None})
    fb = TwigaForecaster(basic, [LIGHTGBMConfig()]).fit(train, val)
    out["lightgbm_tutorial_calendar"] = {k: v for k, v in _scores(fb, test, ercot, "lightgbm").items()
                                         if k in ("mae", "coverage_90")}
    return out


def tutorial_shape():
    "Goal 2: ERCOT at 30 min, horizon 48, lookback 336, stride 48, one year of training rows (the tutorial's shape)."
    d = load_ercot(start="2017-12-25", freq="30min")
    t = d["timestamp"]
    train = d[(t >= _utc("2018-01-01")) & (t < _utc("2019-01-01"))]
    val = d[(t >= _utc("2019-01-01")) & (t < _utc("2019-07-01"))]
    test = d[t >= _utc("2019-07-01") - pd.Timedelta("168h")]
    cfg = DataPipelineConfig(
        target_feature="demand_mwh", period="30min", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
        calendar_features=["hour", "day_night"], exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=48,
        lookback_window_size=48 * 7, input_scaler=StandardScaler(), target_scaler=RobustScaler(), stride=48)
    ercot = d[["timestamp", "ercot_forecast_mwh"]]
    fc, wall, cpu = _timed_fit(lambda: TwigaForecaster(cfg, [LIGHTGBMConfig()]), train, val)
    out = {"train_rows": len(train),
           "lightgbm": {**_scores(fc, test, ercot, "lightgbm"), "fit_s": wall, "fit_cpu_s": cpu,
                        "fit_speedup_vs_public_196s": round(196 / wall, 1),
                        "predict_one_window_ms": _latency_ms(fc, test.iloc[:336 + 48])}}
    sn = TwigaForecaster(cfg, [SEASONALNAIVEConfig(period="7D", freq="30min")]).fit(train, val)
    out["seasonal_naive_7d"] = _scores(sn, test, ercot, "seasonal_naive")
    return out


def main():
    load = os.getloadavg()
    res = {"runs": RUNS, "cpus": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in load],
           "reference": REFERENCE, "hourly_2019": hourly(), "tutorial_shape_30min_2019H2": tutorial_shape()}
    res["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return res
