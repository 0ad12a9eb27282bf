"""`twiga quickstart` wall time, as a user runs it after install: the whole lifecycle (fit, track, checkpoint, serve,
monitor, drift, retrain with Prefect's temporary server, reload, plot) in a fresh folder, in a fresh interpreter.
Median of QUICKSTART_BENCH_RUNS runs (default 3), with each stage's median, the CPU seconds the runs used (less
sensitive to other load on the machine than wall time) and, as the baseline measured in the same run, a bare
`python -c pass`. The issue's target: under 60 s."""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from bench._timing import median_time

CODE = """import json, sys
from twiga.pipeline.quickstart import quickstart
r = quickstart(sys.argv[1], quick=sys.argv[2] == "quick")
print("STAGES " + json.dumps(r["stages"]))"""


def _children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def _once(mode: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="twiga-bench-qs-") as d:
        c0, t0 = _children_cpu(), time.perf_counter()
        p = subprocess.run([sys.executable, "-c", CODE, os.path.join(d, "qs"), mode], capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if p.returncode != 0:
        raise RuntimeError(f"quickstart failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    stages = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("STAGES "))[7:])
    return {"wall_s": wall, "cpu_s": cpu, "stages": stages}


def _summary(runs: list[dict]) -> dict:
    med = lambda xs: round(statistics.median(xs), 2)
    return {"wall_s_median": med([r["wall_s"] for r in runs]), "wall_s_runs": [round(r["wall_s"], 1) for r in runs],
            "cpu_s_median": med([r["cpu_s"] for r in runs]),
            "stage_s_median": {k: med([r["stages"][k] for r in runs]) for k in runs[0]["stages"]},
            "under_60_s": statistics.median([r["wall_s"] for r in runs]) < 60}


def main():
    n = int(os.environ.get("QUICKSTART_BENCH_RUNS", "3"))
    modes = os.environ.get("QUICKSTART_BENCH_MODES", "full").split(",")
    bare = median_time(lambda _: subprocess.run([sys.executable, "-c", "pass"], check=True), 5)[0]
    out = {"python_startup_s": round(bare, 4), "runs": n, "load_avg_1min": round(os.getloadavg()[0], 2),
           "cpu_count": os.cpu_count()}
    for mode in modes: out[mode] = _summary([_once(mode) for _ in range(n)])
    return out
