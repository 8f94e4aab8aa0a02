"""``b1-webhooks``: refuses to start on a bad setting, with the variable's name."""

from __future__ import annotations

import pytest

from airflow_provider_b1.webhooks.__main__ import main


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("B1_WEBHOOKS_"):
            monkeypatch.delenv(name)


def test_help_settings_lists_every_variable(capsys):
    assert main(["--help-settings"]) == 0
    out = capsys.readouterr().out
    assert "B1_WEBHOOKS_SERVICETITAN_KEY" in out
    assert "B1_WEBHOOKS_REPLAY_WINDOW_SECONDS" in out


def test_a_bad_setting_stops_it_before_it_listens(monkeypatch, capsys):
    monkeypatch.setenv("B1_WEBHOOKS_AIRFLOW_URL", "http://airflow:8080")
    monkeypatch.setenv("B1_WEBHOOKS_SERVICETITAN_KEY", "too-short-to-be-a-key")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "B1_WEBHOOKS_SERVICETITAN_KEY" in err
    assert "too-short-to-be-a-key" not in err


def test_without_any_sender_configured_it_does_not_start(monkeypatch, capsys):
    monkeypatch.setenv("B1_WEBHOOKS_AIRFLOW_URL", "http://airflow:8080")
    assert main([]) == 2
    assert "nothing would be accepted" in capsys.readouterr().err
