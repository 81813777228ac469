"""retail-etl bench: the baselines do the pipeline's work, the equality check compares, the command runs."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest

from retail_etl.bench.baselines import duckdb_baseline, pandas_baseline
from retail_etl.bench.compare import compare_figures, warehouse_figures
from retail_etl.bench.run import summarise
from retail_etl.core.aggregate import region_summary
from retail_etl.core.checks import Rules, split_rows
from retail_etl.core.enrich import enrich
from retail_etl.core.parse import read_landing_bytes
from retail_etl.errors import RejectedFile
from retail_etl.synth.generate import REGIONS, generate_day

DAY = "2024-01-15"


@pytest.fixture(scope="module")
def landing_day(tmp_path_factory):
    """A small day with every kind of bad row and three unreadable files."""
    landing = tmp_path_factory.mktemp("bench-landing")
    generate_day(landing, DAY, rows=6_000, stores=4, bad_fraction=0.03, seed=11, bad_files=3)
    return landing / "sales" / f"sale_date={DAY}"


@pytest.fixture(scope="module")
def expected(landing_day):
    """The pipeline's pure functions on the same files: extract, split_rows, enrich, region_summary."""
    frames, rejected = [], []
    for path in sorted(landing_day.iterdir()):
        try:
            frame = read_landing_bytes(path.read_bytes(), path.name)
        except RejectedFile as error:
            rejected.append(error.reason)
            continue
        frames.append(frame.assign(source_file=str(path)))
    raw = pd.concat(frames, ignore_index=True)
    clean, quarantine = split_rows(raw, Rules(run_date=date.fromisoformat(DAY), regions=frozenset(REGIONS)))
    enriched = enrich(clean)
    regions = {str(region): region_summary(str(region), rows) for region, rows in enriched.groupby("region")}
    return {
        "rows_in": len(raw),
        "rejected": sorted(rejected),
        "clean": enriched,
        "quarantine": quarantine,
        "reasons": quarantine["reason"].value_counts().to_dict(),
        "revenue": {region: summary.revenue for region, summary in regions.items()},
    }


def _lines(quarantine: pd.DataFrame) -> set[tuple]:
    return set(
        zip(
            quarantine["source_file"].astype(str),
            quarantine["source_line"].astype(int),
            quarantine["reason"].astype(str),
            quarantine["raw_line"].fillna("").astype(str),
            strict=False,
        )
    )


@pytest.mark.parametrize("baseline", [pandas_baseline, duckdb_baseline], ids=["pandas", "duckdb"])
def test_baseline_does_the_pipelines_work(baseline, landing_day, expected, tmp_path):
    warehouse = tmp_path / "warehouse"
    manifest = baseline.run(landing_day, warehouse, DAY, regions=REGIONS)

    assert expected["reasons"].keys() >= {
        "malformed_row",
        "missing_field",
        "bad_date",
        "date_mismatch",
        "bad_quantity",
        "bad_price",
        "unknown_region",
        "duplicate_transaction",
    }
    assert manifest["quarantine_reasons"] == expected["reasons"]
    assert {region: figures["revenue"] for region, figures in manifest["regions"].items()} == expected["revenue"]
    assert manifest["rows_in"] == expected["rows_in"] == manifest["rows_published"] + manifest["rows_quarantined"]
    assert sorted(entry["reason"] for entry in manifest["files_rejected"]) == expected["rejected"]

    # What was written, read back, says the same; quarantine rows point at the same lines.
    figures = warehouse_figures(warehouse, DAY)
    assert figures["quarantine_reasons"] == expected["reasons"]
    assert {region: f["revenue"] for region, f in figures["regions"].items()} == expected["revenue"]
    assert figures["rows_published"] == len(expected["clean"])
    assert _lines(pd.read_parquet(warehouse / "quarantine" / "sales")) == _lines(expected["quarantine"])
    curated = pd.read_parquet(warehouse / "curated" / "sales")
    columns = ["transaction_id", "quantity", "unit_price", "total", "ticket_size", "region"]
    ours = curated[columns].astype({"ticket_size": str, "region": str}).sort_values("transaction_id")
    theirs = expected["clean"][columns].astype({"ticket_size": str, "region": str}).sort_values("transaction_id")
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), theirs.reset_index(drop=True), check_dtype=False)


FIGURES = {
    "rows_published": 3,
    "quarantine_reasons": {"bad_price": 1, "missing_field": 2},
    "regions": {"north": {"revenue": 1234.56, "units": 7, "transactions": 3, "curated_rows": 3}},
}


def test_comparison_flags_one_cent_and_one_reason():
    assert compare_figures(FIGURES, copy.deepcopy(FIGURES)) == []
    cent = copy.deepcopy(FIGURES)
    cent["regions"]["north"]["revenue"] = 1234.57
    assert compare_figures(FIGURES, cent) == ["region north: revenue 1234.56 vs 1234.57"]
    reason = copy.deepcopy(FIGURES)
    reason["quarantine_reasons"] = {"bad_price": 2, "missing_field": 1}
    assert compare_figures(FIGURES, reason) == ["quarantine bad_price: 1 vs 2", "quarantine missing_field: 2 vs 1"]
    published = copy.deepcopy(FIGURES)
    published["rows_published"] = 4
    published["regions"]["south"] = FIGURES["regions"]["north"]
    assert compare_figures(FIGURES, published) == ["rows published 3 vs 4", "region south: missing vs present"]


def test_summary_fails_the_equality_check_on_a_difference():
    def run(contender, figures, work_s):
        return {
            "contender": contender,
            "round": 1,
            "exit_code": 0,
            "work_s": [work_s],
            "work_cpu_s": [work_s],
            "shared_cpu_s": 0.0,
            "import_s": 0.5,
            "process_s": work_s + 1,
            "peak_bytes": 100,
            "figures": figures,
            "manifest": {"rows_in": 6},
        }

    off = copy.deepcopy(FIGURES)
    off["regions"]["north"]["revenue"] = 1234.55
    runs = [run("pipeline", FIGURES, 4.0), run("pandas", FIGURES, 2.0), run("duckdb", off, 1.0)]
    summary = summarise(runs, [], rows=6)
    assert summary["ratios"] == {"pipeline_vs_pandas": 2.0, "pipeline_vs_duckdb": 4.0}
    assert not summary["equality"]["ok"]
    assert summary["equality"]["differences"] == [
        {"run": "round 1 duckdb", "differences": ["region north: revenue 1234.56 vs 1234.55"]}
    ]
    assert summarise(runs[:2], [], rows=6)["equality"]["ok"]


def test_bench_command_end_to_end(tmp_path):
    """The real command: its own Prefect API and Dask cluster, three contenders, one empty day."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RETAIL_ETL_DASK_ADDRESS")}
    report_path = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_etl",
            "bench",
            "--rows",
            "20000",
            "--stores",
            "5",
            "--repeat",
            "1",
            "--empty-runs",
            "1",
            "--json",
            str(report_path),
            "--workdir",
            str(tmp_path / "work"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "outputs agree" in result.stdout
    report = json.loads(report_path.read_text())
    summary = report["summary"]
    assert set(summary["contenders"]) == {"pipeline", "pandas", "duckdb"}
    for figures in summary["contenders"].values():
        assert figures["median_s"] > 0 and figures["rows_per_s"] > 0 and figures["peak_rss_bytes"] > 0
    assert set(summary["ratios"]) == {"pipeline_vs_pandas", "pipeline_vs_duckdb"}
    assert summary["empty_day"]["cold_median_s"] > 0
    assert summary["equality"]["ok"] and summary["equality"]["reference"]["rows_published"] > 0
    assert [run["contender"] for run in report["runs"]] == ["pipeline", "pandas", "duckdb"]
    assert all(run["samples"] > 0 for run in report["runs"])
