"""The timing loop every benchmark uses: wall and CPU seconds of repeated calls, and their medians."""
import statistics
import time


def timings(fn, n: int, setup=None) -> tuple[list[float], list[float], object]:
    "Wall and CPU seconds of `n` calls `fn(x)`, `x = setup(i)` made before the clock starts (default `i`); last result."
    walls, cpus, out = [], [], None
    for i in range(n):
        x = setup(i) if setup is not None else i
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(x)
        walls.append(time.perf_counter() - t0); cpus.append(time.process_time() - c0)
    return walls, cpus, out


def median_time(fn, n: int) -> tuple[float, object]:
    "Median wall seconds of `n` calls `fn(i)` (i = 0, 1, ...), and the last call's result."
    walls, _, out = timings(fn, n)
    return statistics.median(walls), out
