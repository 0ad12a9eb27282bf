"""Fixtures shared by the test modules: one temporary Prefect server for every real flow run of the session. And a
check that the session wrote nothing into the working tree: a test that forgets to pass a directory would fall
back to a default relative one (`reports/`, `checkpoints/`, `mlruns/`) in the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from _pipeline_helpers import prefect_env

prefect_env()


@pytest.fixture(scope="session")
def prefect_server():
    "One temporary Prefect server (SQLite in a temp dir) for every real flow run of the session; stopped at the end."
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])):
        proc = SubprocessASGIServer._instances[None].server_process
        yield
    assert proc.poll() is not None, "the temporary Prefect server is still running"


ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUTS = ("reports", "checkpoints", "mlruns", "mlartifacts", "mlflow.db", "mlops_demo")
_present_at_start = {n for n in DEFAULT_OUTPUTS if (ROOT / n).exists()}


def pytest_sessionfinish(session, exitstatus):
    new = sorted(n for n in DEFAULT_OUTPUTS if (ROOT / n).exists() and n not in _present_at_start)
    if new:
        print(f"\nFAIL: the tests wrote {new} into {ROOT}: some test used a default directory "
              "instead of a temporary one.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
