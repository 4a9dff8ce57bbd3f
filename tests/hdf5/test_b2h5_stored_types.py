"""Stored types whose raw bytes are not numpy's: b2h5 converts them at open or says so.

HDF5 converts on read what numpy cannot hold as is: integers with reduced precision or a bit
offset (12-bit detector data), non-IEEE floats, space-padded strings. Serving their raw chunks
gave silently wrong values; small datasets are now read with h5py at open and larger ones raise
:class:`~b2store.errors.UnsupportedHDF5FeatureError`. Also: long doubles, names Zarr cannot
address, zero Blosc2 chunks under a ``_FillValue`` in the v2 view, and netCDF char variables
with a ``_FillValue`` in the v3 view.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import xarray as xr
import zarr

from b2store.errors import UnsupportedHDF5FeatureError
from b2store.hdf5 import filesystem as b2h5
from b2store.hdf5 import index
from b2store.hdf5.filesystem import HDF5FileSystem

FORMATS = pytest.mark.parametrize("zarr_format", [3, 2], ids=["v3", "v2"])


def _typed(f: h5py.File, name: str, tid: Any, data: np.ndarray, chunks: Any = None) -> None:
    """A dataset of file type *tid* written from *data* (HDF5 converts on write)."""
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if chunks:
        plist.set_chunk(chunks)
    sid = h5py.h5s.create_simple(data.shape)
    ds = h5py.Dataset(h5py.h5d.create(f.id, name.encode(), tid, sid, dcpl=plist))
    ds[...] = data


def _array(path: Path, name: str, zarr_format: int, **opts: Any) -> Any:
    so = {"zarr_format": zarr_format, "skip_instance_cache": True, **opts}
    return zarr.open_array(f"b2h5::{path}", path=name, mode="r", storage_options=so)


@pytest.fixture(scope="module")
def converted_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("types") / "converted.h5"
    with h5py.File(path, "w") as f:
        i12 = h5py.h5t.STD_I16LE.copy()
        i12.set_precision(12)
        _typed(f, "i12", i12, np.array([-5, 0, 1, 2047, -2048, 100], "i2"), chunks=(4,))
        u12 = h5py.h5t.STD_U16LE.copy()
        u12.set_precision(12)
        u12.set_offset(4)
        _typed(f, "u12_offset4", u12, np.array([0, 1, 4095, 17], "u2"))
        odd = h5py.h5t.IEEE_F32LE.copy()
        odd.set_ebias(120)
        _typed(f, "f32_bias120", odd, np.array([1.0, 2.5, -3.0, 0.0, 5, 6, 7, 8], "f4"), (4,))
        sp = h5py.h5t.C_S1.copy()
        sp.set_size(5)
        sp.set_strpad(h5py.h5t.STR_SPACEPAD)
        _typed(f, "spacepad", sp, np.array([b"ab", b"abcde", b"X"], "S5"))
        f.create_dataset("plain", data=np.arange(6, dtype="i2"), chunks=(4,))
    return path


@FORMATS
@pytest.mark.parametrize("name", ["i12", "u12_offset4", "f32_bias120", "spacepad", "plain"])
def test_converted_types_read_like_h5py(converted_file: Path, name: str, zarr_format: int) -> None:
    with h5py.File(converted_file) as f:
        expected = f[name][()]
    got = _array(converted_file, name, zarr_format)[...]
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_large_converted_dataset_raises_clearly(
    converted_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "CONVERTED_LIMIT", 8)
    b2h5._MEMORY.clear()  # indexes built by the other tests of this file
    with pytest.raises(
        UnsupportedHDF5FeatureError, match=r"f32_bias120: stores a 4-byte float type"
    ):
        HDF5FileSystem(str(converted_file), skip_instance_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs = HDF5FileSystem(str(converted_file), unsupported="skip", skip_instance_cache=True)
    assert fs.exists("plain/zarr.json") and not fs.exists("i12/zarr.json")
    b2h5._MEMORY.clear()


def test_long_double_is_unsupported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "ld.h5"
    with h5py.File(path, "w") as f:
        f["ok"] = np.arange(3.0)
        f["ld"] = np.arange(3, dtype=np.longdouble)
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(UnsupportedHDF5FeatureError, match="long double"):
        HDF5FileSystem(str(path), skip_instance_cache=True)
    g = zarr.open_group(
        f"b2h5::{path}",
        mode="r",
        storage_options={"unsupported": "skip", "skip_instance_cache": True},
    )
    assert sorted(g.array_keys()) == ["ok"]


def test_names_zarr_cannot_address(tmp_path: Path) -> None:
    for bad in ("..", "a\\b"):
        path = tmp_path / "names.h5"
        with h5py.File(path, "w") as f:
            f["good"] = np.arange(3)
            f[bad] = np.arange(3)
        with pytest.raises(UnsupportedHDF5FeatureError, match="Zarr cannot address"):
            HDF5FileSystem(str(path), skip_instance_cache=True)
        ds = xr.open_zarr(
            f"b2h5::{path}", storage_options={"unsupported": "skip", "skip_instance_cache": True}
        )
        assert list(ds.data_vars) == ["good"]


@FORMATS
def test_zero_blosc2_chunks_under_a_fill_value_attribute(tmp_path: Path, zarr_format: int) -> None:
    """All-zero Blosc2 chunks are missing keys only if zarr fills those with zeros: in the v2
    view it fills with ``_FillValue`` (was: real zeros read as -9, then NaN in xarray)."""
    hdf5plugin = pytest.importorskip("hdf5plugin")
    path = tmp_path / "zeros.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", data=np.zeros((8, 8), "f4"), chunks=(4, 4), **hdf5plugin.Blosc2())
        d[0, 0] = 1.0
        d.attrs["_FillValue"] = np.float32(-9.0)
    with h5py.File(path) as f:
        expected = f["d"][()]
    np.testing.assert_array_equal(_array(path, "d", zarr_format)[...], expected)
    ds = xr.open_zarr(f"b2h5::{path}", storage_options={"zarr_format": zarr_format})
    assert not np.isnan(ds["d"].values).any()


def test_char_variable_with_fill_value_opens_in_v3(tmp_path: Path) -> None:
    """xarray decodes a v3 ``_FillValue`` attribute by dtype and has no rule for fixed-length
    bytes: netCDF char variables with a fill could not be opened."""
    netCDF4 = pytest.importorskip("netCDF4")
    path = tmp_path / "chars.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("n", 3)
        nc.createDimension("nchar", 4)
        v = nc.createVariable("station", "S1", ("n", "nchar"), fill_value=b" ")
        v[0, :2] = np.array([b"a", b"b"])
    expected = xr.open_dataset(path, engine="h5netcdf")["station"].values
    for zarr_format in (3, 2):
        got = xr.open_zarr(f"b2h5::{path}", storage_options={"zarr_format": zarr_format})
        np.testing.assert_array_equal(got["station"].values, expected)


def test_types_numpy_cannot_represent_are_unsupported_not_fatal(tmp_path: Path) -> None:
    """A PyTables Time64Col table (HDF5 H5T_TIME inside a compound): h5py has no numpy type for
    it, and the TypeError broke the whole file even with ``unsupported="warn"``."""
    tables = pytest.importorskip("tables")

    class Row(tables.IsDescription):
        t = tables.Time64Col()
        v = tables.Int32Col()

    path = tmp_path / "time.h5"
    with tables.open_file(str(path), "w") as f:
        tb = f.create_table("/", "tb", Row)
        tb.append([(1.5, 1)])
        f.create_array("/", "ok", np.arange(4))
    with pytest.raises(UnsupportedHDF5FeatureError, match="numpy cannot represent"):
        HDF5FileSystem(str(path), skip_instance_cache=True)
    so = {"unsupported": "skip", "skip_instance_cache": True}
    g = zarr.open_group(f"b2h5::{path}", mode="r", storage_options=so)
    assert sorted(g.array_keys()) == ["ok"]


@FORMATS
def test_fill_time_never_reads_zeros_like_h5py(tmp_path: Path, zarr_format: int) -> None:
    """With ``H5D_FILL_TIME_NEVER`` HDF5 skips unwritten chunks (and never-written contiguous
    data) on read and h5py returns its zeroed buffer there, not the recorded fill value: the
    view served the fill (7 where h5py and h5netcdf read 0: silently wrong values)."""
    hdf5plugin = pytest.importorskip("hdf5plugin")
    path = tmp_path / "never.h5"
    cmp = np.dtype([("a", "<i4"), ("b", "<f4")])
    with h5py.File(path, "w") as f:
        for name, shape, dtype, fill, chunks, blosc2 in [
            ("chunked", (6, 5), "f8", 2.5, (2, 3), False),
            ("contiguous", (5,), "i2", 7, None, False),
            ("compound", (5,), cmp, (3, 1.5), (2,), False),
            ("blosc2", (6, 5), "f4", 9, (2, 3), True),
        ]:
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            if chunks:
                plist.set_chunk(chunks)
            if blosc2:
                plist.set_filter(32026, h5py.h5z.FLAG_OPTIONAL, hdf5plugin.Blosc2().filter_options)
            plist.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            plist.set_fill_value(np.array(fill, dtype))
            tid = h5py.h5t.py_create(np.dtype(dtype))
            sid = h5py.h5s.create_simple(shape)
            h5py.h5d.create(f.id, name.encode(), tid, sid, dcpl=plist)
        f["chunked"][0, 0] = 1.0
        f["compound"][0] = (1, 1.0)
        f["blosc2"][0:2, 0:3] = 0.0
        f["blosc2"][3, 4] = 5.0
        # a virtual dataset's unmapped elements are its fill value, whatever its fill time
        f.create_dataset("source", data=np.arange(4, dtype="i4"), chunks=(2,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_fill_value(np.array(9, "i4"))
        plist.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        vspace = h5py.h5s.create_simple((8,))
        vspace.select_hyperslab((0,), (1,), block=(4,))
        plist.set_virtual(vspace, b".", b"source", h5py.h5s.create_simple((4,)))
        vds_space = h5py.h5s.create_simple((8,))
        h5py.h5d.create(f.id, b"virtual", h5py.h5t.STD_I32LE, vds_space, dcpl=plist)
    with h5py.File(path) as f:
        expected = {name: f[name][()] for name in f}
    assert not expected["chunked"][1:].any() and not expected["contiguous"].any()
    assert (expected["virtual"][4:] == 9).all()
    ds = xr.open_zarr(f"b2h5::{path}", chunks=None, storage_options={"zarr_format": zarr_format})
    for name, want in expected.items():
        got = _array(path, name, zarr_format)[...]
        assert got.tobytes() == want.tobytes(), name
        if not want.dtype.fields:
            np.testing.assert_array_equal(ds[name].values, want, err_msg=name)


def _nullterm_file(path: Path) -> None:
    """NUL-terminated fixed strings (C's H5T_C_S1 default) with junk after the NUL, in every
    layout and codec route: raw contiguous, chunked + gzip, Blosc2, shuffle + Blosc2, compound
    field, array dtype, a virtual dataset over such sources."""
    s5 = h5py.h5t.C_S1.copy()
    s5.set_size(5)  # H5T_STR_NULLTERM
    words = np.array([b"a\x00xyz", b"abcde", b"", b"q\x00\x00r", b"ok", b"z\x00z"], "S5")
    cmp_t = h5py.h5t.create(h5py.h5t.COMPOUND, 9)
    cmp_t.insert(b"i", 0, h5py.h5t.STD_I32LE)
    cmp_t.insert(b"s", 4, s5)
    rec = np.zeros(6, [("i", "<i4"), ("s", "S5")])
    rec["i"], rec["s"] = np.arange(6), words
    arr_t = h5py.h5t.array_create(s5, (2,))
    blosc2 = (0, 0, 0, 0, 5, 1, 0)
    with h5py.File(path, "w") as f:
        for name, tid, data, steps in [
            ("contiguous", s5, words, ()),
            ("gzip", s5, words, ("gzip",)),
            ("blosc2", s5, words, ("blosc2",)),
            ("shuffle_blosc2", s5, words, ("shuffle", "blosc2")),
            ("compound", cmp_t, rec, ("gzip",)),
            ("compound_contiguous", cmp_t, rec, ()),
            ("array", arr_t, words.reshape(3, 2), ()),
        ]:
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            if steps:
                plist.set_chunk((4,))
            for step in steps:
                if step == "gzip":
                    plist.set_deflate(4)
                elif step == "shuffle":
                    plist.set_shuffle()
                else:
                    plist.set_filter(32026, h5py.h5z.FLAG_OPTIONAL, blosc2)
            sid = h5py.h5s.create_simple((len(data),))
            h5py.h5d.create(f.id, name.encode(), tid, sid, dcpl=plist).write(
                h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=tid
            )
        layout = h5py.VirtualLayout(shape=(12,), dtype="S5")
        for i in range(2):
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            plist.set_chunk((3,))
            sid = h5py.h5s.create_simple((6,))
            h5py.h5d.create(f.id, f"src{i}".encode(), s5, sid, dcpl=plist).write(
                h5py.h5s.ALL, h5py.h5s.ALL, words, mtype=s5
            )
            layout[i * 6 : (i + 1) * 6] = h5py.VirtualSource(".", f"src{i}", shape=(6,))
        f.create_virtual_dataset("virtual", layout)


@FORMATS
def test_nul_terminated_strings_end_at_the_first_nul(tmp_path: Path, zarr_format: int) -> None:
    """HDF5 (h5py, h5netcdf) ends an H5T_STR_NULLTERM string at its first NUL; the raw bytes
    were served as they are, so b"a\\0xyz" read as b"a\\x00xyz" where h5py reads b"a"."""
    pytest.importorskip("hdf5plugin")
    path = tmp_path / "nullterm.h5"
    _nullterm_file(path)
    with h5py.File(path) as f:
        expected = {name: f[name][()] for name in f}
    assert expected["contiguous"][0] == b"a" and expected["compound"]["s"][3] == b"q"
    for name, want in expected.items():
        got = _array(path, name, zarr_format)[...]
        assert got.tobytes() == np.ascontiguousarray(want).tobytes(), name
    ds = xr.open_zarr(f"b2h5::{path}", chunks=None, storage_options={"zarr_format": zarr_format})
    for name in ("contiguous", "gzip", "blosc2", "virtual"):
        np.testing.assert_array_equal(ds[name].values, expected[name], err_msg=name)


def test_nullterm_codec_config() -> None:
    """The ``nullterm`` key of b2store_hdf5 / b2store.hdf5: round trip, no filters, checks."""
    from b2store.codecs.hdf5_pipeline import HDF5Pipeline
    from b2store.codecs.hdf5_zarr3 import HDF5PipelineCodec
    from b2store.errors import CodecError

    codec = HDF5Pipeline(filters=[], dtype="|S4", chunkshape=[3], nullterm=[[0, 4]])
    raw = b"a\x00bcxyz\x00\x00\x00\x00\x01"
    np.testing.assert_array_equal(codec.decode(raw), np.array([b"a", b"xyz", b""], "S4"))
    assert HDF5Pipeline.from_config(codec.get_config()) == codec
    assert "nullterm" not in HDF5Pipeline(filters=[{"id": 1, "cd_values": [4]}]).get_config()
    v3 = HDF5PipelineCodec.from_dict(
        {"name": "b2store.hdf5", "configuration": {k: v for k, v in codec.get_config().items()
                                                   if k != "id"}}
    )  # fmt: skip
    assert v3.to_dict()["configuration"]["nullterm"] == [[0, 4]]
    with pytest.raises(ValueError, match="nullterm"):
        HDF5Pipeline(filters=[], dtype="|S4", nullterm=[[2, 4]])
    with pytest.raises(ValueError, match="filters"):
        HDF5Pipeline(filters=[], dtype="|S4")
    with pytest.raises((ValueError, CodecError), match="nullterm needs the dtype"):
        HDF5Pipeline(filters=[], nullterm=[[0, 4]])


@FORMATS
def test_unwritten_chunks_of_compounds_with_string_fields_read_like_h5py(
    tmp_path: Path, zarr_format: int
) -> None:
    """The v2 view publishes a null fill_value and took it for zeros; zarr 3.1 fills a null
    structured fill with the dtype's default scalar, 0 cast into each field: ``b"0"`` in bytes
    fields where h5py reads ``b""`` (silently wrong), an error with void fields. Such chunks
    are served as fill chunks (a zero fill, also with fill time "never", and a set one)."""
    path = tmp_path / "cmp.h5"
    cmp = np.dtype([("a", "<i4"), ("s", "S3"), ("b", "<f8")])
    with h5py.File(path, "w") as f:
        f.create_dataset("zero", shape=(6,), dtype=cmp, chunks=(2,))[0] = (1, b"ab", 1.5)
        fill = np.array((5, b"x", 2.5), cmp)
        f.create_dataset("set", shape=(6,), dtype=cmp, chunks=(2,), fillvalue=fill)
        f["set"][0] = (1, b"ab", 1.5)
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk((2,))
        plist.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        plist.set_fill_value(fill)
        sid = h5py.h5s.create_simple((6,))
        h5py.h5d.create(f.id, b"never", h5py.h5t.py_create(cmp), sid, dcpl=plist)
        f["never"][0] = (1, b"ab", 1.5)
        # Blosc2: all-zero chunks are special frames (served as missing keys when zarr fills
        # zeros) and b2store_b2nd encodes the v2 fill chunk of a compound as its bytes
        hdf5plugin = pytest.importorskip("hdf5plugin")
        b2 = f.create_dataset(
            "blosc2", shape=(8, 4), dtype=cmp, chunks=(2, 3), **hdf5plugin.Blosc2()
        )
        b2[0:2, 0:3] = np.zeros((2, 3), cmp)
        b2[2, 2] = (1, b"ab", 1.5)
    with h5py.File(path) as f:
        expected = {name: f[name][()] for name in f}
    assert expected["zero"][5]["s"] == b"" and expected["never"][5]["s"] == b""
    for name, want in expected.items():
        got = _array(path, name, zarr_format)[...]
        assert got.tobytes() == want.tobytes(), name


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_compound_with_fields_out_of_offset_order(tmp_path: Path, zarr_format: int) -> None:
    """Members stored out of offset order (b at byte 2, a at byte 0) are repacked in offset
    order; numpy's astype casts records by field position, so b's values were served under the
    name a (and a's under b), silently, chunked and contiguous, fill value too."""
    dt = np.dtype({"names": ["b", "a"], "formats": ["<i4", "<i2"], "offsets": [2, 0]})
    arr = np.zeros(20, dt)
    arr["a"], arr["b"] = np.arange(20), np.arange(20) * 1000
    fill = np.array((-5, -7), dtype=dt)  # b=-5, a=-7
    path = tmp_path / "shuffled.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("c", data=arr, chunks=(7,), compression="gzip")
        f.create_dataset("k", data=arr)
        f.create_dataset("sparse", shape=(20,), dtype=dt, chunks=(5,), fillvalue=fill)
        f["sparse"][:5] = arr[:5]
    with h5py.File(path) as f:
        want = {name: f[name][()] for name in ("c", "k", "sparse")}
    opts = {"zarr_format": zarr_format}
    for name, expected in want.items():
        got = zarr.open_array(f"b2h5::{path}", path=name, mode="r", storage_options=opts)[...]
        for field in ("a", "b"):
            np.testing.assert_array_equal(got[field], expected[field], err_msg=f"{name}.{field}")
