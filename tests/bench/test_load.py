"""retail-etl bench --background-load: the burners burn what was asked, stay outside the
contender's process tree, and never outlive the bench."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from retail_etl.bench.load import BackgroundLoad, plan


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_cores_are_split_into_equal_shares_of_at_most_one_core():
    assert plan(0) == []
    assert plan(0.5) == [0.5]
    assert plan(1) == [1.0]
    assert plan(1.5) == [0.75, 0.75]
    assert plan(2.4) == pytest.approx([0.8, 0.8, 0.8])
    with pytest.raises(ValueError):
        plan(-0.1)


def test_burner_uses_about_the_requested_cpu_and_leaves_nothing_behind():
    """0.5 cores over 3 s of wall time is about 1.5 CPU s: never more (it sleeps when ahead; the
    slack is the interpreter's start), less only when the shared test machine cannot give it."""
    with BackgroundLoad(0.5) as load:
        pids = load.pids
        assert len(pids) == 1 and all(_alive(pid) for pid in pids)
        time.sleep(3)
    figures = load.result()
    assert figures["processes"] == 1 and figures["pids"] == pids
    assert 3.0 <= figures["wall_s"] < 4.0
    assert 0.6 * 0.5 * figures["wall_s"] <= figures["cpu_s"] <= 0.5 * figures["wall_s"] + 0.3, figures
    assert not any(_alive(pid) for pid in pids)


def test_no_load_starts_nothing():
    with BackgroundLoad(0) as load:
        assert load.pids == []
    assert load.result()["cpu_s"] == 0 and load.result()["processes"] == 0


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from retail_etl.bench.load import BackgroundLoad
    with BackgroundLoad(1.2) as load:
        print(*load.pids, flush=True)
        if sys.argv[1] == "raise":
            raise RuntimeError("boom")
        time.sleep(60)
    """
)


@pytest.mark.parametrize("ending", ["raise", "SIGINT", "SIGKILL"])
def test_no_burner_outlives_the_bench(ending):
    """An exception or Ctrl-C stops the burners on the way out; after SIGKILL, where no clean-up
    runs, they notice their parent is gone and exit by themselves."""
    bench = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, ending], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ
    )
    assert bench.stdout is not None
    pids = [int(pid) for pid in bench.stdout.readline().split()]
    assert len(pids) == 2, bench.stderr.read() if bench.stderr else ""
    if ending != "raise":
        time.sleep(0.3)
        bench.send_signal(getattr(signal, ending))
    bench.wait(timeout=30)
    assert bench.returncode != 0
    assert _gone_within(pids, 3), [pid for pid in pids if _alive(pid)]


def test_burner_is_outside_the_contenders_tree_and_counted_apart(tmp_path):
    """A real contender run (DuckDB, no cluster needed) beside 0.5 cores of load: the burner is
    not in the process tree the monitor sampled, its CPU is reported apart, and it is gone."""
    from retail_etl.bench.contender import run_contender
    from retail_etl.bench.session import Session
    from retail_etl.config import child_environment
    from retail_etl.synth.generate import REGIONS, generate_day

    day = "2024-01-15"
    generate_day(tmp_path / "landing", day, rows=2_000, stores=2, bad_fraction=0.01, seed=3)
    session = Session(env=child_environment(RETAIL_ETL_REGIONS=",".join(REGIONS)), scheduler="", client=None)
    record = run_contender("duckdb", tmp_path / "landing", tmp_path / "run", day, session, background_load=0.5)
    assert record["exit_code"] == 0, record.get("error")
    burner = record["background_load"]
    assert burner["processes"] == 1 and burner["cpu_s"] > 0
    assert record["tree_pids"] and not set(burner["pids"]) & set(record["tree_pids"])
    assert 0 < record["background_cpu_s"] <= burner["cpu_s"] + 0.05
    assert record["figures"]["rows_published"] > 0
    assert not any(_alive(pid) for pid in burner["pids"])
