"""`import twiga` cost: median of 7 fresh interpreters, minus the bare interpreter's start-up in the same run."""
import subprocess
import sys

from bench._timing import median_time


def _median_run(code, n=7):
    return median_time(lambda _: subprocess.run([sys.executable, "-c", code], check=True), n)[0]


def main():
    bare = _median_run("pass")
    twiga = _median_run("import twiga")
    pandas = _median_run("import pandas")
    return {"python_startup_s": round(bare, 4), "import_twiga_s": round(twiga - bare, 4),
            "import_pandas_s_for_scale": round(pandas - bare, 4)}
