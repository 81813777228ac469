"""Row accounting: every row read is published or quarantined, and the manifest says how.

>>> from retail_etl.core.aggregate import RegionSummary
>>> north = RegionSummary("north", 10.0, 3, 2, 5.0, 2, 0, 0)
>>> m = build_manifest(run_id="r1", sale_date="2024-01-15", landing=None, version="0", build="0+local",
...                    environment="local", accepted=[AcceptedFile(file="s1.csv", rows=3)], rejected=[],
...                    reasons=reason_counts([{"bad_price": 1}], duplicates=0), regions=[north])
>>> m.rows_published, m.rows_quarantined, m.regions["north"], m.build, m.environment
(2, 1, RegionFigures(rows=2, revenue=10.0), '0+local', 'local')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ..contract.columns import ROW_REASONS
from ..contract.manifest import AcceptedFile, Manifest, RegionFigures, RejectedFileRecord, SkippedEntry
from .aggregate import RegionSummary

__all__ = ["AcceptedFile", "RejectedFileRecord", "SkippedEntry", "build_manifest", "reason_counts"]


def reason_counts(per_file: Iterable[Mapping[str, int]], duplicates: int) -> dict[str, int]:
    """Quarantined rows per reason over a day's files plus its duplicates, in reason order, no zeros."""
    totals: Counter[str] = Counter()
    for reasons in per_file:
        totals.update(reasons)
    totals["duplicate_transaction"] += duplicates
    unknown = set(totals) - set(ROW_REASONS)
    if unknown:
        raise ValueError(f"reasons outside the contract: {sorted(unknown)}")
    return {reason: totals[reason] for reason in ROW_REASONS if totals[reason]}


def build_manifest(
    *,
    run_id: str,
    sale_date: str,
    landing: str | None,
    version: str,
    build: str,
    environment: str,
    accepted: list[AcceptedFile],
    rejected: list[RejectedFileRecord],
    reasons: dict[str, int],
    regions: list[RegionSummary],
    skipped: Sequence[SkippedEntry] = (),
) -> Manifest:
    """Assemble the manifest; it refuses (RowAccountingError) if any row is unaccounted for.

    `build` and `environment` are the day's lineage: which code, run where, published it.
    """
    ordered = sorted(regions, key=lambda summary: summary.region)
    return Manifest(
        run_id=run_id,
        sale_date=sale_date,
        landing=landing,
        rows_in=sum(file.rows for file in accepted),
        rows_published=sum(summary.transactions for summary in ordered),
        rows_quarantined=sum(reasons.values()),
        quarantine_reasons=dict(sorted(reasons.items())),
        files_accepted=accepted,
        files_rejected=rejected,
        files_skipped=list(skipped),
        regions={s.region: RegionFigures(rows=s.transactions, revenue=s.revenue) for s in ordered},
        revenue=round(sum(summary.revenue for summary in ordered), 2),
        retail_etl_version=version,
        build=build,
        environment=environment,
    )
