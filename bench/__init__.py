"""Benchmarks: `./dev bench [name ...]` runs bench/<name>.py's `main()`; results go to bench/results/<name>.json."""
