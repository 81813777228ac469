"""The LocalCluster is sized from the cores this process may use: affinity and cgroup CPU quota, read
from fake cgroup folders (v2 and v1) so no real cgroup is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from retail_etl.config import load_settings
from retail_etl.orchestration.cores import available_cores, cluster_shape, cpu_quota

pytestmark = pytest.mark.unit


def v2(root: Path, quotas: dict[str, str]) -> Path:
    """A unified hierarchy: `cpu.max` per cgroup path ("" is the mount itself)."""
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for path, text in quotas.items():
        folder = root / path
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.max").write_text(text + "\n")
    return root


def v1(root: Path, quotas: dict[str, tuple[int, int]], mount: str = "cpu,cpuacct") -> Path:
    """A v1 cpu controller hierarchy: (cfs_quota_us, cfs_period_us) per cgroup path."""
    for path, (quota, period) in quotas.items():
        folder = root / mount / path
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    (root / "unified").mkdir(exist_ok=True)  # hybrid hosts mount an empty v2 tree beside v1
    return root


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000", None), ("150000 100000", 1.5), ("200000 100000", 2.0), ("50000 100000", 0.5)],
)
def test_a_containers_own_cgroup_v2_quota(tmp_path, text, cpus):
    """In a container (cgroup namespace) the process's cgroup is the mount itself: `0::/`."""
    assert cpu_quota(v2(tmp_path, {"": text}), "0::/\n") == cpus


def test_the_tightest_quota_of_the_cgroup_and_its_parents_wins_v2(tmp_path):
    root = v2(tmp_path, {"": "max 100000", "kubepods": "400000 100000", "kubepods/pod1/ctr": "max 100000"})
    assert cpu_quota(root, "0::/kubepods/pod1/ctr\n") == 4.0
    root = v2(tmp_path, {"kubepods/pod1/ctr": "150000 100000"})
    assert cpu_quota(root, "0::/kubepods/pod1/ctr\n") == 1.5
    # A path not visible under the mount (its own cgroup mounted as the root): the mount's quota.
    assert cpu_quota(v2(tmp_path, {"": "300000 100000"}), "0::/elsewhere\n") == 3.0


def test_cgroup_v1_quota_and_period(tmp_path):
    membership = "4:memory:/job\n3:cpu,cpuacct:/job\n0::/\n"
    assert cpu_quota(v1(tmp_path, {"": (-1, 100000), "job": (250000, 100000)}), membership) == 2.5
    assert cpu_quota(v1(tmp_path / "b", {"": (-1, 100000)}, mount="cpu"), "2:cpu:/\n") is None


def test_no_cgroup_at_all_means_no_quota(tmp_path):
    assert cpu_quota(tmp_path, "") is None
    assert cpu_quota(tmp_path / "missing", "0::/\n") is None


@pytest.mark.parametrize(
    ("quota", "affinity", "cores"),
    [(None, 8, 8), ("150000 100000", 8, 1), ("250000 100000", 8, 2), ("400000 100000", 2, 2), ("20000 100000", 4, 1)],
)
def test_usable_cores_are_affinity_capped_by_the_quota_rounded_down(tmp_path, quota, affinity, cores):
    root = v2(tmp_path, {"": quota} if quota else {})
    assert available_cores(root, "0::/\n", affinity=affinity) == cores


def test_this_process_has_at_least_one_core_and_no_more_than_it_may_run_on():
    import os

    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


def test_cluster_shape_fills_the_cores_unless_told():
    assert cluster_shape(2, None, None) == (2, 1)
    assert cluster_shape(1, None, None) == (1, 1)
    assert cluster_shape(8, None, 4) == (2, 4)
    assert cluster_shape(8, 2, None) == (2, 4)
    assert cluster_shape(2, 4, 3) == (4, 3)  # explicit settings win, even beyond the cores


def test_settings_leave_the_size_to_the_cores_unless_set(monkeypatch):
    monkeypatch.delenv("RETAIL_ETL_DASK_WORKERS", raising=False)
    monkeypatch.delenv("RETAIL_ETL_DASK_THREADS_PER_WORKER", raising=False)
    settings = load_settings()
    assert (settings.dask_workers, settings.dask_threads_per_worker) == (None, None)
    monkeypatch.setenv("RETAIL_ETL_DASK_WORKERS", "3")
    assert load_settings().dask_workers == 3
