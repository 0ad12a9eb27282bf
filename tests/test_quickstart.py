"""`twiga quickstart` end to end on the bundled data (its quick mode): every stage for real (MLflow SQLite store,
checkpoint store, uvicorn on 127.0.0.1, Prefect's temporary server), twice in the same folder (the second time as the
papermill job notebook the scheduled flow runs), and a failing stage that names itself, exits non-zero and leaves no
server behind."""
from __future__ import annotations

import ast
import io
import json
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(1200)
ROOT = Path(__file__).resolve().parents[1]


def gone(pid) -> bool:
    "No process with this id, and no process left in its group."
    for kill in (os.kill, os.killpg):
        try: kill(pid, 0)
        except ProcessLookupError: continue
        return False
    return True


def run(workdir, **kw):
    from rich.console import Console

    from twiga.pipeline.quickstart import quickstart
    buf = io.StringIO()
    out = quickstart(workdir, quick=True, console=Console(file=buf, width=160), **kw)
    return out, buf.getvalue()


def test_quickstart_runs_every_stage_twice_in_the_same_folder_and_stops_its_servers(tmp_path, capfd):
    """In Python with Prefect (its own temporary server), then in the same folder as the job notebook that
    `twiga schedule --job quickstart` deploys, without Prefect: the executed notebook is an artefact of the MLflow run
    of its retraining stage, and nothing of the first run is lost or reused."""
    import nbformat
    import psutil
    from mlflow import MlflowClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline.flows import job_notebook_flow
    from twiga.pipeline.jobs import job_notebook
    from twiga.pipeline.quickstart import STAGES
    from twiga.pipeline.schemas import RetrainingResult
    work = tmp_path / "qs"
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # the session's Prefect server may be set up
        assert not PREFECT_API_URL.value()
        first, text = run(work, use_prefect=True)  # no PREFECT_API_URL: it starts and stops a temporary server
    print(text)
    check_stages(first, text, STAGES)
    assert first["prefect_pid"] is not None and gone(first["prefect_pid"])
    res = first["retrain"]
    assert res.retrained and res.challenger_score is not None and res.reason in " ".join(text.split())
    assert first["reloaded_version"] == res.checkpoint_version == (2 if res.promoted else 1)
    if res.promoted: assert res.reload_status == 200 and f"now answers with version {res.checkpoint_version}" in text
    assert first["served_version"] == 1 and first["served_n"] == 72 and 0 <= first["served_coverage"] <= 1
    assert first["metrics"]["lightgbm"]["mae"] < first["metrics"]["seasonal_naive"]["mae"]
    for k in ("drift report", "mlflow ui --backend-store-uri", "the plot", "the log"): assert k in text
    uri = first["tracking_uri"]
    client = MlflowClient(uri)
    run_ = client.get_run(first["run_id"])
    assert run_.info.status == "FINISHED"
    assert any(m.source_run_id == first["run_id"]
               for m in client.search_logged_models(experiment_ids=[run_.info.experiment_id]))

    # the same stages as the job notebook (its parameters: use_prefect=False), in the same folder
    job = job_notebook_flow.fn(str(job_notebook("quickstart")), str(tmp_path / "runs"),
                               {"workdir": str(work), "quick": True}, tracking_uri=uri)
    executed = Path(job["output_path"])
    assert executed.parent == tmp_path / "runs" and executed.name.startswith("quickstart-"), executed
    cells = nbformat.read(executed, as_version=4).cells
    text2 = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    text2 = re.sub(r"\x1b\[[0-9;]*m", "", text2)  # rich's colours, as Jupyter shows them
    stages2 = ast.literal_eval(text2.split("stage durations (s): ")[1].splitlines()[0])
    check_stage_lines(stages2, text2, STAGES)
    assert "What the quickstart measured and decided" in text2 and "image/png" in executed.read_text()
    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if str(work) in " ".join(p.info["cmdline"] or [])]
    res2 = RetrainingResult.from_dict(json.loads(executed.with_suffix(".json").read_text()))
    # its fit saved the version after the first run's last, its challenger the one after that
    assert res2.checkpoint_version == first["reloaded_version"] + (2 if res2.promoted else 1), res2
    versions = [i.version for i in CheckpointStore(work / "checkpoints").list()]
    assert versions == list(range(1, res2.checkpoint_version + 1)), versions  # nothing lost, nothing reused
    job_run = client.get_run(job["mlflow_run_id"])
    assert job["mlflow_run_id"] == res2.mlflow_run_id and job_run.data.tags["twiga.flow"] == "retraining"
    assert "twiga.reason" in job_run.data.tags
    arts = [a.path for a in client.list_artifacts(job["mlflow_run_id"], "job")]
    assert arts == [f"job/{executed.name}"], arts
    runs = client.search_runs([run_.info.experiment_id])
    assert {first["run_id"], first["retrain"].mlflow_run_id, res2.mlflow_run_id} <= {r.info.run_id for r in runs}
    plots = sorted(p.name for p in (work / "plots").iterdir())
    assert len(plots) == 4 and all(os.path.getsize(work / "plots" / p) > 1000 for p in plots), plots
    log = (work / "quickstart.log").read_text()
    assert log.count("stage data:") == 2 and "CloudPickle" not in log
    captured = capfd.readouterr()
    assert not re.search(r"warn|error|traceback", captured.out + captured.err, re.I), captured


def check_stages(out, text, stages):
    "Every stage printed once with its duration, in order, and the server stopped."
    check_stage_lines(out["stages"], text, stages)
    assert gone(out["server_pid"])


def check_stage_lines(seconds, text, stages):
    "Every stage printed once with its duration (`seconds`), in order, and no warning."
    assert list(seconds) == list(stages), seconds
    lines = [line for line in text.splitlines() if line.startswith(("✓", "✗"))]
    assert lines == [f"✓ {t} ({seconds[k]:.1f} s)" for k, t in stages.items()], lines
    assert not re.search(r"warn|traceback", text, re.I), text


def test_a_failing_stage_exits_non_zero_names_itself_and_stops_the_server(tmp_path, monkeypatch, capsys):
    import twiga.pipeline.quickstart as qs
    from twiga.cli import main
    started = []
    real_ask = qs._ask
    def broken(server, path, body):
        started.append(server.pid)
        if path == "/predict-interval": raise ConnectionResetError("the network went away")
        return real_ask(server, path, body)
    monkeypatch.setattr(qs, "_ask", broken)
    assert main(["quickstart", "--workdir", str(tmp_path / "qs"), "--quick", "--no-prefect"]) == 2
    err = capsys.readouterr().err
    assert "failed at stage `serve`" in err and "the network went away" in err and "quickstart.log" in err, err
    assert started and gone(started[0])
    log = (tmp_path / "qs" / "quickstart.log").read_text()
    assert "stage serve failed" in log and "Traceback" in log


def test_the_readme_shows_a_run_of_these_stages():
    """README.md shows nbs/_quickstart_output.txt (recorded by `scripts/build_readme.py --quickstart`): a whole run of
    the stages the quickstart has today, each done, ending in its table and where to look next."""
    from twiga.pipeline.quickstart import STAGES
    recorded = (ROOT / "nbs" / "_quickstart_output.txt").read_text()
    lines = [line for line in recorded.splitlines() if line.startswith(("✓", "✗"))]
    assert [re.sub(r" \(\d+\.\d s\)$", "", line) for line in lines] == [f"✓ {t}" for t in STAGES.values()], lines
    assert "What the quickstart measured and decided" in recorded and "Where to look next" in recorded
    assert recorded.strip() in (ROOT / "README.md").read_text()
