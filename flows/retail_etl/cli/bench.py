"""`retail-etl bench`: the pipeline against pandas and DuckDB baselines (needs the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import command, console


@command()
def bench(
    rows: Annotated[int, typer.Option(min=1, help="Rows in the generated landing day.")] = 1_000_000,
    stores: Annotated[int, typer.Option(min=1, help="Stores, one CSV each.")] = 50,
    repeat: Annotated[int, typer.Option(min=1, help="Rounds of (pipeline, pandas, duckdb), alternating.")] = 3,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write every raw figure here.")] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Keep landing (reused) and run logs here (default: a temp dir).")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep every run's warehouse and the work directory.")] = False,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 7,
    empty_runs: Annotated[int, typer.Option(min=0, help="Empty-day pipeline runs (fixed cost).")] = 3,
    profile: Annotated[
        Path | None, typer.Option(help="Profile one more, untimed pipeline run (pyinstrument) into this text file.")
    ] = None,
    background_load: Annotated[
        float,
        typer.Option(
            min=0,
            help="CPU cores (e.g. 0.5) of background load the bench burns in its own processes during every "
            "contender's run, the same for all; not counted in any contender's figures.",
        ),
    ] = 0.0,
    backfill_days: Annotated[
        int,
        typer.Option(
            min=0,
            help="Backfill mode: N consecutive days of --rows rows each, from 2024-01-15; the pipeline's backfill "
            "flow against each baseline looping the days in one process, outputs compared per day. Empty-day "
            "runs (--empty-runs) and --profile are skipped in this mode. RETAIL_ETL_* settings in the environment "
            "(e.g. RETAIL_ETL_BACKFILL_CONCURRENCY) reach the pipeline and are recorded.",
        ),
    ] = 0,
) -> None:
    """Time the pipeline against plain pandas and DuckDB baselines on the same generated day (or days)."""
    from ..bench.run import BenchConfig, run_bench

    config = BenchConfig(
        rows=rows,
        stores=stores,
        repeat=repeat,
        seed=seed,
        empty_runs=empty_runs,
        workdir=str(workdir) if workdir else None,
        keep=keep,
        profile=str(profile) if profile else None,
        background_load=background_load,
        backfill_days=backfill_days,
    )
    raise typer.Exit(run_bench(config, json_path=json_path, console=console))
