"""`TwigaTracker.log_model` time: explicit pinned pip requirements (the default) against MLflow inferring them
(the baseline, which loads the model in a subprocess), medians of 3 runs each into one SQLite store, same process.

Model: ERCOT 2019-01..03 hourly, horizon 24, lookback 168, seasonal naive + LightGBM (100 trees), sample input 500 rows.
"""
import os
import statistics
import tempfile
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def _forecaster():
    from sklearn.preprocessing import StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.models.ml import LIGHTGBMConfig

    df = load_ercot("2019-01-01", "2019-04-01")
    data = DataPipelineConfig(target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE,
                              longitude=ERCOT_LONGITUDE, calendar_features=["hour", "day_night"],
                              exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=24,
                              lookback_window_size=168, input_scaler=StandardScaler())
    fc = TwigaForecaster(data_params=data,
                         model_params=[SEASONALNAIVEConfig(period="1D", freq="1h"), LIGHTGBMConfig(n_estimators=100)])
    return fc.fit(df), df


def main(n: int = 3) -> dict:
    from twiga.tracking import TwigaTracker

    fc, df = _forecaster()
    sample = df.head(500)
    times = {"explicit": [], "inferred": []}
    with tempfile.TemporaryDirectory() as d:
        uri = f"sqlite:///{d}/mlflow.db"
        with TwigaTracker("bench", tracking_uri=uri) as tracker:  # warm-up: store tables, imports, first pickling
            tracker.log_model(fc, sample_input=sample, name="warmup")
        for _ in range(n):
            for kind, reqs in (("explicit", None), ("inferred", "infer")):
                with TwigaTracker("bench", tracking_uri=uri) as tracker:
                    t0 = time.perf_counter()
                    tracker.log_model(fc, sample_input=sample, pip_requirements=reqs)
                    times[kind].append(time.perf_counter() - t0)
    explicit, inferred = statistics.median(times["explicit"]), statistics.median(times["inferred"])
    return {"log_model_explicit_requirements_s": round(explicit, 3),
            "log_model_inferred_requirements_s": round(inferred, 3),
            "inferred_over_explicit": round(inferred / explicit, 2),
            "runs_each": n, "all_times_s": {k: [round(t, 3) for t in v] for k, v in times.items()}}
