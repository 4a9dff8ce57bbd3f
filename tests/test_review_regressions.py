"""Regression tests for bugs found in the correctness review (one test per finding)."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest


@pytest.mark.parametrize("fill", [None, 0, 7])
def test_b2nd_decode_of_memcpyed_chunk_is_writable(fill: int | None) -> None:
    """clevel=0 (memcpyed) chunks decoded to a read-only array, unlike every other chunk.

    numcodecs codecs return writable arrays; a caller that edits the decoded chunk in place
    (as zarr-python 2's partial writes and many numcodecs users do) got ``ValueError:
    assignment destination is read-only`` only for uncompressed chunks.
    """
    a = np.arange(1000, dtype="i4").reshape(10, 100)
    if fill is not None:
        a = np.full_like(a, fill)
    codec = numcodecs.get_codec({"id": "b2store_b2nd", "clevel": 0})
    out = codec.decode(codec.encode(a))
    assert np.array_equal(np.asarray(out).reshape(a.shape), a)
    assert out.flags.writeable
    out[...] = 1  # in place, as numcodecs users do


def test_grok_decode_is_writable() -> None:
    """Like b2nd: numcodecs users may edit a decoded chunk in place."""
    pytest.importorskip("blosc2_j2k")
    img = (np.arange(64 * 64, dtype="u2").reshape(64, 64) * 7) % 4096
    codec = numcodecs.get_codec({"id": "b2store_grok"})
    out = codec.decode(codec.encode(img))
    assert np.array_equal(out, img)
    assert out.flags.writeable


def test_pickled_b2h5_filesystem_does_not_depend_on_the_working_directory(
    tmp_path, monkeypatch
) -> None:
    """A relative ``fo`` must still name the same file on a worker with another cwd."""
    import pickle

    h5py = pytest.importorskip("h5py")
    from b2store.hdf5.filesystem import HDF5FileSystem

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with h5py.File(tmp_path / "a" / "f.h5", "w") as f:
        f["x"] = np.arange(5)
    monkeypatch.chdir(tmp_path / "a")
    fs = HDF5FileSystem("f.h5", skip_instance_cache=True)
    blob = pickle.dumps(fs)
    monkeypatch.chdir(tmp_path / "b")
    fs2 = pickle.loads(blob)
    assert fs2.url == fs.url
    assert fs2.cat_file("x/zarr.json") == fs.cat_file("x/zarr.json")
