"""retail-etl bench --backfill-days: the days are generated once, every contender's output is
compared day by day (and a difference on one day fails the check), the command runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from retail_etl.bench.backfill import compare_days, prepare_days, summarise_backfill
from retail_etl.bench.baselines import duckdb_baseline, pandas_baseline
from retail_etl.bench.compare import warehouse_figures
from retail_etl.bench.run import BenchConfig
from retail_etl.contract.layout import CURATED, day_partition
from retail_etl.synth.generate import REGIONS

START = "2024-01-15"


@pytest.fixture(scope="module")
def backfill_landing(tmp_path_factory):
    config = BenchConfig(rows=2_000, stores=3, backfill_days=3, sale_date=START)
    workdir = tmp_path_factory.mktemp("backfill-work")
    landing, days, generation = prepare_days(workdir, config)
    assert days == ["2024-01-15", "2024-01-16", "2024-01-17"]
    assert generation["rows"] == 6_000 and generation["days_reused"] == 0
    again = prepare_days(workdir, config)[2]
    assert again["days_reused"] == 3 and again["reused"]
    return landing, days


def _looped(baseline, contender: str, landing: Path, warehouse: Path, days: list[str]) -> dict:
    """What the bench records for one contender's backfill, done in this process."""
    manifests = [baseline.run(landing / "sales" / day_partition(day), warehouse, day, regions=REGIONS) for day in days]
    return {
        "contender": contender,
        "round": 1,
        "exit_code": 0,
        "work_s": [1.0],
        "work_cpu_s": [1.0],
        "shared_cpu_s": 0.0,
        "import_s": 0.1,
        "process_s": 1.5,
        "peak_bytes": 1,
        "figures": {day: warehouse_figures(warehouse, day) for day in days},
        "manifest": {"days": {m["sale_date"]: {"rows_in": m["rows_in"]} for m in manifests}},
    }


def test_looped_baselines_agree_per_day_and_a_corrupted_day_fails_the_check(backfill_landing, tmp_path):
    landing, days = backfill_landing
    reference = _looped(pandas_baseline, "pipeline", landing, tmp_path / "pandas", days)  # stands in for it
    duckdb = _looped(duckdb_baseline, "duckdb", landing, tmp_path / "duckdb", days)
    assert all(reference["figures"][day]["rows_published"] > 1_900 for day in days)
    assert len({json.dumps(reference["figures"][day]) for day in days}) == 3  # the days differ
    assert compare_days(reference, duckdb, days) == []
    assert summarise_backfill([reference, duckdb], days, rows=6_000)["equality"]["ok"]

    # One curated file of the middle day lost: that day, and only that day, differs.
    region = sorted((tmp_path / "duckdb" / CURATED / day_partition(days[1])).glob("region=*"))[0]
    next(region.glob("*.parquet")).unlink()
    duckdb["figures"] = {day: warehouse_figures(tmp_path / "duckdb", day) for day in days}
    found = compare_days(reference, duckdb, days)
    assert found and all(line.startswith(f"{days[1]}: ") for line in found), found
    assert any("rows published" in line for line in found)
    summary = summarise_backfill([reference, duckdb], days, rows=6_000)
    assert not summary["equality"]["ok"]
    assert summary["equality"]["differences"] == [{"run": "round 1 duckdb", "differences": found}]
    assert summary["ratios"] == {"pipeline_vs_duckdb": 1.0}

    # A day missing from a run's manifests is a difference too.
    del duckdb["manifest"]["days"][days[2]]
    assert f"{days[2]}: rows in {reference['manifest']['days'][days[2]]['rows_in']} vs None" in compare_days(
        reference, duckdb, days
    )


def test_backfill_bench_command_end_to_end(tmp_path):
    """The real command: its own Prefect API and Dask cluster, the pipeline's backfill flow and both
    looped baselines over 3 days, with background load; the environment reaches the pipeline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RETAIL_ETL_DASK_ADDRESS")}
    env["RETAIL_ETL_BACKFILL_CONCURRENCY"] = "2"
    report_path = tmp_path / "backfill.json"
    command = [
        *(sys.executable, "-m", "retail_etl", "bench", "--backfill-days", "3", "--rows", "2000", "--stores", "3"),
        *("--repeat", "1", "--background-load", "0.2", "--json", str(report_path), "--workdir", str(tmp_path / "w")),
    ]
    bench = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    burners = set()
    output = ""
    try:
        while bench.poll() is None:  # note the burners this bench starts (their argv names their parent)
            for process in psutil.process_iter(["cmdline"]):
                cmdline = process.info["cmdline"] or []
                if "retail_etl.bench.load" in cmdline and cmdline[-1] == str(bench.pid):
                    burners.add(process.pid)
            try:
                output = bench.communicate(timeout=0.5)[0]
            except subprocess.TimeoutExpired:
                continue
    finally:
        bench.kill()
    assert bench.returncode == 0, output[-4000:]
    assert "outputs agree on every day" in output
    assert "background load 0.2 cores" in output
    assert burners and not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in burners)

    report = json.loads(report_path.read_text())
    assert report["mode"] == "backfill" and report["days"] == ["2024-01-15", "2024-01-16", "2024-01-17"]
    assert report["code"]["commit"] and report["config"]["background_load"] == 0.2
    assert report["retail_etl_settings"]["RETAIL_ETL_BACKFILL_CONCURRENCY"] == "2"
    summary = report["summary"]
    assert set(summary["contenders"]) == {"pipeline", "pandas", "duckdb"}
    for figures in summary["contenders"].values():
        assert figures["median_s"] > 0 and figures["days_per_s"] > 0 and figures["peak_rss_bytes"] > 0
        assert figures["work_cpu_s_median"] > 0
    assert set(summary["ratios"]) == {"pipeline_vs_pandas", "pipeline_vs_duckdb"}
    assert summary["equality"]["ok"] and set(summary["equality"]["reference"]) == set(report["days"])
    assert summary["background_load_cores"] > 0
    assert [run["contender"] for run in report["runs"]] == ["pipeline", "pandas", "duckdb"]
    for run in report["runs"]:
        assert run["background_load"]["cpu_s"] > 0 and run["background_cpu_s"] > 0
        assert set(run["manifest"]["days"]) == set(report["days"])
