"""Commands on data: `generate` writes a synthetic landing day, `report` reads published days."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from ..config import load_settings
from ..errors import NothingPublishedError
from .app import LandingOption, WarehouseOption, as_date, command, console, required_date
from .render import counts_table, region_totals_table


@command()
def generate(
    date_: Annotated[str, typer.Option("--date", help="Sale date, YYYY-MM-DD.")] = "2024-01-15",
    rows: Annotated[int, typer.Option(min=0, help="Rows in all, spread over the stores.")] = 200_000,
    stores: Annotated[int, typer.Option(min=1, help="Stores, one file each.")] = 20,
    bad_fraction: Annotated[float, typer.Option(min=0.0, max=0.49, help="Share of rows spoiled.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
    bad_files: Annotated[
        int, typer.Option(min=0, help="Unreadable files to add (garbage, latin-1, wrong columns).")
    ] = 0,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    out: LandingOption = None,
) -> None:
    """Write one synthetic day of landing files, with bad rows of every kind."""
    from ..synth.generate import generate_day

    sale_date = required_date(date_)
    settings = load_settings()
    target = out or settings.landing
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task(f"generating {sale_date}", total=stores)
        day = generate_day(
            target,
            sale_date,
            rows=rows,
            stores=stores,
            bad_fraction=bad_fraction,
            seed=seed,
            bad_files=bad_files,
            file_format=file_format,
            progress=lambda _: progress.advance(bar),
            options=settings.storage_options(),
        )
    counts = [
        ("rows", f"{day.rows:,}"),
        ("store files", str(len(day.files))),
        ("unreadable files", str(len(day.bad_files))),
    ]
    counts += [(f"injected {reason}", f"{count:,}") for reason, count in sorted(day.injected.items())]
    console.print(counts_table(f"generated {sale_date} in {time.perf_counter() - started:.1f} s", counts))
    console.print(f"landing files under {target}")


@command()
def report(
    warehouse: WarehouseOption = None,
    start: Annotated[str | None, typer.Option(help="First sale date (default: 30 days ago).")] = None,
    end: Annotated[str | None, typer.Option(help="Last sale date (default: today).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of daily revenue per region here.")] = None,
) -> None:
    """Summarise the published days: per-region totals and data quality."""
    from ..io.reader import load_manifests, load_marts, region_totals

    last = as_date(end) or date.today()
    first = as_date(start) or last - timedelta(days=30)
    settings = load_settings()
    target = warehouse or settings.warehouse
    marts = load_marts(target, first, last, settings.storage_options())
    manifests = load_manifests(target, first, last, settings.storage_options())
    if marts.empty and not manifests:
        raise NothingPublishedError(f"nothing published between {first} and {last} in {target}")
    title = f"revenue by region, {first} to {last} ({marts['sale_date'].nunique()} days)"
    console.print(region_totals_table(region_totals(marts), title))
    rows_in = sum(m.rows_in for m in manifests)
    quarantined = sum(m.rows_quarantined for m in manifests)
    rejected = sum(len(m.files_rejected) for m in manifests)
    share = f" ({quarantined / rows_in:.2%})" if rows_in else ""
    console.print(f"data quality: {rows_in:,} rows in, {quarantined:,} quarantined{share}, {rejected} file(s) rejected")
    if plot:
        from .plot import plot_revenue

        plot_revenue(marts, str(plot))
        console.print(f"plot written to {plot}")
