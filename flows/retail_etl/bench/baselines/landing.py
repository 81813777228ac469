"""What both baselines do alike around the data: list the day's files, vet each header,
keep rejected files, and write the manifest.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "S001.csv"
>>> _ = path.write_bytes(b"Region ,transaction_id,sale_date,store_id,product,quantity,unit_price,note\\n")
>>> column_names(path)
['region', 'transaction_id', 'sale_date', 'store_id', 'product', 'quantity', 'unit_price', '_extra_7']
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from ...contract.columns import LANDING_COLUMNS
from ...contract.layout import MANIFESTS, QUARANTINE_FILES, day_partition, manifest_name
from ...errors import RejectedFile

__all__ = ["RejectedFile", "column_names", "keep_rejected", "landing_files", "write_manifest"]


def landing_files(day_dir: str | Path) -> list[Path]:
    """The day's files sorted by name (the duplicate tie-break), without hidden or `_` files."""
    folder = Path(day_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def column_names(path: Path) -> list[str]:
    """One unique name per header field: the contract's name (trimmed, lower-cased) for the
    landing columns, `_extra_<position>` for anything else; raises RejectedFile."""
    if path.suffix.lower() != ".csv":
        raise RejectedFile("unsupported_file_type", f"{path.name}: the baselines read CSV only")
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    if not head:
        raise RejectedFile("empty_file", f"{path.name} has no bytes")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RejectedFile("bad_encoding", f"{path.name} is UTF-16")
    if b"\x00" in head:
        raise RejectedFile("unreadable", f"{path.name} contains NUL bytes")
    try:
        header = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RejectedFile("bad_encoding", f"{path.name}: header is not UTF-8 ({exc.reason})") from None
    names: list[str] = []
    for position, raw in enumerate(next(csv.reader([header]), [])):
        key = raw.strip().lower()
        if key in LANDING_COLUMNS and key in names:
            raise RejectedFile("unreadable", f"{path.name}: column {key!r} appears twice")
        names.append(key if key in LANDING_COLUMNS else f"_extra_{position}")
    missing = [column for column in LANDING_COLUMNS if column not in names]
    if missing:
        raise RejectedFile("missing_columns", f"{path.name} lacks {', '.join(missing)}")
    return names


def keep_rejected(path: Path, warehouse: Path, sale_date: str, error: RejectedFile) -> dict:
    """Copy a rejected file byte for byte to quarantine/files; its manifest entry."""
    target = warehouse / QUARANTINE_FILES / day_partition(sale_date) / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return {"file": str(path), "reason": error.reason, "detail": error.detail, "quarantined_to": str(target)}


def write_manifest(
    warehouse: Path,
    sale_date: str,
    *,
    run_id: str,
    rows_in: int,
    reasons: dict[str, int],
    marts: list[dict],
    files_accepted: list[dict],
    files_rejected: list[dict],
) -> dict:
    """The day's manifest (same keys as the pipeline's), written last; returns it."""
    manifest = {
        "run_id": run_id,
        "sale_date": sale_date,
        "rows_in": int(rows_in),
        "rows_published": sum(int(m["transactions"]) for m in marts),
        "rows_quarantined": sum(int(count) for count in reasons.values()),
        "quarantine_reasons": dict(sorted((k, int(v)) for k, v in reasons.items())),
        "files_accepted": files_accepted,
        "files_rejected": files_rejected,
        "regions": {m["region"]: {"rows": int(m["transactions"]), "revenue": float(m["revenue"])} for m in marts},
        "revenue": round(sum(float(m["revenue"]) for m in marts), 2),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = warehouse / MANIFESTS / manifest_name(sale_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest
