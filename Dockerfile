# An Airflow image with this provider installed, for every Airflow component (the api-server
# needs it for the connection forms, workers and the triggerer for the hooks and triggers).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION

COPY --chown=airflow:root pyproject.toml README.md /opt/b1/
COPY --chown=airflow:root airflow_provider_b1 /opt/b1/airflow_provider_b1
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/b1
COPY --chown=airflow:root dags /opt/airflow/dags
