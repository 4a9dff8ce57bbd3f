"""The b2h5 xarray engine's whole-chunk reads (b2store._whole_chunks).

Blosc2 datasets written by h5py + hdf5plugin, read with ``engine="b2h5"`` and dask chunks that
are whole HDF5 chunks (fast path) or not (zarr), compared with h5py: edge chunks in every
dimension, unallocated and all-zero chunks under a non-zero fill value, 1-D plain frames,
NaN fills, bool, indexing kinds, pickling, and loud corrupt chunks.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import dask
import h5py
import hdf5plugin
import numpy as np
import pytest
import xarray as xr

from b2store._cores import usable_cores
from b2store._whole_chunks import WholeChunkArrayWrapper
from b2store.errors import CodecError
from tests._engines import innermost_array

pytest.importorskip("dask")

_BLOSC2 = hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)


@pytest.fixture(scope="module")
def h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("whole") / "whole.h5"
    rng = np.random.default_rng(18)
    with h5py.File(path, "w") as f:
        # edges in every dimension; chunk (0, *, *) never written, chunk row 1 all zeros
        d = f.create_dataset(
            "stack", shape=(10, 13, 7), dtype="u2", chunks=(4, 5, 3), fillvalue=7, **_BLOSC2
        )
        d[4:] = rng.integers(1, 60000, (6, 13, 7), dtype="u2")
        d[4:8] = 0
        d[9, 12, 6] = 5
        f.create_dataset("line", data=np.arange(1000, dtype="f8") / 3, chunks=(300,), **_BLOSC2)
        n = f.create_dataset(
            "nanfill", shape=(6, 8), dtype="f4", chunks=(3, 4), fillvalue=np.nan, **_BLOSC2
        )
        n[3:, :4] = rng.random((3, 4), dtype="f4")
        f.create_dataset("flags", data=rng.random((9, 9)) > 0.5, chunks=(4, 4), **_BLOSC2)
        f.create_dataset("gz", data=np.arange(60, dtype="i4").reshape(6, 10), chunks=(4, 4),
                         compression="gzip")  # fmt: skip
    return path


def _h5py(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[name][...]


def _open(path: Path, **kw: object) -> xr.Dataset:
    return xr.open_dataset(path, engine="b2h5", mask_and_scale=False, **kw)


@pytest.mark.parametrize("name", ["stack", "line", "nanfill", "flags"])
def test_blosc2_datasets_take_the_whole_chunk_path(h5: Path, name: str) -> None:
    assert isinstance(innermost_array(_open(h5), name), WholeChunkArrayWrapper)


def test_other_codecs_keep_zarrs_path(h5: Path) -> None:
    assert not isinstance(innermost_array(_open(h5), "gz"), WholeChunkArrayWrapper)
    v2 = _open(h5, storage_options={"zarr_format": 2})
    assert not isinstance(innermost_array(v2, "stack"), WholeChunkArrayWrapper)


@pytest.mark.filterwarnings("ignore:The specified chunks separate")
@pytest.mark.parametrize("name", ["stack", "line", "nanfill", "flags", "gz"])
@pytest.mark.parametrize(
    "chunks",
    [None, {}, "whole multiples", "unaligned"],
    ids=["no-dask", "hdf5-chunks", "multiples", "unaligned"],
)
def test_values_equal_h5py(h5: Path, name: str, chunks: object) -> None:
    ref = _h5py(h5, name)
    if chunks == "whole multiples":
        var = _open(h5)[name]
        chunks = {d: c * 2 for d, c in zip(var.dims, var.encoding["chunks"], strict=True)}
    elif chunks == "unaligned":
        chunks = {d: 3 for d in _open(h5)[name].dims}
    with dask.config.set(scheduler="threads", num_workers=2):
        got = _open(h5, chunks=chunks)[name].values
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == ref.dtype


def test_decoded_like_zarrs_pipeline(h5: Path) -> None:
    """mask_and_scale on: the same Dataset as engine="zarr" on the b2h5:: URL."""
    fast = xr.open_dataset(h5, engine="b2h5", chunks={}).load()
    slow = xr.open_zarr(f"b2h5::{h5}").load()
    xr.testing.assert_identical(fast, slow)


@pytest.mark.parametrize(
    "index",
    [
        (slice(4, 8),),  # whole chunks, lazily, without dask
        (9, slice(10, 13)),
        ([1, 9, 4],),  # orthogonal
        (slice(None), slice(None, None, -2)),
        (slice(0, 8), slice(5, 13), slice(3, 7)),
        (slice(8, 10), slice(10, 13), slice(6, 7)),  # the last, cropped chunk
    ],
)
def test_lazy_indexing(h5: Path, index: tuple[object, ...]) -> None:
    got = _open(h5)["stack"][index].values
    np.testing.assert_array_equal(got, _h5py(h5, "stack")[index])


def test_vectorized_indexing(h5: Path) -> None:
    stack = _open(h5)["stack"]
    points = ([0, 5, 9], [0, 5, 12], [0, 3, 6])
    pts = {d: xr.DataArray(i, dims="p") for d, i in zip(stack.dims, points, strict=True)}
    np.testing.assert_array_equal(stack.isel(pts).values, _h5py(h5, "stack")[points])


def test_pickled_for_dask_workers(h5: Path) -> None:
    lazy = pickle.loads(pickle.dumps(_open(h5)))
    assert isinstance(innermost_array(lazy, "stack"), WholeChunkArrayWrapper)
    np.testing.assert_array_equal(lazy["stack"].values, _h5py(h5, "stack"))
    chunked = pickle.loads(pickle.dumps(_open(h5, chunks={})))
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(chunked["stack"].values, _h5py(h5, "stack"))


def test_corrupt_chunk_is_loud(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(64, dtype="i4").reshape(8, 8) * 1000003,
                         chunks=(4, 8), **_BLOSC2)  # fmt: skip
        info = f["x"].id.get_chunk_info(1)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset : info.byte_offset + 32] = b"\xa5" * 32  # the frame's header
    path.write_bytes(bytes(raw))
    ds = _open(path, chunks={})
    with (
        pytest.raises(CodecError, match=r"bad\.h5: chunk 'x/c/1/0'"),
        dask.config.set(scheduler="sync"),
    ):
        ds["x"].load()


def test_undecodable_chunk_names_file_and_key(tmp_path: Path) -> None:
    """A valid Blosc2 frame of another shape in a chunk's place: the codec refuses it, and the
    error says which file and key (zarr's pipeline cannot)."""
    import blosc2

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", data=np.ones((8, 8), "i4"), chunks=(4, 8), **_BLOSC2)
        stray = blosc2.asarray(np.full((2, 8), 3, "i4"), chunks=(2, 8), blocks=(1, 8))
        d.id.write_direct_chunk((4, 0), stray.to_cframe())
    ds = _open(path, chunks={})
    with (
        pytest.raises(CodecError, match=r"other\.h5: chunk 'x/c/1/0': .*shape"),
        dask.config.set(scheduler="sync"),
    ):
        ds["x"].load()


# ------------------------------------------------------------------ several chunks in one read


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 chunks of 4 rows; chunks 1 and 6 get corrupt frame headers in :func:`bad_many`."""
    path = tmp_path_factory.mktemp("many") / "many.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(64 * 50, dtype="i4").reshape(64, 50) * 7919,
                         chunks=(4, 50), **_BLOSC2)  # fmt: skip
    return path


def test_several_chunks_decode_on_the_pool(many: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read of many chunks without dask decodes them on b2store's pool (every core, as zarr's
    pipeline would), not one after another in the caller's thread."""
    import threading

    from b2store.codecs.zarr3 import B2ndCodec

    if usable_cores() < 2:
        pytest.skip("one usable core: chunks are decoded in the caller's thread")
    threads: set[str] = set()
    decode = B2ndCodec.decode_chunk

    def recorded(self: B2ndCodec, *args: object, **kw: object) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return decode(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(B2ndCodec, "decode_chunk", recorded)
    np.testing.assert_array_equal(_open(many)["x"].values, _h5py(many, "x"))
    assert threads and all(t.startswith("b2store-whole-chunks") for t in threads), threads


def test_first_bad_chunk_of_several_is_named(many: Path, tmp_path: Path) -> None:
    """Two corrupt chunks in one read without dask: the error names the first in grid order, on
    every run (later chunks cannot start before it)."""
    path = tmp_path / "bad_many.h5"
    raw = bytearray(many.read_bytes())
    with h5py.File(many, "r") as f:
        for n in (1, 6):
            info = f["x"].id.get_chunk_info(n)
            raw[info.byte_offset : info.byte_offset + 32] = b"\xa5" * 32
    path.write_bytes(bytes(raw))
    for _ in range(5):
        with pytest.raises(CodecError, match=r"bad_many\.h5: chunk 'x/c/1/0'"):
            _open(path)["x"].load()


def test_reads_in_a_forked_child(many: Path) -> None:
    """The pool is per process: a child forked after the parent's pool ran makes its own."""
    import sys

    from tests._fork_scripts import READ_IN_FORKED_CHILD, run_script

    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("fork is POSIX only")
    script = (
        f"""
import warnings
warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a process with threads
import xarray as xr
ds = xr.open_dataset({str(many)!r}, engine="b2h5")
assert int(ds["x"].values.sum()) > 0  # the parent's pool has run

def work():
    return int(xr.open_dataset({str(many)!r}, engine="b2h5")["x"].values.sum())
"""
        + READ_IN_FORKED_CHILD
    )
    out = run_script(script)
    assert out.strip() == str(int(_h5py(many, "x").sum())), out
