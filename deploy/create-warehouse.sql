CREATE DATABASE warehouse OWNER airflow;
