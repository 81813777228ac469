"""Commands that run the pipeline: `run` (one day), `backfill` (a range) and `demo`."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import load_settings, split_regions
from ..contract.manifest import Manifest
from ..core.dates import date_range
from ..errors import RetailEtlError, RunFailedError
from .app import DateOption, LandingOption, WarehouseOption, as_date, command, console, required_date
from .render import day_tables, days_table

StrictOption = Annotated[bool, typer.Option("--strict", help="Fail the day if a landing file cannot be read.")]
AllowEmptyOption = Annotated[
    bool, typer.Option("--allow-empty", help="Publish an empty day when no landing file exists (default: fail).")
]
RegionsOption = Annotated[str | None, typer.Option(help="Allowed regions, comma-separated [RETAIL_ETL_REGIONS].")]


@dataclass(frozen=True)
class RunOptions:
    """What `run` and `backfill` share: where to read and write, and the day's rules."""

    landing: str | None = None
    warehouse: str | None = None
    strict: bool = False
    allow_empty: bool = False
    regions: str | None = None


def _run_options(
    landing: LandingOption = None,
    warehouse: WarehouseOption = None,
    strict: StrictOption = False,
    allow_empty: AllowEmptyOption = False,
    regions: RegionsOption = None,
) -> RunOptions:
    return RunOptions(landing, warehouse, strict, allow_empty, regions)


def with_run_options(function: Callable[..., None]) -> Callable[..., None]:
    """Declare the shared options once: the command's signature gets them, and the command
    receives them as one `options: RunOptions` argument."""
    own = inspect.signature(function, eval_str=True)
    shared = inspect.signature(_run_options, eval_str=True).parameters

    @functools.wraps(function)
    def wrapper(**values: Any) -> None:
        options = _run_options(**{name: values.pop(name) for name in shared if name in values})
        function(**values, options=options)

    parameters = [p for p in own.parameters.values() if p.name != "options"] + list(shared.values())
    wrapper.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


@command()
@with_run_options
def run(date_: DateOption = None, *, options: RunOptions) -> None:
    """Process one sale date (default: yesterday) and publish it."""
    sale_date = as_date(date_) or date.today() - timedelta(days=1)
    run_days([sale_date], options)


@command()
@with_run_options
def backfill(
    start: Annotated[str, typer.Option(help="First sale date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last sale date (inclusive), YYYY-MM-DD.")],
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Days run at once [RETAIL_ETL_BACKFILL_CONCURRENCY].")
    ] = None,
    *,
    options: RunOptions,
) -> None:
    """Process every sale date from START to END (inclusive), CONCURRENCY days at once."""
    first, last = required_date(start), required_date(end)
    if last < first:
        raise typer.BadParameter(f"--end {last} is before --start {first}")
    run_days(date_range(first, last), options, concurrency)


def run_days(days: list[date], options: RunOptions, concurrency: int | None = None) -> list[Manifest]:
    """Run one day (the daily flow) or several (the backfill flow, `concurrency` days at once) on this
    command's platform."""
    from ..orchestration.flows import backfill as backfill_flow
    from ..orchestration.flows import daily_sales_etl
    from ..orchestration.platform import platform, runner_at

    settings = load_settings()
    allowed = split_regions(options.regions) if options.regions is not None else None
    one_day = len(days) == 1
    started = time.perf_counter()
    with platform(settings) as (_, address):
        flow: Any = (daily_sales_etl if one_day else backfill_flow).with_options(task_runner=runner_at(address))
        dates = {"run_date": days[0]} if one_day else {"start": days[0], "end": days[-1], "concurrency": concurrency}
        try:
            result = flow(
                **dates,
                landing=options.landing,
                warehouse=options.warehouse,
                strict=options.strict,
                allow_empty=options.allow_empty,
                regions=allowed,
            )
        except RetailEtlError:
            raise
        except Exception as error:  # the flow already logged the traceback; say it in one line
            raise RunFailedError(f"{type(error).__name__}: {error}") from None
    elapsed = time.perf_counter() - started
    manifests: list[Manifest] = [result] if one_day else result
    for table in day_tables(manifests[0], elapsed) if one_day else [days_table(manifests, elapsed)]:
        console.print(table)
    console.print(f"manifest: {manifests[-1].manifest_url}")
    return manifests


@command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where landing and warehouse folders go.")] = Path("data"),
    date_: Annotated[str, typer.Option("--date", help="Sale date to simulate.")] = "2024-01-15",
    rows: Annotated[int, typer.Option(min=1)] = 200_000,
) -> None:
    """Generate one synthetic day into ./data, run it, and print the report."""
    from ..synth.generate import REGIONS
    from .data import generate, report

    landing, warehouse = str(directory / "landing"), str(directory / "warehouse")
    console.rule("1. generate")
    generate(date_=date_, rows=rows, stores=20, bad_fraction=0.01, seed=7, bad_files=3, file_format="csv", out=landing)
    console.rule("2. run")
    console.print(f"allowed regions: {', '.join(REGIONS)} (RETAIL_ETL_REGIONS)")
    run(date_=date_, landing=landing, warehouse=warehouse, strict=False, regions=",".join(REGIONS))
    console.rule("3. report")
    report(warehouse=warehouse, start=date_, end=date_, plot=directory / "revenue.png")
    console.print(
        f'Delta tables under {warehouse}; try: python -c "from deltalake import DeltaTable; '
        f"print(DeltaTable('{warehouse}/curated/sales').to_pandas().head())\""
    )
