"""Secrets obtained at run time (session ids, cookies, access tokens) and Airflow's log masker."""

from __future__ import annotations

import contextlib


def mask(value: str | None) -> None:
    """Register a run-time secret with Airflow's log masker, when running under Airflow.

    Airflow masks a connection's password by itself, but not what a hook obtains with it
    (session ids, cookies, tokens): every hook passes those here. Imported lazily so hooks also
    work outside a task (scripts, tests, the sandbox demo).
    """
    if not value:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow is a dependency, but stay usable without it
        return
    with contextlib.suppress(Exception):
        mask_secret(value)
