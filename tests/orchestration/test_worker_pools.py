"""The temporary LocalCluster's workers size Arrow's and Polars' thread pools to their Dask threads."""

from __future__ import annotations

import pytest
from distributed import Client

from retail_etl.orchestration.platform import local_cluster


def _pool_sizes() -> tuple[int, int]:
    import polars
    import pyarrow

    return pyarrow.cpu_count(), polars.thread_pool_size()


@pytest.mark.dask
@pytest.mark.parametrize("threads", [1, 2])
def test_local_workers_columnar_pools_follow_their_threads(threads):
    """Both would start one thread per core in every worker process (two workers on two cores: four
    threads competing for each core's work)."""
    with local_cluster(n_workers=1, threads_per_worker=threads) as cluster, Client(cluster) as client:
        assert list(client.run(_pool_sizes).values()) == [(threads, threads)]
