"""A refusal of access (wrong or missing credentials, a bucket policy, a folder's permissions) is
one clear StorageAccessError naming the operation and the URL, and it is not retried.

The S3 tests use a moto server of their own that checks every request's signature and the IAM
policies (moto's ``/moto-api/reset-auth``, what ``INITIAL_NO_AUTH_ACTION_COUNT`` sets at start-up):
the buckets, a landing day, a table and the IAM users are made before it starts checking.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import s3fs

from retail_etl.errors import StorageAccessError
from retail_etl.io.delta import TABLES, DataFile, commit_day, read_day, write_data_file
from retail_etl.io.landing import LandingFile, read_landing_files
from retail_etl.io.lease import day_lease
from retail_etl.io.storage import (
    list_entries,
    list_folder,
    location,
    make_bucket,
    read_arrow_dir,
    read_bytes,
    read_json,
    remove_tree,
    write_bytes,
)

FLOWS = str(Path(__file__).resolve().parents[2] / "flows")
DAY = "2024-01-15"
HEADER = "transaction_id,sale_date,store_id,region,product,quantity,unit_price\n"
SETUP_KEYS = {"AWS_ACCESS_KEY_ID": "setup", "AWS_SECRET_ACCESS_KEY": "setup"}
WRONG_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "wrong-secret-do-not-print"}
MART_ROW = pd.DataFrame(
    {
        "region": ["north"],
        "revenue": [10.0],
        "units": [3],
        "transactions": [2],
        "avg_ticket": [5.0],
        "small_tickets": [2],
        "medium_tickets": [0],
        "large_tickets": [0],
    }
)


@dataclass(frozen=True)
class AuthS3:
    """A moto server that checks credentials, and what was made on it before it started to."""

    endpoint: str
    landing: str  # s3://bucket with a landing day; only the setup (no auth yet) could read it
    warehouse: str  # s3://bucket with the marts table and one data file not yet committed
    pending: DataFile
    users: dict[str, dict[str, str]]  # user name -> its AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY

    @property
    def options(self) -> dict[str, Any]:
        return {"endpoint_url": self.endpoint}

    @property
    def day_folder(self) -> str:
        return f"{self.landing}/sales/sale_date={DAY}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_moto(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("moto server did not start")


def _user(iam: Any, name: str, actions: list[str], bucket: str) -> dict[str, str]:
    """An IAM user allowed `actions` on `bucket` only; returns its keys as AWS_* variables."""
    iam.create_user(UserName=name)
    statement = {
        "Effect": "Allow",
        "Action": actions,
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def _setup(endpoint: str, landing: str, warehouse: str) -> tuple[DataFile, dict[str, dict[str, str]]]:
    """Buckets, a landing day, a marts table with one published day, and two users."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in (landing, warehouse):
        s3.create_bucket(Bucket=bucket)
    for store in ("S001", "S002"):
        body = HEADER + f"{store}-1,{DAY},{store},north,apple,2,1.50\n"
        s3.put_object(Bucket=landing, Key=f"sales/sale_date={DAY}/{store}.csv", Body=body.encode())
    options = {"endpoint_url": endpoint}
    marts = TABLES["marts"]
    published = write_data_file(f"s3://{warehouse}", options, marts, {"sale_date": DAY}, "run-a", MART_ROW)
    commit_day(f"s3://{warehouse}", options, marts, DAY, [published], run_id="run-a")
    pending = write_data_file(f"s3://{warehouse}", options, marts, {"sale_date": DAY}, "run-b", MART_ROW)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    users = {
        "etl": _user(iam, "etl", ["s3:*"], warehouse),  # the warehouse, but not the landing bucket
        # the shape of AWS's managed AmazonS3ReadOnlyAccess: whatever name a server gives the
        # permission a read needs (AWS: s3:ListBucket for ListObjectsV2; moto 5.2.6: s3:ListObjectsV2)
        "reader": _user(iam, "reader", ["s3:Get*", "s3:List*"], warehouse),
    }
    return pending, users


def _check_credentials_from_now_on(endpoint: str) -> None:
    """What moto's server does from the start with INITIAL_NO_AUTH_ACTION_COUNT=0."""
    reset = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}, method="POST"
    )
    urllib.request.urlopen(reset, timeout=10).close()


@pytest.fixture(scope="module")
def auth_s3() -> Iterator[AuthS3]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = _start_moto(port)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in SETUP_KEYS.items():  # any key will do until the server checks them
                patch.setenv(name, value)
            pending, users = _setup(endpoint, f"acc-landing-{port}", f"acc-warehouse-{port}")
            _check_credentials_from_now_on(endpoint)
            yield AuthS3(endpoint, f"s3://acc-landing-{port}", f"s3://acc-warehouse-{port}", pending, users)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def credentials(monkeypatch) -> Iterator[Callable[[dict[str, str]], None]]:
    """Use these AWS_* variables from now on (s3fs keeps a client per set of options: drop them)."""

    def use(values: dict[str, str]) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()

    yield use
    s3fs.S3FileSystem.clear_instance_cache()


def refused(call: Callable[[], Any]) -> str:
    """The message of the StorageAccessError `call` raises; it is one bounded line with no secret."""
    with pytest.raises(StorageAccessError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message and len(message) < 600
    assert WRONG_KEYS["AWS_SECRET_ACCESS_KEY"] not in message and WRONG_KEYS["AWS_ACCESS_KEY_ID"] not in message
    return message


def _fs(auth: AuthS3) -> Any:
    return location(auth.landing, auth.options).fs


def _key(auth: AuthS3, name: str) -> str:
    """A landing object's path on the filesystem (bucket/key)."""
    return f"{auth.day_folder.removeprefix('s3://')}/{name}"


#: name: (the operation named, the call, the URL named)
STORAGE_CALLS: dict[str, tuple[str, Callable[[AuthS3], Any], Callable[[AuthS3], str]]] = {
    "list_folder": ("list", lambda a: list_folder(_fs(a), _key(a, "")[:-1]), lambda a: a.day_folder),
    "list_entries": ("list", lambda a: list_entries(_fs(a), _key(a, "")[:-1]), lambda a: a.day_folder),
    "read_bytes": ("read", lambda a: read_bytes(_fs(a), _key(a, "S001.csv")), lambda a: f"{a.day_folder}/S001.csv"),
    "read_json": ("read", lambda a: read_json(_fs(a), _key(a, "m.json")), lambda a: f"{a.day_folder}/m.json"),
    "read_landing_files": (
        "read",
        lambda a: read_landing_files(
            [LandingFile(url=f"{a.day_folder}/S001.csv", name="S001.csv", identity={})], a.options
        ),
        lambda a: a.day_folder,
    ),
    "read_arrow_dir": ("list", lambda a: read_arrow_dir(_fs(a), _key(a, "")[:-1]), lambda a: a.day_folder),
    "write_bytes": (
        "write",
        lambda a: write_bytes(_fs(a), _key(a, "new.csv"), b"x"),
        lambda a: f"{a.day_folder}/new.csv",
    ),
    "remove_tree": ("delete", lambda a: remove_tree(_fs(a), _key(a, "")[:-1]), lambda a: a.day_folder),
    "make_bucket": (
        "create the bucket",
        lambda a: make_bucket("acc-new-bucket", a.options),
        lambda a: "s3://acc-new-bucket",
    ),
}


@pytest.mark.s3
@pytest.mark.parametrize("name", list(STORAGE_CALLS))
def test_storage_functions_name_the_operation_and_the_url(auth_s3, credentials, name):
    operation, call, url = STORAGE_CALLS[name]
    credentials(WRONG_KEYS)
    message = refused(lambda: call(auth_s3))
    assert message.startswith(f"cannot {operation} {url(auth_s3)}: access denied ("), message
    assert message.endswith(
        "check the S3 credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the pod's role) "
        "and the bucket policy"
    )


@pytest.mark.s3
def test_the_s3_error_code_says_which_refusal(auth_s3, credentials):
    folder = _key(auth_s3, "")[:-1]
    credentials(WRONG_KEYS)
    assert "access denied (InvalidAccessKeyId)" in refused(lambda: list_folder(_fs(auth_s3), folder))
    credentials(auth_s3.users["etl"])  # a real user, but the policy covers the warehouse only
    assert "access denied (AccessDenied)" in refused(lambda: list_folder(_fs(auth_s3), folder))
    credentials({"AWS_ACCESS_KEY_ID": auth_s3.users["etl"]["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": "wrong"})
    assert "access denied (SignatureDoesNotMatch)" in refused(lambda: list_folder(_fs(auth_s3), folder))


@pytest.mark.s3
def test_no_credentials_at_all(auth_s3, credentials, monkeypatch, tmp_path):
    credentials({})
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    message = refused(lambda: list_folder(_fs(auth_s3), _key(auth_s3, "")[:-1]))
    assert message.startswith(f"cannot list {auth_s3.day_folder}: no usable credentials (NoCredentialsError)")


@pytest.mark.s3
def test_the_days_lease_names_the_warehouse(auth_s3, credentials):
    credentials(WRONG_KEYS)

    def take() -> None:
        with day_lease(auth_s3.warehouse, auth_s3.options, DAY, "run-b", wait_seconds=0):
            pass

    message = refused(take)
    assert message.startswith(
        f"cannot take the day's lease {auth_s3.warehouse}/_locks/sale_date={DAY}.json: access denied ("
    )


@pytest.mark.s3
def test_delta_open_and_commit_name_the_table(auth_s3, credentials):
    marts, table_url = TABLES["marts"], f"{auth_s3.warehouse}/{TABLES['marts'].path}"
    commit = lambda: commit_day(auth_s3.warehouse, auth_s3.options, marts, DAY, [auth_s3.pending], run_id="run-b")  # noqa: E731
    credentials(WRONG_KEYS)
    opening = refused(commit)
    assert opening.startswith(f"cannot open the Delta table {table_url}: access denied (InvalidAccessKeyId)")
    credentials(auth_s3.users["reader"])  # may read the table, not write its log
    assert read_day(auth_s3.warehouse, auth_s3.options, marts, DAY)["revenue"].tolist() == [10.0]
    committing = refused(commit)
    assert committing.startswith(f"cannot commit to the Delta table {table_url}: access denied (AccessDenied)")


# -- a local folder the user may not write -------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write into: chmod for a user, the immutable attribute for root (who
    ignores permissions)."""
    folder = tmp_path / "warehouse"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and this file system cannot make a folder immutable (chattr +i)")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_read_only_local_warehouse(read_only_folder):
    warehouse = str(read_only_folder)

    def take() -> None:
        with day_lease(warehouse, None, DAY, "run-a", wait_seconds=0):
            pass

    lease = refused(take)
    assert lease.startswith(f"cannot take the day's lease {warehouse}/_locks/sale_date={DAY}.json: permission denied")
    assert lease.endswith("check that the user running retail-etl may read and write that folder")
    root = location(warehouse)
    assert refused(lambda: write_bytes(root.fs, root.join("manifests", "x.json"), b"{}")).startswith(
        f"cannot write {warehouse}/manifests/x.json: permission denied"
    )
    written = lambda: write_data_file(warehouse, None, TABLES["marts"], {"sale_date": DAY}, "run-a", MART_ROW)  # noqa: E731
    assert refused(written).startswith(  # the first write of a day: a data file in the table's folder
        f"cannot write {warehouse}/marts/region_daily/sale_date={DAY}/run-a.parquet: permission denied"
    )


# -- the command line ----------------------------------------------------------------------------


def run_cli(auth: AuthS3, prefect_api: str, cwd: Path, keys: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`retail-etl run` of the day with these credentials; a retry would wait 30 s and say so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETAIL_ETL_", "PREFECT_API", "AWS_"))}
    paths = [FLOWS, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != FLOWS]]
    env.update(
        keys,
        PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in paths),
        PREFECT_API_URL=prefect_api,
        PREFECT_HOME=str(cwd / ".prefect"),
        AWS_DEFAULT_REGION="us-east-1",
        RETAIL_ETL_S3_ENDPOINT_URL=auth.endpoint,
        RETAIL_ETL_DASK_WORKERS="1",
        RETAIL_ETL_IO_RETRIES="3",
        RETAIL_ETL_RETRY_DELAY_SECONDS="30",
        COLUMNS="250",
    )
    args = ["run", "--date", DAY, "--landing", auth.landing, "--warehouse", auth.warehouse]
    return subprocess.run(
        [sys.executable, "-m", "retail_etl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.mark.s3
@pytest.mark.parametrize(
    ("who", "refusal", "failed_tasks"),
    [
        # the flow takes the day's lease itself, before any task
        pytest.param(
            "wrong keys",
            "cannot take the day's lease {warehouse}/_locks/sale_date={day}.json: access denied",
            0,
            id="wrong-keys",
        ),
        # the warehouse is the etl user's, the landing bucket is not: list-landing-files fails, once
        pytest.param(
            "etl", "cannot list {landing}/sales/sale_date={day}: access denied (AccessDenied)", 1, id="landing-refused"
        ),
    ],
)
def test_run_stops_at_the_first_refusal_without_retrying(auth_s3, prefect_api, tmp_path, who, refusal, failed_tasks):
    keys = WRONG_KEYS if who == "wrong keys" else auth_s3.users[who]
    started = time.monotonic()
    result = run_cli(auth_s3, prefect_api, tmp_path, keys)
    elapsed = time.monotonic() - started
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    expected = refusal.format(warehouse=auth_s3.warehouse, landing=auth_s3.landing, day=DAY)
    assert result.returncode == StorageAccessError.exit_code == 11, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith(f"error: {expected}"), errors
    output = result.stdout + result.stderr
    assert "Retry" not in output and elapsed < 30, output[-3000:]
    assert output.count("Task run encountered an exception") == failed_tasks
