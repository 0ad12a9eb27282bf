"""The training and retraining flows as real Prefect flow runs (one Prefect server for the whole session: the one
`./dev test` runs, or a `prefect_test_harness` one), with a real MLflow SQLite store, a real checkpoint store and, for
the reload, a real uvicorn serving the store on 127.0.0.1: drift triggers a retrain and a better challenger is
promoted and served; a worse challenger is not; a failing fit leaves the champion; an unreachable server is
recorded."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from _pipeline_helpers import make_forecaster, task_runs, write_slices
from _serve_helpers import free_port

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    "Data slices, a tracking store and a report dir in a temp dir; TWIGA_* pointing at them for this module."
    base = tmp_path_factory.mktemp("pipeline_flows")
    paths = write_slices(base / "data")
    mp = pytest.MonkeyPatch()
    mp.setenv("TWIGA_MLFLOW_TRACKING_URI", f"sqlite:///{base}/mlflow.db")
    mp.setenv("TWIGA_SERVE_REPORT_DIR", str(base / "reports"))
    mp.setenv("TWIGA_MODEL_CHECKPOINT_DIR", str(base / "default-checkpoints"))
    yield {"base": base, **paths}
    mp.undo()


def task_names(flow_run_id, expected: set[str], timeout=20.0) -> set[str]:
    "Names of the task runs of a flow run, once they include `expected` (or the time is up)."
    def names(runs):
        return ({r.task_key.rsplit("-", 1)[0] if r.task_key else r.name for r in runs}
                | {r.name.rsplit("-", 1)[0] for r in runs})
    return names(task_runs(flow_run_id, lambda runs: expected <= names(runs), timeout))


def champion(env, name, models=("lightgbm", "seasonal_naive"), **kw):
    "A forecaster fitted on the reference slice and saved as version 1 of its own checkpoint store."
    fc = make_forecaster(env["base"] / name / "checkpoints", models=models, **kw)
    from twiga.pipeline.tasks import read_frame
    fc.fit(read_frame(env["reference"])).on_save_checkpoint()
    return fc


def test_training_flow_is_a_real_flow_run(prefect_server, env):
    from mlflow import MlflowClient

    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline import training_flow
    from twiga.pipeline.schemas import TrainingResult
    fc = make_forecaster(env["base"] / "train" / "checkpoints")
    state = training_flow(forecaster=fc, data_path=str(env["reference"]), date_col="timestamp", train_end="2019-04-30",
                          test_start="2019-04-01", tune=False, experiment="test-train", run_name="lgbm-flow-v1",
                          return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert isinstance(result, TrainingResult) and fc.is_fitted  # fitted in place, as `TwigaForecaster.fit`
    assert result.checkpoint_version == 1 and CheckpointStore(result.checkpoint_path).current_version() == 1
    assert result.train_period == ("2019-01-01 00:00:00+00:00", "2019-04-30 23:00:00+00:00")
    assert result.n_test == 30 * 24
    assert set(result.metrics) == {"lightgbm", "seasonal_naive", "ensemble"} and result.metrics["lightgbm"]["mae"] > 0
    names = task_names(state.state_details.flow_run_id,
                       {"load_data", "fit_forecaster", "evaluate_model", "save_checkpoint", "track_training"})
    assert {"load_data", "fit_forecaster", "evaluate_model", "save_checkpoint", "track_training"} <= names, names
    client = MlflowClient(os.environ["TWIGA_MLFLOW_TRACKING_URI"])
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "lgbm-flow-v1"
    assert run.data.metrics["lightgbm.mae"] == pytest.approx(result.metrics["lightgbm"]["mae"])
    assert run.data.tags["twiga.checkpoint.version"] == "1"
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"reference-train", "reference-test"}
    assert client.search_logged_models(experiment_ids=[run.info.experiment_id])[0].source_run_id == run.info.run_id


def test_training_flow_split_that_selects_nothing_is_a_clear_error(prefect_server, env):
    from twiga.core.errors import InvalidInputError
    from twiga.pipeline import training_flow
    with pytest.raises(InvalidInputError, match="The test split selects no rows: the data runs from 2019-01-01"):
        training_flow(forecaster=make_forecaster(env["base"] / "empty"), data_path=str(env["reference"]),
                      train_end="2020-12-31", test_start="2020-01-01", track=False)


def test_drift_promotes_a_better_challenger_and_the_server_serves_it(prefect_server, env, monkeypatch):
    from _serve_helpers import Server, request
    from mlflow import MlflowClient

    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline import retraining_flow
    from twiga.pipeline.schemas import DriftSummary, RetrainingResult
    fc = champion(env, "promote")
    ckpt = fc.checkpoints_path
    monkeypatch.setenv("TWIGA_SERVE_API_KEY", "s3cret")  # the flow sends it, the server requires it
    (serve_reports := env["base"] / "promote" / "serve-reports").mkdir(parents=True)
    # polling off: the server can only learn about version 2 from the flow's POST /reload
    server_env = {"TWIGA_SERVE_API_KEY": "s3cret", "TWIGA_SERVE_RELOAD_POLL_SECONDS": "0"}
    with Server(ckpt, serve_reports, env=server_env) as srv:
        assert request(srv.port, "GET", "/health")[1]["version"] == 1
        assert request(srv.port, "POST", "/reload")[0] == 401  # no key, no reload
        state = retraining_flow(checkpoint_dir=ckpt, reference_data_path=str(env["reference"]),
                                current_data_path=str(env["current"]), drift_threshold=0.5, metric_key="mae",
                                minimize=True, experiment="test-retrain", run_name="lgbm-retrain-v1",
                                fastapi_reload_url=f"http://127.0.0.1:{srv.port}", return_state=True)
        assert state.is_completed(), state
        r = state.result()
        health = request(srv.port, "GET", "/health")[1]
    assert isinstance(r, RetrainingResult) and isinstance(r.drift_summary, DriftSummary)
    assert r.drift_summary.drift_detected and r.drift_summary.dataset_drift_score > 0.5, r.drift_summary
    assert (r.retrained, r.promoted, r.checkpoint_version, r.challenger_version) == (True, True, 2, 2), r.reason
    assert r.challenger_score < r.champion_score and r.improvement > 0
    assert (r.reload_status, r.reload_error, r.reloaded) == (200, None, True), r
    assert health["version"] == 2 and health["loaded"], health
    assert CheckpointStore(ckpt).current_version() == 2
    client = MlflowClient(os.environ["TWIGA_MLFLOW_TRACKING_URI"])
    mv = client.get_model_version_by_alias("twiga-forecaster", "champion")
    assert int(mv.version) == r.registered_version and mv.run_id == r.mlflow_run_id
    run = client.get_run(r.mlflow_run_id)
    assert (run.data.tags["twiga.promoted"], run.data.tags["twiga.reload_status"]) == ("True", "200")
    assert run.data.metrics["challenger_score"] == pytest.approx(r.challenger_score)
    assert any(a.path.startswith("drift") for a in client.list_artifacts(r.mlflow_run_id))
    names = task_names(state.state_details.flow_run_id,
                       {"run_drift_check", "fit_forecaster", "save_checkpoint", "register_champion", "post_reload"})
    assert {"load_champion", "run_drift_check", "evaluate_model", "fit_forecaster", "save_checkpoint",
            "register_champion", "post_reload"} <= names, names


def test_a_worse_challenger_is_never_promoted(prefect_server, env):
    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline import retraining_flow
    fc = champion(env, "worse", n_estimators=150)
    files = sorted(p.name for p in Path(fc.checkpoints_path).iterdir())
    weak = make_forecaster(env["base"] / "worse" / "unused", models=("seasonal_naive_7d",))
    r = retraining_flow(forecaster=fc, reference_data_path=str(env["reference"]), current_data_path=str(env["current"]),
                        challenger=weak, fastapi_reload_url=f"http://127.0.0.1:{free_port()}",
                        experiment="test-retrain")
    assert r.retrained and not r.promoted, r.reason
    assert r.challenger_score > r.champion_score and r.improvement < 0 and "not better" in r.reason
    assert (r.checkpoint_version, r.challenger_version, r.reload_status, r.reload_error) == (1, None, None, None)
    assert CheckpointStore(fc.checkpoints_path).current_version() == 1
    assert sorted(p.name for p in Path(fc.checkpoints_path).iterdir()) == files  # nothing saved
    # a better challenger is still refused when it is not better by the margin asked for
    r2 = retraining_flow(forecaster=fc, reference_data_path=str(env["reference"]),
                         current_data_path=str(env["current"]), min_improvement=0.95, track=False)
    assert r2.retrained and not r2.promoted and CheckpointStore(fc.checkpoints_path).current_version() == 1, r2.reason


def test_a_failing_fit_leaves_the_champion(prefect_server, env):
    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline import retraining_flow
    fc = champion(env, "failing")
    broken = make_forecaster(env["base"] / "failing" / "unused", exogenous=("temperature_c", "no_such_column"))
    state = retraining_flow(forecaster=fc, reference_data_path=str(env["reference"]),
                            current_data_path=str(env["current"]), challenger=broken, experiment="test-retrain",
                            return_state=True)
    assert state.is_completed(), state
    r = state.result()
    assert (r.retrained, r.promoted, r.checkpoint_version) == (False, False, 1), r
    assert "no_such_column" in r.error and "failed" in r.reason and "stays current" in r.reason
    assert CheckpointStore(fc.checkpoints_path).current_version() == 1
    from mlflow import MlflowClient
    run = MlflowClient(os.environ["TWIGA_MLFLOW_TRACKING_URI"]).get_run(r.mlflow_run_id)
    assert run.data.tags["twiga.error"].startswith("InvalidInputError")


def test_an_unreachable_server_is_recorded_not_raised(prefect_server, env):
    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline import retraining_flow
    fc = champion(env, "unreachable")
    state = retraining_flow(forecaster=fc, reference_data_path=str(env["reference"]),
                            current_data_path=str(env["current"]), fastapi_reload_url=f"http://127.0.0.1:{free_port()}",
                            track=False, return_state=True)
    assert state.is_completed(), state
    r = state.result()
    assert r.promoted and r.checkpoint_version == 2, r.reason
    assert CheckpointStore(fc.checkpoints_path).current_version() == 2
    assert r.reload_status is None and r.reload_error.startswith("ConnectError") and not r.reloaded


def test_no_drift_no_retrain(prefect_server, env):
    from twiga.pipeline import retraining_flow
    fc = champion(env, "nodrift", models=("seasonal_naive",))
    r = retraining_flow(forecaster=fc, reference_data_path=str(env["current"]), current_data_path=str(env["current"]),
                        track=False)
    assert (r.retrained, r.promoted, r.drift_summary.n_drifted, r.checkpoint_version) == (False, False, 0, 1), r.reason
    assert r.reason.startswith("No retrain") and r.metrics == r.champion_metrics
