"""How a day's work is split for Dask: batches of landing files and transaction_id buckets.

>>> from types import SimpleNamespace as F
>>> files = [F(identity={"size": size}) for size in (30, 30, 30, 100, 5)]
>>> [[index for index, _ in batch] for batch in plan_batches(files, 64)]
[[0, 1, 2], [3], [4]]
>>> [[index for index, _ in batch] for batch in plan_batches(files, 64, max_files=2)]
[[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")


def plan_batches(sources: Sequence[T], target_bytes: int, max_files: int | None = None) -> list[list[tuple[int, T]]]:
    """Group files (numbered in name order) into batches of about `target_bytes` and at most `max_files`
    files, for coarse Dask tasks. Batches are runs of consecutive files, so the duplicate check can
    keep the first row by file name, then line.

    Each source needs an ``identity`` mapping with its ``size`` in bytes. Many tiny files cost their
    parsing more than their bytes: `max_files` spreads them over the workers.
    """
    batches: list[list[tuple[int, T]]] = []
    size = 0
    for index, source in enumerate(sources):
        if not batches or size >= target_bytes or (max_files and len(batches[-1]) >= max_files):
            batches.append([])
            size = 0
        batches[-1].append((index, source))
        identity: Any = getattr(source, "identity", {})
        size += int(identity.get("size", 0))
    return batches


def plan_buckets(total_bytes: int, bucket_bytes: int, max_buckets: int) -> int:
    """How many transaction_id buckets the day's rows are spread over (each fits one worker).

    >>> plan_buckets(10, 64, 32), plan_buckets(640, 64, 32), plan_buckets(10**6, 64, 32)
    (1, 10, 32)
    """
    return max(1, min(max_buckets, -(-total_bytes // bucket_bytes)))


def id_hashes(transaction_ids: pd.Series) -> np.ndarray:
    """A stable 64-bit hash of each (whitespace-stripped) transaction_id, the same in every process.

    >>> first, padded = id_hashes(pd.Series(["t1", " t1 "])).tolist()
    >>> first == padded == id_hashes(pd.Series(["t1"])).tolist()[0]
    True
    """
    return pd.util.hash_pandas_object(transaction_ids.astype("str").str.strip(), index=False).to_numpy()


def bucket_of(hashes: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket of each hash: equal transaction_ids always land in the same bucket."""
    return (hashes % np.uint64(max(1, buckets))).astype("int64")


def bucket_order(hashes: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable row order grouping rows by bucket (line order kept within each), and the bounds
    of each bucket's slice in that order (bucket b is rows ``order[bounds[b]:bounds[b + 1]]``).

    >>> order, bounds = bucket_order(np.array([3, 2, 5, 4], dtype="uint64"), 2)
    >>> order.tolist(), bounds.tolist()
    ([1, 3, 0, 2], [0, 2, 4])
    """
    assigned = bucket_of(hashes, buckets)
    order = np.argsort(assigned, kind="stable")
    bounds = np.searchsorted(assigned[order], np.arange(buckets + 1))
    return order, bounds
