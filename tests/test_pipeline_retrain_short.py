"""`twiga retrain` on a short window (issue 16 item 4): the command prints each model's holdout coverage with its sample
size and a confidence interval that counts the day-ahead windows, and beside it the model's cross-validated
calibration coverage (the interval method checked on its own calibration windows, `calibration_coverage`), which is
within 5 points of nominal where a 3-day holdout cannot be; the decision says that a few days are too few to judge the
holdout's coverage instead of refusing (or passing) a challenger on noise, and refuses a challenger whose calibration
coverage is more than 5 points off nominal, naming it. Real ERCOT slices written as a user's files, a real champion in
a real checkpoint store, the real command (`twiga.cli.main`) running the flow as a real Prefect flow run (the session's
temporary server) and logging to a real MLflow store on disk."""
from __future__ import annotations

import re

import pytest
from _pipeline_helpers import make_forecaster, write_slices

pytestmark = pytest.mark.timeout(600)


def _retrain(tmp_path, capsys, monkeypatch, current, *extra):
    "Fit a champion on the reference slice, run `twiga retrain` as a Prefect flow run; (exit code, printed text)."
    from twiga.cli import main
    from twiga.pipeline.tasks import read_frame
    monkeypatch.setenv("TWIGA_SERVE_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("TWIGA_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("COLUMNS", "200")  # rich's console width: whole table rows
    paths = write_slices(tmp_path / "data", reference=("2019-01-01", current[0]), current=current)
    make_forecaster(tmp_path / "checkpoints").fit(read_frame(paths["reference"])).on_save_checkpoint()
    capsys.readouterr()
    code = main(["retrain", "--reference", str(paths["reference"]), "--current", str(paths["current"]),
                 "--checkpoint-dir", str(tmp_path / "checkpoints"), "--performance-threshold", "1",  # always due
                 "--prefect", "--experiment", "retrain-short", *extra])
    return code, " ".join(capsys.readouterr().out.split())


def test_retrain_on_two_weeks_reports_coverage_with_its_sample_size(prefect_server, tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    from twiga.checkpoints import CheckpointStore
    from twiga.pipeline.flows import MIN_HOLDOUT_WINDOWS
    code, out = _retrain(tmp_path, capsys, monkeypatch, ("2019-06-17", "2019-07-01"))
    assert code == 0, out
    # two weeks of current data: the last quarter (84 hours) is the holdout, three day-ahead windows of 24 hours
    assert "Champion on the holdout" in out and "Challenger on the same holdout" in out, out
    assert "95% CI" in out and "points / windows" in out and out.count("72 / 3") >= 4, out  # each model, both tables
    m = re.search(r"intervals \((\w+)\) covered ([\d.]+)% of the holdout "
                  r"\(72 points in 3 windows, 95% CI (\d+)%-(\d+)%\)", out)
    assert m, out
    cov, lo, hi = float(m[2]) / 100, int(m[3]) / 100, int(m[4]) / 100
    assert lo - 0.005 <= cov <= hi + 0.005 and hi - lo > 0.3, out  # three windows: a wide interval around it
    assert lo < 0.9 <= hi + 0.005, out  # nominal is within reach: no verdict either way on three days
    assert f"3 windows are too few to {'judge' if abs(cov - 0.9) > 0.05 else 'confirm it'} (at least " \
           f"{MIN_HOLDOUT_WINDOWS}" in out, out
    # beside it, the deciding model's cross-validated calibration coverage: 30 windows (the cross-fitted month)
    c = re.search(r"cross-validated on its calibration windows they cover ([\d.]+)% \((\d+) points in (\d+) windows, "
                  r"95% CI (\d+)%-(\d+)%\)", out)
    assert c, out
    cal, k = float(c[1]) / 100, int(c[3])
    assert k >= MIN_HOLDOUT_WINDOWS and int(c[2]) == 24 * k and abs(cal - 0.9) <= 0.05, out  # within 5 points
    assert int(c[4]) / 100 - 0.005 <= cal <= int(c[5]) / 100 + 0.005, out
    assert "Coverage of the challenger's 90% intervals: holdout and cross-validated calibration windows" in out, out
    assert out.count(f"{24 * k} / {k}") >= 6, out  # each model of both forecasters (30 windows each)
    assert "not promoted" not in out or "not better" in out, out  # coverage on three days refuses nothing
    promoted = "promoted as version 2" in out
    assert CheckpointStore(tmp_path / "checkpoints").current_version() == (2 if promoted else 1), out
    # the MLflow run of the flow holds each model's figure, and the deciding model's beside its holdout coverage
    run_id = re.search(r"MLflow run: (\w+)", out)[1]
    logged = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(run_id).data.metrics
    assert abs(logged["challenger_calibration_coverage"] - cal) < 1e-4 and "challenger_coverage" in logged, logged
    for model in ("lightgbm", "seasonal_naive", "ensemble"):
        assert abs(logged[f"challenger.{model}.calibration_coverage"] - 0.9) <= 0.05, (model, logged)
        assert logged[f"challenger.{model}.calibration_coverage_windows"] == k, (model, logged)


def test_a_challenger_whose_calibration_coverage_is_off_is_refused(prefect_server, tmp_path, capsys, monkeypatch):
    """A fault injected into the method the check measures: the score sets the cross-validation fits are mis-scaled
    (errors halved, as if calibrated on a model twice as good), so the challenger's intervals hold far less than 90 %
    of its calibration windows. On the first two weeks of July 2019 the challenger beats the champion on the holdout
    (it is promoted without the fault: see the report), and the 3-day holdout alone refuses nothing; the calibration
    coverage refuses it, and the decision names it."""
    import dataclasses

    import twiga.forecaster.conformal as conformal
    from twiga.checkpoints import CheckpointStore
    real = conformal.fit_scores

    def halved(actual, pred):
        sm = real(actual, pred)
        return dataclasses.replace(sm, scores=sm.scores / 2, median=sm.median / 2)

    monkeypatch.setattr(conformal, "fit_scores", halved)  # the intervals served (`_score_model`) keep the real one
    code, out = _retrain(tmp_path, capsys, monkeypatch, ("2019-07-01", "2019-07-15"), "--no-track")
    assert code == 0, out
    c = re.search(r"challenger mae [\d.]+ vs champion [\d.]+ \(\+[\d.]+%\), but its 90% intervals \((\w+)\) covered "
                  r"[^;]*;.*cross-validated on its calibration windows they cover ([\d.]+)% \(\d+ points in (\d+) "
                  r"windows, 95% CI \d+%-(\d+)%\), ([\d.]+) points under nominal \(more than 5\): not promoted", out)
    assert c, out
    assert float(c[2]) < 85 and int(c[4]) < 90 and int(c[3]) >= 30, out  # far under, and significantly so
    assert CheckpointStore(tmp_path / "checkpoints").current_version() == 1, out  # the champion stays
