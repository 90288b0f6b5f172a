"""`stocklake land historical|realtime`: Kafka -> raw zone, exactly once."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from cli.command_run import command_run
from cli.figures import rate_text, seconds_text
from stocklake.schemas import RecordKind
from stocklake.settings import get_settings
from streaming.errors import LandingError
from streaming.landing import land
from streaming.options import (
    DEFAULT_BATCH_AGE,
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_RECORDS,
    DEFAULT_MAX_FUTURE,
    LandingOptions,
)
from streaming.retry import RetryPolicy
from streaming.summary import LandSummary

app = typer.Typer(
    help=(
        "Land a topic into the lake's raw zone (JSON lines by UTC event time), exactly once. "
        "Bounded with --until-idle/--max-records, continuous otherwise; SIGTERM flushes and exits."
    ),
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

TopicOption = Annotated[
    str | None, typer.Option(help="Topic to read (default: the configured topic of the kind).")
]
GroupOption = Annotated[
    str | None,
    typer.Option("--group-id", help="Consumer group (default: stocklake-land-<kind>)."),
]
UntilIdleOption = Annotated[
    float | None,
    typer.Option(
        "--until-idle",
        min=0,
        help="Stop after this many seconds without new records (bounded mode, for Airflow).",
    ),
]
MaxRecordsOption = Annotated[
    int | None,
    typer.Option("--max-records", min=1, help="Stop after consuming this many records."),
]
BatchRecordsOption = Annotated[
    int, typer.Option("--batch-records", min=1, help="Flush when this many records are buffered.")
]
BatchMbOption = Annotated[
    float, typer.Option("--batch-mb", min=0.001, help="Flush when this many MB are buffered.")
]
BatchAgeOption = Annotated[
    float,
    typer.Option(
        "--batch-age", min=0.001, help="Flush when the oldest buffered record is this many s old."
    ),
]
MaxFutureOption = Annotated[
    float,
    typer.Option(
        "--max-future",
        min=0,
        help="Quarantine records whose event time is more than this many seconds ahead of now.",
    ),
]
RetriesOption = Annotated[
    int,
    typer.Option(
        "--retries", min=1, help="Attempts per S3/Kafka call before giving up (backoff doubles)."
    ),
]
RetryDelayOption = Annotated[
    float,
    typer.Option(
        "--retry-delay",
        min=0,
        help="First backoff wait of a Kafka call in seconds (S3 calls use botocore's backoff).",
    ),
]
ResetPartitionOption = Annotated[
    list[int] | None,
    typer.Option(
        "--reset-partition",
        min=0,
        help="Rewrite this partition's landing markers first (repeatable; needs --from), e.g. "
        "after the broker lost its data or the topic was re-created. Stop other landers first.",
    ),
]
FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Where a reset partition's landing starts: 'earliest' (Kafka's log start) or an "
        "offset.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log every flush.")]


def _run(
    kind: RecordKind,
    *,
    topic: str | None,
    group_id: str | None,
    until_idle: float | None,
    max_records: int | None,
    batch_records: int,
    batch_mb: float,
    batch_age: float,
    max_future: float,
    retries: int,
    retry_delay: float,
    reset_partition: list[int] | None,
    from_: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    resets = reset_partitions(reset_partition, from_)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    # kafka-python's connection chatter is noise unless something is wrong.
    logging.getLogger("kafka").setLevel(logging.WARNING if verbose else logging.ERROR)
    options = LandingOptions(
        topic=topic,
        group_id=group_id,
        until_idle=until_idle,
        max_records=max_records,
        batch_records=batch_records,
        batch_bytes=int(batch_mb * 1024 * 1024),
        batch_age=batch_age,
        max_future=timedelta(seconds=max_future),
        retry=RetryPolicy(
            attempts=retries, first_delay=retry_delay, max_delay=max(30.0, retry_delay)
        ),
        reset_partitions=resets,
    )
    settings = get_settings()
    with command_run(f"land {kind}") as run:
        try:
            summary = land(settings, kind, options)
        except LandingError as error:
            err_console.print(f"[red]error:[/red] {error}")
            raise run.exit(1, error) from None
        run.count(summary.to_dict())
    if as_json:
        console.print_json(json.dumps({**summary.to_dict(), "pipeline_run_id": run.run_id}))
    else:
        console.print(summary_table(summary))
        console.print(run.line(), markup=False, highlight=False, soft_wrap=True)


def reset_partitions(partitions: list[int] | None, start: str | None) -> dict[int, int | None]:
    """--reset-partition/--from as {partition: first offset, None for earliest}."""
    if not partitions:
        if start is not None:
            raise typer.BadParameter("--from needs --reset-partition", param_hint="--from")
        return {}
    if start is None:
        raise typer.BadParameter("give --from earliest or --from <offset>", param_hint="--from")
    if start == "earliest":
        return dict.fromkeys(partitions)
    if not start.isdigit():
        raise typer.BadParameter(
            f"{start!r} is neither 'earliest' nor an offset", param_hint="--from"
        )
    return dict.fromkeys(partitions, int(start))


def summary_table(summary: LandSummary) -> Table:
    """The run's summary as a two-column table."""
    table = Table(title=f"stocklake land {summary.kind}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("topic / group", f"{summary.topic} / {summary.group_id}")
    table.add_row("records in", f"{summary.records_in:,}")
    table.add_row("landed", f"{summary.landed:,}")
    table.add_row("quarantined", f"{summary.quarantined_total:,}")
    for reason, count in sorted(summary.quarantined.items()):
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("objects written", f"{summary.objects_written:,}")
    table.add_row("MB written", f"{summary.bytes_written / 1e6:,.1f}")
    table.add_row("seconds", seconds_text(summary.seconds))
    table.add_row("rate", rate_text(summary.records_in, summary.seconds))
    table.add_row("stopped because", summary.stopped_because)
    if summary.discarded_objects:
        table.add_row("unfinished objects removed", f"{summary.discarded_objects:,}")
    if summary.commit_failures:
        table.add_row("offset commits failed (lake is authoritative)", f"{summary.commit_failures}")
    return table


@app.command()
def historical(
    topic: TopicOption = None,
    group_id: GroupOption = None,
    until_idle: UntilIdleOption = None,
    max_records: MaxRecordsOption = None,
    batch_records: BatchRecordsOption = DEFAULT_BATCH_RECORDS,
    batch_mb: BatchMbOption = DEFAULT_BATCH_BYTES / (1024 * 1024),
    batch_age: BatchAgeOption = DEFAULT_BATCH_AGE,
    max_future: MaxFutureOption = DEFAULT_MAX_FUTURE.total_seconds(),
    retries: RetriesOption = RetryPolicy.attempts,
    retry_delay: RetryDelayOption = RetryPolicy.first_delay,
    reset_partition: ResetPartitionOption = None,
    from_: FromOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Land historical bars into raw/historical/year=/month=/day=/ (by bar time, UTC)."""
    _run("historical", **locals())


@app.command()
def realtime(
    topic: TopicOption = None,
    group_id: GroupOption = None,
    until_idle: UntilIdleOption = None,
    max_records: MaxRecordsOption = None,
    batch_records: BatchRecordsOption = DEFAULT_BATCH_RECORDS,
    batch_mb: BatchMbOption = DEFAULT_BATCH_BYTES / (1024 * 1024),
    batch_age: BatchAgeOption = DEFAULT_BATCH_AGE,
    max_future: MaxFutureOption = DEFAULT_MAX_FUTURE.total_seconds(),
    retries: RetriesOption = RetryPolicy.attempts,
    retry_delay: RetryDelayOption = RetryPolicy.first_delay,
    reset_partition: ResetPartitionOption = None,
    from_: FromOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Land real-time ticks into raw/realtime/year=/month=/day=/hour=/ (by event time, UTC)."""
    _run("realtime", **locals())
