"""`twiga retrain` on a short window (issue 16 item 4): the command prints each model's holdout coverage with its sample
size and a confidence interval that counts the day-ahead windows, and the decision says that a few days are too few
to judge coverage instead of refusing (or passing) a challenger on noise. Real ERCOT slices written as a user's
files, a real champion in a real checkpoint store, the real command (`twiga.cli.main`) without Prefect or MLflow."""
from __future__ import annotations

import re

import pytest
from _pipeline_helpers import make_forecaster, write_slices

pytestmark = pytest.mark.timeout(600)


def test_retrain_on_two_weeks_reports_coverage_with_its_sample_size(tmp_path, capsys, monkeypatch):
    from twiga.checkpoints import CheckpointStore
    from twiga.cli import main
    from twiga.pipeline.flows import MIN_HOLDOUT_WINDOWS
    from twiga.pipeline.tasks import read_frame
    monkeypatch.setenv("TWIGA_SERVE_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("COLUMNS", "200")  # rich's console width: whole table rows
    paths = write_slices(tmp_path / "data", reference=("2019-01-01", "2019-06-17"),
                         current=("2019-06-17", "2019-07-01"))
    champ = make_forecaster(tmp_path / "checkpoints")
    champ.fit(read_frame(paths["reference"])).on_save_checkpoint()
    capsys.readouterr()
    code = main(["retrain", "--reference", str(paths["reference"]), "--current", str(paths["current"]),
                 "--checkpoint-dir", str(tmp_path / "checkpoints"), "--performance-threshold", "1",  # always due
                 "--no-track", "--no-prefect"])
    out = " ".join(capsys.readouterr().out.split())
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
    assert "not promoted" not in out or "not better" in out, out  # coverage on three days refuses nothing
    promoted = "promoted as version 2" in out
    assert CheckpointStore(tmp_path / "checkpoints").current_version() == (2 if promoted else 1), out
