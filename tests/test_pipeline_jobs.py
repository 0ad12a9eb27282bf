"""The jobs behind the `twiga` command, end to end on the bundled data: the papermill retraining notebook executed by
`run_retrain_job` with its executed copy logged into the MLflow run (the quickstart: tests/test_quickstart.py)."""
from __future__ import annotations

import json

import pytest
from _pipeline_helpers import ROOT, write_slices

pytestmark = pytest.mark.timeout(900)


def test_papermill_job_runs_the_flow_and_logs_the_executed_notebook(tmp_path):
    "CI's papermill run: the job notebook on a slice of the bundled data, its executed copy an artefact of the run."
    import nbformat
    from _pipeline_helpers import make_forecaster
    from mlflow import MlflowClient

    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline.jobs import retrain_notebook, run_retrain_job
    from twiga.pipeline.tasks import read_frame
    assert retrain_notebook() == ROOT / "nbs" / "jobs" / "retrain.ipynb"
    paths = write_slices(tmp_path / "data")
    ckpt = tmp_path / "checkpoints"
    make_forecaster(ckpt).fit(read_frame(paths["reference"])).on_save_checkpoint()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    params = dict(reference_data_path=str(paths["reference"]), current_data_path=str(paths["current"]),
                  checkpoint_dir=str(ckpt), experiment="job-test", run_name="papermill",
                  report_dir=str(tmp_path / "reports"), drift_threshold=0.5)
    out = run_retrain_job(tmp_path / "runs" / "retrain-test.ipynb", params, tracking_uri=uri)
    r = out["result"]
    assert r.retrained and r.promoted and r.checkpoint_version == 2 == CheckpointStore(ckpt).current_version(), r.reason
    nb = nbformat.read(out["output_path"], as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(paths["current"]) in injected[0].source
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
    text = "\n".join(json.dumps(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert r.reason in text and "promoted as version 2" in text
    assert text.count("lets-plot") >= 3 or text.count("lets_plot") >= 3  # the three plots rendered
    client = MlflowClient(uri)
    assert out["mlflow_run_id"] == r.mlflow_run_id
    assert [a.path for a in client.list_artifacts(r.mlflow_run_id, "job")] == ["job/retrain-test.ipynb"]
    logged = client.download_artifacts(r.mlflow_run_id, "job/retrain-test.ipynb", str(tmp_path / "dl"))
    assert nbformat.read(logged, as_version=4).cells[-1].outputs, "the logged notebook is the executed one"


def test_a_failing_job_still_leaves_its_notebook_in_a_failed_run(tmp_path):
    from mlflow import MlflowClient

    from twiga.core.errors import TwigaError
    from twiga.pipeline.jobs import run_retrain_job
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    params = dict(reference_data_path=str(tmp_path / "missing.parquet"),
                  current_data_path=str(tmp_path / "missing.parquet"), checkpoint_dir=str(tmp_path / "no-checkpoints"),
                  experiment="job-fail")
    with pytest.raises(TwigaError, match="The retraining job notebook failed: NotFittedError"):
        run_retrain_job(tmp_path / "failed.ipynb", params, tracking_uri=uri)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("job-fail").experiment_id])
    assert run.info.status == "FAILED"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "job")] == ["job/failed.ipynb"]
