"""How many cores this process may really use, and the temporary LocalCluster's shape from them.

`os.cpu_count()` is the host's count: in a container or a CI job limited to 1.5 CPUs of a 16-core
node it is 16, and a cluster of 16 workers there is throttled by the kernel (the CFS quota) and
competes with the flow process and the Prefect server. The usable count is the smallest of the
CPUs this process may be scheduled on (`os.sched_getaffinity`: cpusets, `taskset`) and the CPU
quota of its cgroup and every parent cgroup (v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
`cpu.cfs_period_us`), rounded down (a fractional core cannot run another worker without
throttling the group) and never below 1.

Everything here takes the cgroup folder and the membership text as arguments, so it runs on fake
files in tests; `available_cores()` with no arguments reads the real ones.

>>> cluster_shape(2, None, None)
(2, 1)
>>> cluster_shape(8, None, 2), cluster_shape(8, 3, None), cluster_shape(1, 4, 2)
((4, 2), (3, 2), (4, 2))
>>> parse_cpu_max("150000 100000"), parse_cpu_max("max 100000"), parse_cfs("-1", "100000")
(1.5, None, None)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")
#: Folders a cgroup v1 hierarchy with the cpu controller is mounted at, under the cgroup root.
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` ("quota period", quota "max" = no limit)."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100_000
    return int(fields[0]) / period if period > 0 else None


def parse_cfs(quota: str, period: str) -> float | None:
    """CPUs allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1 = no limit)."""
    quota_us, period_us = int(quota.strip()), int(period.strip())
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _own_path(membership: str, v1: bool) -> str:
    """This process's cgroup path in /proc/self/cgroup's text: the v2 line (`0::/path`) or the v1
    line whose controllers include cpu."""
    for line in membership.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not v1 and number == "0" and controllers == "":
            return path
        if v1 and "cpu" in controllers.split(","):
            return path
    return "/"


def _lineage(mount: Path, path: str) -> list[Path]:
    """The process's cgroup folder and its parents up to the mount; only the mount itself when the
    path is not visible there (a container whose cgroup is mounted as the root)."""
    own = mount / path.strip("/")
    if not own.is_dir():
        return [mount]
    return [own, *[parent for parent in own.parents if parent.is_relative_to(mount)]]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cpu_quota(root: Path = CGROUP_ROOT, membership: str | None = None) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup and its parents; None if none.

    `root` is where cgroups are mounted; `membership` the text of /proc/self/cgroup (read if None).
    A cgroup v2 (unified) hierarchy is recognised by `cgroup.controllers` at the root, v1 by a
    cpu controller folder under it.
    """
    if membership is None:
        membership = _read(MEMBERSHIP) or ""
    limits: list[float] = []
    if (root / "cgroup.controllers").is_file():
        for folder in _lineage(root, _own_path(membership, v1=False)):
            text = _read(folder / "cpu.max")
            limit = parse_cpu_max(text) if text else None
            if limit is not None:
                limits.append(limit)
    else:
        mount = next((root / name for name in V1_CPU_MOUNTS if (root / name).is_dir()), None)
        for folder in _lineage(mount, _own_path(membership, v1=True)) if mount else []:
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            limit = parse_cfs(quota, period) if quota and period else None
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def available_cores(root: Path = CGROUP_ROOT, membership: str | None = None, affinity: int | None = None) -> int:
    """Cores this process may use: its CPU affinity, capped by its cgroup quota (rounded down), at least 1.

    `affinity` is the number of CPUs it may run on (`os.sched_getaffinity`, else `os.cpu_count`).
    """
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota(root, membership)
    cores = affinity if quota is None else min(affinity, math.floor(quota))
    return max(1, cores)


def cluster_shape(cores: int, workers: int | None, threads_per_worker: int | None) -> tuple[int, int]:
    """(worker processes, threads per worker) for a LocalCluster on `cores`; explicit values win.

    Unset, one single-threaded worker per core: the data work is mostly pandas code holding the
    GIL, which scales with processes, not threads. One value given, the other fills the cores.
    """
    if workers is None and threads_per_worker is None:
        return cores, 1
    if workers is None:
        assert threads_per_worker is not None
        return max(1, cores // threads_per_worker), threads_per_worker
    if threads_per_worker is None:
        return workers, max(1, cores // workers)
    return workers, threads_per_worker
