"""Test set-up shared by the whole suite.

Airflow reads its configuration when first imported, so the isolated ``AIRFLOW_HOME`` (a
temporary folder with a SQLite metadata database) is put in place here, before any test module
imports airflow. Each pytest process (and each xdist worker) gets its own.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="b1-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "")
os.environ["B1_SESSION_CACHE_DIR"] = str(_HOME / "b1-sessions")

PG_HOST = os.environ.get("B1_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("B1_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("B1_TEST_PG_USER", "postgres")


def _postgres_or_skip() -> None:
    """Fail under CI, skip elsewhere, when no PostgreSQL answers."""
    import psycopg2

    try:
        psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        ).close()
    except psycopg2.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER} ({exc.__class__.__name__})"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI needs it (.ci/run starts it).")
        pytest.skip(f"{message}; start PostgreSQL to run this test.")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[dict]:
    """A throwaway PostgreSQL database for this test session: ``{host, port, user, dbname, dsn, uri}``."""
    _postgres_or_skip()
    import psycopg2

    name = f"b1_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    info = {
        "host": PG_HOST,
        "port": PG_PORT,
        "user": PG_USER,
        "dbname": name,
        "dsn": f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={name}",
        "uri": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
    }
    try:
        yield info
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) shared by the session's DAG tests."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    return _HOME / "airflow.db"
