"""Shared machinery of the tracking-server tests: a real `mlflow server` (SQLite or PostgreSQL backend) and a throwaway
PostgreSQL cluster from Debian's packages, both on 127.0.0.1 and always stopped (by pid) when the test ends."""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from _serve_helpers import free_port, stop_group, wait_healthy

MLFLOW = Path(sys.executable).parent / "mlflow"
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# the Debian line that provides PostgreSQL (`./dev test` installs it when root on a fresh machine)
POSTGRES_INSTALL = "apt-get update && apt-get install -y postgresql"


def ercot_forecaster(target_scaler=None, train_params=None):
    "(forecaster, train, test): a small unfitted forecaster (seasonal naive, tiny LightGBM) on real ERCOT data, 2019."
    from sklearn.preprocessing import StandardScaler

    from twiga import TwigaForecaster
    from twiga.core.config import DataPipelineConfig
    from twiga.datasets import ERCOT_LATITUDE, ERCOT_LONGITUDE, load_ercot
    from twiga.models.baseline.seasonal_naive_model import SEASONALNAIVEConfig
    from twiga.models.ml import LIGHTGBMConfig

    df = load_ercot("2019-01-01", "2019-03-01")
    train = df[df.timestamp < "2019-02-15"].reset_index(drop=True)
    test = df[df.timestamp >= "2019-02-01"].reset_index(drop=True)
    data = DataPipelineConfig(target_feature="demand_mwh", period="1h", latitude=ERCOT_LATITUDE,
                              longitude=ERCOT_LONGITUDE, calendar_features=["hour", "day_night"],
                              exogenous_features=["temperature_c", "ghi_wm2"], forecast_horizon=24,
                              lookback_window_size=168, input_scaler=StandardScaler(), target_scaler=target_scaler)
    models = [SEASONALNAIVEConfig(period="1D", freq="1h"), LIGHTGBMConfig(n_estimators=20)]
    return TwigaForecaster(data_params=data, model_params=models, train_params=train_params), train, test


def start_mlflow_server(directory: Path, backend_store_uri: str, workers: int = 1,
                        timeout: float = 180) -> tuple[subprocess.Popen, str]:
    "Start `mlflow server` on a free loopback port: `backend_store_uri`, a proxied artefact store in `directory`."
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(directory / "artifacts")]
    # no background job runner (GenAI evaluation jobs): it adds seven huey processes and slows start and stop
    env = {**os.environ, **ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = directory / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env)
    try:
        wait_healthy(port, proc, log, timeout, ready=lambda status, _body: status == 200)
    except BaseException:
        stop_group(proc)
        raise
    return proc, url


# ---------------------------------------------------------------- PostgreSQL

def postgres_bindir() -> Path | None:
    "Directory of `initdb` and `pg_ctl`: on PATH, else Debian's /usr/lib/postgresql/<major>/bin (newest)."
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"): return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(dirs[-1]).parent if dirs else None


class Postgres:
    "A throwaway PostgreSQL cluster: initdb in a temp dir, on 127.0.0.1:<free port> only, deleted by `stop()`."
    def __init__(self, user: str = "twiga", database: str = "mlflow"):
        self.bindir = postgres_bindir()
        if self.bindir is None:
            raise FileNotFoundError(f"PostgreSQL is not installed (no initdb). Install it with: {POSTGRES_INSTALL}")
        self.user, self.database, self.password = user, database, secrets.token_hex(12)
        self.port, self.started = free_port(), False
        # PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user (Debian's
        # package makes it)
        self.os_user = "postgres" if os.geteuid() == 0 else None
        # directly under /tmp: pytest's own temp dirs are private to root and the `postgres` user could not enter them
        self.dir = Path(tempfile.mkdtemp(prefix="twiga-pg-"))
        self.data, self.sockets, self.log = self.dir / "data", self.dir / "sockets", self.dir / "postgres.log"

    def _run(self, *args, timeout=180) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *map(str, args[1:])]
        if self.os_user: cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
                               f"{done.stderr[-2000:]}\n{tail}")
        return done

    def start(self) -> Postgres:
        try: self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.sockets.mkdir()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            for p in (self.dir, self.sockets, pwfile): os.chown(p, pw.pw_uid, pw.pw_gid)
        # password (SCRAM) over TCP like a real server; trust only on the private unix socket in our temp dir
        self._run("initdb", "-D", self.data, "-U", self.user, "--pwfile", pwfile, "--auth-host=scram-sha-256",
                  "--auth-local=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        pwfile.unlink()
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", self.data, "-o", opts, "-l", self.log, "-w", "-t", "120", "start")
        self.started = True
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur: cur.execute(f'CREATE DATABASE "{self.database}"')
        finally: conn.close()

    @property
    def uri(self) -> str:
        "SQLAlchemy URI of the database, password included, naming psycopg2 (SQLAlchemy 2.1 defaults to psycopg 3)."
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def query(self, sql: str) -> list[tuple]:
        "Rows of one SQL query against the database."
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname=self.database)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally: conn.close()

    def postmaster_pid(self) -> int | None:
        try: return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError): return None

    def stop(self) -> None:
        "Stop the server (fast shutdown, then SIGKILL of its postmaster by pid) and delete the cluster."
        try:
            if self.started:
                pid = self.postmaster_pid()
                try: self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
                except (RuntimeError, subprocess.TimeoutExpired):
                    if pid:
                        try: os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError: pass
                self.started = False
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.stop()
