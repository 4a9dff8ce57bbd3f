"""b2h5 views of generated files: every filter, layout and dtype reads like h5py (v3 and v2)."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr
from h5view_helpers import assert_same, h5_values, open_root

from b2store.errors import UnsupportedHDF5FeatureError
from b2store.hdf5.filesystem import HDF5FileSystem

FILTERS = [
    "none",
    "gzip",
    "shuffle_gzip",
    "fletcher32",
    "lzf",
    "blosc2",
    "blosc2_1d",
    "shuffle_blosc2",
    "blosc",
    "zstd",
    "lz4",
    "bitshuffle",
    "bzip2",
]
LAYOUTS = [
    "contiguous",
    "contiguous_unwritten",
    "compact",
    "scalar",
    "zero_length",
    "big_endian",
    "big_endian_f8",
    "compound",
    "fixed_str",
    "vlen_str",
    "vlen_scalar",
    "sparse_fill",
    "sparse_zero",
    "sparse_fill_gzip",
    "sparse_blosc2",
    "bools",
    "complex",
    "array_dtype",
    "deep/er/group/x",
    "soft",
    "hard",
]


@pytest.fixture(params=[3, 2], ids=["v3", "v2"])
def zarr_format(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.mark.parametrize("name", FILTERS)
def test_filters_read_like_h5py(files, zarr_format, name) -> None:
    fs = HDF5FileSystem(str(files["filters.h5"]), zarr_format=zarr_format)
    root = open_root(fs)
    with h5py.File(files["filters.h5"]) as f:
        assert_same(root[f"f/{name}"][...], h5_values(f[f"f/{name}"]), name)


@pytest.mark.parametrize("name", LAYOUTS)
def test_layouts_read_like_h5py(files, zarr_format, name) -> None:
    fs = HDF5FileSystem(str(files["layouts.h5"]), zarr_format=zarr_format)
    root = open_root(fs)
    with h5py.File(files["layouts.h5"]) as f:
        assert_same(root[name][...], h5_values(f[name]), name)


def test_attributes_and_groups(files) -> None:
    fs = HDF5FileSystem(str(files["filters.h5"]))
    root = open_root(fs)
    assert root.attrs["title"] == "filters"
    g = root["f"]
    assert g.attrs["bytes_attr"] == "raw bytes"
    assert g.attrs["int_list"] == [0, 1, 2]
    assert g.attrs["one"] == 2.5  # one-element arrays become scalars, as in netCDF4
    assert root["f/none"].attrs["units"] == "counts"


def test_compound_attributes_are_skipped_with_a_note(tmp_path) -> None:
    """Compound attributes are skipped with a note, whatever their shape (docs/hdf5.md): a
    one-element compound array attribute became a nameless list of its field values
    (``[1, 2.0]``), and a longer one was skipped with a reshape error as its reason."""
    rec = np.dtype([("a", "i4"), ("b", "f8")])
    path = tmp_path / "compound_attrs.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", data=np.arange(3.0))
        d.attrs["scalar"] = np.array((1, 2.0), dtype=rec)
        d.attrs["one"] = np.array([(1, 2.0)], dtype=rec)
        d.attrs["two"] = np.array([(1, 2.0), (3, 4.0)], dtype=rec)
        d.attrs["kept"] = np.array([1, 2], "i4")
    for zarr_format in (2, 3):
        fs = HDF5FileSystem(str(path), zarr_format=zarr_format)
        attrs = dict(open_root(fs)["d"].attrs)
        assert attrs.get("kept") == [1, 2]
        for name in ("scalar", "one", "two"):
            assert name not in attrs
            (note,) = [n for n in fs.notes if f"attribute {name!r}" in n]
            assert "compound" in note


def test_variable_length_sequence_attributes_keep_one_element_sequences(tmp_path) -> None:
    """A variable-length (netCDF VLEN) attribute ``[[0, 1, 2], [0]]`` read as ``[[0, 1, 2], 0]``:
    the one-element collapse meant for whole attributes was applied to each sequence."""
    path = tmp_path / "vlen_attrs.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", data=np.arange(3.0))
        seqs = np.array([np.arange(3, dtype="i4"), np.arange(1, dtype="i4")], dtype=object)
        d.attrs.create("seqs", seqs, dtype=h5py.vlen_dtype("i4"))
        d.attrs.create("one_seq", seqs[:1], dtype=h5py.vlen_dtype("i4"))
        d.attrs["strings"] = np.array(["a", "bc"], dtype=h5py.string_dtype())
    for zarr_format in (2, 3):
        attrs = dict(open_root(HDF5FileSystem(str(path), zarr_format=zarr_format))["d"].attrs)
        assert attrs["seqs"] == [[0, 1, 2], [0]]
        assert attrs["one_seq"] == [0, 1, 2]  # a one-element attribute is its element
        assert attrs["strings"] == ["a", "bc"]


def test_variable_length_string_attributes_that_are_no_utf8_are_replaced(tmp_path) -> None:
    """h5py decodes variable-length string attributes with "surrogateescape": a byte that is no
    UTF-8 (an ASCII-tagged attribute written by a C program) became a lone surrogate in the
    metadata, which UTF-8 writers refuse (``ds.to_netcdf``: UnicodeEncodeError). It reads as
    U+FFFD, as in fixed-length string attributes."""
    path = tmp_path / "bad_utf8.h5"
    ascii_vlen = h5py.string_dtype("ascii")
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", data=np.arange(3.0))
        d.attrs.create("one", b"\xffraw", dtype=ascii_vlen)
        d.attrs.create("many", np.array([b"\xfe", b"ok"], dtype=object), dtype=ascii_vlen)
        d.attrs["fixed"] = np.bytes_(b"\xffraw")
    for zarr_format in (2, 3):
        fs = HDF5FileSystem(str(path), zarr_format=zarr_format, skip_instance_cache=True)
        attrs = dict(open_root(fs)["d"].attrs)
        json.dumps(attrs, ensure_ascii=False).encode("utf-8")  # no lone surrogate
        assert attrs["one"] == attrs["fixed"] == "\ufffdraw"
        assert attrs["many"] == ["\ufffd", "ok"]


def test_v3_metadata_is_consolidated_with_dimension_names(files) -> None:
    fs = HDF5FileSystem(str(files["layouts.h5"]))
    doc = json.loads(fs.cat_file("zarr.json"))
    meta = doc["consolidated_metadata"]["metadata"]
    assert meta["sparse_fill"]["fill_value"] == -7
    for name, node in meta.items():
        if node["node_type"] == "array":
            assert len(node["dimension_names"]) == len(node["shape"]), name
            for dim, size in zip(node["dimension_names"], node["shape"], strict=True):
                assert dim.startswith("phony_dim_")
                assert int(dim.split("_")[2]) == size, (name, dim, size)


def test_v2_fill_value_policy(files) -> None:
    fs = HDF5FileSystem(str(files["layouts.h5"]), zarr_format=2)
    # no _FillValue attribute: fill_value null, so xarray masks nothing
    zarray = json.loads(fs.cat_file("sparse_fill/.zarray"))
    assert zarray["fill_value"] is None
    # unallocated chunks with a non-zero HDF5 fill are served as encoded fill chunks
    assert fs.cat_file("sparse_fill/2.1") == np.full((3, 5), -7, "<i4").tobytes()
    with pytest.raises(FileNotFoundError):
        fs.cat_file("sparse_zero/3.2")  # fill 0: missing key, zarr fills with 0
    ds = xr.open_zarr(f"b2h5::{files['layouts.h5']}", storage_options={"zarr_format": 2})
    with h5py.File(files["layouts.h5"]) as f:
        np.testing.assert_array_equal(ds["sparse_fill"].values, f["sparse_fill"][()])
        np.testing.assert_array_equal(ds["sparse_zero"].values, f["sparse_zero"][()])
        assert ds["sparse_zero"].dtype == np.float32  # no NaN trap


def test_xarray_open_zarr_v3_and_v2(files) -> None:
    url = f"b2h5::{files['layouts.h5']}"
    with h5py.File(files["layouts.h5"]) as f:
        for opts in ({}, {"zarr_format": 2}):
            ds = xr.open_zarr(url, storage_options=opts, chunks=None)
            for name in ("contiguous", "big_endian", "sparse_fill", "sparse_zero", "vlen_str"):
                assert_same(ds[name].values, h5_values(f[name]), f"{opts} {name}")


def test_blosc2_zero_chunk_is_missing(files) -> None:
    fs = HDF5FileSystem(str(files["layouts.h5"]))
    assert fs.index.tables["sparse_blosc2"].zero_skip
    fs.cat_file("sparse_blosc2/c/0/0")
    with pytest.raises(FileNotFoundError):
        fs.cat_file("sparse_blosc2/c/1/1")  # all-zero Blosc2 frame: zarr fills it


def test_external_links(files) -> None:
    fs = HDF5FileSystem(str(files["layouts.h5"]), skip_instance_cache=True)
    assert "ext/zarr.json" not in fs.index.meta
    assert any("external link" in n for n in fs.notes)
    fs = HDF5FileSystem(str(files["layouts.h5"]), follow_external_links=True)
    root = open_root(fs)
    np.testing.assert_array_equal(root["ext"][...], np.arange(4, dtype="u1"))


def test_absolute_link_paths_fall_back_to_the_linking_folder(tmp_path, monkeypatch) -> None:
    """HDF5 looks for an absolute external-link (or VDS source) file that does not exist by its
    base name beside the linking file: a NeXus master written with the beamline's absolute paths
    reads in h5py after copying the files together, while b2h5 noted "does not resolve"."""
    with h5py.File(tmp_path / "target.h5", "w") as f:
        f["d"] = np.arange(3, dtype="i2")
        f.create_dataset("s", data=np.arange(8.0).reshape(2, 4), chunks=(1, 4))
    with h5py.File(tmp_path / "master.h5", "w") as f:
        f["abs"] = h5py.ExternalLink("/beamline/2024/scan/target.h5", "/d")
        f["missing"] = h5py.ExternalLink("/beamline/2024/scan/other.h5", "/d")
        layout = h5py.VirtualLayout(shape=(4, 4), dtype="f8")
        for i in range(2):
            source = h5py.VirtualSource("/beamline/2024/scan/target.h5", "s", shape=(2, 4))
            layout[2 * i : 2 * i + 2] = source
        f.create_virtual_dataset("vds", layout, fillvalue=-1)
    monkeypatch.chdir("/")
    with h5py.File(tmp_path / "master.h5") as f:
        expected = {"abs": f["abs"][()], "vds": f["vds"][()]}
    for zarr_format in (3, 2):
        fs = HDF5FileSystem(
            str(tmp_path / "master.h5"),
            zarr_format=zarr_format,
            follow_external_links=True,
            skip_instance_cache=True,
        )
        root = open_root(fs)
        for name, want in expected.items():
            assert_same(root[name][...], want, name)
        assert [n for n in fs.notes if "does not resolve" in n] == [
            f"{tmp_path / 'master.h5'}:/missing: external link /beamline/2024/scan/other.h5:/d "
            f"does not resolve (HDF5 file not found: {tmp_path / 'other.h5'})"
        ]


def test_unsupported_policies(files) -> None:
    path = str(files["unsupported.h5"])
    with pytest.raises(UnsupportedHDF5FeatureError) as err:
        HDF5FileSystem(path, skip_instance_cache=True)
    msg = str(err.value)
    assert "unsupported.h5" in msg and "unsupported='skip'" in msg
    assert isinstance(err.value, NotImplementedError)
    with pytest.warns(UserWarning) as record:
        fs = HDF5FileSystem(path, unsupported="warn", skip_instance_cache=True)
    text = "\n".join(str(w.message) for w in record)
    for name, feature in [
        ("null", "NULL dataspace"),
        ("scaleoffset", "scaleoffset"),
        ("vlen_ints", "variable-length"),
        ("vds", "virtual dataset"),
    ]:
        assert f"/{name}" in text and feature in text, (name, text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fs = HDF5FileSystem(path, unsupported="skip", skip_instance_cache=True)
    assert sorted(fs.index.tables) == ["good"]
    np.testing.assert_array_equal(open_root(fs)["good"][...], np.arange(10))


def test_constructor_validation(files) -> None:
    with pytest.raises(ValueError, match="zarr_format"):
        HDF5FileSystem(str(files["filters.h5"]), zarr_format=4)
    with pytest.raises(ValueError, match="unsupported"):
        HDF5FileSystem(str(files["filters.h5"]), unsupported="ignore")  # type: ignore[arg-type]


def test_virtual_dataset_mapped_onto_sources(files, zarr_format) -> None:
    path = str(files["vds.h5"])
    with pytest.raises(UnsupportedHDF5FeatureError, match="virtual dataset"):
        HDF5FileSystem(path, zarr_format=zarr_format, skip_instance_cache=True)
    with pytest.warns(UserWarning) as record:
        fs = HDF5FileSystem(path, zarr_format=zarr_format, unsupported="warn")
    text = "\n".join(str(w.message) for w in record)
    assert "/unaligned" in text and "not aligned with the chunks" in text
    assert "/missing_source" in text and "missing.h5" in text
    assert len(fs.index.tables["plain"].urls) == 2  # two files hold its chunks
    with h5py.File(path) as f:
        assert_same(open_root(fs)["plain"][...], f["plain"][()], "plain")


def test_big_endian_compound(tmp_path) -> None:
    rec = np.zeros(5, dtype=[("a", ">i4"), ("b", ">f8")])
    rec["a"], rec["b"] = np.arange(5), np.arange(5) / 2
    p = tmp_path / "be.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("rec", data=rec)
    with pytest.raises(UnsupportedHDF5FeatureError, match="zarr_format=2"):
        HDF5FileSystem(str(p))  # zarr 3.1.6 would read it little-endian: refuse, loudly
    got = open_root(HDF5FileSystem(str(p), zarr_format=2))["rec"][...]
    assert got.tolist() == rec.tolist()


@pytest.mark.parametrize("zarr_format", [3, 2], ids=["v3", "v2"])
def test_contiguous_data_splits_along_the_first_axis_whose_block_fits(tmp_path, zarr_format):
    """Contiguous datasets are served as ~4 MiB virtual chunks of one byte range each: a long
    single row is split along its own axis (it used to be one chunk of the whole row)."""
    import zarr

    from b2store.hdf5.index import CONTIGUOUS_CHUNK_BYTES

    path = tmp_path / "contiguous.h5"
    cases = {
        "row": (np.arange(5_000_000, dtype="f4").reshape(1, -1), (1, 1_048_576)),
        "planes": ((np.arange(2 * 3000 * 900) % 7000).astype("i2").reshape(2, 3000, 900), None),
        "deep": ((np.arange(5 * 2 * 1_100_000) % 251).astype("u1").reshape(5, 2, -1), None),
        "scalar": (np.float64(2.5), ()),
        "empty": (np.zeros((3, 0, 5), "i4"), None),
        # rows a little over 4 MiB that no piece size divides: whole rows, no 4-byte edge chunks
        "rows": (np.arange(3 * 1_048_577, dtype="f4").reshape(3, -1), (1, 1_048_577)),
    }
    with h5py.File(path, "w") as f:
        for name, (data, _) in cases.items():
            f[name] = data
    fs = HDF5FileSystem(fo=str(path), zarr_format=zarr_format, skip_instance_cache=True)
    group = zarr.open_group(fs.get_mapper(), mode="r", zarr_format=zarr_format)
    for name, (data, chunks) in cases.items():
        a = group[name]
        np.testing.assert_array_equal(a[...], data, err_msg=name)
        if chunks is not None:
            assert a.chunks == chunks, name
        if a.ndim:
            assert np.prod(a.chunks) * a.dtype.itemsize <= max(
                CONTIGUOUS_CHUNK_BYTES, a.shape[-1] * a.dtype.itemsize
            ), name
    assert group["planes"].chunks == (1, 1500, 900)  # even pieces: no short chunk per plane
