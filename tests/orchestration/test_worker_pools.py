"""The temporary LocalCluster's workers size Arrow's and Polars' thread pools to their Dask threads."""

from __future__ import annotations

import polars
import pyarrow
import pytest
from distributed import Client

from retail_etl.orchestration.platform import local_cluster


@pytest.mark.dask
@pytest.mark.parametrize("threads", [1, 2])
def test_local_workers_columnar_pools_follow_their_threads(threads):
    """Both would start one thread per core in every worker process (two workers on two cores: four
    threads competing for each core's work)."""
    with local_cluster(n_workers=1, threads_per_worker=threads) as cluster, Client(cluster) as client:
        # Library functions (pickled by reference): a function of this test module would not import on a worker.
        assert list(client.run(pyarrow.cpu_count).values()) == [threads]
        assert list(client.run(polars.thread_pool_size).values()) == [threads]
