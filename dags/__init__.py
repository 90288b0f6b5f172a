"""Airflow DAGs: wiring only; the work lives in the stage packages."""
