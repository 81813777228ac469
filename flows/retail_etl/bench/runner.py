"""One contender of `retail-etl bench`, once, in its own process: ``python -m retail_etl.bench.runner``.

The clock starts after the contender's imports and stops when its work returns; the import
time is reported apart (the bench measures the whole process from outside as well). The
contender reads its rules from the RETAIL_ETL_* environment, like the pipeline does, so all
three apply the same regions and maxima. With ``--calls N`` the same work runs N times in the
process (the empty-day measurement: first call cold, later calls warm). ``--profile FILE``
records the work with pyinstrument (the bench never times a profiled run).

``--backfill-days N`` times N consecutive days from ``--date`` instead of one: the pipeline runs
its `backfill` flow over them (on the bench's Dask scheduler, like the daily flow), each baseline
loops over the days in this one process (DuckDB: one in-memory connection per day, as its
per-day function opens one).
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import date, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

CONTENDERS: tuple[str, ...] = ("pipeline", "pandas", "duckdb")


def _work(contender: str, landing: str, warehouse: str, sale_date: date, scheduler: str | None) -> Callable[[], dict]:
    """Import the contender, and return a call that does one day's work and returns its manifest."""
    if contender == "pipeline":
        from ..config import load_settings
        from ..orchestration.flows import daily_sales_etl
        from ..orchestration.platform import runner_at

        if not scheduler:
            raise SystemExit("the pipeline contender needs --scheduler (the bench's Dask scheduler)")
        flow = daily_sales_etl.with_options(task_runner=runner_at(scheduler))
        regions = load_settings().regions
        return lambda: flow(
            run_date=sale_date, landing=landing, warehouse=warehouse, allow_empty=True, regions=regions
        ).model_dump(mode="json")

    from ..config import load_settings
    from ..contract.layout import day_partition

    if contender == "pandas":
        from .baselines.pandas_baseline import run
    elif contender == "duckdb":
        from .baselines.duckdb_baseline import run
    else:
        raise SystemExit(f"unknown contender {contender!r}; expected one of {', '.join(CONTENDERS)}")
    settings = load_settings()
    day_dir = str(Path(landing) / "sales" / day_partition(sale_date.isoformat()))
    return lambda: run(
        day_dir,
        warehouse,
        sale_date,
        regions=settings.regions,
        max_quantity=settings.max_quantity,
        max_unit_price=settings.max_unit_price,
    )


def _backfill(
    contender: str, landing: str, warehouse: str, start: date, days: int, scheduler: str | None
) -> Callable[[], list[dict]]:
    """Import the contender, and return a call that does `days` days' work and returns their manifests."""
    end = start + timedelta(days=days - 1)
    if contender == "pipeline":
        from ..config import load_settings
        from ..orchestration.flows import backfill
        from ..orchestration.platform import runner_at

        if not scheduler:
            raise SystemExit("the pipeline contender needs --scheduler (the bench's Dask scheduler)")
        flow = backfill.with_options(task_runner=runner_at(scheduler))
        regions = load_settings().regions
        return lambda: [
            manifest.model_dump(mode="json")
            for manifest in flow(
                start=start, end=end, landing=landing, warehouse=warehouse, allow_empty=True, regions=regions
            )
        ]
    one_day = [_work(contender, landing, warehouse, start + timedelta(days=n), None) for n in range(days)]
    return lambda: [work() for work in one_day]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contender", required=True, choices=CONTENDERS)
    parser.add_argument("--landing", required=True, help="landing root (holds sales/sale_date=D/)")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--date", required=True)
    parser.add_argument("--result", required=True, help="where to write this run's JSON")
    parser.add_argument("--scheduler", help="Dask scheduler address (pipeline only)")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--profile", help="profile the work with pyinstrument; write its text report here")
    parser.add_argument("--backfill-days", type=int, default=0, help="time this many days from --date instead")
    args = parser.parse_args(argv)

    run_date = date.fromisoformat(args.date)
    work: Callable[[], dict | list[dict]]
    if args.backfill_days:
        work = _backfill(args.contender, args.landing, args.warehouse, run_date, args.backfill_days, args.scheduler)
    else:
        work = _work(args.contender, args.landing, args.warehouse, run_date, args.scheduler)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler()
    imported = time.perf_counter()
    work_s: list[float] = []
    cpu_s: list[float] = []
    outcome: dict | list[dict] = {}
    for _ in range(args.calls):
        if profiler:
            profiler.start()
        started, cpu = time.perf_counter(), time.process_time()
        outcome = work()
        work_s.append(time.perf_counter() - started)
        cpu_s.append(time.process_time() - cpu)
        if profiler:
            profiler.stop()
    if profiler:
        Path(args.profile).write_text(profiler.output_text(unicode=True, color=False))
    keep: tuple[str, ...] = (
        "rows_in",
        "rows_published",
        "rows_quarantined",
        "quarantine_reasons",
        "regions",
        "revenue",
    )
    if isinstance(outcome, list):  # a backfill: one manifest per day, by day
        days = {str(m.get("sale_date")): {key: m.get(key) for key in keep} for m in outcome}
        rejected = sum(len(m.get("files_rejected", [])) for m in outcome)
        manifest = {"rows_in": sum(int(m.get("rows_in") or 0) for m in outcome), "days": dict(sorted(days.items()))}
        keep = ("rows_in", "days")
    else:
        manifest, rejected = outcome, len(outcome.get("files_rejected", []))
    result = {
        "contender": args.contender,
        "import_s": imported - _STARTED,
        "work_s": work_s,
        "work_cpu_s": cpu_s,
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "files_rejected": rejected,
        "manifest": {key: manifest.get(key) for key in keep},
    }
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
