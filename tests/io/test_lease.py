"""The day lease under contention, on a local disk and on S3: racing waiters, a paused holder
that resumes, a released lease claimed at once. Exactly one run believes it holds a day."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from retail_etl.io.conditional import replace_if
from retail_etl.io.lease import LeaseBusy, _acquire, _path, _record, day_lease, holds_lease, lease_holders
from retail_etl.io.storage import location

DAY = "2024-01-15"
QUICK = {"stale_after": timedelta(seconds=3), "poll_seconds": 0.1}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def warehouse(request, tmp_path) -> tuple[str, dict | None]:
    if request.param == "local":
        return str(tmp_path / "warehouse"), None
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return f"{bucket}/warehouse", {"endpoint_url": endpoint}


def test_racing_waiters_one_wins_the_others_are_told_who(warehouse):
    root, options = warehouse
    with day_lease(root, options, DAY, "yesterday", wait_seconds=0, **QUICK):
        pass  # a released record: every waiter below races to replace the same version of it
    winners, busy = [], []

    def run(name: str) -> None:
        try:
            with day_lease(root, options, DAY, name, wait_seconds=2, **QUICK):
                winners.append(name)
                time.sleep(4)  # renewing meanwhile: nobody may take it
                assert holds_lease(root, options, DAY, name)
        except LeaseBusy as error:
            busy.append(error.holder)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and busy == winners * 4


def test_a_paused_holder_that_resumes_finds_its_lease_taken(warehouse):
    root, options = warehouse
    store = location(root, options)
    path = _path(store, DAY)
    paused = _acquire(store, path, "run-a", 0, 1.0, 0.1)  # holds it, then renews no more
    started = time.monotonic()
    with day_lease(root, options, DAY, "run-b", wait_seconds=10, stale_after=timedelta(seconds=1), poll_seconds=0.1):
        assert time.monotonic() - started >= 1.0  # judged dead by the waiter's own watching
        # run-a resumes: its renewal is refused, it no longer holds the day, run-b's record stands
        assert replace_if(store.fs, path, _record("run-a", 1, paused.acquired_at), paused.tag) is None
        assert not holds_lease(root, options, DAY, "run-a")
        assert holds_lease(root, options, DAY, "run-b")
        assert lease_holders(root, options) == {f"sale_date={DAY}": "run-b"}
    assert lease_holders(root, options) == {}


def test_a_released_lease_is_claimed_at_once_and_a_live_one_refused(warehouse):
    root, options = warehouse
    with day_lease(root, options, DAY, "run-a", wait_seconds=0, **QUICK):
        with pytest.raises(LeaseBusy, match="held by run run-a"):
            with day_lease(root, options, DAY, "run-b", wait_seconds=0.5, **QUICK):
                pass
    with day_lease(root, options, DAY, "run-b", wait_seconds=0, **QUICK):
        assert holds_lease(root, options, DAY, "run-b") and not holds_lease(root, options, DAY, "run-a")
