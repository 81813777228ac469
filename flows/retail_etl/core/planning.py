"""How a day's work is split for Dask: batches of landing files and transaction_id buckets.

>>> from types import SimpleNamespace as F
>>> files = [F(identity={"size": size}) for size in (30, 30, 30, 100, 5)]
>>> [[index for index, _ in batch] for batch in plan_batches(files, 64)]
[[0, 1], [2], [3], [4]]
>>> [[index for index, _ in batch] for batch in plan_batches(files, 200, max_files=3)]
[[0, 1], [2, 3, 4]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

T = TypeVar("T")


def plan_batches(
    sources: Sequence[T], target_bytes: int, max_files: int | None = None, slots: int = 1
) -> list[list[tuple[int, T]]]:
    """Group files (numbered in name order) into batches of about `target_bytes` and at most `max_files`
    files, for coarse Dask tasks. Batches are runs of consecutive files, so the duplicate check can
    keep the first row by file name, then line.

    Each source needs an ``identity`` mapping with its ``size`` in bytes. The day is cut into equal
    parts, as many as a multiple of `slots` (the Dask threads), so no worker is left idle while
    another takes the last batch alone; a file goes to the part its middle falls in. Many tiny
    files cost their parsing more than their bytes: `max_files` spreads them over the workers.

    >>> from types import SimpleNamespace as F
    >>> files = [F(identity={"size": 10}) for _ in range(8)]
    >>> [len(batch) for batch in plan_batches(files, 30)], [len(batch) for batch in plan_batches(files, 30, slots=4)]
    ([3, 2, 3], [2, 2, 2, 2])
    """
    sizes = [int(getattr(source, "identity", {}).get("size", 0)) for source in sources]
    total = sum(sizes)
    by_bytes = balanced_parts(total, target_bytes, slots) if total else 1
    by_files = balanced_parts(len(sources), max_files, slots) if max_files else 1
    # Cut by file count where it binds (many tiny files), else by bytes.
    middles = [index + 0.5 for index in range(len(sources))] if by_files >= by_bytes else _middles(sizes)
    unit = (len(sources) if by_files >= by_bytes else total) / max(by_bytes, by_files)
    batches: list[list[tuple[int, T]]] = []
    current = -1
    for index, (source, middle) in enumerate(zip(sources, middles, strict=True)):
        part = int(middle // unit)
        if not batches or part != current or (max_files and len(batches[-1]) >= max_files):
            batches.append([])
            current = part
        batches[-1].append((index, source))
    return batches


def _middles(sizes: list[int]) -> list[float]:
    """Where the middle byte of each file falls in the day's bytes (files in order)."""
    middles, start = [], 0
    for size in sizes:
        middles.append(start + size / 2)
        start += size
    return middles


def balanced_parts(total_bytes: int, target_bytes: int, slots: int) -> int:
    """How many equal parts of at most about `target_bytes` cut `total_bytes`: a multiple of `slots`.

    >>> balanced_parts(75, 32, 1), balanced_parts(75, 32, 2), balanced_parts(0, 32, 2)
    (3, 4, 2)
    """
    parts = max(1, -(-total_bytes // target_bytes))
    return -(-parts // slots) * slots


def plan_buckets(total_bytes: int, bucket_bytes: int, max_buckets: int, slots: int = 1) -> int:
    """How many transaction_id buckets the day's rows are spread over (each fits one worker): a
    multiple of `slots` (the Dask threads) where `max_buckets` allows.

    >>> plan_buckets(10, 64, 32), plan_buckets(640, 64, 32), plan_buckets(10**6, 64, 32), plan_buckets(650, 64, 32, 4)
    (1, 10, 32, 12)
    """
    return max(1, min(max_buckets, balanced_parts(total_bytes, bucket_bytes, slots)))


#: One fixed odd 64-bit key per byte position (positions wrap every 256 bytes).
_POSITION_KEYS = np.random.default_rng(20240115).integers(1, 2**63, size=256, dtype=np.uint64) | np.uint64(1)


def id_hashes(transaction_ids: pd.Series | pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable 64-bit hash of each (whitespace-stripped) transaction_id, the same in every process
    and every version of every library (defined here: a keyed sum over the UTF-8 bytes and the
    length, then a 64-bit finalizer), so workers of different images still agree on buckets.

    >>> first, padded = id_hashes(pd.Series(["t1", " t1 "])).tolist()
    >>> first == padded == id_hashes(pd.Series(["t1"])).tolist()[0] != id_hashes(pd.Series(["1t"])).tolist()[0]
    True
    """
    if isinstance(transaction_ids, pd.Series):
        transaction_ids = pa.array(transaction_ids.astype("str"), from_pandas=True)
    text = transaction_ids.combine_chunks() if isinstance(transaction_ids, pa.ChunkedArray) else transaction_ids
    stripped = pc.utf8_trim_whitespace(text.cast(pa.large_string())).fill_null("")
    count = len(stripped)
    offsets = np.frombuffer(stripped.buffers()[1], dtype=np.int64)[stripped.offset : stripped.offset + count + 1]
    first, last = int(offsets[0]) if count else 0, int(offsets[-1]) if count else 0
    data = np.frombuffer(stripped.buffers()[2], dtype=np.uint8)[first:last] if last > first else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    keys = np.resize(_POSITION_KEYS, int(lengths.max(initial=0)))
    with np.errstate(over="ignore"):
        if count and lengths[0] and (lengths == lengths[0]).all():  # ids of one length (the usual): by column
            matrix = data.reshape(count, -1)
            sums = np.zeros(count, dtype=np.uint64)
            for position, key in enumerate(keys):
                sums += matrix[:, position].astype(np.uint64) * key
        else:
            starts = offsets[:-1] - first
            terms = data.astype(np.uint64) * keys[np.arange(len(data)) - np.repeat(starts, lengths)]
            sums = np.zeros(count, dtype=np.uint64)
            filled = lengths > 0
            sums[filled] = np.add.reduceat(terms, starts[filled]) if len(terms) else 0
        return _mix(sums ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit (the buckets use the low bits)."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


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
