"""``b1-webhooks`` as its own process: settings from the environment, a delivery recorded end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import requests
from webhook_fakes import SAP_SECRET, SERVICETITAN_KEY, free_port

from airflow_provider_b1.webhooks.signatures import sign


def test_the_command_serves_the_receiver_from_its_environment(fake_airflow, tmp_path):
    fake_airflow.declare("b1-webhook://servicetitan/invoices")
    port = free_port()
    key_file = tmp_path / "servicetitan.key"
    key_file.write_text(SERVICETITAN_KEY + "\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("B1_WEBHOOKS_")},
        "B1_WEBHOOKS_AIRFLOW_URL": fake_airflow.url,
        "B1_WEBHOOKS_AIRFLOW_USERNAME": fake_airflow.username,
        "B1_WEBHOOKS_AIRFLOW_PASSWORD": fake_airflow.password,
        "B1_WEBHOOKS_SERVICETITAN_KEY_FILE": str(key_file),
        "B1_WEBHOOKS_SAP_SECRET": SAP_SECRET,
    }
    command = [
        sys.executable,
        "-m",
        "airflow_provider_b1.webhooks",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "b1-webhooks did not start"
                time.sleep(0.05)
        assert health.json() == {"status": "ok", "servicetitan": True, "sap_b1": True}
        body = json.dumps(
            {"eventId": "cmd-1", "timestamp": dt.datetime.now(dt.timezone.utc).isoformat()}
        ).encode()
        response = requests.post(
            f"{base}/webhooks/servicetitan/invoices",
            data=body,
            headers={"X-ServiceTitan-Signature": sign(body, SERVICETITAN_KEY, "base64")},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert len(fake_airflow.events) == 1
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    for secret in (SERVICETITAN_KEY, SAP_SECRET, fake_airflow.password, *fake_airflow.issued):
        assert secret not in output
    assert "recorded as Asset event" in output
