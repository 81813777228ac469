"""The `retail-etl` command line, split by command group: the pipeline (run, backfill, demo),
data (generate, report), deployments (register, promote, make-buckets) and bench.

Sits on top: reads settings once per command and may import everything below. Errors go to
stderr as one line with a distinct exit code per error family.
"""

from . import bench, data, deployments, pipeline, warehouse  # noqa: F401  (each registers its commands)
from .app import app

__all__ = ["app"]
