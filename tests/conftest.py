"""Fixtures shared by the test modules: one temporary Prefect server for every real flow run of the session, and
the set-up of the user's MLOps tutorial on the bundled data. And a check that the session wrote nothing into the
working tree: a test that forgets to pass a directory would fall back to a default relative one (`reports/`,
`checkpoints/`, `mlruns/`) in the checkout."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from _pipeline_helpers import prefect_env

prefect_env()


@pytest.fixture(scope="session")
def prefect_server():
    """The Prefect server of every real flow run of the session: the one `./dev test` runs for the tutorials and the
    tests (PREFECT_API_URL, scripts/prefect_server.py), else a temporary one (SQLite in a temp dir), stopped at the
    end."""
    if os.environ.get("PREFECT_API_URL"):
        from prefect import get_client
        with get_client(sync_client=True) as client:
            assert client.api_healthcheck() is None, f"no Prefect server answers at {client.api_url}"
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.testing.utilities import prefect_test_harness
    startup_s = int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    with prefect_test_harness(server_startup_timeout=startup_s):
        proc = SubprocessASGIServer._instances[None].server_process
        yield
    assert proc.poll() is not None, "the temporary Prefect server is still running"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """Sections 1-3 of the user's MLOps tutorial (nbs/tutorials/02_mlops.ipynb), on the bundled ERCOT data at the
    tutorial's shape: its `mlops_demo/` directories, its splits (the train and test ones written to
    `mlops_demo/data/`), its data and forecaster configs, its seasonal-naive config."""
    from sklearn.preprocessing import RobustScaler, StandardScaler

    from twiga.core.config import DataPipelineConfig, ForecasterConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    base = tmp_path_factory.mktemp("tutorial")
    CHECKPOINT_DIR, REPORT_DIR, DATA_DIR = (base / "mlops_demo" / d for d in ("checkpoints", "reports", "data"))
    for d in (CHECKPOINT_DIR, REPORT_DIR, DATA_DIR): d.mkdir(parents=True)
    data = load_ercot("2018-01-01", "2019-01-01", freq="30min")[["timestamp", "demand_mwh", "ghi_wm2", "temperature_c"]]
    ts = data["timestamp"]
    train_df = data[ts < "2018-07-01T00:00:00Z"].reset_index(drop=True)
    val_df = data[(ts >= "2018-07-01T00:00:00Z") & (ts < "2018-09-01T00:00:00Z")].reset_index(drop=True)
    test_df = data[ts >= "2018-09-01T00:00:00Z"].reset_index(drop=True)
    train_df.to_parquet(DATA_DIR / "train.parquet", index=False)
    test_df.to_parquet(DATA_DIR / "test.parquet", index=False)
    data_config = DataPipelineConfig(
        target_feature="demand_mwh", period="30min", latitude=ERCOT_LATITUDE, longitude=ERCOT_LONGITUDE,
        calendar_features=["hour", "day_night"], exogenous_features=["ghi_wm2", "temperature_c"], forecast_horizon=48,
        lookback_window_size=48 * 7, input_scaler=StandardScaler(), target_scaler=RobustScaler(), stride=48)
    forecaster_config = ForecasterConfig(split_freq="months", train_size=3, test_size=1,
                                         checkpoints_path=str(CHECKPOINT_DIR))
    return SimpleNamespace(base=base, CHECKPOINT_DIR=CHECKPOINT_DIR, REPORT_DIR=REPORT_DIR, DATA_DIR=DATA_DIR,
                           train_df=train_df, val_df=val_df, test_df=test_df, data_config=data_config,
                           forecaster_config=forecaster_config,
                           seasonal_config=SEASONALNAIVEConfig(period="7D", freq="30min"))


ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUTS = ("reports", "checkpoints", "mlruns", "mlartifacts", "mlflow.db", "mlops_demo")
_present_at_start = {n for n in DEFAULT_OUTPUTS if (ROOT / n).exists()}


def pytest_sessionfinish(session, exitstatus):
    new = sorted(n for n in DEFAULT_OUTPUTS if (ROOT / n).exists() and n not in _present_at_start)
    if new:
        print(f"\nFAIL: the tests wrote {new} into {ROOT}: some test used a default directory "
              "instead of a temporary one.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
