"""The `retail-etl` command line: generate, run, backfill, report, demo.

With no PREFECT_API_URL, a command starts one temporary local Prefect server;
with no RETAIL_ETL_DASK_ADDRESS, one LocalCluster; both last as long as the command.
"""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()


def _parse_date(value: Optional[str]) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


DateOption = Annotated[Optional[str], typer.Option("--date", help="Sale date, YYYY-MM-DD (default: yesterday).")]
LandingOption = Annotated[Optional[str], typer.Option(help="Landing root: path or s3://bucket/prefix [RETAIL_ETL_LANDING].")]
WarehouseOption = Annotated[Optional[str], typer.Option(help="Warehouse root: path or s3://bucket/prefix [RETAIL_ETL_WAREHOUSE].")]
StrictOption = Annotated[bool, typer.Option("--strict", help="Fail the day if a landing file cannot be read.")]
AllowEmptyOption = Annotated[bool, typer.Option("--allow-empty", help="Publish an empty day when no landing file exists (default: fail).")]
RegionsOption = Annotated[Optional[str], typer.Option(help="Allowed regions, comma-separated [RETAIL_ETL_REGIONS].")]


def _apply_regions(regions: Optional[str]) -> None:
    if regions is not None:
        os.environ["RETAIL_ETL_REGIONS"] = regions


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _days_table(manifests: list[dict], elapsed: float) -> Table:
    table = Table(title=f"retail-etl: {len(manifests)} day(s) published in {elapsed:.1f} s")
    table.add_column("sale date")
    for column in ("rows in", "published", "quarantined", "files rejected", "revenue"):
        table.add_column(column, justify="right")
    for m in manifests:
        table.add_row(m["sale_date"], f"{m['rows_in']:,}", f"{m['rows_published']:,}", f"{m['rows_quarantined']:,}",
                      str(len(m["files_rejected"])), f"{m['revenue']:,.2f}")
    return table


def _day_tables(manifest: dict, elapsed: float) -> list[Table]:
    """Summary, quarantine reasons, regions and rejected files of one day."""
    rows_in = manifest["rows_in"]
    share = f" ({manifest['rows_quarantined'] / rows_in:.2%})" if rows_in else ""
    summary = Table(title=f"retail-etl: {manifest['sale_date']} published in {elapsed:.1f} s", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("rows in", f"{rows_in:,}")
    summary.add_row("rows published", f"{manifest['rows_published']:,}")
    summary.add_row("rows quarantined", f"{manifest['rows_quarantined']:,}{share}")
    summary.add_row("files accepted / rejected", f"{len(manifest['files_accepted'])} / {len(manifest['files_rejected'])}")
    summary.add_row("revenue", f"{manifest['revenue']:,.2f}")
    tables = [summary]
    if manifest["quarantine_reasons"]:
        reasons = Table(title="quarantine reasons")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in manifest["quarantine_reasons"].items():
            reasons.add_row(reason, f"{count:,}")
        tables.append(reasons)
    regions = Table(title="regions")
    regions.add_column("region")
    regions.add_column("rows", justify="right")
    regions.add_column("revenue", justify="right")
    for region, figures in manifest["regions"].items():
        regions.add_row(region, f"{figures['rows']:,}", f"{figures['revenue']:,.2f}")
    tables.append(regions)
    if manifest["files_rejected"]:
        rejected = Table(title="rejected files (kept byte for byte in quarantine/files)")
        rejected.add_column("file")
        rejected.add_column("reason")
        for entry in manifest["files_rejected"]:
            rejected.add_row(entry["file"].rsplit("/", 1)[-1], entry["reason"])
        tables.append(rejected)
    return tables


@app.command()
def generate(
    date_: Annotated[str, typer.Option("--date", help="Sale date, YYYY-MM-DD.")] = "2024-01-15",
    rows: Annotated[int, typer.Option(min=0, help="Rows in all, spread over the stores.")] = 200_000,
    stores: Annotated[int, typer.Option(min=1, help="Stores, one file each.")] = 20,
    bad_fraction: Annotated[float, typer.Option(min=0.0, max=0.49, help="Share of rows spoiled.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
    bad_files: Annotated[int, typer.Option(min=0, help="Unreadable files to add (garbage, latin-1, wrong columns).")] = 0,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: LandingOption = None,
) -> None:
    """Write one synthetic day of landing files, with bad rows of every kind."""
    from .generate import generate_day

    sale_date = _parse_date(date_)
    target = out or Settings().landing
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"generating {sale_date}", total=stores)
        day = generate_day(target, sale_date, rows=rows, stores=stores, bad_fraction=bad_fraction, seed=seed,
                           bad_files=bad_files, file_format=file_format, progress=lambda _: progress.advance(bar))
    table = Table(title=f"generated {sale_date} in {time.perf_counter() - started:.1f} s")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows", f"{day.rows:,}")
    table.add_row("store files", str(len(day.files)))
    table.add_row("unreadable files", str(len(day.bad_files)))
    for reason, count in sorted(day.injected.items()):
        table.add_row(f"injected {reason}", f"{count:,}")
    console.print(table)
    console.print(f"landing files under {target}")


@app.command()
def run(
    date_: DateOption = None,
    landing: LandingOption = None,
    warehouse: WarehouseOption = None,
    strict: StrictOption = False,
    allow_empty: AllowEmptyOption = False,
    regions: RegionsOption = None,
) -> None:
    """Process one sale date (default: yesterday) and publish it."""
    sale_date = _parse_date(date_) or date.today() - timedelta(days=1)
    _apply_regions(regions)
    _run_days([sale_date], landing, warehouse, strict, allow_empty)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="First sale date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last sale date (inclusive), YYYY-MM-DD.")],
    landing: LandingOption = None,
    warehouse: WarehouseOption = None,
    strict: StrictOption = False,
    allow_empty: AllowEmptyOption = False,
    regions: RegionsOption = None,
) -> None:
    """Process every sale date from START to END (inclusive)."""
    first, last = _parse_date(start), _parse_date(end)
    if last < first:
        raise typer.BadParameter(f"--end {last} is before --start {first}")
    _apply_regions(regions)
    _run_days([first + timedelta(days=n) for n in range((last - first).days + 1)], landing, warehouse, strict,
              allow_empty)


def _run_days(days: list[date], landing: Optional[str], warehouse: Optional[str], strict: bool,
              allow_empty: bool = False) -> list[dict]:
    from .flows import backfill as backfill_flow
    from .flows import daily_sales_etl
    from .runtime import dask_task_runner, platform

    started = time.perf_counter()
    try:
        with platform():
            if len(days) == 1:
                daily = daily_sales_etl.with_options(task_runner=dask_task_runner())
                manifests = [daily(run_date=days[0], landing=landing, warehouse=warehouse, strict=strict,
                                   allow_empty=allow_empty)]
            else:
                manifests = backfill_flow(start=days[0], end=days[-1], landing=landing, warehouse=warehouse,
                                          strict=strict, allow_empty=allow_empty)
    except Exception as exc:  # the flow already logged the traceback
        _fail(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    for table in _day_tables(manifests[0], elapsed) if len(manifests) == 1 else [_days_table(manifests, elapsed)]:
        console.print(table)
    console.print(f"manifest: {manifests[-1]['manifest_url']}")
    return manifests


@app.command()
def report(
    warehouse: WarehouseOption = None,
    start: Annotated[Optional[str], typer.Option(help="First sale date (default: 30 days ago).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Last sale date (default: today).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG of daily revenue per region here.")] = None,
) -> None:
    """Summarise the published days: per-region totals and data quality."""
    from .report import load_manifests, load_marts, plot_revenue, region_totals

    last = _parse_date(end) or date.today()
    first = _parse_date(start) or last - timedelta(days=30)
    target = warehouse or Settings().warehouse
    marts = load_marts(target, first, last)
    manifests = load_manifests(target, first, last)
    if marts.empty and not manifests:
        _fail(f"nothing published between {first} and {last} in {target}")
    totals = region_totals(marts)
    table = Table(title=f"revenue by region, {first} to {last} ({marts['sale_date'].nunique()} days)")
    for column in ("region", "revenue", "units", "transactions", "avg ticket"):
        table.add_column(column, justify="left" if column == "region" else "right")
    for row in totals.itertuples():
        table.add_row(row.region, f"{row.revenue:,.2f}", f"{row.units:,}", f"{row.transactions:,}",
                      f"{row.avg_ticket:,.2f}")
    table.add_section()
    table.add_row("all", f"{totals['revenue'].sum():,.2f}", f"{totals['units'].sum():,}",
                  f"{totals['transactions'].sum():,}", "")
    console.print(table)
    rows_in = sum(m["rows_in"] for m in manifests)
    quarantined = sum(m["rows_quarantined"] for m in manifests)
    rejected = sum(len(m["files_rejected"]) for m in manifests)
    share = f" ({quarantined / rows_in:.2%})" if rows_in else ""
    console.print(f"data quality: {rows_in:,} rows in, {quarantined:,} quarantined{share}, {rejected} file(s) rejected")
    if plot:
        plot_revenue(marts, str(plot))
        console.print(f"plot written to {plot}")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where landing and warehouse folders go.")] = Path("data"),
    date_: Annotated[str, typer.Option("--date", help="Sale date to simulate.")] = "2024-01-15",
    rows: Annotated[int, typer.Option(min=1)] = 200_000,
) -> None:
    """Generate one synthetic day into ./data, run it, and print the report."""
    from .generate import REGIONS

    landing, warehouse = str(directory / "landing"), str(directory / "warehouse")
    console.rule("1. generate")
    generate(date_=date_, rows=rows, stores=20, bad_fraction=0.01, seed=7, bad_files=3, file_format="csv", out=landing)
    console.rule("2. run")
    console.print(f"allowed regions: {', '.join(REGIONS)} (RETAIL_ETL_REGIONS)")
    run(date_=date_, landing=landing, warehouse=warehouse, strict=False, regions=",".join(REGIONS))
    console.rule("3. report")
    report(warehouse=warehouse, start=date_, end=date_, plot=directory / "revenue.png")
    console.print(f"Parquet under {warehouse}; try: python -c \"import pandas as pd; "
                  f"print(pd.read_parquet('{warehouse}/curated/sales').head())\"")


@app.command()
def register(
    environment: Annotated[str, typer.Option(help="Environment whose deployments to register (tag env:<name>).")],
    prefect_file: Annotated[Path, typer.Option(help="The project's prefect.yaml.")] = Path("prefect.yaml"),
    work_pool: Annotated[Optional[str], typer.Option(help="Use this pool for every deployment (default: prefect.yaml's).")] = None,
    pool_type: Annotated[str, typer.Option(help="Work pool type to create: kubernetes, process, ...")] = "kubernetes",
    base_job_template: Annotated[Optional[Path], typer.Option(help="JSON base job template to push into the pool.")] = None,
    image: Annotated[Optional[str], typer.Option(help="Image reference for the deployments' jobs.")] = None,
    working_directory: Annotated[Optional[str], typer.Option(help="Override the pull step's working directory.")] = None,
    job_variables: Annotated[Optional[str], typer.Option(help="JSON object merged into every deployment's job variables.")] = None,
    version: Annotated[Optional[str], typer.Option(help="Deployment version (default: the package version).")] = None,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait for the Prefect API.")] = 300.0,
) -> None:
    """Create or update an environment's work pool, result storage and deployments (the chart's registration Job)."""
    import json

    from .register import RegistrationError, register_environment

    try:
        template = json.loads(base_job_template.read_text()) if base_job_template else None
        overrides = json.loads(job_variables) if job_variables else None
        result = register_environment(environment, prefect_file, pool_type=pool_type, base_job_template=template,
                                      image=image, work_pool=work_pool, working_directory=working_directory,
                                      job_variables=overrides, version=version, wait_timeout=wait_timeout)
    except (RegistrationError, TimeoutError, OSError, ValueError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    table = Table(title=f"registered environment {environment}")
    table.add_column("what")
    table.add_column("name")
    table.add_column("result")
    for pool, outcome in result["work_pools"].items():
        table.add_row("work pool", pool, outcome)
    table.add_row("result storage", result["result_storage"] or "local warehouse: none needed", "saved" if result["result_storage"] else "")
    for deployment in result["deployments"]:
        table.add_row("deployment", f"{deployment['flow_name']}/{deployment['name']}", f"pool {deployment['work_pool']}")
    console.print(table)


@app.command("make-buckets")
def make_buckets(
    buckets: Annotated[list[str], typer.Argument(help="Bucket names to create if missing.")],
) -> None:
    """Create S3 buckets on RETAIL_ETL_S3_ENDPOINT_URL (the chart's MinIO bucket Job)."""
    from .storage import make_bucket

    for bucket in buckets:
        console.print(f"bucket {bucket}: {'created' if make_bucket(bucket) else 'exists'}")


@app.command()
def promote(
    source: Annotated[str, typer.Option("--from", help="Environment whose tested build to promote, e.g. dev.")],
    target: Annotated[str, typer.Option("--to", help="Environment to promote it to, e.g. staging.")],
    force: Annotated[bool, typer.Option("--force", help="Promote even if the source's latest daily run did not complete.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change and change nothing.")] = False,
    prefect_file: Annotated[Path, typer.Option(help="prefect.yaml, used to create target deployments that do not exist yet.")] = Path("prefect.yaml"),
) -> None:
    """Give TARGET's deployments SOURCE's image and flow version, keeping TARGET's pool, namespace, storage and schedule.

    Reads the source deployments from the Prefect API (PREFECT_API_URL). Refuses unless the
    latest run of daily-sales-etl-SOURCE completed (--force overrides). Records the promotion in
    the target's tags (promoted-from:SOURCE) and description.
    """
    from .promote import PromotionRefused
    from .promote import promote as promote_build

    try:
        verdict, changes = promote_build(source, target, force=force, dry_run=dry_run, prefect_file=prefect_file)
    except PromotionRefused as refusal:
        _fail(f"promotion refused: {refusal}")
    console.print(f"gate: {verdict}")
    table = Table(title=f"promotion {source} -> {target}" + (" (dry run: nothing changed)" if dry_run else ""))
    for column in ("deployment", "action", "field", "before", "after"):
        table.add_column(column)
    for change in changes:
        if not change.fields:
            table.add_row(change.target, change.action, "(no change)", "", "")
        for index, (name, (before, after)) in enumerate(change.fields.items()):
            table.add_row(change.target if index == 0 else "", change.action if index == 0 else "", name,
                          str(before), str(after))
    console.print(table)


@app.command()
def bench(
    rows: Annotated[int, typer.Option(min=1, help="Rows in the generated landing day.")] = 1_000_000,
    stores: Annotated[int, typer.Option(min=1, help="Stores, one CSV each.")] = 50,
    repeat: Annotated[int, typer.Option(min=1, help="Rounds of (pipeline, pandas, duckdb), alternating.")] = 3,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write every raw figure here.")] = None,
    workdir: Annotated[Optional[Path], typer.Option(help="Keep landing (reused) and run logs here (default: a temp dir).")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep every run's warehouse and the work directory.")] = False,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 7,
    empty_runs: Annotated[int, typer.Option(min=0, help="Empty-day pipeline runs (fixed cost).")] = 3,
    profile: Annotated[Optional[Path], typer.Option(help="Profile one more, untimed pipeline run (pyinstrument) into this text file.")] = None,
) -> None:
    """Time the pipeline against plain pandas and DuckDB baselines on the same generated day."""
    from .bench import BenchConfig, run_bench

    config = BenchConfig(rows=rows, stores=stores, repeat=repeat, seed=seed, empty_runs=empty_runs,
                         workdir=str(workdir) if workdir else None, keep=keep, profile=str(profile) if profile else None)
    raise typer.Exit(run_bench(config, json_path=json_path, console=console))


if __name__ == "__main__":
    app()
