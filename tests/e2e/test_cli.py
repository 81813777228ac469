"""The command line as a user runs it: no Prefect API configured, nothing started beforehand.

The demo and the backfill run on the temporary server that starts then; the tests about what a run
leaves behind (a missing day, re-runs, rollback, vacuum) run against the session's API instead, as
a user with a configured API does: each temporary server would cost them a server start and a
fresh database's migrations, and what they check does not depend on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd, check: bool = True, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RETAIL_ETL_"))}
    env.update(PREFECT_HOME=str(cwd / ".prefect"), COLUMNS="120", **(settings or {}))
    result = subprocess.run(
        [sys.executable, "-m", "retail_etl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"retail-etl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def test_demo_runs_on_a_fresh_machine(tmp_path):
    result = cli("demo", "--rows", "20000", cwd=tmp_path)
    assert "Starting temporary server" in result.stdout + result.stderr
    assert "rows in" in result.stdout and "20,000" in result.stdout
    manifest = json.loads((tmp_path / "data" / "warehouse" / "manifests" / "sale_date=2024-01-15.json").read_text())
    assert manifest["rows_in"] == 20_000 == manifest["rows_published"] + manifest["rows_quarantined"]
    assert set(manifest["quarantine_reasons"]) >= {"malformed_row", "unknown_region", "duplicate_transaction"}
    assert len(manifest["files_rejected"]) == 3
    assert (tmp_path / "data" / "revenue.png").read_bytes()[:4] == b"\x89PNG"


def test_generate_backfill_report(tmp_path):
    for day in ("2024-02-01", "2024-02-02"):
        cli("generate", "--date", day, "--rows", "3000", "--stores", "3", "--out", "landing", cwd=tmp_path)
    result = cli(
        "backfill",
        "--start",
        "2024-02-01",
        "--end",
        "2024-02-02",
        "--landing",
        "landing",
        "--warehouse",
        "warehouse",
        "--concurrency",
        "2",
        cwd=tmp_path,
    )
    assert "2 day(s) published" in result.stdout
    report = cli("report", "--warehouse", "warehouse", "--start", "2024-02-01", "--end", "2024-02-02", cwd=tmp_path)
    assert "revenue by region" in report.stdout and "(2 days)" in report.stdout
    assert "6,000 rows in" in report.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("run", "--date", "2024-13-01"), "not a date", 2),
        (("backfill", "--start", "2024-01-05", "--end", "2024-01-01"), "before", 2),
        (("backfill", "--start", "2024-01-01", "--end", "2024-01-02", "--concurrency", "0"), "--concurrency", 2),
        (("report", "--warehouse", "nowhere", "--start", "2024-01-01", "--end", "2024-01-02"), "nothing published", 7),
        (("register", "--environment", "dev", "--job-variables", "{not json"), "--job-variables is not valid JSON", 3),
        # No PREFECT_API_URL: refused at once, never a temporary server that vanishes with what was written.
        (("register", "--environment", "dev", "--prefect-file", str(REPO / "prefect.yaml")), "no Prefect API", 20),
        (("promote", "--from", "dev", "--to", "staging"), "no Prefect API configured", 20),
        (("promote", "--from", "dev", "--to", "qa", "--force"), "no Prefect API configured", 20),
    ],
)
def test_clear_errors(tmp_path, args, message, code):
    result = cli(*args, cwd=tmp_path, check=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "temporary server" not in result.stdout + result.stderr.replace("never use a temporary server", "")
    if code != 2:  # usage errors are typer's framed message; ours are one line
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_landing_day_is_one_line_on_stderr(tmp_path, prefect_api):
    result = cli(
        "run",
        "--date",
        "2024-01-15",
        "--landing",
        "landing",
        "--warehouse",
        "warehouse",
        cwd=tmp_path,
        check=False,
        settings={"PREFECT_API_URL": prefect_api},
    )
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no landing files for 2024-01-15" in errors[0]
    assert "error:" not in result.stdout


def test_rerun_report_rollback_vacuum(tmp_path, prefect_api):
    day = "2024-03-01"
    api = {"PREFECT_API_URL": prefect_api}
    where = ("--landing", "landing", "--warehouse", "warehouse")
    manifest_path = tmp_path / "warehouse" / "manifests" / f"sale_date={day}.json"
    curated = str(tmp_path / "warehouse" / "curated" / "sales")

    def generate(seed: str, rows: str) -> None:
        cli(
            "generate",
            "--date",
            day,
            "--rows",
            rows,
            "--stores",
            "3",
            "--seed",
            seed,
            "--bad-files",
            "1",
            "--out",
            "landing",
            cwd=tmp_path,
        )

    def report() -> str:
        return cli("report", "--warehouse", "warehouse", "--start", day, "--end", day, cwd=tmp_path).stdout

    def region_revenue() -> dict[str, float]:
        frame = DeltaTable(curated).to_pandas(filters=[("sale_date", "=", day)])
        return frame.groupby("region")["total"].sum().round(2).to_dict()

    generate("1", "3000")
    cli("run", "--date", day, *where, cwd=tmp_path, settings=api)
    first = json.loads(manifest_path.read_text())
    generate("2", "2400")
    cli("run", "--date", day, *where, cwd=tmp_path, settings=api)
    second = json.loads(manifest_path.read_text())
    assert second["run_id"] != first["run_id"] and second["rows_in"] == 2_400 and first["rows_in"] == 3_000
    assert second["revenue"] != first["revenue"]

    # The re-run replaced the day: the report counts it once, with the second run's figures.
    text = report()
    assert "(1 days)" in text and "2,400 rows in" in text
    assert f"{second['revenue']:,.2f}" in text and f"{first['revenue']:,.2f}" not in text
    assert f"{second['rows_published']:,}" in text
    assert region_revenue() == pytest.approx({r: f["revenue"] for r, f in second["regions"].items()})

    rolled = cli("rollback", "--date", day, "--warehouse", "warehouse", cwd=tmp_path)
    assert f"rolled back to run {first['run_id']}" in rolled.stdout
    restored = json.loads(manifest_path.read_text())
    assert {k: v for k, v in restored.items() if k != "tables"} == {k: v for k, v in first.items() if k != "tables"}
    assert all(restored["tables"][name] > second["tables"][name] for name in ("curated", "quarantine", "marts"))
    assert restored["tables"]["curated"] == DeltaTable(curated).version()
    assert region_revenue() == pytest.approx({r: f["revenue"] for r, f in first["regions"].items()})
    assert len(DeltaTable(curated).to_pandas(filters=[("sale_date", "=", day)])) == first["rows_published"]
    text = report()
    assert "3,000 rows in" in text and f"{first['revenue']:,.2f}" in text

    zero = {"RETAIL_ETL_VACUUM_RETENTION": "0"}
    refused = cli("vacuum", "--warehouse", "warehouse", cwd=tmp_path, settings=zero, check=False)
    assert refused.returncode == 3 and "below the floor of 24 h" in refused.stdout + refused.stderr
    vacuumed = cli("vacuum", "--warehouse", "warehouse", "--force", cwd=tmp_path, settings=zero)
    assert vacuumed.returncode == 0 and "vacuum of warehouse" in vacuumed.stdout
    # The second run's files (no longer referenced) went; the restored first run's are all still readable.
    assert not [
        p for p in (tmp_path / "warehouse" / "curated").rglob("*.parquet") if p.name.startswith(second["run_id"])
    ]
    assert region_revenue() == pytest.approx({r: f["revenue"] for r, f in first["regions"].items()})
    assert all(os.path.exists(entry["quarantined_to"]) for entry in first["files_rejected"])
    assert not any(os.path.exists(entry["quarantined_to"]) for entry in second["files_rejected"])
    assert "3,000 rows in" in report()
