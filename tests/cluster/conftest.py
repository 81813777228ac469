"""Fixtures of the real-cluster test (tests/cluster). It needs the cluster cache
(k8s/cluster-cache.sh) and the images of .ci/image; without them it is skipped with that reason,
and `.ci/run` prints one loud SKIPPED line instead of running it (see .ci/run)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the test module imports clusterkit (this folder), pods (the container tests' helpers) and chartkit
sys.path[:0] = [str(HERE), str(HERE.parent / "containers"), str(HERE.parent / "chart")]
