"""Attacks on the Delta publication: a published day is never lost, half-replaced or duplicated.

Every attack runs the real command line (`python -m retail_etl run|backfill`) as a subprocess
against the session's real Prefect API (concurrent runs meet at the day's lease in the warehouse),
a real Dask cluster and either a local folder or the moto S3 server; the published tables are
then read back with deltalake, Polars and DuckDB. The previously published day of an attack
("A") is published in-process on the session's cluster (the same flow, just faster).

How a run is crashed: `os.killpg(SIGKILL)` on its process group as soon as its output shows the
phase. Before the commits (after "rows written") the run has its own
LocalCluster, whose worker logs those lines and dies with it. After "committed <table>", the
next step follows within milliseconds, so the run is started through `FREEZE_HOOK`, which stops
the process (SIGSTOP) right after it has logged the marker line; the kill then lands exactly
there. Nothing of the product is changed by the hook: it only freezes a process at a log line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pandas as pd
import polars as pl
import pytest
from deltalake import DeltaTable

from retail_etl.contract.layout import LOCKS
from retail_etl.io.delta import TABLES, delta_options, table_uri
from retail_etl.io.lease import lease_holders
from retail_etl.io.storage import location, normalize, read_json
from retail_etl.synth.generate import generate_day

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: our helper module
from faultproxy import FaultProxy, delete_objects, delta_log_conditional_put

FLOWS = str(Path(__file__).resolve().parents[2] / "flows")
DAY = "2024-03-05"
BEFORE, AFTER = "2024-03-04", "2024-03-06"
#: Two landing contents of the same day: the published day (A) and the one that replaces it (B).
CONTENT = {
    "x": {"rows": 3000, "stores": 3, "seed": 11},
    "y": {"rows": 4400, "stores": 4, "seed": 12},
}
TABLE_NAMES = ("curated", "quarantine", "marts")
RUN_TIMEOUT = 180
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

#: Runs the CLI; with SAFETY_FREEZE_AFTER set, the process stops itself right after logging a
#: line that contains it (so a kill lands at that exact point).
FREEZE_HOOK = """
import logging, os, runpy, signal, sys
marker = os.environ.get("SAFETY_FREEZE_AFTER")
if marker:
    handle = logging.Logger.handle
    def frozen_after(self, record):
        handle(self, record)
        if marker in record.getMessage():
            sys.stdout.flush(); sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGSTOP)
    logging.Logger.handle = frozen_after
sys.argv[0] = "retail_etl"
runpy.run_module("retail_etl", run_name="__main__", alter_sys=True)
"""


# -- the command line as a watched subprocess ---------------------------------------------------


class Cli:
    """`python -m retail_etl ARGS` in its own session; stdout and stderr collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], freeze_after: str | None = None) -> None:
        self.args = args
        if freeze_after:
            env = {**env, "SAFETY_FREEZE_AFTER": freeze_after}
            command = [sys.executable, "-c", FREEZE_HOOK, *args]
        else:
            command = [sys.executable, "-m", "retail_etl", *args]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.stdout + self.stderr)

    def _match(self, pattern: re.Pattern[str]) -> bool:
        return any(pattern.search(line) for line in self.stdout + self.stderr)

    def wait_for(self, pattern: str, timeout: float = RUN_TIMEOUT) -> bool:
        """Until a line matches `pattern` (True), or the run ended or the time is up (False)."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._match(compiled):
                if self.process.poll() is not None and not any(r.is_alive() for r in self._readers):
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
            return True

    def kill_at(self, pattern: str, timeout: float = RUN_TIMEOUT) -> bool:
        """Kill the run as soon as a line matches `pattern`; whether it got there."""
        reached = self.wait_for(pattern, timeout)
        self.kill()
        return reached

    def kill(self) -> None:
        """SIGKILL the whole process group (the CLI, its Dask cluster, every child)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)

    def finish(self, timeout: float = RUN_TIMEOUT) -> int:
        """Wait for the run to end (killed and failed if it takes longer); its exit code."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.args} still running after {timeout} s:\n{self.tail()}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return self.process.returncode

    def run_id(self) -> str:
        found = re.search(rf"flow-run/({UUID})", self.output)
        assert found, f"no flow run id in the output of {self.args}:\n{self.tail()}"
        return found.group(1)

    def tail(self, lines: int = 40) -> str:
        return "\n".join((self.stdout + self.stderr)[-lines:])

    def assert_clear_failure(self) -> str:
        """Failed with one `error:` line, the last thing on stderr, and an error family's code."""
        code = self.process.returncode
        assert code not in (0, None), f"expected a failure:\n{self.tail()}"
        errors = [line for line in self.stderr if line.startswith("error:")]
        assert len(errors) == 1, f"expected one error line, got {errors}:\n{self.tail()}"
        rest = [line for line in self.stderr[self.stderr.index(errors[0]) + 1 :] if line.strip()]
        assert not rest, f"the error goes on over {len(rest) + 1} lines: {[errors[0], *rest]}"
        assert code in (4, 5, 9, 10), f"exit code {code} is no error family's:\n{self.tail()}"
        return errors[0]


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    """Every Cli a test starts; whatever still runs at teardown is killed."""
    started: list[Cli] = []
    yield started
    for cli in started:
        if cli.process.poll() is None:
            cli.kill()


# -- where the runs read and write --------------------------------------------------------------


@dataclass
class Backend:
    """A warehouse (fresh per test) and the landing roots of the two contents of DAY."""

    name: str
    warehouse: str
    landing: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)  # fsspec options of the real endpoint
    endpoint: str | None = None

    @property
    def delta(self) -> dict[str, str]:
        return delta_options(self.options)


def _generate(root: str, content: str, days: tuple[str, ...], options: dict[str, Any] | None = None) -> None:
    for day in days:
        generate_day(root, day, bad_fraction=0.02, options=options, **CONTENT[content])


@pytest.fixture(scope="module")
def local_landing(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("landing")
    landing = {content: str(root / content) for content in CONTENT}
    _generate(landing["x"], "x", (BEFORE, DAY, AFTER))
    _generate(landing["y"], "y", (DAY,))
    return landing


@pytest.fixture(scope="module")
def s3_landing(s3_endpoint) -> dict[str, str]:
    bucket = f"landing-{os.getpid()}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    options = {"endpoint_url": s3_endpoint}
    landing = {content: f"s3://{bucket}/{content}" for content in CONTENT}
    _generate(landing["x"], "x", (BEFORE, DAY, AFTER), options)
    _generate(landing["y"], "y", (DAY,), options)
    return landing


@pytest.fixture
def local(tmp_path, local_landing) -> Backend:
    return Backend("local", str(tmp_path / "warehouse"), local_landing)


@pytest.fixture
def s3(s3_bucket, s3_endpoint, s3_landing) -> Backend:
    return Backend("s3", f"{s3_bucket}/warehouse", s3_landing, {"endpoint_url": s3_endpoint}, s3_endpoint)


@pytest.fixture(params=["local", "s3"])
def backend(request) -> Backend:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def cli_env(prefect_api, dask_address, s3_endpoint, tmp_path_factory):
    """The environment of a CLI run; `own_cluster` gives it a LocalCluster of its own."""
    home = tmp_path_factory.mktemp("prefect-home")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RETAIL_ETL_", "PREFECT_API"))}
    paths = [FLOWS, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != FLOWS]]
    base.update(
        PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in paths),
        PREFECT_API_URL=prefect_api,
        PREFECT_HOME=str(home),
        RETAIL_ETL_DASK_WORKERS="1",
        RETAIL_ETL_IO_RETRIES="2",
        RETAIL_ETL_RETRY_DELAY_SECONDS="0.2",
        RETAIL_ETL_DAY_WAIT_SECONDS="150",
        RETAIL_ETL_DAY_LEASE_SECONDS="30",
        COLUMNS="250",
    )

    def env(endpoint: str | None = None, own_cluster: bool = False, **extra: str) -> dict[str, str]:
        values = dict(base, RETAIL_ETL_S3_ENDPOINT_URL=endpoint or s3_endpoint, **extra)
        if not own_cluster:
            values["RETAIL_ETL_DASK_ADDRESS"] = dask_address
        return values

    return env


def run_args(backend: Backend, content: str, day: str = DAY) -> list[str]:
    return ["run", "--date", day, "--landing", backend.landing[content], "--warehouse", backend.warehouse]


@pytest.fixture(autouse=True)
def bounded_wait(monkeypatch):
    """In-process runs never wait an hour for a day's lease, and take a dead run's over in 30 s."""
    monkeypatch.setenv("RETAIL_ETL_DAY_WAIT_SECONDS", "60")
    monkeypatch.setenv("RETAIL_ETL_DAY_LEASE_SECONDS", "30")


@pytest.fixture(scope="module")
def _published_once() -> dict[str, tuple[str, dict[str, Any]]]:
    return {}


def copy_warehouse(source: str, target: str, options: dict[str, Any]) -> None:
    """Copy a warehouse's tables and manifests (not its Prefect results or scratch)."""
    skipped = ("_prefect", "_staging")
    if not source.startswith("s3://"):
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*skipped))
        return
    client = boto3.client("s3", endpoint_url=options["endpoint_url"])
    bucket, prefix = source[5:].split("/", 1)
    target_bucket, target_prefix = target[5:].split("/", 1)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for entry in page.get("Contents", []):
            relative = entry["Key"][len(prefix) + 1 :]
            if not relative.startswith(skipped):
                client.copy_object(
                    Bucket=target_bucket,
                    Key=f"{target_prefix}/{relative}",
                    CopySource={"Bucket": bucket, "Key": entry["Key"]},
                )


@pytest.fixture
def day_a(run_day, _published_once, tmp_path_factory):
    """Put day A (landing content x) in the backend's warehouse; returns A's manifest.

    A is published once per backend by a real run (in-process, on the session's cluster) into
    a template warehouse, and each test gets a byte-for-byte copy of its tables and manifests.
    """

    def put(backend: Backend) -> dict[str, Any]:
        if backend.name not in _published_once:
            if backend.endpoint:
                template = f"{backend.landing['x'].rsplit('/', 1)[0]}/template-warehouse"
            else:
                template = str(tmp_path_factory.mktemp("template") / "warehouse")
            manifest = run_day(DAY, backend.landing["x"], template).model_dump(mode="json")
            assert manifest["rows_in"] == CONTENT["x"]["rows"]
            _published_once[backend.name] = (template, manifest)
        template, manifest = _published_once[backend.name]
        copy_warehouse(template, backend.warehouse, backend.options)
        return manifest

    return put


# -- what is published --------------------------------------------------------------------------


def read_manifest(backend: Backend, day: str = DAY) -> dict[str, Any] | None:
    root = location(backend.warehouse, backend.options)
    path = root.join("manifests", f"sale_date={day}.json")
    root.fs.invalidate_cache()
    return read_json(root.fs, path) if root.fs.exists(path) else None


def open_table(backend: Backend, name: str) -> DeltaTable:
    return DeltaTable(table_uri(normalize(backend.warehouse), TABLES[name]), storage_options=backend.delta)


def run_of_files(table: DeltaTable, day: str) -> set[str]:
    """The run ids in the names of the day's current data files (`<run_id>-<part>.parquet`)."""
    names = [uri.rsplit("/", 1)[-1] for uri in table.file_uris() if f"/sale_date={day}/" in uri]
    return {name[:36] for name in names}


def newest_commit_run(table: DeltaTable, day: str) -> str | None:
    for entry in table.history():  # newest first
        if entry.get("retail_etl.sale_date") == day:
            return entry.get("retail_etl.run_id")
    return None


def figures_of(name: str, frame: pd.DataFrame) -> dict[str, Any]:
    """What a table's rows of a day say, in the shape `expected_figures` gives."""
    if name == "curated":
        return {
            "rows": len(frame),
            "revenue": round(float(frame["total"].sum()), 2),
            "regions": {str(k): int(v) for k, v in frame.groupby("region", observed=True).size().items()},
            "duplicated ids": int(frame["transaction_id"].duplicated().sum()),
        }
    if name == "quarantine":
        return {"rows": len(frame), "reasons": {str(k): int(v) for k, v in frame["reason"].value_counts().items()}}
    return {
        "rows": int(frame["transactions"].sum()),
        "revenue": round(float(frame["revenue"].sum()), 2),
        "regions": sorted(str(region) for region in frame["region"]),
    }


def expected_figures(name: str, manifest: dict[str, Any]) -> dict[str, Any]:
    regions = manifest["regions"]
    if name == "curated":
        return {
            "rows": manifest["rows_published"],
            "revenue": round(manifest["revenue"], 2),
            "regions": {region: figures["rows"] for region, figures in regions.items()},
            "duplicated ids": 0,
        }
    if name == "quarantine":
        return {"rows": manifest["rows_quarantined"], "reasons": manifest["quarantine_reasons"]}
    return {"rows": manifest["rows_published"], "revenue": round(manifest["revenue"], 2), "regions": sorted(regions)}


@dataclass(frozen=True)
class TableDay:
    """One table's current rows of a day: whose files they are, and their figures."""

    runs: frozenset[str]
    newest_commit: str | None
    figures: dict[str, Any]


def table_day(backend: Backend, name: str, day: str = DAY) -> TableDay:
    table = open_table(backend, name)
    frame = table.to_pandas(filters=[("sale_date", "=", day)])
    return TableDay(frozenset(run_of_files(table, day)), newest_commit_run(table, day), figures_of(name, frame))


def published_day(backend: Backend, day: str = DAY) -> dict[str, TableDay]:
    return {name: table_day(backend, name, day) for name in TABLE_NAMES}


def assert_table_is(state: TableDay, name: str, run_id: str, manifest: dict[str, Any]) -> None:
    """The table's day is entirely `run_id`'s, with exactly the figures of `manifest`."""
    assert state.runs == {run_id}, f"{name}: current files of runs {set(state.runs)}, expected only {run_id}"
    assert state.newest_commit == run_id, f"{name}: newest commit of the day by {state.newest_commit}, not {run_id}"
    assert state.figures == expected_figures(name, manifest), f"{name}: figures are not run {run_id}'s"


def assert_published(backend: Backend, manifest: dict[str, Any], day: str = DAY) -> None:
    """The day's manifest is `manifest`'s run and every table holds exactly that run's rows."""
    current = read_manifest(backend, day)
    assert current is not None, f"no manifest for {day}"
    assert current["run_id"] == manifest["run_id"], f"manifest of {day} is run {current['run_id']}"
    assert current["rows_in"] == current["rows_published"] + current["rows_quarantined"]
    state = published_day(backend, day)
    for name in TABLE_NAMES:
        assert_table_is(state[name], name, manifest["run_id"], manifest)
    for name, version in current["tables"].items():  # the versions it names are that run's commits
        commits = {entry["version"]: entry for entry in open_table(backend, name).history()}
        assert commits[version].get("retail_etl.run_id") == manifest["run_id"], f"{name} version {version}"


def release_day_slot(backend: Backend, day: str = DAY) -> bool:
    """Remove the day's lease a killed run left behind, standing in for the 30 s after which the
    next run takes it over by itself (test_a_killed_run_does_not_block_its_day checks that);
    returns whether there was one."""
    root = location(backend.warehouse, backend.options)
    path = root.join(LOCKS, f"sale_date={day}.json")
    if not root.fs.exists(path):
        return False
    root.fs.rm_file(path)
    return True


# -- 1. crashes ---------------------------------------------------------------------------------

#: phase -> (line that shows it, tables committed by then, text of the log line to freeze at): data
#: files written but nothing committed, one table committed of three, all three but no manifest.
#: (Killed right after validation behaves as "rows written": nothing is committed by then either;
#: after two commits as after one: some tables are B's, the others A's.)
PHASES: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "rows written": (r"bucket \d+: \d+ rows written", (), None),
    "committed curated": (rf"committed curated {DAY}: version \d+", ("curated",), f"committed curated {DAY}:"),
    "committed marts": (rf"committed marts {DAY}: version \d+", TABLE_NAMES, f"committed marts {DAY}:"),
}


def each(backends: tuple[Backend, ...], check: Callable[[Backend], None]) -> list[str]:
    """Run `check` for every backend; the failures, each named by its backend."""
    failures = []
    for backend in backends:
        try:
            check(backend)
        except AssertionError as error:
            failures.append(f"[{backend.name}] {error}")
    return failures


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_run_killed_at_any_phase_leaves_every_table_whole(phase, local, s3, day_a, run_day, cli_env, clis):
    """Local and S3 side by side: A published, B (other landing content) killed at `phase`, C run."""
    pattern, committed, freeze_at = PHASES[phase]
    backends = (local, s3)
    a = {backend.name: day_a(backend) for backend in backends}
    # Before the commits a run has its own cluster (its worker logs those lines and dies with it).
    b = {
        backend.name: Cli(run_args(backend, "y"), cli_env(own_cluster=freeze_at is None), freeze_after=freeze_at)
        for backend in backends
    }
    clis.extend(b.values())
    with ThreadPoolExecutor(len(backends)) as pool:
        reached = dict(zip(b, pool.map(lambda cli: cli.kill_at(pattern), b.values()), strict=True))
    after_crash: dict[str, dict[str, TableDay]] = {}

    def crashed(backend: Backend) -> None:
        run = b[backend.name]
        with about(run):
            assert reached[backend.name], f"run B never got to {phase!r}"
            after_crash[backend.name] = published_day(backend)
            manifest = read_manifest(backend)
            assert manifest is not None and manifest["run_id"] == a[backend.name]["run_id"], "A's manifest is gone"
            assert manifest["tables"] == a[backend.name]["tables"], "run A's manifest was changed"

    def next_run(backend: Backend) -> None:
        # The next run of the day publishes it whole (the killed run's slot is freed first: it
        # would block the day, see test_a_killed_run_does_not_block_its_day).
        release_day_slot(backend)
        c = run_day(DAY, backend.landing["y"], backend.warehouse).model_dump(mode="json")
        assert c["rows_in"] == CONTENT["y"]["rows"] == c["rows_published"] + c["rows_quarantined"]
        assert_published(backend, c)
        # After the crash each table was entirely A's or entirely B's (B's figures are C's: same landing).
        b_run = b[backend.name].run_id()
        for name in TABLE_NAMES:
            if name in committed:
                assert_table_is(after_crash[backend.name][name], name, b_run, c)
            else:
                assert_table_is(after_crash[backend.name][name], name, a[backend.name]["run_id"], a[backend.name])

    failures = each(backends, crashed)
    failures += each(tuple(backend for backend in backends if backend.name in after_crash), next_run)
    assert not failures, "\n\n".join(failures)


def test_a_killed_run_does_not_block_its_day(local, run_day, cli_env, clis, monkeypatch):
    """A run killed while it holds its day's slot must not keep the day from being published again."""
    b = Cli(run_args(local, "x"), cli_env())
    clis.append(b)
    reached = b.wait_for(r"list-landing-files-\w+' - Finished")  # listed inside the day's slot
    b.kill()
    assert reached, b.tail()
    lease = Path(local.warehouse) / LOCKS / f"sale_date={DAY}.json"
    assert lease.exists(), "the killed run held no lease on its day"
    monkeypatch.setenv("RETAIL_ETL_DAY_WAIT_SECONDS", "90")  # longer than the 30 s lease
    started = time.monotonic()
    state = run_day(DAY, local.landing["x"], local.warehouse, return_state=True)
    assert state.is_completed(), f"a run after the killed one could not publish {DAY}: {state.message}"
    assert time.monotonic() - started < 90
    assert lease_holders(local.warehouse, None) == {}, "the lease outlived the run that took it over"


# -- 2. concurrency -----------------------------------------------------------------------------


def assert_finished_or_refused(cli: Cli) -> bool:
    """True if the run published; otherwise it failed with one clear line."""
    code = cli.finish()
    if code == 0:
        return True
    cli.assert_clear_failure()
    return False


def test_two_runs_of_a_day_at_once_publish_one_whole_day(backend, cli_env, clis):
    first = Cli(run_args(backend, "x"), cli_env())
    second = Cli(run_args(backend, "y"), cli_env())
    clis += [first, second]
    published = [assert_finished_or_refused(cli) for cli in (first, second)]
    assert any(published), f"neither run published:\n{first.tail()}\n{second.tail()}"
    manifest = read_manifest(backend)
    assert manifest is not None
    runs = {cli.run_id(): cli for cli in (first, second)}
    assert manifest["run_id"] in runs
    assert_published(backend, manifest)
    winner = runs[manifest["run_id"]]
    content = "x" if winner is first else "y"
    assert manifest["rows_in"] == CONTENT[content]["rows"]
    if all(published):  # serialised: the second waited, then replaced the first in every table
        commits = [entry.get("retail_etl.run_id") for entry in open_table(backend, "curated").history()]
        assert set(runs) <= set(commits) and commits[0] == manifest["run_id"]


def test_two_runs_through_two_names_of_one_warehouse_do_not_mix_a_day(local, tmp_path, cli_env, clis):
    """The day's slot is keyed by the warehouse's name, so a second name of the same warehouse (a
    symlink, another mount; likewise a run against another Prefect API) takes another slot. Then
    the Delta commits are the last guard: the two runs must not leave one day mixed."""
    Path(local.warehouse).mkdir()
    alias = tmp_path / "same-warehouse"
    alias.symlink_to(local.warehouse)
    first = Cli(run_args(local, "x"), cli_env(), freeze_after=f"committed curated {DAY}:")
    clis.append(first)
    assert first.wait_for(PHASES["committed curated"][0]), first.tail()  # now stopped after one commit
    second = Cli(run_args(replace(local, warehouse=str(alias)), "y"), cli_env())
    clis.append(second)
    second_published = assert_finished_or_refused(second)
    os.killpg(first.process.pid, signal.SIGCONT)
    first_published = assert_finished_or_refused(first)
    assert first_published or second_published
    manifest = read_manifest(local)
    assert manifest is not None
    with about(first):
        assert_published(local, manifest)


def test_a_backfill_overlapping_a_run(local, cli_env, clis):
    backfill = Cli(
        [
            "backfill",
            "--start",
            BEFORE,
            "--end",
            AFTER,
            "--landing",
            local.landing["x"],
            "--warehouse",
            local.warehouse,
        ],
        cli_env(),
    )
    run = Cli(run_args(local, "y"), cli_env())
    clis += [backfill, run]
    run_published = assert_finished_or_refused(run)
    backfill_published = assert_finished_or_refused(backfill)
    assert run_published or backfill_published, f"nothing published:\n{run.tail()}\n{backfill.tail()}"
    for day in (BEFORE, DAY, AFTER) if backfill_published else (DAY,):
        manifest = read_manifest(local, day)
        assert manifest is not None, f"{day} was not published"
        assert_published(local, manifest, day)
    manifest = read_manifest(local, DAY)
    assert manifest is not None
    content = "y" if manifest["run_id"] == run.run_id() else "x"
    assert manifest["rows_in"] == CONTENT[content]["rows"]


# -- 3. readers during a publication ------------------------------------------------------------


def read_rounds(backend: Backend) -> dict[str, tuple[int, float]]:
    """(rows, revenue) of the day's curated rows through three readers, and the marts' revenue."""
    uri = table_uri(normalize(backend.warehouse), TABLES["curated"])
    frame = DeltaTable(uri, storage_options=backend.delta).to_pandas(
        columns=["total"], filters=[("sale_date", "=", DAY)]
    )
    polars = pl.read_delta(
        uri,
        storage_options=backend.delta,
        columns=["total"],
        use_pyarrow=True,
        pyarrow_options={"partitions": [("sale_date", "=", DAY)]},
    )
    dataset = DeltaTable(uri, storage_options=backend.delta).to_pyarrow_dataset()
    connection = duckdb.connect()
    connection.register("curated", dataset)
    rows, revenue = connection.execute(
        "select count(*), coalesce(sum(total), 0) from curated where sale_date = ?", [DAY]
    ).fetchone()
    connection.close()
    marts = open_table(backend, "marts").to_pandas(filters=[("sale_date", "=", DAY)])
    return {
        "pandas": (len(frame), round(float(frame["total"].sum()), 2)),
        "polars": (polars.height, round(float(polars["total"].sum() or 0), 2)),
        "duckdb": (int(rows), round(float(revenue), 2)),
        "marts": (int(marts["transactions"].sum()), round(float(marts["revenue"].sum()), 2)),
    }


def test_readers_see_the_old_day_or_the_new_day_whole(s3, day_a, cli_env, clis):
    old = day_a(s3)
    b = Cli(run_args(s3, "y"), cli_env())
    clis.append(b)
    seen: list[dict[str, tuple[int, float]]] = []
    while b.process.poll() is None and len(seen) < 60:
        seen.append(read_rounds(s3))
        time.sleep(0.1)
    assert b.finish() == 0, b.tail()
    seen.append(read_rounds(s3))
    new = read_manifest(s3)
    assert new is not None and new["run_id"] == b.run_id()
    whole = {(old["rows_published"], round(old["revenue"], 2)), (new["rows_published"], round(new["revenue"], 2))}
    for number, reads in enumerate(seen):
        for reader, figures in reads.items():
            assert figures in whole, f"read {number} through {reader} saw {figures}, neither day of {whole}"
    assert set(seen[-1].values()) == {(new["rows_published"], round(new["revenue"], 2))}
    assert len(seen) > 2, "the run ended before anything was read"


# -- 4. S3 faults -------------------------------------------------------------------------------


@contextmanager
def about(cli: Cli) -> Iterator[None]:
    """Failed assertions inside say what the run printed last."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n--- exit code {cli.process.returncode}; the run's output ends:\n{cli.tail()}"
        ) from None


def assert_published_or_old_day_intact(backend: Backend, cli: Cli, old: dict[str, Any]) -> bool:
    """The run published exact figures (True), or failed clearly and the old day is intact."""
    with about(cli):
        if cli.finish() == 0:
            manifest = read_manifest(backend)
            assert manifest is not None and manifest["run_id"] == cli.run_id()
            assert manifest["rows_in"] == CONTENT["y"]["rows"]
            assert_published(backend, manifest)
            return True
        assert_published(backend, old)  # first what matters most: the old day is still there
        cli.assert_clear_failure()
        return False


def test_random_s3_faults_never_lose_the_published_day(s3, day_a, cli_env, clis):
    """10 % and 30 % of S3 requests failed (500, 503, dropped connection), two warehouses at once."""
    shares = (0.1, 0.3)
    backends = tuple(replace(s3, warehouse=f"{s3.warehouse}-{round(share * 100)}") for share in shares)
    old = {backend.warehouse: day_a(backend) for backend in backends}
    proxies = [FaultProxy(s3.endpoint, fail_share=share, seed=number) for number, share in enumerate(shares)]
    try:
        runs = {}
        for backend, proxy in zip(backends, proxies, strict=True):
            proxy.start()
            env = cli_env(endpoint=proxy.url, RETAIL_ETL_IO_RETRIES="3")
            runs[backend.warehouse] = Cli(run_args(backend, "y"), env)
        clis.extend(runs.values())
        for run in runs.values():
            run.finish()
    finally:
        for proxy in proxies:
            proxy.stop()
    failures = each(
        backends,
        lambda backend: assert_published_or_old_day_intact(backend, runs[backend.warehouse], old[backend.warehouse]),
    )
    assert not failures, "\n\n".join(failures)
    for proxy in proxies:
        assert sum(proxy.faults.values()) > 0, proxy.summary()


def test_every_delta_commit_failing(s3, day_a, cli_env, clis):
    old = day_a(s3)
    with FaultProxy(s3.endpoint) as proxy:
        commits = proxy.fail_always(delta_log_conditional_put, "503")
        b = Cli(run_args(s3, "y"), cli_env(endpoint=proxy.url, RETAIL_ETL_IO_RETRIES="0"))
        clis.append(b)
        assert b.finish() != 0, f"published with every commit failing:\n{b.tail()}"
    assert commits.matched > 0, f"no conditional put of a _delta_log entry went through the proxy: {proxy.summary()}"
    with about(b):
        assert_published(s3, old)
        b.assert_clear_failure()


def test_every_delete_failing(s3, day_a, cli_env, clis):
    old = day_a(s3)
    with FaultProxy(s3.endpoint) as proxy:
        deletes = proxy.fail_always(delete_objects, "503")
        # botocore's own retries of a failing delete take a minute; s3fs still retries it 5 times
        b = Cli(run_args(s3, "y"), cli_env(endpoint=proxy.url, AWS_MAX_ATTEMPTS="1"))
        clis.append(b)
        assert_published_or_old_day_intact(s3, b, old)
    assert deletes.matched > 0, f"no DeleteObjects went through the proxy: {proxy.summary()}"


# -- 5. glob characters in landing file names ---------------------------------------------------


def test_glob_characters_in_landing_names(s3, s3_endpoint, cli_env, clis):
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = s3.warehouse.split("/")[2]
    landing = f"s3://{bucket}/landing"
    generate_day(landing, DAY, rows=3000, stores=3, bad_fraction=0.02, seed=5, options=s3.options)
    folder = f"landing/sales/sale_date={DAY}"
    renamed = {"S001.csv": "S[1].csv", "S002.csv": "S*2.csv", "S003.csv": "S?3.csv"}
    for old, new in renamed.items():
        client.copy_object(
            Bucket=bucket, Key=f"{folder}/{new}", CopySource={"Bucket": bucket, "Key": f"{folder}/{old}"}
        )
        client.delete_object(Bucket=bucket, Key=f"{folder}/{old}")
    rejected = {"R[1].csv": b"\x00\x01\x02\xff garbage \xfe", "R*2.csv": b"", "R?3.csv": b"a,b\n1,2\n"}
    for name, data in rejected.items():
        client.put_object(Bucket=bucket, Key=f"{folder}/{name}", Body=data)

    b = Cli(["run", "--date", DAY, "--landing", landing, "--warehouse", s3.warehouse], cli_env())
    clis.append(b)
    assert b.finish() == 0, b.tail()
    manifest = read_manifest(s3)
    assert manifest is not None
    accepted = {entry["file"].rsplit("/", 1)[-1]: entry["rows"] for entry in manifest["files_accepted"]}
    assert set(accepted) == set(renamed.values()) and sum(accepted.values()) == 3000 == manifest["rows_in"]
    kept = {entry["file"].rsplit("/", 1)[-1]: entry["quarantined_to"] for entry in manifest["files_rejected"]}
    assert set(kept) == set(rejected)
    for name, url in kept.items():
        key = url.split("/", 3)[3]
        assert key.endswith(f"/{name}")
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == rejected[name], f"{name} not kept as is"
    assert_published(s3, manifest)


def test_manifest_json_is_what_the_tables_hold(local, day_a):
    """The checks above compare tables with manifests: they must be able to tell them apart."""
    manifest = day_a(local)
    assert_published(local, manifest)
    altered = json.loads(json.dumps(manifest))
    altered["revenue"] += 0.01
    with pytest.raises(AssertionError):
        assert_published(local, altered)
