"""Checkpoint save/load time and size of the fitted ERCOT LightGBM forecaster.

Fits `TwigaForecaster` with the default `LIGHTGBMConfig` on hourly ERCOT demand (train 2018, validation
2019-01..03 for early stopping and interval calibration; horizon 24, lookback 168), then measures, as medians of
5 runs: `CheckpointStore.save` / `load` of the fitted forecaster, the forecaster's own `on_save_checkpoint` /
`on_load_checkpoint` (which go through the store), and, as the baseline in the same run, a plain
`pickle.dump` / `pickle.load` of the same object to a file (no hash, no fsync, no manifest). The public library's
figures on this machine (issue 4) are reported beside them; they are for its own 30-min LightGBM model, and were
measured on a quiet machine: compare absolute times only when `load_average_1min_at_end` is low, otherwise read
the ratios against plain pickle, which share the run's conditions. The fit takes a few CPU-minutes.
"""
import hashlib
import os
import pickle
import tempfile
import time
from pathlib import Path

from bench._timing import median_time

PUBLIC_LIBRARY = {"save_s": 0.21, "load_s": 0.09, "size_mb": 8.2,
                  "note": "public library, its 30-min LightGBM model (MLVS-PT), on this machine (issue 4)"}
N_RUNS = 5


def _median_time(fn, n=N_RUNS): return median_time(fn, n)


def _fit_forecaster():
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot, split_by_time
    from twiga.models.ml import LIGHTGBMConfig

    data_config = DataPipelineConfig(
        target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
        calendar_features=["hour", "dayofweek", "dayofyear", "day_night"],
        exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=24, lookback_window_size=168,
        input_scaler=StandardScaler(), target_scaler=RobustScaler())
    train_df, val_df, _ = split_by_time(load_ercot(start="2018-01-01", end="2019-05-01"),
                                        val_start="2019-01-01", test_start="2019-04-01")

    def make(path=None):
        return TwigaForecaster(data_params=data_config, model_params=[LIGHTGBMConfig()],
                               train_params=ForecasterConfig(checkpoints_path=str(path) if path else None))

    t0 = time.perf_counter()
    fc = make().fit(train_df, val_df)
    return fc, make, time.perf_counter() - t0, len(train_df)


def main():
    from twiga.checkpoints import CheckpointStore

    fc, make, fit_s, n_train = _fit_forecaster()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)

        def plain_save(i):
            with open(d / f"plain_{i}.pkl", "wb") as f:
                pickle.dump(fc, f, protocol=5)

        def plain_load(i):
            with open(d / "plain_0.pkl", "rb") as f:
                return pickle.load(f)

        plain_save_s, _ = _median_time(plain_save)
        plain_load_s, _ = _median_time(plain_load)
        store = CheckpointStore(d / "store")
        configs = {"model": fc.model_params[0].model_dump(), "data": fc.data_params.model_dump()}
        save_s, info = _median_time(lambda i: store.save(fc, model_type="lightgbm", configs=configs,
                                                         data_fingerprint=fc.training_fingerprint_))
        load_s, (loaded, _) = _median_time(lambda i: store.load())
        assert loaded.is_fitted and loaded.training_fingerprint_ == fc.training_fingerprint_
        data = info.path.read_bytes()
        hash_s, _ = _median_time(lambda i: hashlib.sha256(data).hexdigest())
        hooks = {}
        if hasattr(fc, "on_save_checkpoint") and hasattr(fc, "on_load_checkpoint"):
            hook_dir = d / "hooks"
            hook_save_s, _ = _median_time(lambda i: fc.on_save_checkpoint(path=str(hook_dir)))
            hook_load_s, _ = _median_time(lambda i: make(hook_dir).on_load_checkpoint(path=str(hook_dir)))
            hook_info = CheckpointStore(hook_dir).current()
            hooks = {"on_save_checkpoint_s": round(hook_save_s, 4), "on_load_checkpoint_s": round(hook_load_s, 4),
                     "hook_checkpoint_size_mb": round(hook_info.size_bytes / 1e6, 2),
                     "on_save_ratio_vs_public": round(hook_save_s / PUBLIC_LIBRARY["save_s"], 2),
                     "on_load_ratio_vs_public": round(hook_load_s / PUBLIC_LIBRARY["load_s"], 2)}
    boosters = [b for m in fc.models_.values() for b in getattr(m, "boosters_", [])]
    return {
        "model": "TwigaForecaster + LIGHTGBMConfig() defaults, ERCOT hourly, horizon 24, lookback 168",
        "train_rows": n_train, "fit_s": round(fit_s, 1),
        "lightgbm_boosters": len(boosters), "lightgbm_trees": sum(b.num_trees() for b in boosters),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1), "cpu_count": os.cpu_count(),
        "store_save_s": round(save_s, 4), "store_load_s": round(load_s, 4), "size_mb": round(info.size_bytes / 1e6, 2),
        "plain_pickle_save_s": round(plain_save_s, 4), "plain_pickle_load_s": round(plain_load_s, 4),
        "sha256_of_file_s": round(hash_s, 4),
        "save_ratio_vs_plain_pickle": round(save_s / plain_save_s, 2),
        "load_ratio_vs_plain_pickle": round(load_s / plain_load_s, 2),
        "save_ratio_vs_public": round(save_s / PUBLIC_LIBRARY["save_s"], 2),
        "load_ratio_vs_public": round(load_s / PUBLIC_LIBRARY["load_s"], 2),
        "size_ratio_vs_public": round(info.size_bytes / 1e6 / PUBLIC_LIBRARY["size_mb"], 2),
        **hooks,
        "hooks_measured": bool(hooks),
        "public_library": PUBLIC_LIBRARY,
        "runs": N_RUNS,
    }
