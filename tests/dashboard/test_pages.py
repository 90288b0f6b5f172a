"""Every page in Streamlit's AppTest, against a warehouse of real bars and an empty one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import queries

pytestmark = pytest.mark.services

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
# Page file, plotly charts it shows with the real data.
PAGES = {
    "views/overview.py": 4,
    "views/symbol.py": 4,
    "views/realtime.py": 6,
    "views/pipeline.py": 1,
}


def run_page(page: str) -> AppTest:
    queries.clear_cache()
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    if page != "views/overview.py":
        app.switch_page(page).run()
    return app


def texts(app: AppTest) -> str:
    parts = [
        element.value
        for kind in ("info", "warning", "error", "code", "markdown", "caption")
        for element in app.get(kind)
        if isinstance(getattr(element, "value", None), str)
    ]
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_its_charts(page: str, loaded_schema: str, dashboard_env) -> None:
    dashboard_env(loaded_schema)
    app = run_page(page)
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    charts = app.get("plotly_chart")
    assert len(charts) == PAGES[page], texts(app)


def test_overview_follows_the_pickers(loaded_schema: str, dashboard_env) -> None:
    dashboard_env(loaded_schema)
    app = run_page("views/overview.py")
    picker = app.multiselect[0]
    assert picker.value == ["AAPL", "AMZN", "GOOGL", "META", "NFLX", "TSLA"]  # no index
    picker.set_value(["TSLA", "^GSPC"]).run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 4
    picker.set_value([]).run()
    assert "Pick at least one symbol" in texts(app)


def test_symbol_page_switches_symbol(loaded_schema: str, dashboard_env) -> None:
    dashboard_env(loaded_schema)
    app = run_page("views/symbol.py")
    app.selectbox[0].set_value("NFLX").run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 4
    assert "NFLX" in str(app.get("plotly_chart")[0].proto.spec)


@pytest.mark.parametrize("page", PAGES)
def test_empty_warehouse_says_what_to_run(page: str, empty_schema: str, dashboard_env) -> None:
    dashboard_env(empty_schema)
    app = run_page(page)
    assert not app.exception, app.exception
    text = texts(app)
    if page == "views/realtime.py":
        assert "No real-time windows loaded yet" in text
        assert "stocklake load realtime" in text
    elif page == "views/pipeline.py":
        assert "no tables yet" in text and "make run" in text
        assert "stocklake ls quarantine/" in text
    else:
        assert "daily_metrics is not in the warehouse yet" in text
        assert "make run" in text and "stocklake load daily" in text


@pytest.mark.parametrize("page", PAGES)
def test_unreachable_warehouse_says_what_to_run(page: str, dashboard_env) -> None:
    dashboard_env("public", POSTGRES_PORT="1")  # nothing listens on port 1
    app = run_page(page)
    assert not app.exception, app.exception
    text = texts(app)
    assert "not reachable" in text and "stocklake up" in text, text


def test_missing_schema_says_what_to_run(dashboard_env, stack) -> None:
    dashboard_env("no_such_schema_for_the_dashboard")
    app = run_page("views/overview.py")
    assert not app.exception
    assert "does not exist" in texts(app) and "stocklake up" in texts(app)


def test_first_render_is_quick(loaded_schema: str, dashboard_env) -> None:
    """Each page's first render (empty cache) with the bundled data: well under 2 s."""
    dashboard_env(loaded_schema)
    run_page("views/overview.py")  # imports (plotly, pandas) once
    for page in PAGES:
        started = time.perf_counter()
        run_page(page)
        seconds = time.perf_counter() - started
        print(f"{page}: first render {seconds:.2f} s")
        assert seconds < 2.0, f"{page} took {seconds:.2f} s"


@pytest.mark.parametrize("page", PAGES)
def test_migrated_but_empty_tables_say_what_to_run(
    page: str, empty_schema: str, dashboard_env, stack
) -> None:
    """The tables exist (the loader's migrations ran) but nothing is loaded yet."""
    from loaders import connect_warehouse

    with connect_warehouse(stack, schema=empty_schema) as warehouse:
        warehouse.migrate()
    dashboard_env(empty_schema)
    app = run_page(page)
    assert not app.exception, app.exception
    text = texts(app)
    if page == "views/realtime.py":
        assert "No real-time windows loaded yet" in text
    elif page == "views/pipeline.py":
        assert "No loads recorded yet" in text
        assert len(app.get("plotly_chart")) == 1  # the row counts, all zero
    else:
        assert "daily_metrics is empty" in text and "stocklake load daily" in text
