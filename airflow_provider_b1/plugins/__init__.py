"""Airflow plugins the provider registers (entry point group ``airflow.plugins``)."""
