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
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil
from rich import box
from rich.console import Console
from rich.table import Table

from ..config import child_environment
from ..contract.layout import day_partition
from .compare import compare_figures, timing_summary, warehouse_figures
from .monitor import RssSampler
from .runner import CONTENDERS

MEMORY_ACCOUNTING = (
    "peak over 20 ms samples of: RSS of the contender's process and its descendants, plus (pipeline "
    "only) the growth of the Dask worker processes' RSS since the run started; not counted: the "
    "Prefect server, the Dask scheduler/nannies (in the bench process), the workers' resting RSS"
)
PACKAGES = (
    "retail-etl",
    "prefect",
    "prefect-dask",
    "dask",
    "distributed",
    "pandas",
    "pyarrow",
    "pandera",
    "duckdb",
    "numpy",
)


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


def run_contender(
    contender: str,
    landing: Path,
    run_dir: Path,
    sale_date: str,
    scheduler: str,
    shared_pids: list[int],
    infra_pids: list[int],
    calls: int = 1,
    profile: str | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """One fresh process doing one contender's work; its timings, memory and published figures."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    warehouse, result, log = run_dir / "warehouse", run_dir / "result.json", run_dir / "output.log"
    command = [
        sys.executable,
        "-m",
        "retail_etl.bench.runner",
        "--contender",
        contender,
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
        "--date",
        sale_date,
        "--result",
        str(result),
        "--scheduler",
        scheduler,
        "--calls",
        str(calls),
        *(["--profile", profile] if profile else []),
    ]
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            with RssSampler(process.pid, shared_pids, infra_pids) as sampler:
                _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: do not leave the contender running
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
    record = {
        "contender": contender,
        "exit_code": process.returncode,
        "process_s": round(elapsed, 3),
        "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "process_maxrss_bytes": usage.ru_maxrss * 1024,
        **sampler.result(),
        "log": str(log),
    }
    # CPU seconds other programs on the machine used meanwhile: high means a disturbed run.
    record["other_cpu_s"] = round(
        record["machine_busy_cpu_s"] - record["process_cpu_s"] - record["shared_cpu_s"] - record["infra_cpu_s"], 3
    )
    if process.returncode == 0 and result.is_file():
        record.update(json.loads(result.read_text()))
        record["figures"] = warehouse_figures(warehouse, sale_date)
    else:
        record["error"] = log.read_text(errors="replace")[-3000:]
    return record


def _worker_pids(client) -> list[int]:
    return sorted(client.run(os.getpid).values())


def _infra_pids(exclude: list[int]) -> list[int]:
    """This process and its children (the Prefect server, idle Dask workers, ...) but `exclude`."""
    children = [child.pid for child in psutil.Process().children(recursive=True) if child.pid not in exclude]
    return [os.getpid(), *children]


def _warm_worker() -> None:
    """Import what the pipeline's tasks need, as a worker that has served a run already has."""
    import prefect.task_engine  # noqa: F401
    import prefect_dask  # noqa: F401

    import retail_etl.orchestration.tasks  # noqa: F401


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM ends the benchmark like Ctrl-C does: contender stopped, cluster and server shut down."""

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 at `path` while child processes are started (they inherit
    them), so the Dask workers' logs go to a file instead of the bench's table."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _code_revision() -> dict:
    """The git commit of the code being measured, and the package's uncommitted files (if a checkout)."""
    package = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "uncommitted": None}
    return {"commit": commit, "uncommitted": [line[3:] for line in dirty]}


def _versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def summarise(runs: list[dict], empty: list[dict], rows: int) -> dict:
    """Per contender timing/memory, the pipeline's ratios, the empty-day cost, the equality check."""
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
    ratios = {}
    if "pipeline" in contenders:
        for baseline in ("pandas", "duckdb"):
            if baseline in contenders:
                ratios[f"pipeline_vs_{baseline}"] = (
                    contenders["pipeline"]["median_s"] / contenders[baseline]["median_s"]
                )
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
    timed = [r for r in runs if r["exit_code"] == 0 and "other_cpu_s" in r]
    other_load = (sum(r["other_cpu_s"] for r in timed) / sum(r["process_s"] for r in timed)) if timed else None
    return {
        "contenders": contenders,
        "ratios": ratios,
        "empty_day": empty_day,
        "equality": equality,
        "failed": failed,
        "other_load_cores": other_load,
    }


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def render(report: dict, console: Console) -> None:
    config, summary = report["config"], report["summary"]
    table = Table(
        title=f"retail-etl bench: {config['rows']:,} rows, {config['stores']} stores, "
        f"{config['repeat']} round(s), {report['machine']['cpus']} CPUs",
        box=box.SIMPLE_HEAD,
    )
    for column in ("", "median s", "min s", "max s", "rows/s", "peak GiB", "CPU s", "import s", "pipeline/x"):
        table.add_column(column, justify="left" if not column else "right")
    for contender, figures in summary["contenders"].items():
        ratio = summary["ratios"].get(f"pipeline_vs_{contender}")
        table.add_row(
            contender,
            f"{figures['median_s']:.2f}",
            f"{figures['min_s']:.2f}",
            f"{figures['max_s']:.2f}",
            f"{figures['rows_per_s']:,.0f}",
            f"{figures['peak_rss_bytes'] / 2**30:.2f}",
            f"{figures['work_cpu_s_median']:.1f}",
            f"{figures['import_s_median']:.2f}",
            f"{ratio:.2f}x" if ratio else "",
        )
    if not console.is_terminal and console.width < 100:
        console.width = 100  # a log or a pipe: room for the whole table
    console.print(table)
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
    console.print(f"memory counted: {MEMORY_ACCOUNTING}")
    if summary.get("other_load_cores") is not None:
        style = "bold yellow" if summary["other_load_cores"] > 0.2 else "dim"
        console.print(
            f"[{style}]other programs on this machine used {summary['other_load_cores']:.2f} of "
            f"{report['machine']['cpus']} cores on average during the timed runs[/]"
        )
    if summary["failed"]:
        console.print(f"[bold red]failed runs:[/] {', '.join(summary['failed'])}")
    equality = summary["equality"]
    if equality["ok"]:
        reference = equality["reference"]
        console.print(
            f"[green]outputs agree[/]: every run published {reference['rows_published']:,} rows and "
            f"quarantined {sum(reference['quarantine_reasons'].values()):,} with the same reasons; "
            "per-region revenue equal to the cent"
        )
    else:
        console.print("[bold red]outputs differ: the contenders did not do the same work[/]")
        for entry in equality["differences"]:
            for difference in entry["differences"]:
                console.print(f"  {entry['run']}: {difference} (pipeline vs this)")


def run_bench(config: BenchConfig, json_path: str | Path | None = None, console: Console | None = None) -> int:
    """Run the benchmark and print it; returns the exit code (1: outputs differ, 2: a run failed)."""
    from distributed import Client

    from ..orchestration.platform import local_cluster, prefect_api
    from ..synth.generate import REGIONS

    console = console or Console()
    if importlib.util.find_spec("duckdb") is None:
        console.print("[bold red]error:[/] the DuckDB baseline needs duckdb: pip install 'retail-etl[bench]'")
        return 2
    if config.rows < 1 or config.stores < 1 or config.repeat < 1 or config.empty_runs < 0:
        raise ValueError("need rows >= 1, stores >= 1, repeat >= 1, empty_runs >= 0")
    code = _code_revision()  # what is being measured, before anyone edits it
    workdir = Path(config.workdir) if config.workdir else Path(tempfile.mkdtemp(prefix="retail-etl-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with console.status(f"generating {config.rows:,} rows"):
            landing, generation = prepare_landing(workdir, config)
        empty_landing = workdir / "landing-empty"
        (empty_landing / "sales" / day_partition(config.sale_date)).mkdir(parents=True, exist_ok=True)
        runs, empty, profiled = [], [], None
        with _interruptible(), prefect_api() as api_url:
            env = child_environment(PREFECT_API_URL=api_url, RETAIL_ETL_REGIONS=",".join(REGIONS))
            with _output_to(workdir / "cluster.log"):
                cluster = local_cluster(n_workers=2, threads_per_worker=1)
            with cluster, Client(cluster) as client:
                client.run(_warm_worker)
                console.print(
                    f"Prefect API {api_url}; Dask scheduler {cluster.scheduler_address} "
                    f"(worker logs in {workdir / 'cluster.log'})"
                )
                for round_number in range(1, config.repeat + 1):
                    for contender in CONTENDERS:
                        workers = _worker_pids(client)
                        run_dir = workdir / "runs" / f"round{round_number}-{contender}"
                        record = run_contender(
                            contender,
                            landing,
                            run_dir,
                            config.sale_date,
                            cluster.scheduler_address,
                            workers if contender == "pipeline" else [],
                            _infra_pids(workers if contender == "pipeline" else []),
                            env=env,
                        )
                        record.update(round=round_number, load_average=os.getloadavg())
                        runs.append(record)
                        _progress(console, record)
                        if not config.keep:
                            shutil.rmtree(run_dir / "warehouse", ignore_errors=True)
                for number in range(1, config.empty_runs + 1):
                    run_dir = workdir / "runs" / f"empty{number}-pipeline"
                    workers = _worker_pids(client)
                    record = run_contender(
                        "pipeline",
                        empty_landing,
                        run_dir,
                        config.sale_date,
                        cluster.scheduler_address,
                        workers,
                        _infra_pids(workers),
                        calls=2,
                        env=env,
                    )
                    record.update(round=f"empty{number}", load_average=os.getloadavg())
                    empty.append(record)
                    _progress(console, record)
                    if not config.keep:
                        shutil.rmtree(run_dir / "warehouse", ignore_errors=True)
                if config.profile:
                    profiled = _profile_pipeline(
                        config, landing, workdir, cluster.scheduler_address, client, console, env
                    )
        report: dict[str, Any] = {
            "config": asdict(config),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_bytes": psutil.virtual_memory().total,
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "versions": _versions(),
            },
            "code": code,
            "generation": generation,
            "memory_accounting": MEMORY_ACCOUNTING,
            "runs": runs,
            "empty_day_runs": empty,
            "profile_run": profiled,
            "summary": summarise(runs, empty, generation["rows"]),
        }
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


def _profile_pipeline(
    config: BenchConfig, landing: Path, workdir: Path, scheduler: str, client, console: Console, env: dict[str, str]
) -> dict | None:
    """One more, untimed pipeline run under pyinstrument; its text report goes to config.profile."""
    if importlib.util.find_spec("pyinstrument") is None:
        console.print("[yellow]--profile needs pyinstrument (pip install pyinstrument): skipped[/]")
        return None
    workers = _worker_pids(client)
    record = run_contender(
        "pipeline",
        landing,
        workdir / "runs" / "profile-pipeline",
        config.sale_date,
        scheduler,
        workers,
        _infra_pids(workers),
        profile=str(Path(config.profile or "profile.txt").resolve()),
        env=env,
    )
    record.update(round="profile", load_average=os.getloadavg())
    _progress(console, record)
    if not config.keep:
        shutil.rmtree(workdir / "runs" / "profile-pipeline" / "warehouse", ignore_errors=True)
    console.print(f"pipeline profile (pyinstrument, untimed run) written to {config.profile}")
    return record


def _progress(console: Console, record: dict) -> None:
    label = f"{record['round']} {record['contender']}"
    if record["exit_code"] != 0:
        console.print(f"[red]{label}: failed (exit {record['exit_code']}), see {record['log']}[/]")
        return
    times = ", ".join(f"{t:.2f}" for t in record["work_s"])
    console.print(
        f"{label}: {times} s, peak {_gib(record['peak_bytes'])}, imports {record['import_s']:.2f} s, "
        f"other load {record['other_cpu_s'] / record['process_s']:.2f} cores"
    )
