"""Read-path details of the ``b2store.b2nd`` Zarr v3 codec: partial decoding and decode threads.

Selections of every kind over chunks with many blocks (the partial-decoding path: only touched
blocks decompressed, results assembled block by block or in a bounding box) must equal numpy;
the adaptive thread count gives a lone large decode all cores and concurrent ones one each.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import codec_checks  # tests/codecs is on sys.path (see codec_checks)
import numpy as np
import pytest
import zarr

from b2store.codecs import _b2nd_threads


def v3_array(store: Any, arr: np.ndarray, chunks: tuple[int, ...], **codec: Any) -> Any:
    z = codec_checks.b2nd_v3_array(store, arr, chunks, **codec)
    z[...] = arr
    return z


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, Any]:
    rng = np.random.default_rng(7)
    arr = np.add.outer(np.arange(70), np.arange(90))[None] * 3 + np.arange(13)[:, None, None]
    arr = (arr + rng.integers(0, 5, arr.shape)).astype("i4")
    z = v3_array(zarr.storage.MemoryStore(), arr, (8, 64, 64), blocks=(4, 16, 32))
    return arr, zarr.open_array(z.store, mode="r")


BASIC = [
    (slice(None), 5, slice(None)),
    (3, slice(None), slice(None)),
    (slice(None), slice(None), 77),
    (slice(2, 11, 3), slice(1, 69, 5), slice(None, None, 7)),
    (slice(7, 9), slice(15, 17), slice(31, 33)),
    (-1, slice(-5, None), slice(60, 70)),
    (slice(None), slice(64, 70), slice(0, 90, 2)),
    (slice(0, 8), slice(0, 64), slice(0, 64)),
    (slice(1, 1), slice(None), slice(None)),
]


@pytest.mark.parametrize("sel", BASIC, ids=[str(i) for i in range(len(BASIC))])
def test_basic_selections(arrays: tuple[np.ndarray, Any], sel: Any) -> None:
    arr, z = arrays
    np.testing.assert_array_equal(z[sel], arr[sel])


def test_orthogonal_selections(arrays: tuple[np.ndarray, Any]) -> None:
    arr, z = arrays
    rows = np.array([69, 0, 16, 15, 40])
    cols = np.zeros(90, dtype=bool)
    cols[[0, 31, 32, 89]] = True
    for sel in itertools.product(
        [slice(None), 4, np.array([12, 0, 5])], [rows, slice(3, 50)], [cols, 50]
    ):
        want = arr[
            np.ix_(
                *[
                    np.arange(n)[s] if not isinstance(s, int) else [s]
                    for s, n in zip(sel, arr.shape, strict=True)
                ]
            )
        ]
        want = want.reshape(
            [w for w, s in zip(want.shape, sel, strict=True) if not isinstance(s, int)]
        )
        np.testing.assert_array_equal(z.get_orthogonal_selection(sel), want)


def test_lone_large_decode_uses_all_cores() -> None:
    big = _b2nd_threads._SOLO_MIN_BYTES
    with _b2nd_threads._decode_threads(1, big) as n:
        assert n == _b2nd_threads._SOLO_THREADS
    with _b2nd_threads._decode_threads(1, big - 1) as n:
        assert n == 1  # small: threads do not pay
    with _b2nd_threads._decode_threads(3, big) as n:
        assert n == 3  # an explicit setting wins


def test_concurrent_decodes_use_one_thread_each() -> None:
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with _b2nd_threads._decode_threads(1, 10**9):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert inside.wait(10)
        with _b2nd_threads._decode_threads(1, 10**9) as n:
            assert n == 1
    finally:
        release.set()
        t.join()
    assert _b2nd_threads._inflight == 0
