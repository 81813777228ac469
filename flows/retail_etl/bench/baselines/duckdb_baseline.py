"""The pipeline's work for one day as SQL in DuckDB: no orchestration.

`read_csv` (all_varchar, `store_rejects`) loads the day's files; lines with the wrong number of
fields land in DuckDB's rejects tables with their line numbers and text (malformed rows), and a
file with invalid UTF-8 is rejected whole, as the pipeline does. One CASE in priority order
gives each row its reason; duplicates are the rows of a transaction id, among otherwise-valid
rows, after its first one in file-name then line order; `COPY ... (FORMAT parquet,
PARTITION_BY ...)` writes curated, quarantine and the region mart.

Differences a reader should know: fields are trimmed with DuckDB's `trim` (spaces; the pipeline
also strips tabs and other whitespace); only quarantined rows get a line number (a row's place in
its file plus the header and the rejected lines before it, by an ASOF join on the rejects), and
blank lines are not counted in it; landing files must be CSV (Parquet landing files are counted
as rejected `unsupported_file_type`).
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import duckdb

from ...contract.columns import LANDING_COLUMNS, MART_COLUMNS, MAX_REGION_BYTES, ROW_REASONS, TICKET_BOUNDS
from ...contract.layout import CURATED, MARTS, QUARANTINE_ROWS, day_partition
from .landing import RejectedFile, column_names, keep_rejected, landing_files, write_manifest


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _load(con: duckdb.DuckDBPyConnection, files: list[tuple[Path, list[str]]]) -> None:
    """Tables `loaded` (fields + filename, in file order), `bad_lines`, `bad_files` and `files`."""
    con.execute(f"CREATE TABLE loaded ({', '.join(f'{c} VARCHAR' for c in LANDING_COLUMNS)}, filename VARCHAR)")
    con.execute("CREATE TABLE bad_lines (filename VARCHAR, line BIGINT, csv_line VARCHAR, bad_encoding BOOLEAN)")
    groups: dict[tuple[str, ...], list[str]] = {}
    for path, names in files:  # files sharing a header are read by one read_csv
        groups.setdefault(tuple(names), []).append(str(path))
    for header, paths in groups.items():
        con.execute(
            f"""INSERT INTO loaded BY NAME SELECT {", ".join(LANDING_COLUMNS)}, filename FROM read_csv(
                    $files, columns = $columns, header = true, auto_detect = false, all_varchar = true,
                    delim = ',', quote = '"', escape = '"', filename = true, store_rejects = true,
                    hive_partitioning = false)""",  # the path's sale_date=D must not replace the column
            {"files": paths, "columns": dict.fromkeys(header, "VARCHAR")},
        )
    if groups:
        con.execute("""
            INSERT INTO bad_lines
            SELECT s.file_path, e.line, any_value(e.csv_line), bool_or(e.error_type = 'INVALID ENCODING')
            FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) GROUP BY ALL""")
    # A file with invalid UTF-8 is rejected whole: none of its rows or lines count.
    con.execute("CREATE TABLE bad_files AS SELECT DISTINCT filename FROM bad_lines WHERE bad_encoding")
    con.execute("DELETE FROM bad_lines WHERE filename IN (SELECT filename FROM bad_files)")
    # rowid follows file order (insertion order is preserved): a row's index in its file is
    # rowid - first_rowid; ord orders rows by file name, then line.
    con.execute("""
        CREATE TABLE files AS
        SELECT filename, min(rowid) AS first_rowid, row_number() OVER (ORDER BY filename) AS file_idx
        FROM loaded GROUP BY filename
        HAVING filename NOT IN (SELECT filename FROM bad_files)""")


def _judge(con: duckdb.DuckDBPyConnection, run_date: str, regions, max_quantity: float, max_unit_price: float) -> None:
    """Table `judged`: per well-formed row its rowid in `loaded`, file and index in it, the trimmed
    fields curated needs, quantity and price as numbers, and its reason (NULL = clean)."""
    trimmed = ", ".join(f"trim(coalesce({c}, '')) AS {c}_t" for c in LANDING_COLUMNS)
    missing = " OR ".join(f"{c}_t = ''" for c in LANDING_COLUMNS)
    region_check = "region_t NOT IN (SELECT unnest($regions))" if regions else "false"
    con.execute(
        f"""
        CREATE TABLE judged AS
        SELECT rid, file_idx, k, transaction_id_t, store_id_t, region_t, product_t, q, p, CASE
            WHEN {missing} THEN 'missing_field'
            WHEN sale_date_t <> $run_date AND (NOT regexp_full_match(sale_date_t, '\\d{{4}}-\\d{{2}}-\\d{{2}}')
                 OR try_strptime(sale_date_t, '%Y-%m-%d') IS NULL) THEN 'bad_date'
            WHEN sale_date_t <> $run_date THEN 'date_mismatch'
            WHEN q IS NULL OR NOT isfinite(q) OR q <> floor(q) OR q <= 0 OR q > $max_quantity THEN 'bad_quantity'
            WHEN p IS NULL OR NOT isfinite(p) OR p <= 0 OR p > $max_unit_price THEN 'bad_price'
            WHEN strlen(region_t) > {MAX_REGION_BYTES} THEN 'bad_region'
            WHEN {region_check} THEN 'unknown_region'
        END AS reason
        FROM (SELECT l.rowid AS rid, f.file_idx, l.rowid - f.first_rowid AS k, {trimmed},
                     TRY_CAST(quantity_t AS DOUBLE) AS q, TRY_CAST(unit_price_t AS DOUBLE) AS p
              FROM loaded l JOIN files f USING (filename))""",
        {"run_date": run_date, "max_quantity": max_quantity, "max_unit_price": max_unit_price}
        | ({"regions": sorted(regions)} if regions else {}),
    )
    # Among clean rows, every occurrence of a transaction id after its first (file name, line).
    con.execute("""
        UPDATE judged SET reason = 'duplicate_transaction'
        FROM (SELECT transaction_id_t, min(file_idx * 4294967296 + k) AS first_ord FROM judged
              WHERE reason IS NULL GROUP BY 1 HAVING count(*) > 1) repeated
        WHERE judged.reason IS NULL AND judged.transaction_id_t = repeated.transaction_id_t
          AND judged.file_idx * 4294967296 + judged.k <> repeated.first_ord""")


def _write(con: duckdb.DuckDBPyConnection, warehouse: Path, sale_date: str, run_id: str) -> None:
    """Curated (partitioned by sale_date/region), quarantine and mart Parquet."""
    small, large = TICKET_BOUNDS
    for dataset in (CURATED, QUARANTINE_ROWS, MARTS):
        (warehouse / dataset).parent.mkdir(parents=True, exist_ok=True)
    # OVERWRITE_OR_IGNORE: a warehouse that already holds other days (a backfill) is written into;
    # the run id in every file name keeps the files of earlier runs.
    options = f"FORMAT parquet, COMPRESSION zstd, FILENAME_PATTERN '{run_id}-{{i}}', OVERWRITE_OR_IGNORE"
    con.execute(f"""
        CREATE VIEW curated AS
        SELECT transaction_id_t AS transaction_id, store_id_t AS store_id, product_t AS product,
               CAST(q AS BIGINT) AS quantity, p AS unit_price, round(q * p, 2) AS total,
               CASE WHEN total < {small} THEN 'small' WHEN total < {large} THEN 'medium' ELSE 'large' END
                   AS ticket_size,
               '{sale_date}' AS sale_date, region_t AS region
        FROM judged WHERE reason IS NULL""")
    con.execute(f"COPY curated TO '{warehouse / CURATED}' ({options}, PARTITION_BY (sale_date, region))")
    # Line numbers of quarantined rows: the i-th rejected line of a file has g = line - 1 - i good
    # rows before it, so a good row with index k sits at k + 2 + (the largest i with g <= k).
    con.execute(f"""
        COPY (
            WITH numbered AS (
                SELECT f.file_idx, b.line - 1 - row_number() OVER w AS g, row_number() OVER w AS i
                FROM bad_lines b JOIN files f USING (filename) WINDOW w AS (PARTITION BY b.filename ORDER BY b.line)),
            steps AS (SELECT file_idx, g, max(i) AS i FROM numbered GROUP BY ALL),
            bad AS (SELECT rid, file_idx, k, reason FROM judged WHERE reason IS NOT NULL),
            rows AS (
                SELECT l.transaction_id, l.sale_date, l.store_id, l.region, l.product, l.quantity, l.unit_price,
                       NULL::VARCHAR AS raw_line, b.reason, l.filename, b.k + 2 + coalesce(s.i, 0) AS line
                FROM bad b JOIN loaded l ON l.rowid = b.rid
                     ASOF LEFT JOIN steps s ON b.file_idx = s.file_idx AND b.k >= s.g
                UNION ALL
                SELECT {", ".join(f"NULL::VARCHAR AS {c}" for c in LANDING_COLUMNS)},
                       ltrim(csv_line, chr(13) || chr(10)), 'malformed_row', filename, line
                FROM bad_lines)
            SELECT transaction_id, sale_date AS raw_sale_date, store_id, region, product, quantity, unit_price,
                   raw_line, reason, filename AS source_file, line AS source_line, '{sale_date}' AS sale_date
            FROM rows ORDER BY source_file, source_line)
        TO '{warehouse / QUARANTINE_ROWS}' ({options}, PARTITION_BY (sale_date))""")
    con.execute("""
        CREATE TABLE mart AS
        SELECT region, round(sum(total), 2) AS revenue, sum(quantity)::BIGINT AS units,
               count(*) AS transactions, round(round(sum(total), 2) / count(*), 2) AS avg_ticket,
               count(*) FILTER (ticket_size = 'small') AS small_tickets,
               count(*) FILTER (ticket_size = 'medium') AS medium_tickets,
               count(*) FILTER (ticket_size = 'large') AS large_tickets
        FROM curated GROUP BY region ORDER BY region""")
    if _count(con, "SELECT count(*) FROM mart"):
        folder = warehouse / MARTS / day_partition(sale_date)
        folder.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY (SELECT {', '.join(MART_COLUMNS)} FROM mart) TO '{folder / run_id}.parquet' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )


def run(
    landing_day_dir: str | Path,
    warehouse_dir: str | Path,
    run_date: str | date,
    regions=None,
    max_quantity: float = 10_000,
    max_unit_price: float = 100_000.0,
) -> dict:
    """Process one day's landing folder into the warehouse; returns the manifest."""
    sale_date = str(run_date)
    warehouse = Path(warehouse_dir)
    warehouse.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex
    readable, rejected = [], []
    for path in landing_files(landing_day_dir):
        try:
            readable.append((path, column_names(path)))
        except RejectedFile as error:
            rejected.append(keep_rejected(path, warehouse, sale_date, error))

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    _load(con, readable)
    con.execute("SET preserve_insertion_order = false")  # rowid order was only needed while loading
    unreadable = {name for (name,) in con.execute("SELECT filename FROM bad_files").fetchall()}
    for path in sorted(Path(name) for name in unreadable):
        rejected.append(
            keep_rejected(path, warehouse, sale_date, RejectedFile("bad_encoding", f"{path.name}: invalid UTF-8"))
        )
    _judge(con, sale_date, regions, max_quantity, max_unit_price)
    _write(con, warehouse, sale_date, run_id)

    per_file = dict(
        con.execute("""
        SELECT filename, sum(n) FROM (SELECT filename, count(*) AS n FROM judged JOIN files USING (file_idx) GROUP BY 1
                                      UNION ALL SELECT filename, count(*) FROM bad_lines GROUP BY 1)
        GROUP BY 1""").fetchall()
    )
    reasons = dict(con.execute("SELECT reason, count(*) FROM judged WHERE reason IS NOT NULL GROUP BY 1").fetchall())
    malformed = _count(con, "SELECT count(*) FROM bad_lines")
    if malformed:
        reasons["malformed_row"] = malformed
    marts = [
        dict(zip(MART_COLUMNS, row, strict=True))
        for row in con.execute(f"SELECT {', '.join(MART_COLUMNS)} FROM mart").fetchall()
    ]
    con.close()
    return write_manifest(
        warehouse,
        sale_date,
        run_id=run_id,
        rows_in=sum(int(n) for n in per_file.values()),
        marts=marts,
        reasons={reason: reasons[reason] for reason in ROW_REASONS if reason in reasons},
        files_accepted=[
            {"file": str(p), "rows": int(per_file.get(str(p), 0))} for p, _ in readable if str(p) not in unreadable
        ],
        files_rejected=rejected,
    )
