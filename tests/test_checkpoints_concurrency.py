"""Concurrent saves into one checkpoint store from several processes (twiga.checkpoints).

Each worker is a fresh interpreter that imports twiga, signals it is ready, waits for a common start signal and
then saves several ~200 KB payloads as fast as it can, so the saves overlap. Afterwards the store must hold every
save under a distinct version, with an intact manifest whose history and event log name each one, and every file
must match its recorded sha256 and unpickle to the payload its worker saved.
"""
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twiga.checkpoints import MANIFEST_NAME, CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(180)

WRITER = r"""
import hashlib, json, os, sys, time
from pathlib import Path
from twiga.checkpoints import CheckpointStore
directory, worker, n, keep, signals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
store = CheckpointStore(directory, keep_last=None if keep == "none" else int(keep))
(signals / f"ready-{worker}").touch()
deadline = time.monotonic() + 60
while not (signals / "go").exists():
    if time.monotonic() > deadline: sys.exit("the start signal never came")
    time.sleep(0.002)
versions = []
for i in range(n):
    blob = os.urandom(200_000)
    info = store.save({"worker": worker, "i": i, "blob": blob}, model_type="blob",
                      extra={"worker": worker, "i": i, "blob_sha256": hashlib.sha256(blob).hexdigest()})
    versions.append(info.version)
print(json.dumps(versions))
"""

READER = r"""
import json, sys, time
from pathlib import Path
from twiga.checkpoints import CheckpointStore
store, signals = CheckpointStore(sys.argv[1]), Path(sys.argv[2])
(signals / "ready-reader").touch()
loads, polls, errors, seen = 0, 0, [], []
deadline = time.monotonic() + 60
while not (signals / "stop").exists() and time.monotonic() < deadline:
    try:
        v = store.current_version(); polls += 1
        if not seen or seen[-1] != v: seen.append(v)
        obj, info = store.load(); loads += 1
        assert obj["i"] == info.extra["i"] and obj["worker"] == info.extra["worker"], (obj, info)
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
print(json.dumps({"loads": loads, "polls": polls, "errors": errors[:5], "n_errors": len(errors), "seen": seen}))
"""


def _wait_for(paths, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"workers not ready: {[p.name for p in paths if not p.exists()]}"
        time.sleep(0.01)


def _run_writers(directory: Path, signals: Path, n_workers: int, n_saves: int, keep="none", reader=False):
    """Start the writers (and optionally a reader), release them together, return their parsed outputs."""
    procs, outputs = [], {}
    try:
        for w in range(n_workers):
            procs.append((f"writer-{w}", subprocess.Popen(
                [sys.executable, "-c", WRITER, str(directory), str(w), str(n_saves), str(keep), str(signals)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        if reader:
            procs.append(("reader", subprocess.Popen(
                [sys.executable, "-c", READER, str(directory), str(signals)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        ready = [signals / f"ready-{w}" for w in range(n_workers)] + ([signals / "ready-reader"] if reader else [])
        _wait_for(ready)
        (signals / "go").touch()
        for name, p in procs:
            if name == "reader": continue
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, f"{name} failed:\n{err}"
            outputs[name] = json.loads(out)
        (signals / "stop").touch()
        for name, p in procs:
            if name != "reader": continue
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, f"{name} failed:\n{err}"
            outputs[name] = json.loads(out)
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    return outputs


def _check_entry_file(store: CheckpointStore, entry: dict):
    """The file of `entry` verifies against its hash and holds the payload its worker saved."""
    info = store.verify(entry["version"])
    assert hashlib.sha256(info.path.read_bytes()).hexdigest() == entry["sha256"]
    obj, info = store.load(entry["version"])
    assert (obj["worker"], obj["i"]) == (entry["extra"]["worker"], entry["extra"]["i"])
    assert hashlib.sha256(obj["blob"]).hexdigest() == entry["extra"]["blob_sha256"]


def test_concurrent_saves_get_distinct_versions_and_an_intact_manifest(tmp_path):
    directory, signals = tmp_path / "checkpoints", tmp_path / "signals"
    signals.mkdir()
    n_workers, n_saves = 4, 8
    outputs = _run_writers(directory, signals, n_workers, n_saves)

    returned = [v for w in range(n_workers) for v in outputs[f"writer-{w}"]]
    total = n_workers * n_saves
    assert sorted(returned) == list(range(1, total + 1))  # distinct, none lost, none skipped
    for w in range(n_workers):  # each worker's own saves are numbered in the order it made them
        assert outputs[f"writer-{w}"] == sorted(outputs[f"writer-{w}"])

    manifest = json.loads((directory / MANIFEST_NAME).read_text())  # valid JSON after all the racing
    history = manifest["history"]
    assert [e["version"] for e in history] == list(range(1, total + 1))
    assert len({(e["extra"]["worker"], e["extra"]["i"]) for e in history}) == total
    assert sorted(e["version"] for e in manifest["events"] if e["event"] == "save") == list(range(1, total + 1))
    assert len({e["pid"] for e in manifest["events"]}) == n_workers
    assert manifest["current_version"] == manifest["version"] == total and manifest["next_version"] == total + 1
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix == ".pkl")
    assert pickles == [f"model_v{v:04d}.pkl" for v in range(1, total + 1)]
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]

    store = CheckpointStore(directory)
    for entry in history:
        _check_entry_file(store, entry)
    assert store.save({"worker": -1, "i": 0, "blob": b""}, extra={"worker": -1, "i": 0}).version == total + 1


def test_concurrent_saves_with_retention_keep_the_newest(tmp_path):
    directory, signals = tmp_path / "checkpoints", tmp_path / "signals"
    signals.mkdir()
    n_workers, n_saves, keep = 3, 6, 3
    outputs = _run_writers(directory, signals, n_workers, n_saves, keep=keep)

    total = n_workers * n_saves
    assert sorted(v for out in outputs.values() for v in out) == list(range(1, total + 1))
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert [e["version"] for e in manifest["history"]] == list(range(total - keep + 1, total + 1))
    kept = range(total - keep + 1, total + 1)
    assert sorted(p.name for p in directory.glob("*.pkl")) == [f"model_v{v:04d}.pkl" for v in kept]
    deleted = [d["version"] for e in manifest["events"] if e["event"] == "retention" for d in e["deleted"]]
    assert sorted(deleted) == list(range(1, total - keep + 1))  # each removed once, and recorded
    store = CheckpointStore(directory)
    for entry in manifest["history"]:
        _check_entry_file(store, entry)


@pytest.mark.parametrize("keep", ["none", 2])
def test_readers_never_see_a_partial_store_while_others_save(tmp_path, keep):
    """A reader polling `current_version()` and loading the current version never fails, even while retention
    deletes the files of versions that were current a moment before."""
    directory, signals = tmp_path / "checkpoints", tmp_path / "signals"
    signals.mkdir()
    CheckpointStore(directory).save({"worker": -1, "i": 0, "blob": b""}, extra={"worker": -1, "i": 0})
    outputs = _run_writers(directory, signals, n_workers=2, n_saves=10, keep=keep, reader=True)

    reader = outputs["reader"]
    assert reader["n_errors"] == 0, reader["errors"]
    assert reader["loads"] > 0
    assert reader["seen"] == sorted(reader["seen"]) and len(set(reader["seen"])) == len(reader["seen"])  # only forward
    assert CheckpointStore(directory).current_version() == 21
