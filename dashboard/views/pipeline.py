"""Pipeline: the last loads, rows per table, the latest checks and drift alerts, the
quarantine, and the lake console."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, queries, ui
from dashboard.queries import WarehouseProblem
from stocklake.settings import Settings


def main() -> None:
    st.title("Pipeline")
    current = ui.settings()
    try:
        counts = queries.row_counts(current)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if counts["rows"].isna().all():
        empty = WarehouseProblem(
            "the warehouse has no tables yet", queries.FILL_COMMAND[queries.DAILY_METRICS_TABLE]
        )
        ui.show_problem(empty)
    else:
        tables(counts)
        loads(current)
    checks(current)
    drift(current)
    quarantine()
    st.subheader("Lake console")
    st.link_button("Open the lake console", current.lake_console_url)
    st.caption(f"{current.lake_console_url} (login: `.state/s3/console-login.json`)")


def tables(counts: pd.DataFrame) -> None:
    st.subheader("Rows per table")
    left, right = st.columns(2)
    with left:
        ui.chart(charts.row_count_chart(counts), key="row_counts")
    with right:
        missing = counts["rows"].isna()
        shown = counts.assign(
            rows=counts["rows"].map(_rows_text),
            to_fill=counts["fill_command"].where(missing, ""),
        )
        # The command column only when a table is still missing.
        columns = ["table", "rows", "to_fill"] if missing.any() else ["table", "rows"]
        st.dataframe(shown[columns], hide_index=True)


def _rows_text(rows: object) -> str:
    return "not created yet" if pd.isna(rows) else f"{int(rows):,}"


def loads(current: Settings) -> None:
    st.subheader("Last loads")
    try:
        recent = queries.recent_loads(current)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if recent.empty:
        st.info("No loads recorded yet.")
    else:
        st.dataframe(recent, hide_index=True)


def checks(current: Settings) -> None:
    st.subheader("Quality checks (latest checked run)")
    try:
        results = queries.latest_checks(current)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if results.empty:
        st.info(
            "No quality checks recorded yet. The batch DAG checks every partition it writes; "
            "to check one date by hand, run:"
        )
        st.code("stocklake check daily_metrics --date YYYY-MM-DD", language="bash")
        return
    counts = results["status"].value_counts()
    run_id = results["run_id"].iloc[0]
    passed, warned, failed = st.columns(3)
    passed.metric("passed", int(counts.get("passed", 0)))
    warned.metric("warned", int(counts.get("warned", 0)))
    failed.metric("failed", int(counts.get("failed", 0)))
    st.caption(f"run `{run_id}`, failed and warned checks first; `stocklake runs show` has more")
    st.dataframe(results.drop(columns=["run_id"]), hide_index=True)


def drift(current: Settings) -> None:
    st.subheader("Drift alerts (latest dates first, largest |z| first)")
    try:
        alerts = queries.recent_drift(current)
    except WarehouseProblem as problem:
        ui.show_problem(problem)
        return
    if alerts.empty:
        st.info(
            "No drift alerts: no symbol's daily volume, range, return or tick count was beyond "
            f"{current.drift_z_threshold:g} standard deviations of its trailing "
            f"{current.drift_window_days} trading days (alerts are stored only when one is). "
            "To look at one date by hand, run:"
        )
        st.code("stocklake drift --date YYYY-MM-DD", language="bash")
        return
    st.dataframe(alerts, hide_index=True)


def quarantine() -> None:
    st.subheader("Quarantine")
    st.info(
        "Records set aside (with their reason) are kept in the lake, not in the warehouse: "
        "list them with"
    )
    st.code("stocklake ls quarantine/", language="bash")


main()
