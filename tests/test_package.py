"""Package-level checks that a notebook cannot make: import cost, layout, install metadata."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "prefect", "evidently", "fastapi", "uvicorn", "lightgbm", "sklearn")


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def test_import_twiga_is_light():
    out = _run(f"import sys, twiga; print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    assert out.strip() == "", f"`import twiga` imported heavy modules: {out.strip()}"


def test_lazy_public_names():
    out = _run("import twiga; print(twiga.__version__); print(hasattr(twiga, 'no_such_name'))")
    version, missing = out.split()
    assert version == "0.1.0" and missing == "False"


def test_quarto_config_is_one_file():
    top, nbs = ROOT / "_quarto.yml", ROOT / "nbs" / "_quarto.yml"
    assert top.is_file() and nbs.is_symlink() and nbs.resolve() == top.resolve()


def test_bundled_data_ships_with_licence():
    import twiga
    data = Path(twiga.__file__).parent / "data"
    assert (data / "ercot_2015_2019.parquet").stat().st_size > 1_000_000
    assert "BSD" in (data / "LICENSE").read_text() or "Redistribution" in (data / "LICENSE").read_text()


def test_wheel_ships_data_and_job_notebook(tmp_path):
    "A wheel built from the working tree carries the bundled data and the job notebook; `retrain_notebook` finds it."
    import shutil
    import zipfile
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "_site", "_proc", "_docs", "build", "dist", "*.egg-info",
                                  "__pycache__", ".prefect-home", ".pytest_cache", "reports", "bench")
    shutil.copytree(ROOT, src, ignore=skip, symlinks=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist")], check=True, capture_output=True, text=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("twiga-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert {"twiga/jobs/retrain.ipynb", "twiga/data/ercot_2015_2019.parquet", "twiga/data/LICENSE"} <= names
        assert z.read("twiga/jobs/retrain.ipynb") == (ROOT / "nbs" / "jobs" / "retrain.ipynb").read_bytes()
        z.extractall(tmp_path / "site")
    out = subprocess.run([sys.executable, "-c", "import twiga.pipeline.jobs as j; print(j.retrain_notebook())"],
                         check=True, capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}).stdout
    assert Path(out.strip()) == tmp_path / "site" / "twiga" / "jobs" / "retrain.ipynb"
