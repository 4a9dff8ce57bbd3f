"""b2store._chunk_origins: a chunk that does not decode names its file and key also through
zarr's own pipeline (``zarr.open_array``, ``xr.open_zarr`` with dask, the Zarr v2 view), which
hands codecs no key, for every codec b2h5 serves; a local file rewritten in place while open
says so. Real HDF5 files written by h5py + hdf5plugin, damaged on disk."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import blosc2
import h5py
import hdf5plugin
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.core.buffer import default_buffer_prototype

from b2store import _chunk_origins
from b2store._chunk_origins import add_origin, note_chunk, origin_of, prefix_error
from b2store.errors import CodecError
from b2store.hdf5.filesystem import HDF5FileSystem

DATA = (np.arange(64 * 48, dtype="<u2").reshape(64, 48) * 7) % 1000

FILTERS: dict[str, dict[str, Any]] = {
    "gzip": {"compression": "gzip"},
    "zstd": dict(hdf5plugin.Zstd()),
    "shuffle_gzip": {"compression": "gzip", "shuffle": True},
    "lzf": {"compression": "lzf"},
    "blosc2": dict(hdf5plugin.Blosc2(cname="zstd")),
}


def _damaged(tmp_path: Path, name: str) -> Path:
    """A file whose dataset ``x`` (chunks 32 x 24) has chunk (0, 1) damaged so that its
    decoder must fail: a Blosc2 frame keeps its frame header (the store checks that one itself)
    and loses its chunk's version byte; the others are overwritten whole."""
    p = tmp_path / f"{name}.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset("x", data=DATA, chunks=(32, 24), **FILTERS[name])
        info = d.id.get_chunk_info_by_coord((0, 24))
        off, size = info.byte_offset, info.size
    raw = bytearray(p.read_bytes())
    chunk = bytes(raw[off : off + size])
    if name == "blosc2":
        frame = blosc2.ndarray_from_cframe(chunk, copy=True)  # kept: get_chunk reads from it
        inner = frame.schunk.get_chunk(0)
        at = off + chunk.find(inner)
        raw[at] = 0xFF  # the Blosc2 chunk's format version
    else:
        raw[off : off + size] = b"\xa5" * size
    p.write_bytes(bytes(raw))
    return p


def _where(p: Path, key: str) -> str:
    return re.escape(f"{p}: chunk '{key}'") + ": "


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_zarr_names_the_file_and_key(tmp_path: Path, name: str) -> None:
    p = _damaged(tmp_path, name)
    z = zarr.open_array(f"b2h5::{p}", path="x", mode="r")
    np.testing.assert_array_equal(z[32:, :], DATA[32:, :])  # the other chunks read
    with pytest.raises(CodecError, match=_where(p, "x/c/0/1")):
        z[:]
    with pytest.raises(CodecError, match=_where(p, "x/c/0/1")):
        z[3, 30]  # a selection inside the chunk (b2nd: its partial decoder)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_open_zarr_with_dask_names_the_file_and_key(tmp_path: Path, name: str) -> None:
    p = _damaged(tmp_path, name)
    ds = xr.open_zarr(f"b2h5::{p}")
    with pytest.raises(CodecError, match=_where(p, "x/c/0/1")):
        ds.x.mean().compute()
    lazy = xr.open_dataset(f"b2h5::{p}", engine="b2h5", chunks={})
    with pytest.raises(CodecError, match=_where(p, "x/c/0/1")):
        lazy.x.load()


@pytest.mark.parametrize("name", ["blosc2", "lzf"])
def test_v2_view_names_the_file_and_key(tmp_path: Path, name: str) -> None:
    """The v2 view decodes these with b2store's numcodecs codecs (b2store_b2nd, b2store_hdf5);
    deflate, shuffle and zstd use numcodecs' own, whose errors stay unnamed."""
    p = _damaged(tmp_path, name)
    ds = xr.open_zarr(f"b2h5::{p}", storage_options={"zarr_format": 2}, chunks=None)
    with pytest.raises(CodecError, match=_where(p, "x/0.1")):
        ds.x.load()


def test_rewritten_in_place_says_so(tmp_path: Path) -> None:
    """``h5py.File(path, "w")`` truncates the same inode: an open array's index points into
    the new file's other bytes (no Blosc2 frame there). The error says the file changed."""
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=DATA, chunks=(32, 24), **hdf5plugin.Blosc2())
    z = zarr.open_array(f"b2h5::{p}", path="x", mode="r")
    np.testing.assert_array_equal(z[:2, :2], DATA[:2, :2])
    ino = p.stat().st_ino
    with h5py.File(p, "w") as f:
        f.create_dataset("pad", data=np.zeros(5000, "u1"))
        f.create_dataset("x", data=DATA + 1, chunks=(16, 16), compression="gzip")
    assert p.stat().st_ino == ino
    with pytest.raises(CodecError, match=r"has changed since b2h5 indexed it: open it again"):
        z[:]
    np.testing.assert_array_equal(zarr.open_array(f"b2h5::{p}", path="x", mode="r")[:], DATA + 1)


# -- the registry itself -------------------------------------------------------------------------


def _noted(tmp_path: Path) -> tuple[HDF5FileSystem, bytes]:
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", data=DATA, chunks=(32, 24), compression="gzip")
    fs = HDF5FileSystem(str(p), skip_instance_cache=True)
    return fs, fs.cat_file("x/c/1/0")  # served like zarr's store asks for it: noted


def test_origin_follows_zarr_buffers_and_numpy_views(tmp_path: Path) -> None:
    fs, raw = _noted(tmp_path)
    want = f"{fs.url}: chunk 'x/c/1/0'"
    assert origin_of(raw) == want
    buf = default_buffer_prototype().buffer.from_bytes(raw)  # what zarr's FsspecStore does
    assert origin_of(buf) == want
    assert origin_of(np.frombuffer(raw, "u1")[3:]) == want
    assert origin_of(memoryview(raw)) == want


def test_other_objects_have_no_origin(tmp_path: Path) -> None:
    _, raw = _noted(tmp_path)
    assert origin_of(bytes(bytearray(raw))) is None  # equal bytes, another object
    assert origin_of(bytearray(raw)) is None
    assert origin_of(np.zeros(4)) is None
    assert origin_of(object()) is None
    ba = bytearray(b"x" * 64)
    assert note_chunk(ba, None, "k") is ba  # type: ignore[arg-type]  # mutable: never noted
    assert origin_of(ba) is None


def test_prefix_is_added_once_and_only_to_messages(tmp_path: Path) -> None:
    _, raw = _noted(tmp_path)
    err = CodecError("b2store.b2nd: bad")
    add_origin(err, raw)
    add_origin(err, raw)
    assert str(err).count("chunk 'x/c/1/0'") == 1 and str(err).endswith(": b2store.b2nd: bad")
    plain = CodecError()
    prefix_error(plain, "somewhere")
    assert plain.args == ()
    kept = CodecError("msg")
    prefix_error(kept, None)
    assert str(kept) == "msg"


def test_bounded_by_count_and_bytes(tmp_path: Path) -> None:
    fs, raw = _noted(tmp_path)
    assert origin_of(raw) is not None
    for i in range(_chunk_origins.KEPT):
        note_chunk(fs.cat_file("x/c/0/0"), fs, f"x/c/0/0#{i}")
    assert origin_of(raw) is None  # pushed out: no longer held, never named
    big = b"\0" * (_chunk_origins.KEPT_BYTES + 1)
    note_chunk(big, fs, "x/c/1/1")
    assert origin_of(big) is None  # larger than the bound: not held
    note_chunk(raw, fs, "x/c/1/0")
    assert origin_of(raw) == f"{fs.url}: chunk 'x/c/1/0'"
