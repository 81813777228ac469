"""One build per environment: a run's tasks execute the code of the flow's own build.

On a cluster the flow-run Job and the release's Dask workers are separate pods; an environment
promoted halfway (the Jobs moved to a new image, the workers not) would run flow code of one build
against task code of another. A run therefore asks its Dask workers for their build id
(`RETAIL_ETL_BUILD`, stamped into the image) before it starts, and stops with one line if any
worker was stamped with another. An unstamped worker (a development tree) has nothing to compare.
"""

from __future__ import annotations

import os

from distributed import Client

from ..errors import SplitBuild


def worker_build() -> str | None:
    """The build a Dask worker's image was stamped with (run on the worker)."""
    return os.environ.get("RETAIL_ETL_BUILD") or None


def check_same_build(client: Client, build: str) -> None:
    """SplitBuild naming the workers that run another build than `build`."""
    others = {address: found for address, found in client.run(worker_build).items() if found not in (None, build)}
    if others:
        listed = ", ".join(f"{address} runs {found}" for address, found in sorted(others.items()))
        raise SplitBuild(
            f"the Dask workers run another build than this flow run ({build}): {listed}; promote the environment "
            "as a whole (retail-etl promote --values-file ..., then helm upgrade)"
        )
