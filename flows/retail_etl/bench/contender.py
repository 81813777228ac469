"""One timed run of one contender, in a fresh process, measured from outside: memory and CPU of
its process tree (plus, for the pipeline, the shared Dask workers), the background load beside
it, and the figures it published, read back from its warehouse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from .compare import warehouse_figures
from .load import BackgroundLoad
from .monitor import RssSampler
from .session import Session, infra_pids

MEMORY_ACCOUNTING = (
    "peak over 20 ms samples of: RSS of the contender's process and its descendants, plus (pipeline "
    "only) the growth of the Dask worker processes' RSS since the run started; not counted: the "
    "Prefect server, the Dask scheduler/nannies (in the bench process), the workers' resting RSS, "
    "the bench's background-load burners"
)


def run_contender(
    contender: str,
    landing: Path,
    run_dir: Path,
    sale_date: str,
    session: Session,
    calls: int = 1,
    profile: str | None = None,
    days: list[str] | None = None,
    background_load: float = 0.0,
) -> dict:
    """One fresh process doing one contender's work (one day, or with `days` the backfill of
    those consecutive days from `sale_date`); its timings, memory and published figures.

    The background load's burners start before the contender's process and stop after it ends;
    they are children of this process, so they are outside the contender's tree and its figures.
    """
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
        session.scheduler,
        "--calls",
        str(calls),
        *(["--profile", profile] if profile else []),
        *(["--backfill-days", str(len(days))] if days else []),
    ]
    shared = session.worker_pids() if contender == "pipeline" else []
    infra = infra_pids(shared)
    with log.open("wb") as output, BackgroundLoad(background_load) as load:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=session.env)
        try:
            with RssSampler(
                process.pid, shared, [pid for pid in infra if pid not in load.pids], background_pids=load.pids
            ) as sampler:
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
        "background_load": load.result(),
        "log": str(log),
    }
    # CPU seconds other programs on the machine used meanwhile: high means a disturbed run.
    record["other_cpu_s"] = round(
        record["machine_busy_cpu_s"]
        - record["process_cpu_s"]
        - record["shared_cpu_s"]
        - record["infra_cpu_s"]
        - record["background_cpu_s"],
        3,
    )
    if process.returncode == 0 and result.is_file():
        record.update(json.loads(result.read_text()))
        if days:
            record["figures"] = {day: warehouse_figures(warehouse, day) for day in days}
        else:
            record["figures"] = warehouse_figures(warehouse, sale_date)
    else:
        record["error"] = log.read_text(errors="replace")[-3000:]
    return record


def progress(console: Console, record: dict) -> None:
    """One line per finished run."""
    label = f"{record['round']} {record['contender']}"
    if record["exit_code"] != 0:
        console.print(f"[red]{label}: failed (exit {record['exit_code']}), see {record['log']}[/]")
        return
    times = ", ".join(f"{t:.2f}" for t in record["work_s"])
    load = record["background_load"]
    burner = f", burner {load['cores_used']:.2f} cores" if load["processes"] else ""
    console.print(
        f"{label}: {times} s, peak {record['peak_bytes'] / 2**30:.2f} GiB, imports {record['import_s']:.2f} s, "
        f"other load {record['other_cpu_s'] / record['process_s']:.2f} cores{burner}"
    )
