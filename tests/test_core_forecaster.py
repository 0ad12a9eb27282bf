"""Forecasting core checks too slow for the notebooks: the default LightGBM at the tutorial's shape, full pickling."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import RobustScaler, StandardScaler

from twiga import TwigaForecaster
from twiga.core.config import DataPipelineConfig, ForecasterConfig
from twiga.core.errors import InvalidInputError
from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
from twiga.models.ml import LIGHTGBMConfig


@pytest.fixture(scope="module")
def tutorial_shape():
    "ERCOT at 30 minutes, the tutorial's config, default LightGBM and the weekly seasonal naive, fitted once."
    d = load_ercot(start="2018-01-01", end="2018-08-01", freq="30min")
    t = d["timestamp"]
    june, july = pd.Timestamp("2018-06-01", tz="UTC"), pd.Timestamp("2018-07-01", tz="UTC")
    train, val, test = d[t < june], d[(t >= june) & (t < july)], d[t >= july - pd.Timedelta("7D")]
    cfg = DataPipelineConfig(target_feature="demand_mwh", period="30min", latitude=ERCOT_LATITUDE,
                             longitude=ERCOT_LONGITUDE, calendar_features=["hour", "day_night"],
                             exogenous_features=["temperature_c", "ghi_wm2"],
                             forecast_horizon=48, lookback_window_size=336, input_scaler=StandardScaler(),
                             target_scaler=RobustScaler(), stride=48)
    fc = TwigaForecaster(cfg, [LIGHTGBMConfig(), SEASONALNAIVEConfig(period="7D", freq="30min")],
                         ForecasterConfig(split_freq="months", train_size=3, test_size=1)).fit(train, val)
    return fc, test


def test_default_lightgbm_beats_seasonal_naive(tutorial_shape):
    fc, test = tutorial_shape
    pred, metrics = fc.evaluate_point_forecast(test, ensemble_strategy="mean")
    mae = metrics.groupby("model")["mae"].mean()
    assert mae["lightgbm"] < 0.5 * mae["seasonal_naive"], mae.to_dict()
    assert set(mae.index) == {"lightgbm", "seasonal_naive", "ensemble"}
    # 90 % conformal intervals calibrated on June hold most of July's values (a loose check: one month, summer)
    cov = metrics.groupby("model")["coverage"].mean()
    assert 0.7 < cov["lightgbm"] <= 1.0, cov.to_dict()
    # every window starts at lookback + i*stride of the test frame; the windows whose history holds the 24 missing
    # hours of 2018-07-01/02 are skipped and leave gaps in the numbering
    first = pred[pred["model"] == "lightgbm"].groupby("window")["timestamp"].min()
    expect = pd.DatetimeIndex(test["timestamp"]).take(336 + 48 * first.index.to_numpy())
    assert (pd.DatetimeIndex(first.to_numpy()) == expect).all()
    assert 0 in first.index and set(range(1, 9)).isdisjoint(first.index)  # window 0's history is June's: complete
    assert len(metrics.attrs["skipped_windows"]) == 8


def test_whole_forecaster_pickles(tutorial_shape):
    fc, test = tutorial_shape
    again = pickle.loads(pickle.dumps(fc))
    clean = test.iloc[1000:1800]  # after the gap of early July
    a, _ = fc.predict(clean)
    b, _ = again.predict(clean)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert again.training_fingerprint_ == fc.training_fingerprint_
    i1, i2 = fc.predict_interval(clean, 0.8), again.predict_interval(clean, 0.8)
    pd.testing.assert_frame_equal(i1, i2)


def test_nan_in_lookback_refused_but_evaluate_skips(tutorial_shape):
    fc, test = tutorial_shape
    holed = test.iloc[1000:2000].reset_index(drop=True)
    holed.loc[500, "demand_mwh"] = np.nan
    with pytest.raises(InvalidInputError, match="lookback window"):
        fc.predict(holed)
    _, m = fc.evaluate_point_forecast(holed)
    n_windows = (len(holed) - 336 - 48) // 48 + 1
    touched = [i for i in range(n_windows) if 48 * i <= 500 < 48 * i + 336]  # windows whose history holds row 500
    assert len(m.attrs["skipped_windows"]) == len(touched) > 0
    assert sorted(set(range(n_windows)) - set(m["window"])) == touched


def test_tutorial_model_column_warns_and_works(tutorial_shape):
    "The user's tutorial groups the metrics by `Model`: it works as written, with a FutureWarning naming `model`."
    fc, test = tutorial_shape
    _, metrics_df = fc.evaluate_point_forecast(test_df=test.iloc[1000:1800], ensemble_strategy="mean")
    assert "Model" not in metrics_df.columns and "model" in metrics_df.columns
    with pytest.warns(FutureWarning, match=r"`Model` is now `model`.*removed in twiga 0\.2\.0"):
        res = (
            metrics_df.groupby("Model")[["mae", "corr", "nbias", "rmse", "wmape", "smape"]]
            .mean()
            .round(2)
            .reset_index()
            .rename(columns={"mae": "MAE", "corr": "Corr", "wmape": "WMAPE", "smape": "SMAPE", "nbias": "NBIAS",
                             "rmse": "RMSE"})
        )
    assert res["model"].tolist() == ["ensemble", "lightgbm", "seasonal_naive"]
    expected = metrics_df.groupby("model")["mae"].mean().round(2)
    assert res.set_index("model")["MAE"].equals(expected.rename("MAE"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with pytest.raises(FutureWarning):  # `-W error::FutureWarning` turns the alias into an error
            metrics_df["Model"]
