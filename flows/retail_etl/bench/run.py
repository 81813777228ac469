"""`retail-etl bench`: the pipeline against a plain pandas script and DuckDB SQL, same files.

One synthetic landing day (CSV, 1% bad rows) is generated, then one temporary Prefect API
(`runtime.prefect_api`, or the configured PREFECT_API_URL) and one Dask LocalCluster (2 worker
processes, 1 thread each) are started outside the timed region. The contenders then run in
alternation (pipeline, pandas, duckdb, pipeline, ...), each in a fresh process
(`python -m retail_etl.bench.runner`) writing to a fresh warehouse, with RETAIL_ETL_REGIONS set
to the generator's regions for all three:

- time: measured inside that process around the work (imports excluded, reported apart);
- memory: the peak, sampled every 20 ms, of the RSS of the contender's process and its
  descendants plus, for the pipeline, the growth of the two Dask worker processes' RSS over
  what it was when the run started (the workers are shared, so their resting size is not
  counted; nor are the Prefect server, the Dask scheduler and this process). Before the first
  run the workers import the pipeline's task modules (untimed), as workers of an
  already-running cluster that has served a run have.

Then the pipeline alone on an empty landing day (its fixed cost with an already-running
scheduler), optionally one more untimed pipeline run under pyinstrument (``--profile FILE``),
and the check that every run published the same figures as the pipeline.
Generation time is never in the figures.

``background_load`` (cores) runs the bench's own CPU burners beside every run, the same for
every contender (`load`); ``backfill_days`` switches to the backfill comparison (`backfill`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from ..contract.layout import day_partition
from .compare import compare_figures, timing_summary
from .contender import MEMORY_ACCOUNTING, progress, run_contender
from .runner import CONTENDERS
from .session import Session, bench_session, code_revision, machine, retail_settings


@dataclass
class BenchConfig:
    rows: int = 1_000_000
    stores: int = 50
    repeat: int = 3
    seed: int = 7
    sale_date: str = "2024-01-15"
    empty_runs: int = 3
    workdir: str | None = None
    keep: bool = False
    profile: str | None = None
    background_load: float = 0.0
    backfill_days: int = 0


def prepare_landing(workdir: Path, config: BenchConfig) -> tuple[Path, dict]:
    """Generate the landing day once per (rows, stores, seed, date); reuse it when it is there."""
    from ..synth.generate import generate_day

    landing = workdir / f"landing-{config.rows}r-{config.stores}s-seed{config.seed}-{config.sale_date}"
    marker = landing / "_bench_landing.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        return landing, {**info, "reused": True}
    shutil.rmtree(landing, ignore_errors=True)
    started = time.perf_counter()
    day = generate_day(
        str(landing), config.sale_date, rows=config.rows, stores=config.stores, bad_fraction=0.01, seed=config.seed
    )
    info = {
        "rows": day.rows,
        "files": len(day.files),
        "injected": dict(day.injected),
        "bytes": sum(p.stat().st_size for p in landing.rglob("*.csv")),
        "generation_s": round(time.perf_counter() - started, 3),
    }
    marker.write_text(json.dumps(info, indent=2))
    return landing, {**info, "reused": False}


def contender_figures(runs: list[dict], rows: int) -> tuple[dict, dict]:
    """Per contender timing, memory and CPU of its successful runs, and the pipeline's ratios."""
    contenders = {}
    for contender in CONTENDERS:
        done = [r for r in runs if r["contender"] == contender and r["exit_code"] == 0]
        if not done:
            continue
        contenders[contender] = {
            **timing_summary([r["work_s"][0] for r in done], rows),
            "peak_rss_bytes": max(r["peak_bytes"] for r in done),
            "work_cpu_s_median": statistics.median(r["work_cpu_s"][0] + r["shared_cpu_s"] for r in done),
            "import_s_median": statistics.median(r["import_s"] for r in done),
            "process_s_median": statistics.median(r["process_s"] for r in done),
        }
    ratios = {
        f"pipeline_vs_{baseline}": contenders["pipeline"]["median_s"] / contenders[baseline]["median_s"]
        for baseline in ("pandas", "duckdb")
        if "pipeline" in contenders and baseline in contenders
    }
    return contenders, ratios


def summarise(runs: list[dict], empty: list[dict], rows: int) -> dict:
    """Per contender timing/memory, the pipeline's ratios, the empty-day cost, the equality check."""
    contenders, ratios = contender_figures(runs, rows)
    empty_ok = [r for r in empty if r["exit_code"] == 0]
    empty_day = {
        "runs": len(empty_ok),
        "cold_median_s": statistics.median(r["work_s"][0] for r in empty_ok) if empty_ok else None,
        "warm_median_s": statistics.median(r["work_s"][-1] for r in empty_ok)
        if empty_ok and len(empty_ok[0]["work_s"]) > 1
        else None,
        "import_s_median": statistics.median(r["import_s"] for r in empty_ok) if empty_ok else None,
    }
    equality: dict[str, Any] = {"ok": True, "reference": None, "differences": []}
    reference = next((r for r in runs if r["contender"] == "pipeline" and r["exit_code"] == 0), None)
    if reference is None:
        equality.update(ok=False, differences=[{"run": "pipeline", "differences": ["no successful pipeline run"]}])
    else:
        equality["reference"] = reference["figures"]
        for run in runs:
            if run["exit_code"] != 0:
                continue
            found = compare_figures(reference["figures"], run["figures"])
            if run["manifest"]["rows_in"] != reference["manifest"]["rows_in"]:
                found.append(f"rows in {reference['manifest']['rows_in']} vs {run['manifest']['rows_in']}")
            if found:
                equality["differences"].append(
                    {"run": f"round {run['round']} {run['contender']}", "differences": found}
                )
        equality["ok"] = not equality["differences"]
    failed = [f"round {r.get('round', '-')} {r['contender']}" for r in [*runs, *empty] if r["exit_code"] != 0]
    return {
        "contenders": contenders,
        "ratios": ratios,
        "empty_day": empty_day,
        "equality": equality,
        "failed": failed,
        **machine_load(runs),
    }


def load_title(config: dict) -> str:
    """The background load for a table's title ('' without one)."""
    return f", background load {config['background_load']:g} cores" if config.get("background_load") else ""


def render_load(report: dict, console: Console) -> None:
    """What was counted, the bench's own background load, other programs' load, failed runs."""
    summary = report["summary"]
    console.print(f"memory counted: {MEMORY_ACCOUNTING}")
    if summary.get("background_load_cores") is not None:
        asked, got = report["config"]["background_load"], summary["background_load_cores"]
        short = " (the machine was too busy to give them what was asked)" if got < 0.8 * asked else ""
        console.print(
            f"[{'bold yellow' if short else 'default'}]background load (the bench's burners, not counted in any "
            f"contender's CPU or memory): {asked:g} cores requested, {got:.2f} used on average during the timed "
            f"runs{short}[/]"
        )
    if summary.get("other_load_cores") is not None:
        style = "bold yellow" if summary["other_load_cores"] > 0.2 else "dim"
        console.print(
            f"[{style}]other programs on this machine used {summary['other_load_cores']:.2f} of "
            f"{report['machine']['cpus']} cores on average during the timed runs[/]"
        )
    if summary["failed"]:
        console.print(f"[bold red]failed runs:[/] {', '.join(summary['failed'])}")


def machine_load(runs: list[dict]) -> dict[str, float | None]:
    """Other programs' load and the bench's background load, in cores, over the successful runs."""
    timed = [r for r in runs if r["exit_code"] == 0 and "other_cpu_s" in r]
    wall = sum(r["process_s"] for r in timed)
    burned = [r for r in timed if r.get("background_load", {}).get("processes")]
    return {
        "other_load_cores": sum(r["other_cpu_s"] for r in timed) / wall if timed else None,
        "background_load_cores": sum(r["background_cpu_s"] for r in burned) / sum(r["process_s"] for r in burned)
        if burned
        else None,
    }


def print_figures(console: Console, title: str, summary: dict, per_day: bool = False) -> None:
    """The contenders' table: timing, throughput (and days/s for a backfill), memory, CPU, ratios."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    rates = ("days/s", "rows/s") if per_day else ("rows/s",)
    for column in ("", "median s", "min s", "max s", *rates, "peak GiB", "CPU s", "import s", "pipeline/x"):
        table.add_column(column, justify="left" if not column else "right")
    for contender, figures in summary["contenders"].items():
        ratio = summary["ratios"].get(f"pipeline_vs_{contender}")
        table.add_row(
            contender,
            f"{figures['median_s']:.2f}",
            f"{figures['min_s']:.2f}",
            f"{figures['max_s']:.2f}",
            *([f"{figures['days_per_s']:.3f}"] if per_day else []),
            f"{figures['rows_per_s']:,.0f}",
            f"{figures['peak_rss_bytes'] / 2**30:.2f}",
            f"{figures['work_cpu_s_median']:.1f}",
            f"{figures['import_s_median']:.2f}",
            f"{ratio:.2f}x" if ratio else "",
        )
    width = 110 if per_day else 100
    if not console.is_terminal and console.width < width:
        console.width = width  # a log or a pipe: room for the whole table
    console.print(table)


def render(report: dict, console: Console) -> None:
    config, summary = report["config"], report["summary"]
    title = (
        f"retail-etl bench: {config['rows']:,} rows, {config['stores']} stores, "
        f"{config['repeat']} round(s), {report['machine']['cpus']} CPUs{load_title(config)}"
    )
    print_figures(console, title, summary)
    empty = summary["empty_day"]
    if empty["cold_median_s"] is not None:
        warm = (
            f", {empty['warm_median_s']:.2f} s warm (second call in the same process)" if empty["warm_median_s"] else ""
        )
        console.print(
            f"pipeline fixed cost on an empty day (running scheduler, median of {empty['runs']}): "
            f"{empty['cold_median_s']:.2f} s cold (first flow call in a fresh process){warm}; "
            f"imports {empty['import_s_median']:.2f} s"
        )
    generation = report["generation"]
    console.print(
        f"landing: {generation['rows']:,} rows in {generation['files']} CSV files "
        f"({generation['bytes'] / 2**20:.0f} MiB), "
        + ("reused" if generation["reused"] else f"generated in {generation['generation_s']:.1f} s (not timed)")
    )
    render_load(report, console)
    equality = summary["equality"]
    if equality["ok"]:
        reference = equality["reference"]
        console.print(
            f"[green]outputs agree[/]: every run published {reference['rows_published']:,} rows and "
            f"quarantined {sum(reference['quarantine_reasons'].values()):,} with the same reasons; "
            "per-region revenue equal to the cent"
        )
    else:
        print_differences(console, equality)


def print_differences(console: Console, equality: dict) -> None:
    """Each run's differences from the reference pipeline run (the contenders did not do the same work)."""
    console.print("[bold red]outputs differ: the contenders did not do the same work[/]")
    for entry in equality["differences"]:
        for difference in entry["differences"]:
            console.print(f"  {entry['run']}: {difference} (pipeline vs this)")


def run_bench(config: BenchConfig, json_path: str | Path | None = None, console: Console | None = None) -> int:
    """Run the benchmark and print it; returns the exit code (1: outputs differ, 2: a run failed)."""
    console = console or Console()
    if importlib.util.find_spec("duckdb") is None:
        console.print("[bold red]error:[/] the DuckDB baseline needs duckdb: pip install 'retail-etl[bench]'")
        return 2
    if config.rows < 1 or config.stores < 1 or config.repeat < 1 or config.empty_runs < 0:
        raise ValueError("need rows >= 1, stores >= 1, repeat >= 1, empty_runs >= 0")
    if config.background_load < 0 or config.backfill_days < 0:
        raise ValueError("need background_load >= 0 and backfill_days >= 0")
    code = code_revision()  # what is being measured, before anyone edits it
    workdir = Path(config.workdir) if config.workdir else Path(tempfile.mkdtemp(prefix="retail-etl-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if config.backfill_days:
            from .backfill import run_backfill_bench

            report = run_backfill_bench(config, workdir, console)
        else:
            report = _run_day_bench(config, workdir, console)
        report = {"config": asdict(config), "machine": machine(), "code": code, **report}
        if config.backfill_days:
            from .backfill import render_backfill

            render_backfill(report, console)
        else:
            render(report, console)
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2, default=str))
            console.print(f"raw figures written to {json_path}")
        summary = report["summary"]
        return 2 if summary["failed"] else 0 if summary["equality"]["ok"] else 1
    finally:
        if config.workdir is None and not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            console.print(f"work directory kept: {workdir}")


def _run_day_bench(config: BenchConfig, workdir: Path, console: Console) -> dict[str, Any]:
    """One day: the rounds of timed runs, the empty-day runs, the optional profile."""
    with console.status(f"generating {config.rows:,} rows"):
        landing, generation = prepare_landing(workdir, config)
    empty_landing = workdir / "landing-empty"
    (empty_landing / "sales" / day_partition(config.sale_date)).mkdir(parents=True, exist_ok=True)
    runs, empty, profiled = [], [], None
    with bench_session(workdir, console) as session:
        for round_number in range(1, config.repeat + 1):
            for contender in CONTENDERS:
                run_dir = workdir / "runs" / f"round{round_number}-{contender}"
                record = run_contender(
                    contender, landing, run_dir, config.sale_date, session, background_load=config.background_load
                )
                record.update(round=round_number, load_average=os.getloadavg())
                runs.append(record)
                progress(console, record)
                if not config.keep:
                    shutil.rmtree(run_dir / "warehouse", ignore_errors=True)
        for number in range(1, config.empty_runs + 1):
            run_dir = workdir / "runs" / f"empty{number}-pipeline"
            record = run_contender(
                "pipeline",
                empty_landing,
                run_dir,
                config.sale_date,
                session,
                calls=2,
                background_load=config.background_load,
            )
            record.update(round=f"empty{number}", load_average=os.getloadavg())
            empty.append(record)
            progress(console, record)
            if not config.keep:
                shutil.rmtree(run_dir / "warehouse", ignore_errors=True)
        if config.profile:
            profiled = _profile_pipeline(config, landing, workdir, session, console)
        settings = retail_settings(session.env)
    return {
        "generation": generation,
        "memory_accounting": MEMORY_ACCOUNTING,
        "retail_etl_settings": settings,
        "runs": runs,
        "empty_day_runs": empty,
        "profile_run": profiled,
        "summary": summarise(runs, empty, generation["rows"]),
    }


def _profile_pipeline(
    config: BenchConfig, landing: Path, workdir: Path, session: Session, console: Console
) -> dict | None:
    """One more, untimed pipeline run under pyinstrument; its text report goes to config.profile."""
    if importlib.util.find_spec("pyinstrument") is None:
        console.print("[yellow]--profile needs pyinstrument (pip install pyinstrument): skipped[/]")
        return None
    record = run_contender(
        "pipeline",
        landing,
        workdir / "runs" / "profile-pipeline",
        config.sale_date,
        session,
        profile=str(Path(config.profile or "profile.txt").resolve()),
        background_load=config.background_load,
    )
    record.update(round="profile", load_average=os.getloadavg())
    progress(console, record)
    if not config.keep:
        shutil.rmtree(workdir / "runs" / "profile-pipeline" / "warehouse", ignore_errors=True)
    console.print(f"pipeline profile (pyinstrument, untimed run) written to {config.profile}")
    return record
