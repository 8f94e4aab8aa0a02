"""The Teams sandbox's control plane over HTTPS (posts, faults, reset) and the ``b1-sandbox``
command's two Teams connections, each used as a third-party client would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

CARD = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "hi"}]}
MESSAGE = {
    "type": "message",
    "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": CARD}
    ],
}


def test_faults_hit_the_api_but_never_the_control_plane_and_reset_clears_posts(teams_sandbox):
    teams_sandbox.restore()
    url = teams_sandbox.tenant()["channels"][2]["webhook_url"]
    teams_sandbox.faults(error_rate=1.0)
    assert requests.post(url, json=MESSAGE, verify=teams_sandbox.ca_path, timeout=10).status_code == 503
    assert teams_sandbox.stats()["faults_injected"] == {"error": 1}
    teams_sandbox.faults()
    assert requests.post(url, json=MESSAGE, verify=teams_sandbox.ca_path, timeout=10).status_code == 202
    (post,) = teams_sandbox.posts()
    assert post["channel"] == "Operations / Alerts"
    refused = requests.post(
        url, data="hi", headers={"Content-Type": "text/plain"}, verify=teams_sandbox.ca_path, timeout=10
    )
    assert refused.status_code == 400
    assert "must be JSON" in refused.json()["error"]["message"]
    teams_sandbox.restore()
    assert teams_sandbox.posts() == []


def test_b1_sandbox_prints_the_teams_connections(tmp_path: Path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_b1.sandbox",
            "--only",
            "teams",
            "--state-dir",
            str(tmp_path),
            "--ready-file",
            str(ready),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    http = requests.Session()
    http.headers["Connection"] = "close"  # no keep-alive connection to hold up the server's stop
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        lines = {c.split("=", 1)[0]: json.loads(c.split("=", 1)[1].strip("'")) for c in info["connections"]}
        webhook = lines["AIRFLOW_CONN_B1_TEAMS_WEBHOOK_DEFAULT"]
        bot = lines["AIRFLOW_CONN_B1_TEAMS_BOT_DEFAULT"]
        base = info["sandboxes"]["teams"]["base_url"]
        assert webhook["conn_type"] == "b1_teams_webhook"
        assert bot["conn_type"] == "b1_teams_bot"
        ca = bot["extra"]["ca_bundle"]
        assert webhook["password"].startswith(f"{base}/workflows/")
        assert http.post(webhook["password"], json=MESSAGE, verify=ca, timeout=10).status_code == 202
        extra = bot["extra"]
        token = http.post(
            f"{extra['login_url']}/botframework.com/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": bot["login"],
                "client_secret": bot["password"],
                "scope": "https://api.botframework.com/.default",
            },
            verify=ca,
            timeout=10,
        ).json()["access_token"]
        members = http.get(
            f"{extra['service_url']}/v3/conversations/{extra['test_conversation_id']}/members",
            headers={"Authorization": f"Bearer {token}"},
            verify=ca,
            timeout=10,
        )
        assert members.status_code == 200
        assert len(members.json()) == 3
    finally:
        http.close()
        proc.terminate()
        proc.wait(timeout=10)
