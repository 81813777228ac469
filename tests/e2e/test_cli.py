"""The command line as a user runs it: no Prefect API configured, nothing started beforehand."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cli(*args: str, cwd, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RETAIL_ETL_"))}
    env.update(PREFECT_HOME=str(cwd / ".prefect"), COLUMNS="120")
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
        (("report", "--warehouse", "nowhere", "--start", "2024-01-01", "--end", "2024-01-02"), "nothing published", 7),
        (("register", "--environment", "dev", "--job-variables", "{not json"), "--job-variables is not valid JSON", 3),
    ],
)
def test_clear_errors(tmp_path, args, message, code):
    result = cli(*args, cwd=tmp_path, check=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_landing_day_is_one_line_on_stderr(tmp_path):
    result = cli(
        "run", "--date", "2024-01-15", "--landing", "landing", "--warehouse", "warehouse", cwd=tmp_path, check=False
    )
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no landing files for 2024-01-15" in errors[0]
    assert "error:" not in result.stdout
