"""What the commands print: rich tables built from manifests and summaries (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from rich.table import Table

from ..contract.manifest import Manifest


def days_table(manifests: list[Manifest], elapsed: float) -> Table:
    """One line per published day."""
    table = Table(title=f"retail-etl: {len(manifests)} day(s) published in {elapsed:.1f} s")
    table.add_column("sale date")
    for column in ("rows in", "published", "quarantined", "files rejected", "revenue"):
        table.add_column(column, justify="right")
    for m in manifests:
        table.add_row(
            m.sale_date,
            f"{m.rows_in:,}",
            f"{m.rows_published:,}",
            f"{m.rows_quarantined:,}",
            str(len(m.files_rejected)),
            f"{m.revenue:,.2f}",
        )
    return table


def day_tables(manifest: Manifest, elapsed: float) -> list[Table]:
    """Summary, quarantine reasons, regions and rejected files of one day."""
    rows_in = manifest.rows_in
    share = f" ({manifest.rows_quarantined / rows_in:.2%})" if rows_in else ""
    summary = Table(title=f"retail-etl: {manifest.sale_date} published in {elapsed:.1f} s", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("rows in", f"{rows_in:,}")
    summary.add_row("rows published", f"{manifest.rows_published:,}")
    summary.add_row("rows quarantined", f"{manifest.rows_quarantined:,}{share}")
    summary.add_row("files accepted / rejected", f"{len(manifest.files_accepted)} / {len(manifest.files_rejected)}")
    summary.add_row("revenue", f"{manifest.revenue:,.2f}")
    tables = [summary]
    if manifest.quarantine_reasons:
        reasons = Table(title="quarantine reasons")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for reason, count in manifest.quarantine_reasons.items():
            reasons.add_row(reason, f"{count:,}")
        tables.append(reasons)
    regions = Table(title="regions")
    regions.add_column("region")
    regions.add_column("rows", justify="right")
    regions.add_column("revenue", justify="right")
    for region, figures in manifest.regions.items():
        regions.add_row(region, f"{figures.rows:,}", f"{figures.revenue:,.2f}")
    tables.append(regions)
    if manifest.files_rejected:
        rejected = Table(title="rejected files (kept byte for byte in quarantine/files)")
        rejected.add_column("file")
        rejected.add_column("reason")
        for entry in manifest.files_rejected:
            rejected.add_row(entry.file.rsplit("/", 1)[-1], entry.reason)
        tables.append(rejected)
    return tables


def counts_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """A two-column what/count table."""
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in rows:
        table.add_row(what, count)
    return table


def region_totals_table(totals: pd.DataFrame, title: str) -> Table:
    """Revenue, units, transactions and average ticket per region, with a total line."""
    table = Table(title=title)
    for column in ("region", "revenue", "units", "transactions", "avg ticket"):
        table.add_column(column, justify="left" if column == "region" else "right")
    for row in totals.itertuples():
        table.add_row(
            str(row.region), f"{row.revenue:,.2f}", f"{row.units:,}", f"{row.transactions:,}", f"{row.avg_ticket:,.2f}"
        )
    table.add_section()
    table.add_row(
        "all", f"{totals['revenue'].sum():,.2f}", f"{totals['units'].sum():,}", f"{totals['transactions'].sum():,}", ""
    )
    return table
