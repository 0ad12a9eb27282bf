"""The in-process part of bench/serve.py, run in its own process so that either twiga (this tree, or the baseline
commit's, first on PYTHONPATH) can be timed: `forecast` and `predict_interval` of one window, called directly, and,
where the twiga has it, `forecast_columns` of the window as parsed columns (what `/predict` runs: no frame in or out).

Usage: `python -m bench._serve_inproc <pickle of (forecaster, windows)> <calls>`; prints one JSON line."""
import json
import logging
import pickle
import statistics
import sys

from bench._timing import timings


def _summary(walls, cpus) -> dict:
    ms = sorted(w * 1000 for w in walls)
    return {"p50_ms": round(statistics.median(ms), 3), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
            "cpu_p50_ms": round(statistics.median(c * 1000 for c in cpus), 3), "n": len(ms)}


def main(path: str, n: int) -> dict:
    import twiga
    logging.getLogger("twiga").setLevel(logging.ERROR)  # the persistence warning of a window without future rows
    with open(path, "rb") as f: fc, windows = pickle.load(f)
    k = len(windows)
    point = lambda i: fc.forecast(windows[i % k], ensemble_strategy="mean")
    interval = lambda i: fc.predict_interval(windows[i % k], coverage=0.9, ensemble_strategy="mean")
    out = {"twiga": twiga.__file__}
    fns = [("forecast", point), ("predict_interval", interval)]
    if hasattr(fc, "forecast_columns"):
        import pandas as pd
        cols = [{c: pd.DatetimeIndex(w[c]) if c == fc.data_params.date_column else w[c].to_numpy("float64")
                 for c in w.columns} for w in windows]
        fns.append(("forecast_columns", lambda i: fc.forecast_columns(cols[i % k], ensemble_strategy="mean")))
    for name, fn in fns:
        timings(fn, 2 * k)  # warm: first calls import and fill caches
        walls, cpus, _ = timings(fn, n)
        out[name] = _summary(walls, cpus)
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
