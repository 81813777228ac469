"""The transaction_id hash that assigns buckets: equal stripped ids always hash alike (in any batch,
process or library version), so the day-wide duplicate check can look at one bucket at a time."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from retail_etl.core import planning
from retail_etl.core.planning import id_hashes


def reference_hash(text: str | None) -> int:
    """The documented definition, one id at a time in plain Python."""
    data = (text or "").strip().encode()
    total = 0
    for position, byte in enumerate(data):
        total = (total + byte * int(planning._POSITION_KEYS[position % len(planning._POSITION_KEYS)])) % 2**64
    total ^= (len(data) * 0x9E3779B97F4A7C15) % 2**64
    return int(planning._mix(np.array([total], dtype=np.uint64))[0])


@pytest.mark.parametrize("length", [None, 1, 22, 300])
def test_hash_matches_its_definition_for_ids_of_one_or_many_lengths(length):
    rng = random.Random(length or 0)
    alphabet = "abcXYZ019-" if length else "ab é\t-"
    ids = ["".join(rng.choice(alphabet) for _ in range(length or rng.randint(0, 400))) for _ in range(500)]
    assert id_hashes(pd.Series(ids, dtype="str")).tolist() == [reference_hash(text) for text in ids]


def test_equal_stripped_ids_hash_alike_whatever_the_container():
    ids = ["T1", " T1", "T1\t", "T2", "", None]
    expected = [reference_hash(text) for text in ids]
    assert expected[0] == expected[1] == expected[2] != expected[3]
    assert id_hashes(pd.Series(ids, dtype="str")).tolist() == expected
    assert id_hashes(pa.array(ids, pa.string())).tolist() == expected
    chunked = pa.chunked_array([pa.array(ids[:2], pa.large_string()), pa.array(ids[2:], pa.large_string())])
    assert id_hashes(chunked).tolist() == expected
    assert id_hashes(pa.array(ids, pa.large_string()).slice(2, 3)).tolist() == expected[2:5]


def test_buckets_spread_evenly():
    hashes = id_hashes(pd.Series([f"T20240115-S{i % 50:03d}-{i:07d}" for i in range(60_000)], dtype="str"))
    counts = np.bincount(planning.bucket_of(hashes, 12), minlength=12)
    assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()
