#!/usr/bin/env bash
# One-shot (airflow-init): migrate Airflow's metadata DB and set the admin's password for
# the simple auth manager (users come from AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS).
set -euo pipefail

: "${AIRFLOW_ADMIN_USER:?AIRFLOW_ADMIN_USER is not set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set}"

IMAGE_TOOLS="${IMAGE_TOOLS:-/opt/stocklake/infra/docker/image_tools.py}"

airflow db migrate
"${PYTHON:-python}" "$IMAGE_TOOLS" airflow-passwords \
  --file "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" --user "$AIRFLOW_ADMIN_USER"
echo "airflow-init: metadata DB migrated; log in as '$AIRFLOW_ADMIN_USER'"
