"""docker-compose.yaml and the Dockerfile give every component what the native Celery run proved it needs.

``tests/integration/live/celery_stack.py`` starts the compose file's topology natively and runs
the warehouse DAG through it; its :data:`SHARED_SETTINGS`, :data:`WORKER_SETTINGS` and
:data:`COMMANDS` are what that run gives each component. Here the compose file (parsed as YAML,
anchors and merge keys resolved) must give the same variables, with the same fixed values, and
run the same commands, so that the two cannot drift apart.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration" / "live"))
stack = importlib.import_module("celery_stack")
live_airflow = importlib.import_module("live_airflow")

AIRFLOW_SERVICES = ["airflow-init", *stack.COMMANDS]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))


def _settings(environment: dict) -> dict[str, str]:
    """The Airflow and provider variables of a service's environment."""
    return {k: str(v) for k, v in environment.items() if k.startswith(("AIRFLOW", "B1_"))}


def test_every_airflow_service_gets_exactly_the_settings_of_the_native_run(compose):
    services = compose["services"]
    flows = {variable for variables in stack.FLOW_CONNECTIONS.values() for variable in variables}
    expected = set(stack.SHARED_SETTINGS) | flows | set(stack.COMPOSE_ONLY)
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["image"] == "airflow-provider-b1:local", name
        shared = {
            k: v for k, v in _settings(service["environment"]).items() if k not in stack.WORKER_SETTINGS
        }
        assert set(shared) == expected, (name, set(shared) ^ expected)
        for key, value in stack.SHARED_SETTINGS.items():
            if value is not None:
                assert shared[key] == value, (name, key)
    assert not set(stack.NATIVE_ONLY) & expected


def test_the_services_run_the_commands_of_the_native_components(compose):
    services = compose["services"]
    assert {name: services[name]["command"] for name in stack.COMMANDS} == stack.COMMANDS
    natively = {*live_airflow.COMPONENTS, "triggerer", stack.COMMANDS["airflow-worker"]}
    assert set(stack.COMMANDS.values()) == natively
    assert services["airflow-init"]["command"][-1] == "airflow db migrate"


def test_each_worker_has_its_own_session_cache_on_a_volume(compose):
    worker = compose["services"]["airflow-worker"]
    settings = _settings(worker["environment"])
    assert set(stack.WORKER_SETTINGS) <= set(settings)
    cache = settings["B1_SESSION_CACHE_DIR"]
    assert any(volume.split(":")[1] == cache for volume in worker["volumes"])
    for name in AIRFLOW_SERVICES:
        if name != "airflow-worker":
            assert not set(stack.WORKER_SETTINGS) & set(compose["services"][name]["environment"]), name
    # The image creates the folder, so that a new volume mounted there belongs to the airflow user.
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"mkdir -p {re.escape(cache)} && chmod 0700 {re.escape(cache)}", dockerfile)


def test_the_settings_point_at_the_services_of_the_topology(compose):
    services = compose["services"]
    env = compose["x-airflow-common"]["environment"]
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution.hostname == "airflow-apiserver"
    assert execution.path == "/execution/"
    assert f"{execution.port}:{execution.port}" in services["airflow-apiserver"]["ports"]

    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert backend.scheme.startswith("db+postgresql")
    assert (backend.hostname, backend.path) == (metadata.hostname, metadata.path) == ("postgres", "/airflow")
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"

    created = re.findall(r"CREATE DATABASE (\w+)", (REPO / "deploy" / "create-warehouse.sql").read_text())
    for key in ("AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT", "AIRFLOW_CONN_B1_AUDIT_DEFAULT"):
        url = urlsplit(env[key])
        assert (url.scheme, url.hostname, url.path.strip("/")) == ("postgres", "postgres", created[0]), key

    # Secrets shared by every component are required, never defaulted to a known value.
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", env[key]), key


def test_the_image_installs_the_provider_with_celery_and_deploys_the_dags():
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'pip install .*"/opt/b1\[celery\]"', dockerfile)
    assert "COPY --chown=airflow:root dags /opt/airflow/dags" in dockerfile
