"""`stocklake ls` and `stocklake report`: look at the lake and the warehouse without a console."""

from __future__ import annotations

import io
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from cli.runs import report_checks
from stocklake import lake
from stocklake.s3 import lake_filesystem
from stocklake.settings import Settings, get_settings

console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass
class Folder:
    objects: int = 0
    size: int = 0


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def summarise(
    objects: list[tuple[str, int]], prefix: str, depth: int
) -> dict[tuple[str, ...], Folder]:
    """Object counts and sizes per folder, down to `depth` levels below `prefix` (pure)."""
    folders: dict[tuple[str, ...], Folder] = defaultdict(Folder)
    for key, size in objects:
        parts = key[len(prefix) :].split("/")
        if parts[-1] == "":  # a folder marker, not data
            continue
        folder_parts = parts[:-1]
        for level in range(0, min(depth, len(folder_parts)) + 1):
            entry = folders[tuple(folder_parts[:level])]
            entry.objects += 1
            entry.size += size
    return dict(folders)


@dataclass(frozen=True)
class LakeObject:
    key: str
    size: int
    modified: datetime | None  # UTC


def _list_objects(settings: Settings, prefix: str) -> list[LakeObject]:
    fs = lake_filesystem(settings)
    root = f"{settings.lake_bucket}/{prefix}"
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return []
    start = len(settings.lake_bucket) + 1
    objects = []
    for path, info in sorted(found.items()):
        if info.get("type") == "directory" or path.endswith("/"):
            continue
        modified = info.get("LastModified")
        objects.append(
            LakeObject(
                key=path[start:],
                size=int(info.get("size") or 0),
                modified=modified.astimezone(UTC) if isinstance(modified, datetime) else None,
            )
        )
    return objects


def _list(settings: Settings, prefix: str) -> list[tuple[str, int]]:
    return [(item.key, item.size) for item in _list_objects(settings, prefix)]


def object_lines(objects: list[LakeObject]) -> list[str]:
    """One line per object (last modified in UTC, size, key; like `aws s3 ls`), then a total."""
    sizes = [human_size(item.size) for item in objects]
    width = max(map(len, sizes), default=0)
    times = [
        f"{item.modified:%Y-%m-%d %H:%M:%S}" if item.modified else "-" * 19 for item in objects
    ]
    lines = [
        f"{when}  {size:>{width}}  {item.key}"
        for when, size, item in zip(times, sizes, objects, strict=True)
    ]
    total = sum(item.size for item in objects)
    lines.append(
        f"total: {len(objects):,} object{'' if len(objects) == 1 else 's'}, "
        f"{human_size(total)} ({total:,} bytes); times are UTC"
    )
    return lines


def render_tree(bucket: str, prefix: str, folders: dict[tuple[str, ...], Folder]) -> Tree:
    top = folders.get((), Folder())
    tree = Tree(f"s3://{bucket}/{prefix}  [dim]{top.objects} objects, {human_size(top.size)}[/dim]")
    nodes: dict[tuple[str, ...], Tree] = {(): tree}
    for path in sorted(p for p in folders if p):
        parent = nodes[path[:-1]]
        info = folders[path]
        nodes[path] = parent.add(
            f"{path[-1]}/  [dim]{info.objects} objects, {human_size(info.size)}[/dim]"
        )
    return tree


def _count_records(settings: Settings, keys: list[str]) -> int:
    """JSON lines in raw/quarantine objects, rows in parquet files."""
    import pyarrow.parquet as pq

    fs = lake_filesystem(settings)
    total = 0
    for key in keys:
        path = f"{settings.lake_bucket}/{key}"
        if key.endswith(".parquet"):
            total += pq.ParquetFile(io.BytesIO(fs.cat(path))).metadata.num_rows
        elif key.endswith(lake.RAW_SUFFIX):
            total += sum(1 for line in fs.cat(path).splitlines() if line.strip())
    return total


ZONE_VIEWS = (
    ("raw/historical", lake.RAW_HISTORICAL),
    ("raw/realtime", lake.RAW_REALTIME),
    ("quarantine", lake.QUARANTINE),
    ("processed/historical", lake.PROCESSED_HISTORICAL),
    ("processed/realtime", lake.PROCESSED_REALTIME),
)


def _rounded(column: str, places: int) -> str:
    # DECIMAL with an explicit scale rounds the same on PostgreSQL and Snowflake.
    return f"ROUND(CAST({column} AS DECIMAL(20, 6)), {places}) AS {column}"


EXAMPLE_QUERIES = (
    (
        "Biggest daily movers",
        f"SELECT symbol, trade_date, {_rounded('daily_open', 2)}, {_rounded('daily_close', 2)}, "
        f"{_rounded('daily_change_pct', 2)}, daily_volume "
        "FROM daily_metrics ORDER BY ABS(daily_change_pct) DESC, symbol LIMIT 5",
    ),
    (
        "Highest 1-hour volatility",
        f"SELECT symbol, window_start, window_end, {_rounded('avg_price', 2)}, "
        f"{_rounded('volatility', 4)}, tick_count "
        "FROM realtime_window_metrics WHERE window_size = '1h' "
        "ORDER BY volatility DESC, symbol, window_start LIMIT 5",
    ),
)


def _query_table(title: str, columns: list[str], rows: list[tuple]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def _ls(settings: Settings, prefix: str, depth: int, objects: bool) -> None:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    found = _list_objects(settings, prefix)
    if not found:
        console.print(f"s3://{settings.lake_bucket}/{prefix}: no objects", markup=False)
        return
    if objects:
        print(f"s3://{settings.lake_bucket}/{prefix}")
        print("\n".join(object_lines(found)))
        return
    sized = [(item.key, item.size) for item in found]
    console.print(render_tree(settings.lake_bucket, prefix, summarise(sized, prefix, depth)))


def _report_warehouse(settings) -> None:
    """Rows per managed table and the example queries; says so when nothing is loaded yet."""
    from loaders import run_query
    from loaders.tables import MANAGED_TABLES

    counts = Table(title=f"warehouse ({settings.warehouse_kind}): rows per table")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    try:
        for table in MANAGED_TABLES:
            _, rows = run_query(settings, f"SELECT COUNT(*) FROM {table.name}")
            counts.add_row(table.name, str(rows[0][0]))
    except Exception as error:  # the backends raise their own driver's errors
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        console.print(
            f"warehouse ({settings.warehouse_kind}): no tables to report ({first_line}); "
            "nothing has been loaded yet: `stocklake load daily` or `make run` creates them"
        )
        return
    console.print(counts)
    for title, statement in EXAMPLE_QUERIES:
        columns, rows = run_query(settings, statement)
        console.print(f"[bold]{title}[/bold]: {statement}")
        console.print(_query_table(title, columns, rows))


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls(
        prefix: str = typer.Argument("", help="Key prefix, e.g. raw/historical/year=2020/"),
        depth: int = typer.Option(6, help="Folder levels to show below the prefix."),
        objects: bool = typer.Option(
            False,
            "--objects",
            help="List every object under the prefix (last modified, size, key) and a total, "
            "instead of the folder tree.",
        ),
    ) -> None:
        """Browse the lake: folders with object counts and sizes, or (--objects) the objects."""
        _ls(get_settings(), prefix, depth, objects)

    @app.command("report")
    def report() -> None:
        """What the lake and the warehouse hold: records per zone, tree, tables, examples."""

        settings = get_settings()
        zones = Table(title=f"lake s3://{settings.lake_bucket}: records per zone")
        for column in ("zone", "objects", "size", "records"):
            zones.add_column(column, justify="left" if column == "zone" else "right")
        for label, prefix in ZONE_VIEWS:
            objects = [(k, s) for k, s in _list(settings, prefix + "/") if not k.endswith("/")]
            data_keys = [k for k, _ in objects]
            zones.add_row(
                label,
                str(len(objects)),
                human_size(sum(s for _, s in objects)),
                str(_count_records(settings, data_keys)),
            )
        console.print(zones)

        objects = _list(settings, "")
        console.print(render_tree(settings.lake_bucket, "", summarise(objects, "", 5)))

        _report_warehouse(settings)
        console.print(report_checks(settings))
