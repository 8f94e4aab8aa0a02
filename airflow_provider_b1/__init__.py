"""Apache Airflow provider for SAP Business One and the systems around it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-provider-b1")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
