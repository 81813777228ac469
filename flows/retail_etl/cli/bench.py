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
) -> None:
    """Time the pipeline against plain pandas and DuckDB baselines on the same generated day."""
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
    )
    raise typer.Exit(run_bench(config, json_path=json_path, console=console))
