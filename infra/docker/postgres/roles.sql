-- Roles and databases of the compose stack's PostgreSQL (run by init-roles.sh with psql
-- variables). Each role owns its database and only its owner may connect to it: Airflow
-- cannot read the warehouse and the pipeline cannot touch Airflow's metadata.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'airflow_user', :'airflow_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'airflow_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'airflow_db') \gexec

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'warehouse_user', :'warehouse_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'warehouse_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'warehouse_db', :'warehouse_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'warehouse_db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'warehouse_db') \gexec
