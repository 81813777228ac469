"""The day's manifest: what came in, what was published, what was quarantined and why.

>>> m = build_manifest(run_id="r1", sale_date="2024-01-15", rows_in=3,
...                    quarantine_reasons={"bad_price": 1},
...                    regions=[{"region": "north", "transactions": 2, "revenue": 10.0}],
...                    files_accepted=[{"file": "s1.csv", "rows": 3}], files_rejected=[])
>>> m["rows_published"], m["rows_quarantined"], m["regions"]["north"]
(2, 1, {'rows': 2, 'revenue': 10.0})
"""

from __future__ import annotations

from datetime import datetime, timezone

from . import __version__


class RowAccountingError(RuntimeError):
    """rows_in != rows_published + rows_quarantined: something was lost, so nothing is published."""


def build_manifest(*, run_id: str, sale_date: str, rows_in: int, quarantine_reasons: dict[str, int],
                   regions: list[dict], files_accepted: list[dict], files_rejected: list[dict],
                   landing: str | None = None) -> dict:
    """Assemble the manifest and refuse it if any row is unaccounted for."""
    rows_published = sum(int(region["transactions"]) for region in regions)
    rows_quarantined = sum(int(count) for count in quarantine_reasons.values())
    if rows_in != rows_published + rows_quarantined:
        raise RowAccountingError(
            f"{sale_date}: rows_in={rows_in} but published={rows_published} + quarantined={rows_quarantined}"
        )
    return {
        "run_id": run_id,
        "sale_date": sale_date,
        "landing": landing,
        "rows_in": rows_in,
        "rows_published": rows_published,
        "rows_quarantined": rows_quarantined,
        "quarantine_reasons": dict(sorted(quarantine_reasons.items())),
        "files_accepted": files_accepted,
        "files_rejected": files_rejected,
        "regions": {
            region["region"]: {"rows": int(region["transactions"]), "revenue": float(region["revenue"])}
            for region in sorted(regions, key=lambda region: region["region"])
        },
        "revenue": round(sum(float(region["revenue"]) for region in regions), 2),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "retail_etl_version": __version__,
    }
