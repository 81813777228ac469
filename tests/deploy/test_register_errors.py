"""`register` and `promote` around the Prefect API, run as a user runs them (a subprocess): every
failure is one line on stderr that says what to do, with its own exit code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from retail_etl.errors import ApiNotConfigured, ApiUnreachable, UnknownEnvironment, WorkPoolTypeMismatch

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = str(REPO / "prefect.yaml")


def retail_etl(args: list[str], tmp_path: Path, api_url: str | None, **settings: str) -> subprocess.CompletedProcess:
    """The command with only the given API (none: nothing configured, a fresh Prefect home) and settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RETAIL_ETL_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), COLUMNS="200", RETAIL_ETL_WAREHOUSE="./warehouse")
    env.update(settings)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "retail_etl", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def one_error(result: subprocess.CompletedProcess, code: int) -> str:
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout
    return lines[0]


@pytest.fixture
def closed_api() -> str:
    """An API URL on a port nothing listens on (just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


@pytest.mark.parametrize(
    "args",
    [
        ["register", "--environment", "dev", "--prefect-file", PREFECT_FILE, "--wait-timeout", "1"],
        ["promote", "--from", "dev", "--to", "staging"],
        ["promote", "--from", "dev", "--to", "staging", "--force"],
    ],
)
def test_server_down(tmp_path, closed_api, args):
    error = one_error(retail_etl(args, tmp_path, closed_api), ApiUnreachable.exit_code)
    assert f"cannot reach the Prefect API at {closed_api}" in error and "prefect server start" in error


def test_api_url_from_the_profile_counts_as_configured(tmp_path, closed_api):
    """No PREFECT_API_URL in the environment, but the active profile sets one: that API is used
    (here it is down), neither refused as unconfigured nor replaced by a temporary server."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text(f'active = "remote"\n\n[profiles.remote]\nPREFECT_API_URL = "{closed_api}"\n')
    error = one_error(retail_etl(["promote", "--from", "dev", "--to", "staging"], tmp_path, None), 21)
    assert closed_api in error


def test_no_api_configured(tmp_path):
    args = ["register", "--environment", "dev", "--prefect-file", PREFECT_FILE]
    error = one_error(retail_etl(args, tmp_path, None), ApiNotConfigured.exit_code)
    assert "PREFECT_API_URL" in error and "prefect server start" in error
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()  # no temporary server's database either


@pytest.mark.parametrize(
    "args",
    [
        ["promote", "--from", "dev", "--to", "qa"],
        ["promote", "--from", "dev", "--to", "qa", "--force"],
        ["promote", "--from", "qa", "--to", "staging", "--force"],
        ["register", "--environment", "qa"],
    ],
)
def test_unknown_environment(prefect_api, tmp_path, args):
    error = one_error(retail_etl([*args, "--prefect-file", PREFECT_FILE], tmp_path, prefect_api), 22)
    assert error.startswith("error: unknown environment qa") and "known ones are " in error
    known = error.split("known ones are ", 1)[1]  # prefect.yaml's, and the API's (other tests' deployments)
    assert all(name in known for name in ("dev", "prod", "staging")), error
    assert UnknownEnvironment.exit_code == 22


def test_pool_of_the_wrong_type_says_how_to_fix_it(prefect_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="h-wrong-type", type="process"))
    args = ["register", "--environment", "dev", "--prefect-file", PREFECT_FILE, "--work-pool", "h-wrong-type"]
    error = one_error(retail_etl(args, tmp_path, prefect_api), WorkPoolTypeMismatch.exit_code)
    assert "h-wrong-type exists with type process, not kubernetes" in error
    assert "prefect work-pool delete h-wrong-type" in error and "--pool-type process" in error
    assert "--work-pool" in error


def test_forced_promotion_does_not_say_use_force(prefect_api, tmp_path):
    """dev has never run: refused with the way out; forced, the verdict keeps the reason only."""
    registered = retail_etl(
        ["register", "--environment", "dev", "--prefect-file", PREFECT_FILE, "--pool-type", "process"]
        + ["--work-pool", "h-force-dev"],
        tmp_path,
        prefect_api,
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    promote = ["promote", "--from", "dev", "--to", "staging", "--prefect-file", PREFECT_FILE, "--dry-run"]
    refused = one_error(retail_etl(promote, tmp_path, prefect_api), 24)
    assert "has never finished a run" in refused and "use --force" in refused
    forced = retail_etl([*promote, "--force"], tmp_path, prefect_api)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "FORCED past the gate" in forced.stdout and "has never finished a run" in forced.stdout
    assert "use --force" not in forced.stdout + forced.stderr
