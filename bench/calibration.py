"""Prediction intervals on ERCOT 2019 (issue 16): empirical coverage and Winkler score, new method beside the old.

Run: `python -m bench calibration` (results to bench/results/calibration.json).

Rolling day-ahead forecasts (horizon 24, a week of history, one forecast a day at midnight UTC) over each quarter
of 2019, from forecasters fitted before the quarter starts: `TRAIN_DAYS` of training data, then `VAL_DAYS` of
validation data, then the quarter. The whole year pools the four quarters' forecasts. Nominal coverages 0.8, 0.9,
0.95, for LightGBM, the weekly seasonal naive and their mean ensemble, scored by every method on the same points:

- `scaled_adaptive` (twiga now, as served): scaled split-conformal intervals calibrated on the last two thirds of the
  validation frame (the first third early-stops LightGBM), updated by the adaptive state with each day's actual
  values (`evaluate_point_forecast(adaptive=True)`).
- `scaled`: the same calibrated intervals, never updated (`adaptive=False`).
- `per_step_offsets` (twiga before): per-step offsets (`conformal_offsets`) from residuals on the whole validation
  frame, which LightGBM also early-stopped on; its own forecasters (fitted that way, `calibration_df=val_df`).
- `mapie_absolute`, `mapie_gamma`: MAPIE's `SplitConformalRegressor` (prefit, on the model's forecasts) calibrated
  on the same calibration forecasts as `scaled`, with the absolute residual and the residual relative to the
  forecast ("gamma") as conformity scores: a library reference, not adaptive.

Size: `TWIGA_BENCH_CALIBRATION_QUARTERS` (default "1,2,3,4"), `TWIGA_BENCH_CALIBRATION_TRAIN_DAYS` (730),
`TWIGA_BENCH_CALIBRATION_VAL_DAYS` (90). Weather is a reanalysis (perfect weather): errors, and so the intervals,
are smaller than in real operation. Coverage is not a timing: a shared machine changes only the run time.
"""
import os
import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import RobustScaler, StandardScaler

from twiga import TwigaForecaster
from twiga.core.config import DataPipelineConfig
from twiga.core.metrics import interval_metrics
from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
from twiga.forecaster.intervals import conformal_offsets
from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
from twiga.models.ml import LIGHTGBMConfig

NOMINAL = (0.8, 0.9, 0.95)
QUARTERS = [int(q) for q in os.environ.get("TWIGA_BENCH_CALIBRATION_QUARTERS", "1,2,3,4").split(",")]
TRAIN_DAYS = int(os.environ.get("TWIGA_BENCH_CALIBRATION_TRAIN_DAYS", "730"))
VAL_DAYS = int(os.environ.get("TWIGA_BENCH_CALIBRATION_VAL_DAYS", "90"))
TOLERANCE = 0.03  # the target: every coverage within 3 points of nominal
METHODS = ("scaled_adaptive", "scaled", "per_step_offsets", "mapie_absolute", "mapie_gamma")
CONFIG = DataPipelineConfig(
    target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
    calendar_features=["hour", "dayofweek", "dayofyear", "us_holiday", "day_night"], timezone="America/Chicago",
    exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=24, lookback_window_size=168,
    input_scaler=StandardScaler(), target_scaler=RobustScaler(), stride=24)


def _models(): return [LIGHTGBMConfig(), SEASONALNAIVEConfig(period="7D", freq="1h")]


class _Forecasts(RegressorMixin, BaseEstimator):
    "A prefit 'regressor' whose prediction is its input's first column: a model's forecast, for MAPIE."
    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def predict(self, X): return np.asarray(X, "float64")[:, 0]


def _mapie(fc, frame, score):
    "MAPIE split-conformal bounds `{nominal: (lower, upper)}` of `frame`'s forecasts, calibrated as `fc`'s intervals."
    from mapie.regression import SplitConformalRegressor
    cal, out = fc.calibration_, {}
    for name, rows in frame.groupby("model", sort=False):
        pred = cal.pred[name] if name in cal.pred else np.mean([cal.pred[m] for m in cal.pred], axis=0)
        ok = ~np.isnan(cal.actual) & ~np.isnan(pred)
        m = SplitConformalRegressor(_Forecasts().fit(None), confidence_level=list(NOMINAL), conformity_score=score,
                                    prefit=True).conformalize(pred[ok][:, None], cal.actual[ok])
        _, iv = m.predict_interval(rows[["value"]].to_numpy("float64"))
        out[name] = (rows.index, iv)
    return {c: (np.concatenate([iv[:, 0, k] for _, iv in out.values()]),
                np.concatenate([iv[:, 1, k] for _, iv in out.values()]),
                np.concatenate([ix for ix, _ in out.values()])) for k, c in enumerate(NOMINAL)}


def _quarter(q: int, d: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    "Every method's bounds on quarter `q` of 2019: one row per point, model, nominal and method; and fit facts."
    start = pd.Timestamp(f"2019-{3 * q - 2:02d}-01", tz="UTC")
    end = start + pd.DateOffset(months=3)
    t = d["timestamp"]
    val_start, train_start = start - pd.Timedelta(days=VAL_DAYS), start - pd.Timedelta(days=VAL_DAYS + TRAIN_DAYS)
    train, val = d[(t >= train_start) & (t < val_start)], d[(t >= val_start) & (t < start)]
    test = d[(t >= start - pd.Timedelta("168h")) & (t < end)]
    t0 = time.perf_counter()
    new = TwigaForecaster(CONFIG, _models()).fit(train, val)
    old = TwigaForecaster(CONFIG, _models()).fit(train, val, calibration_df=val)  # the old way: ES and calibration
    fit_s = time.perf_counter() - t0
    parts = []
    for c in NOMINAL:
        for method, adaptive in (("scaled_adaptive", True), ("scaled", False)):
            p, _ = new.evaluate_point_forecast(test, "mean", c, adaptive=adaptive)
            parts.append(p.assign(nominal=c, method=method))
        p, _ = old.evaluate_point_forecast(test, "mean", c, adaptive=False)
        for name in p["model"].unique():
            lo, hi = conformal_offsets(old.residuals(name, "mean"), c)
            rows = p["model"] == name
            steps = p.loc[rows, "step"].to_numpy() - 1
            p.loc[rows, "lower"] = p.loc[rows, "value"].to_numpy() + lo[steps, 0]
            p.loc[rows, "upper"] = p.loc[rows, "value"].to_numpy() + hi[steps, 0]
        parts.append(p.assign(nominal=c, method="per_step_offsets"))
    base, _ = new.evaluate_point_forecast(test, "mean", 0.9, adaptive=False)
    for score in ("absolute", "gamma"):
        for c, (lo, hi, ix) in _mapie(new, base, score).items():
            p = base.copy()
            p.loc[ix, "lower"], p.loc[ix, "upper"] = lo, hi
            parts.append(p.assign(nominal=c, method=f"mapie_{score}"))
    facts = {"train": [str(train_start), str(val_start)], "validation": [str(val_start), str(start)],
             "test": [str(start), str(end)], "fit_s_both": round(fit_s, 1),
             "calibration": {"scaled": new.interval_facts()["calibration"],
                             "per_step_offsets": {"source": "the whole validation frame (also early stopping)",
                                                  "n_windows": old.calibration_.n_windows}},
             "lightgbm_boosting_rounds": {"scaled": new.model["lightgbm"].best_iterations_[0],
                                          "per_step_offsets": old.model["lightgbm"].best_iterations_[0]}}
    return pd.concat(parts, ignore_index=True).assign(period=f"2019Q{q}"), facts


def _scores(points: pd.DataFrame) -> dict:
    "{period: {model: {nominal: {method: coverage, winkler, width, n}}}}."
    out = {}
    for (period, model, c, method), g in points.groupby(["period", "model", "nominal", "method"], sort=False):
        m = interval_metrics(g["actual"], g["lower"], g["upper"], c)
        out.setdefault(period, {}).setdefault(model, {}).setdefault(str(c), {})[method] = {
            "coverage": round(m["coverage"], 4), "winkler": round(m["winkler"], 1), "width": round(m["width"], 1),
            "n": int(g["actual"].notna().sum())}
    return out


def _verdict(scores: dict) -> dict:
    "The issue's targets, cell by cell: the new method within 3 points, and its Winkler vs the old where that is."
    cells, misses, worse = 0, [], []
    for period, models in scores.items():
        for model, levels in models.items():
            for c, m in levels.items():
                new, old, nominal = m["scaled_adaptive"], m["per_step_offsets"], float(c)
                cells += 1
                where = f"{period} {model} {c}"
                if abs(new["coverage"] - nominal) > TOLERANCE: misses.append(f"{where}: {new['coverage']:.3f}")
                if abs(old["coverage"] - nominal) <= TOLERANCE and new["winkler"] > old["winkler"]:
                    worse.append(f"{where}: {new['winkler']:.0f} > {old['winkler']:.0f}")
    coverage_in = {meth: sum(abs(m[meth]["coverage"] - float(c)) <= TOLERANCE for ms in scores.values()
                             for levels in ms.values() for c, m in levels.items()) for meth in METHODS}
    return {"cells": cells, "within_3_points": coverage_in, "scaled_adaptive_outside_3_points": misses,
            "scaled_adaptive_winkler_worse_where_old_within_3_points": worse}


def main():
    d = load_ercot()
    t0 = time.perf_counter()
    points, facts = [], {}
    for q in QUARTERS:
        p, f = _quarter(q, d)
        points.append(p)
        facts[f"2019Q{q}"] = f
        print(f"quarter {q}: {f['fit_s_both']} s of fitting", flush=True)
    points = pd.concat(points, ignore_index=True)
    if sorted(QUARTERS) == [1, 2, 3, 4]: points = pd.concat([points, points.assign(period="2019")], ignore_index=True)
    scores = _scores(points)
    return {"setup": {"quarters": QUARTERS, "train_days": TRAIN_DAYS, "val_days": VAL_DAYS, "nominal": list(NOMINAL),
                      "methods": list(METHODS), "horizon": 24, "stride": 24, "tolerance": TOLERANCE,
                      "load_avg": os.getloadavg(), "total_s": round(time.perf_counter() - t0, 1)},
            "verdict": _verdict(scores), "scores": scores, "fits": facts}
