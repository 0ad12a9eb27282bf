"""The model of bench/serve.py, made by the twiga first on PYTHONPATH (this tree's, or the baseline commit's): the
same data, seed and trees, fitted, saved as checkpoint versions 1 (200 trees) and 2 (100 trees, for the reload
test), pickled with the in-process windows, and logged with `TwigaTracker.log_model` for `mlflow models serve`.
Each twiga reads only what it wrote itself: an older twiga cannot unpickle a newer one's forecaster.

Usage: `python -m bench._serve_prepare <folder>`; prints one JSON line (fit_s, and the paths it wrote)."""
import json
import pickle
import sys
from pathlib import Path

from bench.serve import LOOKBACK, _fit, _log_model


def main(folder: str) -> dict:
    import twiga
    d = Path(folder); d.mkdir(parents=True, exist_ok=True)
    ckpt = d / "checkpoints"
    fc, test, fit_s = _fit(ckpt)
    windows = [test.iloc[i * 7: i * 7 + LOOKBACK][fc.input_columns].reset_index(drop=True) for i in range(64)]
    (d / "inproc.pkl").write_bytes(pickle.dumps((fc, windows)))
    model_dir = _log_model(fc, windows[0], d)
    return {"twiga": twiga.__file__, "fit_s": round(fit_s, 1), "checkpoints": str(ckpt),
            "pickle": str(d / "inproc.pkl"), "model_dir": str(model_dir)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
