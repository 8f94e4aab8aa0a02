from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.sandbox.sap.data import Dataset, generate


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return generate(7, 1500, dt.date(2025, 6, 1))
