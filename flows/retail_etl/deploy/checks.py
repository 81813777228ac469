"""Checks of an installed release, run by the chart's `helm test` pods (``retail-etl check-install``).

Each check talks to the real target and reports one line; a check fails when its target is
missing or different, never because a check could not be written:

- the Prefect API answers ``GET /health``;
- the work pool exists, and its base job template is the chart's (the mounted ConfigMap);
- the buckets exist on the S3 endpoint;
- the Dask scheduler answers and has at least one worker.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _api_headers() -> dict[str, str]:
    """The basic-auth header Prefect's own client sends when PREFECT_API_AUTH_STRING is set."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def check_api_health(api_url: str, timeout: float = 60.0, interval: float = 2.0) -> CheckResult:
    """The API's health endpoint returns 200 (retried until `timeout`: the server may be starting)."""
    import httpx

    url = api_url.rstrip("/") + "/health"
    deadline = time.monotonic() + timeout
    problem = "not tried"
    while True:
        try:
            response = httpx.get(url, headers=_api_headers(), timeout=10.0)
            if response.status_code == 200:
                return CheckResult("api health", True, f"{url} answered {response.text.strip()}")
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            return CheckResult("api health", False, f"{url}: {problem}")
        time.sleep(interval)


def differences(expected: Any, actual: Any, path: str = "") -> Iterator[str]:
    """Paths where two JSON documents differ.

    >>> list(differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 0}))
    ['b.c', 'd']
    """
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key in sorted(set(expected) | set(actual)):
            yield from differences(expected.get(key), actual.get(key), f"{path}.{key}" if path else str(key))
    elif expected != actual:
        yield path or "(root)"


def check_work_pool(api_url: str, name: str, base_job_template: Mapping | None = None) -> CheckResult:
    """The work pool exists and (when given) holds exactly this base job template."""
    import httpx

    try:
        response = httpx.get(f"{api_url.rstrip('/')}/work_pools/{name}", headers=_api_headers(), timeout=30.0)
    except httpx.HTTPError as error:
        return CheckResult("work pool", False, f"{name}: {type(error).__name__}: {error}")
    if response.status_code == 404:
        return CheckResult("work pool", False, f"{name} does not exist (did the registration Job run?)")
    if response.status_code != 200:
        return CheckResult("work pool", False, f"{name}: HTTP {response.status_code}")
    pool = response.json()
    if base_job_template is not None:
        changed = list(differences(dict(base_job_template), pool.get("base_job_template") or {}))
        if changed:
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            return CheckResult("work pool", False, f"{name}: base job template differs from the chart's at {shown}")
    return CheckResult("work pool", True, f"{name} ({pool.get('type')}), base job template as in the chart")


def check_buckets(buckets: list[str], options: Mapping[str, Any] | None = None) -> list[CheckResult]:
    """Each bucket exists on the S3 endpoint of `options` (refusals and errors fail the check too)."""
    from ..io.storage import location

    results = []
    for bucket in buckets:
        try:
            fs = location(f"s3://{bucket}", options).fs
            fs.invalidate_cache()
            found = fs.exists(bucket)
        except Exception as error:  # a refusal or an unreachable endpoint is this check's failure
            results.append(CheckResult("bucket", False, f"{bucket}: {type(error).__name__}: {error}"))
            continue
        results.append(CheckResult("bucket", found, f"{bucket} {'exists' if found else 'does not exist'}"))
    return results


def check_dask(address: str, timeout: float = 60.0) -> CheckResult:
    """The scheduler answers and at least one worker is connected to it (else tasks wait for ever)."""
    from distributed import Client

    try:
        with Client(address, timeout=timeout) as client:
            client.wait_for_workers(1, timeout=timeout)
            workers = len(client.scheduler_info()["workers"])
    except Exception as error:  # unreachable scheduler, or no worker within the timeout
        return CheckResult("dask", False, f"{address}: {type(error).__name__}: {error}")
    return CheckResult("dask", True, f"{address} answers with {workers} worker(s)")


def check_install(
    api_url: str | None = None,
    work_pool: str | None = None,
    base_job_template: Mapping | None = None,
    buckets: list[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    dask_address: str | None = None,
    timeout: float = 60.0,
) -> list[CheckResult]:
    """Run the checks whose targets are given, in order."""
    results = []
    if api_url:
        results.append(check_api_health(api_url, timeout))
        if work_pool:
            results.append(check_work_pool(api_url, work_pool, base_job_template))
    if buckets:
        results.extend(check_buckets(buckets, storage_options))
    if dask_address:
        results.append(check_dask(dask_address, timeout))
    return results
