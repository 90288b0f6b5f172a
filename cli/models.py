"""`stocklake train direction|stress` and `stocklake serve`: the models from the command line.

`train` reads the warehouse's feature tables (`loaders.run_query`, read-only), trains
(`models/`), publishes a new version to the lake (`models/<name>/v<N>/`), records the
metrics in the warehouse's `model_runs` table (when it exists) and prints model vs
baselines. `serve` loads one version of a model once and serves the prediction API
(`models/api.py`) with uvicorn on the bind host, reading features through the warehouse:
in the foreground by default, or `--background` (PID and log under `$STATE_DIR/models/`,
one pair per port; `--stop` stops it, `stop_all_apis` every one this state folder started).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.command_run import CommandRun, command_run
from infra.background import BackgroundServer, stop_all
from infra.service import StackError
from stocklake.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

API_START_TIMEOUT_S = 90.0
SCHEMA_HELP = "PostgreSQL schema (default WAREHOUSE_SCHEMA) or Snowflake schema."

train_app = typer.Typer(
    help="Train a model on the warehouse's features and publish a new version to the lake.",
    no_args_is_help=True,
)


def api_server(settings: Settings, port: int | None = None) -> BackgroundServer:
    """The model API on MODELS_PORT (or `port`) on the bind host."""
    return BackgroundServer(
        name="api",
        host=settings.bind_host,
        port=port or settings.models_port,
        folder=settings.state_path / "models",
        health_path="/health",
        marker="cli.models serve",
    )


# -- the warehouse side (also used by dags/stock_market_training.py through the same calls)


def read_features(settings: Settings, which: str, schema: str | None = None):
    """daily_features or intraday_features as a frame (every row)."""
    from loaders import run_query
    from models.data import read_features as read

    return read(lambda statement: run_query(settings, statement, schema), which)


def record_runs(settings: Settings, card: dict[str, Any], schema: str | None = None) -> str:
    """Insert the card's metrics into `model_runs`; what happened, in a few words."""
    from loaders import run_query
    from models.card import MODEL_RUNS_TABLE, model_run_rows, model_runs_insert_sql

    rows = model_run_rows(card, card["version"])
    try:
        run_query(settings, model_runs_insert_sql(rows), schema, write=True)
    except Exception as error:  # the table comes with a loaders migration
        return f"not recorded in {MODEL_RUNS_TABLE} ({type(error).__name__}: {error})".strip()
    return f"{len(rows)} rows in {MODEL_RUNS_TABLE}"


def _publish(settings: Settings, result: Any) -> dict[str, Any]:
    from models.registry import ModelRegistry

    return ModelRegistry.from_settings(settings).publish(result.name, result.model, result.card)


# -- output ---------------------------------------------------------------------------------

DIRECTION_METRICS = ("accuracy", "roc_auc", "log_loss")
STRESS_METRICS = ("precision", "recall", "f1", "alarms", "drops")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def best_scorers(card: dict[str, Any]) -> dict[str, str]:
    """Per metric, the scorer that did best on the test part (the model or a baseline)."""
    lower_is_better = {"log_loss"}
    metrics = DIRECTION_METRICS if card["kind"] == "classifier" else ("precision", "recall", "f1")
    best = {}
    for metric in metrics:
        scored = {
            s: v[metric] for s, v in card["metrics"]["test"].items() if v.get(metric) is not None
        }
        if scored:
            pick = min if metric in lower_is_better else max
            best[metric] = pick(scored, key=scored.__getitem__)
    return best


def summary_table(card: dict[str, Any]) -> Table:
    """The test part's metrics, model vs baselines."""
    metrics = DIRECTION_METRICS if card["kind"] == "classifier" else STRESS_METRICS
    test = card["metrics"]["test"]
    first, last = card["ranges"]["test"]
    train_first, train_last = card["training_range"]
    best = best_scorers(card)
    table = Table(
        title=f"{card['name']} v{card['version']}: test {first} .. {last}",
        caption=f"test {card['rows']['test']} rows; trained on {train_first} .. {train_last} "
        f"({card['rows']['train']} rows); * best on the test part",
    )
    table.add_column("scorer")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for scorer, values in test.items():
        cells = [
            _number(values.get(metric)) + ("*" if best.get(metric) == scorer else "")
            for metric in metrics
        ]
        table.add_row(scorer, *cells)
    return table


def _report(card: dict[str, Any], recorded: str, as_json: bool, run: CommandRun) -> None:
    if as_json:
        shown = {**card, "model_runs": recorded, "pipeline_run_id": run.run_id}
        print(json.dumps(shown, default=str))
        return
    console.print(summary_table(card))
    if card["kind"] == "stress_index":
        console.print(f"threshold {card['params']['threshold']:.4f}; label: {card['label']}")
    console.print(
        f"published {card['model_file']} (data fingerprint {card['data_fingerprint'][:16]}..); "
        f"{recorded}",
        soft_wrap=True,
    )
    console.print(run.line(), markup=False, highlight=False, soft_wrap=True)


def _fail(error: Exception) -> typer.Exit:
    err_console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


# -- commands -------------------------------------------------------------------------------


@train_app.command("direction")
def train_direction_command(
    seed: int = typer.Option(None, help="Random seed (default MODEL_SEED, else 17)."),
    schema: str | None = typer.Option(None, help=SCHEMA_HELP),
    record: bool = typer.Option(True, help="Insert the metrics into model_runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Next-day direction (logistic regression on daily_features) vs two baselines."""
    from models.direction import DirectionError, train_direction

    settings = get_settings()
    with command_run("train direction", schema) as run:
        try:
            daily = read_features(settings, "daily", schema)
            chosen = seed if seed is not None else settings.model_seed
            card = _publish(settings, train_direction(daily, seed=chosen))
        except DirectionError as error:
            _fail(error)
            raise run.exit(1, error) from None
        run.count(card)
    recorded = record_runs(settings, card, schema) if record else "not recorded (--no-record)"
    _report(card, recorded, as_json, run)


@train_app.command("stress")
def train_stress_command(
    kind: str = typer.Option("both", help="intraday, daily or both."),
    drop_pct: float = typer.Option(
        None,
        help="Drop (%) that labels a row (default STRESS_INTRADAY_DROP_PCT 0.5, "
        "STRESS_DAILY_DROP_PCT 5).",
    ),
    horizon: int = typer.Option(
        None,
        help="Horizon: minutes (intraday, STRESS_INTRADAY_HORIZON_MINUTES 15) or trading "
        "days (daily, STRESS_DAILY_HORIZON_DAYS 5).",
    ),
    schema: str | None = typer.Option(None, help=SCHEMA_HELP),
    record: bool = typer.Option(True, help="Insert the metrics into model_runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """The stress index and its F1-tuned alarm threshold (intraday and/or daily)."""
    from models.stress import DAILY, INTRADAY, StressError, train_stress

    if kind not in ("intraday", "daily", "both"):
        raise typer.BadParameter("intraday, daily or both", param_hint="--kind")
    settings = get_settings()
    kinds = {"intraday": [INTRADAY], "daily": [DAILY], "both": [INTRADAY, DAILY]}[kind]
    failed: list[str] = []
    with command_run("train stress", schema) as run:
        for name in kinds:
            which = "intraday" if name == INTRADAY else "daily"
            drop = drop_pct
            if drop is None:
                drop = getattr(settings, f"stress_{which}_drop_pct")
            ahead = horizon
            if ahead is None:
                unit = "minutes" if which == "intraday" else "days"
                ahead = getattr(settings, f"stress_{which}_horizon_{unit}")
            try:
                frame = read_features(settings, which, schema)
                card = _publish(settings, train_stress(frame, name, drop_pct=drop, horizon=ahead))
            except StressError as error:
                err_console.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
                failed.append(f"{which}: {error}")
                continue
            run.count(card)
            recorded = (
                record_runs(settings, card, schema) if record else "not recorded (--no-record)"
            )
            _report(card, recorded, as_json, run)
        if failed:
            raise run.exit(1, "; ".join(failed))


def serve(
    version: int | None = typer.Option(None, help="Serve this version (default: latest)."),
    model: str = typer.Option("direction", help="Model name in the lake."),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port (default MODELS_PORT, 8600)."
    ),
    schema: str | None = typer.Option(None, help=SCHEMA_HELP),
    background: bool = typer.Option(
        False, "--background", help="Detach; PID and log under $STATE_DIR/models/."
    ),
    stop_it: bool = typer.Option(False, "--stop", help="Stop the background API on the port."),
) -> None:
    """The prediction API (FastAPI, uvicorn) on BIND_HOST: /health, /predict, /models, /docs."""
    settings = get_settings()
    server = api_server(settings, port)
    if stop_it:
        pid = server.stop()
        typer.echo(f"model API stopped (pid {pid})" if pid else f"no model API on {server.url}")
        return
    if background:
        _serve_in_background(server, version=version, model=model, schema=schema)
        return
    _serve(settings, server, version=version, model=model, schema=schema)


def _serve(
    settings: Settings,
    server: BackgroundServer,
    *,
    version: int | None,
    model: str,
    schema: str | None,
) -> None:
    import uvicorn

    from loaders import run_query
    from models.api import create_app
    from models.data import QuerySource
    from models.registry import ModelRegistry, RegistryError

    source = QuerySource(lambda statement: run_query(settings, statement, schema))
    try:
        app = create_app(ModelRegistry.from_settings(settings), source, name=model, version=version)
    except RegistryError as error:
        raise _fail(error) from None
    console.print(
        f"{datetime.now():%H:%M:%S} serving {model} v{app.version} on {server.url} "
        "(docs: /docs; Ctrl-C stops it)",
        soft_wrap=True,
    )
    uvicorn.run(app, host=server.host, port=server.port, log_level="warning")


def _serve_in_background(
    server: BackgroundServer, *, version: int | None, model: str, schema: str | None
) -> None:
    pid = server.running_pid()
    if pid is not None:
        typer.echo(f"model API already running: {server.url} (pid {pid}); --stop first")
        return
    if server.port_taken():
        typer.echo(f"error: port {server.port} on {server.host} is taken (--port, MODELS_PORT)")
        raise typer.Exit(1)
    command = [sys.executable, "-m", "cli.models", "serve", "--port", str(server.port)]
    command += ["--model", model]
    command += ["--version", str(version)] if version is not None else []
    command += ["--schema", schema] if schema else []
    try:
        pid = server.start(command, timeout=API_START_TIMEOUT_S)
    except StackError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
        health = json.loads(response.read())
    typer.echo(
        f"model API: {server.url} ({health['model']} v{health['version']}, pid {pid}, "
        f"log {server.log_file}); docs {server.url}/docs"
    )
    typer.echo("stop it with: stocklake serve --stop" + _port_flag(server))


def _port_flag(server: BackgroundServer) -> str:
    return "" if server.port == get_settings().models_port else f" --port {server.port}"


def stop_all_apis(settings: Settings) -> list[str]:
    """Stop every background model API this state folder started: their URLs."""
    return stop_all(settings.state_path / "models", "api", lambda port: api_server(settings, port))


def register(app: typer.Typer) -> None:
    """`stocklake train ...` and `stocklake serve` on the main command."""
    app.add_typer(train_app, name="train")
    app.command("serve")(serve)


# `python -m cli.models train ...|serve ...` (the same commands, on their own).
main_app = typer.Typer(no_args_is_help=True, add_completion=False)
register(main_app)

if __name__ == "__main__":
    main_app()
