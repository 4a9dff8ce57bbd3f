"""The b2h5 read path: byte ranges of chunk keys and partial decoding of Blosc2 chunks.

Real files written by h5py + hdf5plugin (Blosc2 frames with blocks smaller than the chunk).
Checks that ranged ``cat_file`` reads only the asked bytes and equals a slice of the whole key,
that ZERO frames stay missing keys for ranged reads, and that selections of every kind through
``zarr.open_array("b2h5::...")`` (partial decoding) equal h5py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import pytest
import zarr

from b2store.hdf5.filesystem import HDF5FileSystem


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """(path, data) of a (12, 300, 260) uint16 stack, chunks (4, 256, 256), chunk 0 all zeros.

    hdf5plugin picks (4, 128, 128) blocks: 4 blocks per chunk, edge chunks padded.
    """
    rng = np.random.default_rng(3)
    data = (np.add.outer(np.arange(300), np.arange(260)) * 7).astype("u2")[None] + rng.integers(
        0, 40, (12, 300, 260), dtype="u2"
    )
    data[:4] = 0
    path = tmp_path_factory.mktemp("readpath") / "stack.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "data",
            data=data,
            chunks=(4, 256, 256),
            **hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE),
        )
    return path, data


class CountingFS(HDF5FileSystem):
    """Records the byte count of every read from the target file."""

    reads: list[int] = []

    def _read(self, url: str, start: int, size: int) -> bytes:
        CountingFS.reads.append(size)
        return super()._read(url, start, size)


def test_ranged_cat_file_reads_only_the_range(stack: tuple[Path, np.ndarray]) -> None:
    path, _ = stack
    fs = CountingFS(fo=str(path))
    whole = fs.cat_file("data/c/1/0/0")
    assert len(whole) > 10_000
    for start, end in [(0, 100), (50, 4096), (1000, None), (-300, None), (-300, -10), (5, 5)]:
        CountingFS.reads.clear()
        part = fs.cat_file("data/c/1/0/0", start=start, end=end)
        assert part == whole[start:end]
        assert sum(CountingFS.reads) == len(part)
    # beyond the end: like a bytes slice
    assert fs.cat_file("data/c/1/0/0", start=len(whole) - 3, end=len(whole) + 100) == whole[-3:]


def test_ranged_read_of_zero_frame_is_missing(stack: tuple[Path, np.ndarray]) -> None:
    path, _ = stack
    fs = HDF5FileSystem(fo=str(path))
    with pytest.raises(FileNotFoundError):
        fs.cat_file("data/c/0/0/0")
    with pytest.raises(FileNotFoundError):
        fs.cat_file("data/c/0/0/0", start=0, end=4096)


def test_ranged_read_of_truncated_file_is_loud(
    stack: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, _ = stack
    cut = tmp_path / "cut.h5"
    raw = path.read_bytes()
    fs = HDF5FileSystem(fo=str(path))
    table = fs.index.tables["data"]
    row = table.find(table.linear((2, 0, 0)))
    end = int(table.offsets[row]) + int(table.sizes[row])
    cut.write_bytes(raw)
    fs2 = HDF5FileSystem(fo=str(cut), skip_instance_cache=True)
    os.truncate(cut, end - 10)
    with pytest.raises(OSError, match="truncated"):
        fs2.cat_file("data/c/2/0/0", start=100, end=None)


SELECTIONS: list[Any] = [
    (slice(None), 140, slice(None)),
    (slice(None), slice(None), 133),
    (6, slice(None), slice(None)),
    (slice(1, 11, 3), slice(5, 290, 7), slice(None, None, 2)),
    (slice(None), slice(100, 200), -1),
    (-5, slice(-30, -2), slice(70, 200)),
    (slice(3, 9), slice(255, 257), slice(127, 129)),
    (slice(4, 8), slice(20, 20), slice(None)),
    (slice(None), slice(None), slice(None)),
    (slice(5, 7), slice(0, 128), slice(128, 256)),
]


@pytest.mark.parametrize("sel", SELECTIONS, ids=[str(i) for i in range(len(SELECTIONS))])
def test_partial_selections_match_h5py(stack: tuple[Path, np.ndarray], sel: Any) -> None:
    path, data = stack
    z = zarr.open_array(f"b2h5::{path}", path="data", mode="r")
    np.testing.assert_array_equal(z[sel], data[sel])


def test_orthogonal_and_mask_selections(stack: tuple[Path, np.ndarray]) -> None:
    path, data = stack
    z = zarr.open_array(f"b2h5::{path}", path="data", mode="r")
    rows = np.array([0, 17, 130, 18, 263, 295, -1])
    cols = np.zeros(260, dtype=bool)
    cols[[1, 2, 140, 259]] = True
    got = z.get_orthogonal_selection((slice(2, 10), rows, cols))
    np.testing.assert_array_equal(got, data[2:10][:, rows][:, :, cols])
    got = z.oindex[[9, 5, 6], 50, [3, 2, 70]]
    np.testing.assert_array_equal(got, data[[9, 5, 6]][:, 50][:, [3, 2, 70]])


def test_cat_ranges_matches_cat_file(stack: tuple[Path, np.ndarray]) -> None:
    path, _ = stack
    fs = HDF5FileSystem(fo=str(path))
    whole = fs.cat_file("data/c/1/0/0")
    keys = ["data/c/1/0/0", "data/c/1/0/0", "data/zarr.json", "data/c/1/1/1", "data/c/0/0/0"]
    starts: list[int | None] = [0, 5000, 0, None, 0]
    ends: list[int | None] = [100, 300_000, 10, None, 4096]
    got = fs.cat_ranges(keys, starts, ends)
    assert got[0] == whole[:100] and got[1] == whole[5000:300_000]
    assert got[2] == fs.cat_file("data/zarr.json")[:10]
    assert got[3] == fs.cat_file("data/c/1/1/1")
    assert isinstance(got[4], FileNotFoundError)  # a ZERO frame is a missing key
    with pytest.raises(FileNotFoundError):
        fs.cat_ranges(keys, starts, ends, on_error="raise")
    with pytest.raises(ValueError, match="as many starts and ends"):
        fs.cat_ranges(keys, [0], [1])


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])  # >u2 goes through b2store.hdf5 in v3
@pytest.mark.parametrize("zarr_format", [3, 2], ids=["v3", "v2"])
def test_chunks_stored_as_multichunk_frames_read_like_h5py(
    tmp_path: Path, zarr_format: int, dtype: str
) -> None:
    """An HDF5 chunk a writer stored as a b2nd frame of several inner chunks (hdf5plugin reads
    those) reads like h5py; it used to fail with "frame_special needs a one-chunk frame", and
    through the b2store.hdf5 pipeline with "the frame holds 2 chunks"."""
    import blosc2

    path = tmp_path / "multichunk.h5"
    data = (np.arange(8 * 12, dtype="u2") * 7).reshape(8, 12)
    data[:2] = 0  # an all-zero inner chunk
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", shape=(8, 12), chunks=(4, 12), dtype=dtype, **hdf5plugin.Blosc2())
        for row in (0, 4):
            part = np.ascontiguousarray(data[row : row + 4].astype(dtype)).view("V2")
            frame = blosc2.asarray(part, chunks=(2, 6), blocks=(1, 6)).to_cframe()
            d.id.write_direct_chunk((row, 0), bytes(frame))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["x"][...], data)  # hdf5plugin reads them
    a = zarr.open_array(
        f"b2h5::{path}", path="x", mode="r", storage_options={"zarr_format": zarr_format}
    )
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[1:7, 3:9], data[1:7, 3:9])  # partial reads decode it whole
