"""Flow overhead: `training_flow` as a real Prefect flow run (server already up) against the same steps called
directly (`task.fn` one after the other), and against `training_flow.fn` (plain Python, no Prefect). Median of 3
runs each, interleaved, on one year of hourly ERCOT data with a 200-tree LightGBM and a seasonal naive; every run
fits, evaluates, saves a checkpoint and tracks to MLflow (SQLite) including the pyfunc model. Goal: ratio <= 1.3."""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _pipeline_helpers import make_forecaster, prefect_env  # noqa: E402

prefect_env()


def _direct(fc, data_path, uri):
    "The flow's steps, called one after the other as plain functions."
    from twiga.pipeline.tasks import (
        evaluate_model,
        fit_forecaster,
        load_data,
        metrics_summary,
        save_checkpoint,
        track_training,
    )
    train, test = load_data.fn(data_path=data_path, test_size=0.2)
    fc = fit_forecaster.fn(forecaster=fc, train_df=train)
    preds, met = evaluate_model.fn(forecaster=fc, test_df=test, history_df=train)
    ckpt = save_checkpoint.fn(forecaster=fc, metrics=metrics_summary(met))
    return track_training.fn(forecaster=fc, train_df=train, test_df=test, predictions_df=preds, metrics_df=met,
                             experiment="bench-direct", data_path=data_path, checkpoint_path=ckpt, tracking_uri=uri)


def main(n=3) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    from twiga.core.utils import configure
    from twiga.datasets import load_ercot
    from twiga.pipeline import training_flow
    configure("WARNING")
    times = {"direct": [], "flow": [], "flow_fn": []}
    with tempfile.TemporaryDirectory() as d, prefect_test_harness(server_startup_timeout=120):
        data_path = str(Path(d) / "ercot.parquet")
        data = load_ercot("2018-07-01", "2019-07-01")
        data.to_parquet(data_path, index=False)
        uri = f"sqlite:///{d}/mlflow.db"
        new = lambda k, i: make_forecaster(Path(d) / f"ck-{k}-{i}", n_estimators=200)
        _direct(new("warm", 0), data_path, uri)  # warm-up: imports, the MLflow tables, the Prefect client
        training_flow(forecaster=new("warm", 1), data_path=data_path, experiment="bench-warm", tracking_uri=uri)
        for i in range(n):
            for kind in ("direct", "flow", "flow_fn"):
                fc, t0 = new(kind, i), time.perf_counter()
                if kind == "direct": _direct(fc, data_path, uri)
                elif kind == "flow":
                    training_flow(forecaster=fc, data_path=data_path, experiment="bench-flow", tracking_uri=uri)
                else: training_flow.fn(forecaster=fc, data_path=data_path, experiment="bench-flow-fn", tracking_uri=uri)
                times[kind].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"rows": len(data), "runs": n, "direct_s": round(med["direct"], 2),
            "training_flow_prefect_s": round(med["flow"], 2), "training_flow_fn_s": round(med["flow_fn"], 2),
            "ratio_flow_vs_direct": round(med["flow"] / med["direct"], 3),
            "ratio_flow_fn_vs_direct": round(med["flow_fn"] / med["direct"], 3), "goal_ratio": 1.3,
            "all_s": {k: [round(x, 2) for x in v] for k, v in times.items()}, "load_average": os.getloadavg()}
