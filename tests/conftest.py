"""Fixtures shared by the test modules: one temporary Prefect server for every real flow run of the session."""
from __future__ import annotations

import os

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
