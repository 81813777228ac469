"""`retail-etl bench --backfill-days N`: N consecutive generated days, backfilled by each contender.

The pipeline runs its `backfill` flow over the days on the bench's Dask scheduler (one process,
like the daily flow; RETAIL_ETL_* settings such as the backfill's concurrency come from the
bench's environment); each baseline loops over the same days in one process. Every run's outputs
are read back per day and compared with the first pipeline run's, day by day. Empty-day runs and
``--profile`` belong to the one-day bench and are skipped here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from .compare import compare_figures
from .contender import MEMORY_ACCOUNTING, progress, run_contender
from .runner import CONTENDERS
from .session import bench_session, retail_settings

if TYPE_CHECKING:
    from .run import BenchConfig


def backfill_days(start: str, count: int) -> list[str]:
    """`count` consecutive days from `start`, as YYYY-MM-DD.

    >>> backfill_days("2024-01-30", 3)
    ['2024-01-30', '2024-01-31', '2024-02-01']
    """
    first = date.fromisoformat(start)
    return [(first + timedelta(days=n)).isoformat() for n in range(count)]


def prepare_days(workdir: Path, config: BenchConfig) -> tuple[Path, list[str], dict]:
    """One landing root holding every day (day n generated with seed + n, so days differ); a day
    already generated with the same rows, stores and seed is reused, so a longer backfill reuses
    a shorter one's days."""
    from ..synth.generate import generate_day

    landing = workdir / f"landing-backfill-{config.rows}r-{config.stores}s-seed{config.seed}"
    days = backfill_days(config.sale_date, config.backfill_days)
    info: dict[str, Any] = {"rows": 0, "files": 0, "bytes": 0, "generation_s": 0.0, "days_reused": 0}
    for day in days:
        marker = landing / f"_bench_day_{day}.json"
        seed = config.seed + (date.fromisoformat(day) - date.fromisoformat(config.sale_date)).days
        if marker.is_file() and json.loads(marker.read_text()).get("seed") == seed:
            figures = json.loads(marker.read_text())
            info["days_reused"] += 1
        else:
            shutil.rmtree(landing / "sales" / f"sale_date={day}", ignore_errors=True)
            started = time.perf_counter()
            generated = generate_day(
                str(landing), day, rows=config.rows, stores=config.stores, bad_fraction=0.01, seed=seed
            )
            figures = {
                "seed": seed,
                "rows": generated.rows,
                "files": len(generated.files),
                "bytes": sum(p.stat().st_size for p in (landing / "sales" / f"sale_date={day}").glob("*.csv")),
                "generation_s": round(time.perf_counter() - started, 3),
            }
            marker.write_text(json.dumps(figures, indent=2))
            info["generation_s"] = round(info["generation_s"] + figures["generation_s"], 3)
        info["rows"] += figures["rows"]
        info["files"] += figures["files"]
        info["bytes"] += figures["bytes"]
    info["reused"] = info["days_reused"] == len(days)
    return landing, days, info


def compare_days(reference: dict, run: dict, days: list[str]) -> list[str]:
    """Differences, per day, between a run and the reference run (figures and rows in)."""
    found = []
    for day in days:
        expected, actual = reference["figures"].get(day), run["figures"].get(day)
        if expected is None or actual is None:
            found.append(f"{day}: no figures")
            continue
        found += [f"{day}: {difference}" for difference in compare_figures(expected, actual)]
        rows_in = [r["manifest"].get("days", {}).get(day, {}).get("rows_in") for r in (reference, run)]
        if rows_in[0] != rows_in[1] or rows_in[0] is None:
            found.append(f"{day}: rows in {rows_in[0]} vs {rows_in[1]}")
    return found


def summarise_backfill(runs: list[dict], days: list[str], rows: int) -> dict:
    """Per contender timing, days/s, memory and CPU, the pipeline's ratios, the per-day equality check."""
    from .run import contender_figures, machine_load

    contenders, ratios = contender_figures(runs, rows)
    for figures in contenders.values():
        figures["days_per_s"] = len(days) / figures["median_s"] if figures["median_s"] > 0 else 0.0
    equality: dict[str, Any] = {"ok": False, "days": days, "reference": None, "differences": []}
    reference = next((r for r in runs if r["contender"] == "pipeline" and r["exit_code"] == 0), None)
    if reference is None:
        equality["differences"] = [{"run": "pipeline", "differences": ["no successful pipeline run"]}]
    else:
        equality["reference"] = reference["figures"]
        for run in runs:
            if run["exit_code"] == 0 and (found := compare_days(reference, run, days)):
                equality["differences"].append(
                    {"run": f"round {run['round']} {run['contender']}", "differences": found}
                )
        equality["ok"] = not equality["differences"]
    return {
        "contenders": contenders,
        "ratios": ratios,
        "equality": equality,
        "failed": [f"round {r['round']} {r['contender']}" for r in runs if r["exit_code"] != 0],
        **machine_load(runs),
    }


def run_backfill_bench(config: BenchConfig, workdir: Path, console: Console) -> dict[str, Any]:
    """The rounds of timed backfills (pipeline, pandas, duckdb, ...); the report's body."""
    with console.status(f"generating {config.backfill_days} days of {config.rows:,} rows"):
        landing, days, generation = prepare_days(workdir, config)
    runs = []
    with bench_session(workdir, console) as session:
        for round_number in range(1, config.repeat + 1):
            for contender in CONTENDERS:
                run_dir = workdir / "runs" / f"backfill{round_number}-{contender}"
                record = run_contender(
                    contender,
                    landing,
                    run_dir,
                    config.sale_date,
                    session,
                    days=days,
                    background_load=config.background_load,
                )
                record.update(round=round_number, load_average=os.getloadavg())
                runs.append(record)
                progress(console, record)
                if not config.keep:
                    shutil.rmtree(run_dir / "warehouse", ignore_errors=True)
        settings = retail_settings(session.env)
    return {
        "mode": "backfill",
        "days": days,
        "generation": generation,
        "memory_accounting": MEMORY_ACCOUNTING,
        "retail_etl_settings": settings,
        "runs": runs,
        "summary": summarise_backfill(runs, days, generation["rows"]),
    }


def render_backfill(report: dict, console: Console) -> None:
    """The backfill table, the load lines, and whether every day agreed."""
    from .run import load_title, print_differences, print_figures, render_load

    config, summary, days = report["config"], report["summary"], report["days"]
    title = (
        f"retail-etl bench, backfill: {len(days)} days ({days[0]} .. {days[-1]}) x {config['rows']:,} rows, "
        f"{config['stores']} stores, {config['repeat']} round(s), {report['machine']['cpus']} CPUs"
        f"{load_title(config)}"
    )
    print_figures(console, title, summary, per_day=True)
    generation = report["generation"]
    console.print(
        f"landing: {len(days)} days, {generation['rows']:,} rows in {generation['files']} CSV files "
        f"({generation['bytes'] / 2**20:.0f} MiB), "
        + (
            f"{generation['days_reused']} day(s) reused, the rest generated in {generation['generation_s']:.1f} s"
            " (not timed)"
        )
    )
    settings = report["retail_etl_settings"]
    console.print("settings: " + ", ".join(f"{key}={value}" for key, value in settings.items()))
    render_load(report, console)
    equality = summary["equality"]
    if equality["ok"]:
        published = sum(figures["rows_published"] for figures in equality["reference"].values())
        console.print(
            f"[green]outputs agree on every day[/]: every run published {published:,} rows over {len(days)} days "
            "with the same quarantine reasons per day; per-region revenue equal to the cent"
        )
    else:
        print_differences(console, equality)
