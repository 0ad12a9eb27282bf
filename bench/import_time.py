"""`import twiga` cost: median of 7 fresh interpreters, minus the bare interpreter's start-up in the same run."""
import statistics
import subprocess
import sys
import time


def _median_run(code, n=7):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    bare = _median_run("pass")
    twiga = _median_run("import twiga")
    pandas = _median_run("import pandas")
    return {"python_startup_s": round(bare, 4), "import_twiga_s": round(twiga - bare, 4),
            "import_pandas_s_for_scale": round(pandas - bare, 4)}
