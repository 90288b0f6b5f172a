#!/bin/sh
# First start of the postgres volume only (docker-entrypoint-initdb.d): one role and one
# database for Airflow's metadata, another pair for the warehouse. Names and passwords
# come from the environment; roles.sql quotes them, so any value is safe.
set -eu

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  --set=airflow_db="${STOCKLAKE_AIRFLOW_DB:?STOCKLAKE_AIRFLOW_DB is not set}" \
  --set=airflow_user="${STOCKLAKE_AIRFLOW_DB_USER:?STOCKLAKE_AIRFLOW_DB_USER is not set}" \
  --set=airflow_password="${STOCKLAKE_AIRFLOW_DB_PASSWORD:?STOCKLAKE_AIRFLOW_DB_PASSWORD is not set}" \
  --set=warehouse_db="${STOCKLAKE_WAREHOUSE_DB:?STOCKLAKE_WAREHOUSE_DB is not set}" \
  --set=warehouse_user="${STOCKLAKE_WAREHOUSE_DB_USER:?STOCKLAKE_WAREHOUSE_DB_USER is not set}" \
  --set=warehouse_password="${STOCKLAKE_WAREHOUSE_DB_PASSWORD:?STOCKLAKE_WAREHOUSE_DB_PASSWORD is not set}" \
  --file="${STOCKLAKE_ROLES_SQL:-/opt/stocklake/postgres/roles.sql}"
