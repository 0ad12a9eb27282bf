"""Package-level checks that a notebook cannot make: import cost, layout, install metadata."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "prefect", "evidently", "fastapi", "uvicorn", "lightgbm", "sklearn")


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def test_import_twiga_is_light():
    out = _run("import sys, twiga; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,))
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
