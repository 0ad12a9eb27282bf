"""twiga against mlforecast (Nixtla), side by side on the same inputs: ERCOT 2019 day-ahead forecasts (issue 19).

Run: `python -m bench peer` (results in `bench/results/peer.json`). Both systems get the same rows and the same inputs:
- history: the lookback window of `LOOKBACK` hours (twiga's window; mlforecast's lags and rolling means reach at
  most `LOOKBACK` hours back);
- calendar: the config's calendar features, computed by twiga's `calendar_features` in local time and handed to
  mlforecast as exogenous columns, so both read the same values;
- exogenous: the config's weather columns at the target hours (measured weather: see below);
- data: trained on 2015-07..2018-09 with 2018-10..12 for validation (twiga: early stopping and interval
  calibration; mlforecast: trained on both, its conformal windows are the last days of 2018);
- origins: every day of 2019 at 00:00 UTC, 24 hours ahead, each from the history before it;
- models: twiga's recommended configuration (`twiga_models`: an average of four L1 LightGBM boosters); mlforecast
  one LightGBM with the parameters of twiga's first booster and as many rounds as it early-stopped at, recursive
  (set `TWIGA_BENCH_PEER_DIRECT=1` to add the direct strategy, one model per step: slow). mlforecast refuses
  missing targets, so its copy of the history has the 48 missing hours interpolated (scoring skips them for both).
Scored on the same hours: MAE, RMSE, 90 % interval coverage, fit seconds, and the median milliseconds of one
one-window point forecast (and of one with its 90 % interval). ERCOT's own day-ahead forecast is scored on the
same hours. Our weather is a reanalysis (measured, not forecast): the operator had weather forecasts, so the
comparison with it flatters both models.
Timings are medians of `RUNS` fits on a machine that may be shared (see `load_avg`).
"""
import os
import statistics
import time

import numpy as np
import pandas as pd
from sklearn.preprocessing import RobustScaler, StandardScaler

from bench._timing import timings
from twiga import TwigaForecaster
from twiga.core.config import DataPipelineConfig
from twiga.core.features import calendar_features
from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
from twiga.models.ml import LIGHTGBMConfig

RUNS = int(os.environ.get("TWIGA_BENCH_RUNS", "1"))
PREDICT_CALLS = int(os.environ.get("TWIGA_BENCH_PREDICT_CALLS", "50"))
VARIANTS = os.environ.get("TWIGA_BENCH_PEER_VARIANTS", "1") == "1"  # twiga's earlier configs (and the fit's note)
DIRECT = os.environ.get("TWIGA_BENCH_PEER_DIRECT", "0") == "1"  # also mlforecast direct (24 models; slow)
LOOKBACK, HORIZON, COVERAGE = 168, 24, 0.9
TRAIN_END, VAL_END, TEST_END = "2018-10-01", "2019-01-01", "2020-01-01"


def _utc(s): return pd.Timestamp(s, tz="UTC")


def data_config(**kw) -> DataPipelineConfig:
    "The data config both systems read their inputs from (twiga's recommended ERCOT configuration)."
    base = dict(target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
                calendar_features=["hour", "dayofweek", "dayofyear", "day_night", "holiday", "holiday_adjacent"],
                holiday_country="US", holiday_subdiv="TX", timezone="America/Chicago",
                exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=HORIZON,
                lookback_window_size=LOOKBACK, input_scaler=StandardScaler(), target_scaler=RobustScaler(),
                stride=HORIZON)
    return DataPipelineConfig(**{**base, **kw})


FAST = dict(learning_rate=0.1, n_estimators=2000, early_stopping_rounds=200)  # early stopping ends it near 1,000


def twiga_models() -> list[LIGHTGBMConfig]:
    """The model configs of twiga's recommended configuration: four L1 boosters, averaged. Two seeds (each draws
    other training samples) times two lag sets: the same hour on the last two days and last week (the default), and
    the same hour on each of the last seven days (`day_lags=6`, plus the week lag). L1 only: MAE is minimised by the
    median, and an L2 (mean) booster was the weakest member (939 MWh against 910-917 for the L1 ones)."""
    return [LIGHTGBMConfig(seed=seed, day_lags=lags, **FAST) for lags in (2, 6) for seed in (42, 7)]


def twiga_fast_models() -> list[LIGHTGBMConfig]:
    "twiga's fast configuration: one LightGBM booster, lr 0.1, early stopping after 50 rounds without progress."
    return [LIGHTGBMConfig(learning_rate=0.1, n_estimators=2000)]


def _splits(d: pd.DataFrame):
    t = d["timestamp"]
    train, val = d[t < _utc(TRAIN_END)], d[(t >= _utc(TRAIN_END)) & (t < _utc(VAL_END))]
    test = d[(t >= _utc(VAL_END) - pd.Timedelta(hours=LOOKBACK)) & (t < _utc(TEST_END))]
    return train, val, test


def _scores(pred: pd.DataFrame) -> dict:
    "MAE, RMSE and coverage of a frame with `timestamp`, `value`, `lower`, `upper`, `actual`."
    p = pred.dropna(subset=["actual"])
    err = p["value"] - p["actual"]
    inside = (p["actual"] >= p["lower"]) & (p["actual"] <= p["upper"])
    return {"mae": round(float(err.abs().mean()), 1), "rmse": round(float(np.sqrt((err ** 2).mean())), 1),
            "coverage_90": round(float(inside.mean()), 4),
            "mean_interval_width": round(float((p["upper"] - p["lower"]).mean()), 1), "n_points": len(p)}


def run_twiga(d: pd.DataFrame, cfg: DataPipelineConfig, models: list) -> tuple[dict, pd.DataFrame]:
    "Fit twiga `RUNS` times, forecast every day of 2019, time one one-window predict call."
    train, val, test = _splits(d)
    wall, cpu, fc = timings(lambda fc: fc.fit(train, val), RUNS, setup=lambda _: TwigaForecaster(cfg, models))
    ens = "mean" if len(models) > 1 else None
    allp, _ = fc.evaluate_point_forecast(test, ensemble_strategy=ens, coverage=COVERAGE)
    name = "ensemble" if ens else fc.model_names[0]
    pred = allp[allp["model"] == name][["timestamp", "value", "lower", "upper", "actual"]]
    each = {m: _scores(p)["mae"] for m, p in allp.groupby("model") if m != name}
    window = test.iloc[:LOOKBACK + HORIZON]
    fc.predict(window)
    ms, cpu_ms, _ = timings(lambda _: fc.predict(window), PREDICT_CALLS)  # every model's point forecast
    ims = timings(lambda _: fc.predict_interval(window, coverage=COVERAGE), PREDICT_CALLS)[0]
    out = {**_scores(pred), "mae_of_each_model": each,
           "boosting_rounds": {n: m.best_iterations_[0] for n, m in fc.model.items()},
           "fit_s": round(statistics.median(wall), 2), "fit_cpu_s": round(statistics.median(cpu), 2),
           "predict_one_window_ms": round(1000 * statistics.median(ms), 2),
           "predict_one_window_cpu_ms": round(1000 * statistics.median(cpu_ms), 2),
           "predict_interval_one_window_ms": round(1000 * statistics.median(ims), 2),
           "config": {"data": cfg.model_dump(mode="json"), "models": [m.model_dump(mode="json") for m in models],
                      "ensemble": ens}}
    return out, pred


def _mlf_frame(d: pd.DataFrame, cfg: DataPipelineConfig) -> pd.DataFrame:
    "The long frame mlforecast reads: unique_id, ds, y, the calendar (twiga's values) and the weather columns."
    times = pd.DatetimeIndex(d["timestamp"])
    y = d[cfg.target_feature].interpolate(limit_direction="both")  # mlforecast refuses missing targets (48 hours)
    cal = pd.DataFrame(calendar_features(times, cfg), columns=cfg.calendar_features, index=d.index)
    ids = pd.DataFrame({"unique_id": "ercot", "ds": times.tz_localize(None), "y": y, "actual": d[cfg.target_feature]},
                       index=d.index)
    return pd.concat([ids, cal, d[list(cfg.exogenous_features)]], axis=1)


def mlforecast_spec(cfg: DataPipelineConfig, lgbm: LIGHTGBMConfig, rounds: int) -> dict:
    "mlforecast's configuration: lags and rolling means within the lookback, LightGBM with twiga's parameters."
    day = 24
    return {"lags": list(range(1, day + 1)) + [day * k for k in range(2, LOOKBACK // day + 1)],
            "rolling_means_at_lag_1": [day, LOOKBACK], "freq": "h",
            "lightgbm": dict(objective=lgbm.objective, n_estimators=rounds, learning_rate=lgbm.learning_rate,
                             num_leaves=lgbm.num_leaves, min_child_samples=lgbm.min_child_samples,
                             subsample=lgbm.subsample, subsample_freq=1, colsample_bytree=lgbm.colsample_bytree,
                             reg_lambda=lgbm.reg_lambda, n_jobs=lgbm.n_jobs, random_state=lgbm.seed, verbose=-1),
            "exogenous": list(cfg.calendar_features) + list(cfg.exogenous_features),
            "prediction_intervals": {"n_windows": 4, "h": HORIZON, "method": "conformal_distribution"}}


def run_mlforecast(d: pd.DataFrame, cfg: DataPipelineConfig, lgbm: LIGHTGBMConfig, rounds: int,
                   direct: bool = False) -> tuple[dict, pd.DataFrame]:
    "Fit mlforecast (LightGBM with `lgbm`'s parameters, `rounds` rounds), forecast every day of 2019 from its past."
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.utils import PredictionIntervals
    spec = mlforecast_spec(cfg, lgbm, rounds)
    train, val, test = _splits(d)
    fit_df = _mlf_frame(pd.concat([train, val]), cfg).drop(columns="actual")
    test_df = _mlf_frame(test, cfg)
    pi = spec["prediction_intervals"]

    def make():
        rolling = {1: [RollingMean(w) for w in spec["rolling_means_at_lag_1"]]}
        return MLForecast(models={"lightgbm": lgb.LGBMRegressor(**spec["lightgbm"])}, freq=spec["freq"],
                          lags=spec["lags"], lag_transforms=rolling)

    def fit(m):
        return m.fit(fit_df, static_features=[], max_horizon=HORIZON if direct else None,
                     prediction_intervals=PredictionIntervals(**pi))
    wall, cpu, m = timings(fit, RUNS, setup=lambda _: make())
    level = int(round(100 * COVERAGE))
    frames, ms, cpu_ms, pms = [], [], [], []
    for o in range(LOOKBACK, len(test_df) - HORIZON + 1, HORIZON):  # fitted up to the first origin; then day by day
        fut = test_df.iloc[o:o + HORIZON]
        t0, c0 = time.perf_counter(), time.process_time()
        f = m.predict(HORIZON, X_df=fut.drop(columns=["y", "actual"]), level=[level])
        ms.append(1000 * (time.perf_counter() - t0)); cpu_ms.append(1000 * (time.process_time() - c0))
        frames.append(f.merge(fut[["ds", "actual"]], on="ds", how="left"))
        if len(pms) < PREDICT_CALLS:  # the point forecast alone, as timed for twiga
            t0 = time.perf_counter(); m.predict(HORIZON, X_df=fut.drop(columns=["y", "actual"]))
            pms.append(1000 * (time.perf_counter() - t0))
        m.update(fut[["unique_id", "ds", "y"]])  # the day's actual values become history for the next origin
    f = pd.concat(frames, ignore_index=True)
    pred = pd.DataFrame({"timestamp": f["ds"].dt.tz_localize("UTC"), "value": f["lightgbm"],
                         "lower": f[f"lightgbm-lo-{level}"], "upper": f[f"lightgbm-hi-{level}"], "actual": f["actual"]})
    out = {**_scores(pred), "fit_s": round(statistics.median(wall), 2), "fit_cpu_s": round(statistics.median(cpu), 2),
           "predict_one_window_ms": round(statistics.median(pms), 2),
           "predict_interval_one_window_ms": round(statistics.median(ms), 2),
           "predict_interval_one_window_cpu_ms": round(statistics.median(cpu_ms), 2),
           "config": {**spec, "strategy": "direct (one model per step)" if direct else "recursive"}}
    return out, pred


def operator(d: pd.DataFrame, hours: pd.Series) -> dict:
    "ERCOT's published day-ahead forecast scored on the given hours."
    e = d[d["timestamp"].isin(hours)].dropna(subset=["ercot_forecast_mwh", "demand_mwh"])
    err = e["ercot_forecast_mwh"] - e["demand_mwh"]
    return {"mae": round(float(err.abs().mean()), 1), "rmse": round(float(np.sqrt((err ** 2).mean())), 1),
            "n_points": len(e)}


def variants(d: pd.DataFrame) -> dict:
    "MAE of twiga's default LightGBM with the tutorial's calendar, with `dayofweek` added, and the earlier best config."
    train, val, test = _splits(d)
    configs = {"tutorial calendar (hour, day_night), UTC": dict(calendar_features=["hour", "day_night"], timezone=None),
               "tutorial calendar + dayofweek, UTC": dict(calendar_features=["hour", "day_night", "dayofweek"],
                                                          timezone=None),
               "earlier best (bench core: + dayofyear, us_holiday, local time)": dict(
                   calendar_features=["hour", "dayofweek", "dayofyear", "us_holiday", "day_night"])}
    out = {}
    for name, kw in configs.items():
        pred, _ = TwigaForecaster(data_config(**kw), LIGHTGBMConfig()).fit(train, val).evaluate_point_forecast(
            test, ensemble_strategy=None, coverage=COVERAGE)
        out[name] = _scores(pred)["mae"]
    return out


def main():
    res = {"runs": RUNS, "cpus": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
           "weather": "reanalysis (measured) at the target hours, for both systems; ERCOT had weather forecasts"}
    d, cfg = load_ercot(), data_config()
    models = twiga_models()
    tw, tp = run_twiga(d, cfg, models)
    rounds = tw["boosting_rounds"][next(iter(tw["boosting_rounds"]))]  # mlforecast: as many rounds as twiga's first
    ml, mp = run_mlforecast(d, cfg, models[0], rounds)
    fast, fp = run_twiga(d, cfg, twiga_fast_models())
    systems = {"twiga": tw, "twiga_fast": fast, "mlforecast_recursive": ml}
    preds = {"twiga": tp, "twiga_fast": fp, "mlforecast_recursive": mp}
    if DIRECT:
        systems["mlforecast_direct"], preds["mlforecast_direct"] = run_mlforecast(d, cfg, models[0], rounds, True)
    common = set.intersection(*(set(p["timestamp"]) for p in preds.values()))
    for k, p in preds.items():  # every system scored on the hours all of them forecast
        systems[k]["mae_common_hours"] = _scores(p[p["timestamp"].isin(common)])["mae"]
    res["systems"] = systems
    res["ercot_day_ahead"] = operator(d, pd.Series(sorted(common)))
    if VARIANTS: res["twiga_default_lightgbm_mae_by_calendar"] = variants(d)
    res["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"{'system':<24}{'MAE':>8}{'RMSE':>8}{'cov90':>8}{'fit s':>8}{'pred ms':>9}")
    for k, v in systems.items():
        print(f"{k:<24}{v['mae']:>8.0f}{v['rmse']:>8.0f}{v['coverage_90']:>8.3f}{v['fit_s']:>8.1f}"
              f"{v['predict_one_window_ms']:>9.1f}")
    e = res["ercot_day_ahead"]
    print(f"{'ercot_day_ahead':<24}{e['mae']:>8.0f}{e['rmse']:>8.0f}")
    return res
