"""Run benchmarks: `python -m bench` runs all, `python -m bench core serve` runs the named ones."""
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import bench

RESULTS = Path(__file__).parent / "results"


def main(names):
    names = names or sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    RESULTS.mkdir(exist_ok=True)
    for name in names:
        print(f"=== bench {name}", flush=True)
        result = importlib.import_module(f"bench.{name}").main()
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(json.dumps(result, indent=2, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
