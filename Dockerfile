# An Airflow image with this provider installed, for every Airflow component (the api-server
# needs it for the connection forms, workers and the triggerer for the hooks and triggers).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION

COPY --chown=airflow:root pyproject.toml README.md /opt/b1/
COPY --chown=airflow:root airflow_provider_b1 /opt/b1/airflow_provider_b1
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/b1[celery]"
COPY --chown=airflow:root dags /opt/airflow/dags
# The workers' SAP session cache (B1_SESSION_CACHE_DIR): a volume mounted here starts with this
# owner and mode, so the airflow user can write it and no one else can read it.
RUN mkdir -p /opt/airflow/b1_sessions && chmod 0700 /opt/airflow/b1_sessions
