"""Commands on a published warehouse: `rollback` a day, `vacuum` what is no longer referenced."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import load_settings
from .app import WarehouseOption, command, console, required_date
from .render import counts_table, day_tables


@command()
def rollback(
    date_: Annotated[str, typer.Option("--date", help="Sale date to roll back, YYYY-MM-DD.")],
    warehouse: WarehouseOption = None,
) -> None:
    """Return a day to the run that published it before the current one, in every table.

    The earlier files are still there until vacuum removes them (RETAIL_ETL_VACUUM_RETENTION),
    and the rollback itself is a new table version, so it can be rolled back in turn.
    """
    from ..io.publish import rollback_day

    sale_date = required_date(date_).isoformat()
    settings = load_settings()
    manifest = rollback_day(warehouse or settings.warehouse, settings.storage_options(), sale_date)
    console.print(f"{sale_date} rolled back to run {manifest.run_id} (table versions {manifest.tables})")
    for table in day_tables(manifest, 0.0):
        console.print(table)


@command()
def vacuum(
    warehouse: WarehouseOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Take a RETAIL_ETL_VACUUM_RETENTION below 24 h (only if no run is in flight)."),
    ] = False,
) -> None:
    """Delete what nothing references any more: table files replaced longer ago than
    RETAIL_ETL_VACUUM_RETENTION (24 h at least, unless --force), scratch of old runs, expired task
    results, rejected files of replaced runs. Days being published keep their files."""
    from ..io.housekeeping import vacuum_warehouse

    settings = load_settings()
    target = warehouse or settings.warehouse
    removed = vacuum_warehouse(
        target,
        settings.storage_options(),
        settings.vacuum_retention,
        settings.scratch_retention,
        settings.cache_expiration,
        force=force,
    )
    rows = [(kind, f"{len(sweep.paths):,} ({sweep.bytes / 2**20:,.1f} MiB)") for kind, sweep in removed.items()]
    console.print(counts_table(f"vacuum of {target}", rows))
