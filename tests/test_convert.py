"""``b2store.convert``: Blosc2 direct-chunk rewrite readable by plain h5py + hdf5plugin.

The output keeps what the input holds: committed datatypes, link and attribute creation order,
netCDF-4 type names, virtual datasets and external links (rewritten for another folder), datasets
of more than 8 dimensions (copied as they are); attributes it cannot copy are named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests._cli_files import write_sample
from tests.conftest import has, requires_h5py, requires_hdf5plugin, requires_j2k, requires_xarray

pytestmark = [requires_h5py, requires_hdf5plugin]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.h5")


def _frames_are_b2nd(path: Path, name: str) -> None:
    import blosc2
    import h5py

    with h5py.File(path) as f:
        d = f[name]
        infos: list[object] = []
        d.id.chunk_iter(infos.append)
        assert infos
        for info in infos:
            _mask, raw = d.id.read_direct_chunk(info.chunk_offset)  # type: ignore[attr-defined]
            arr = blosc2.ndarray_from_cframe(raw)
            assert tuple(arr.shape) == d.chunks  # the filter's rule: b2nd shape == HDF5 chunk


def test_lossless_keeps_everything(sample: Path, tmp_path: Path) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    from b2store.convert import ConvertOptions, convert

    out = tmp_path / "out.h5"
    rep = convert(sample, out, options=ConvertOptions(nthreads=2))
    actions = {d.path: d.action for d in rep.datasets}
    assert actions["/entry/data/data"] == "converted"
    assert actions["/contig"] == "copied" and actions["/names"] == "copied"
    with h5py.File(sample) as a, h5py.File(out) as b:
        for k in ("entry/data/data", "x", "sparse", "contig", "scalar"):
            np.testing.assert_array_equal(a[k][()], b[k][()])
        assert list(b["names"][()]) == list(a["names"][()])
        assert 32026 in b["entry/data/data"]._filters or "32026" in b["entry/data/data"]._filters
        # attributes, groups, fill value, sparse chunks
        assert b.attrs["title"] == "sample"
        assert b["entry/data"].attrs["NX_class"] == "NXdata"
        assert b["entry/data/data"].attrs["units"] == "counts"
        assert b["sparse"].fillvalue == -1
        assert b["sparse"].id.get_num_chunks() == a["sparse"].id.get_num_chunks() == 2
        # dimension scales re-attached
        assert h5py.h5ds.is_scale(b["x"].id)
        assert [s.name for s in b["entry/data/data"].dims[2].values()] == ["/x"]
    _frames_are_b2nd(out, "entry/data/data")
    _frames_are_b2nd(out, "x")


def test_blocks_chunks_and_contiguous(sample: Path, tmp_path: Path) -> None:
    import blosc2
    import h5py
    import hdf5plugin  # noqa: F401

    from b2store.convert import CodecChoice, ConvertOptions, convert

    out = tmp_path / "out.h5"
    opts = ConvertOptions(
        codec=CodecChoice(cname="lz4", clevel=3, filters=("bitshuffle",), blocks=(1, 16, 64)),
        chunks=(3, 45, 65),
        contiguous=True,
    )
    convert(sample, out, options=opts)
    with h5py.File(sample) as a, h5py.File(out) as b:
        d = b["entry/data/data"]
        assert d.chunks == (3, 45, 65)
        np.testing.assert_array_equal(a["entry/data/data"][()], d[()])
        _m, raw = d.id.read_direct_chunk((0, 0, 0))
        assert tuple(blosc2.ndarray_from_cframe(raw).blocks) == (1, 16, 64)
        assert b["contig"].chunks is not None
        np.testing.assert_array_equal(a["contig"][()], b["contig"][()])
    _frames_are_b2nd(out, "contig")


@pytest.mark.parametrize("max_error", [1, 15, 100])
def test_itrunc_bound(tmp_path: Path, max_error: int) -> None:
    import h5py
    import hdf5plugin

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(1)
    data = rng.integers(0, 60000, (4, 64, 80), dtype="u2")
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=data, chunks=(2, 32, 80), **hdf5plugin.Blosc2())
        f.create_dataset("be", data=data.astype(">u2"), chunks=(2, 32, 80))  # big-endian words
        f.create_dataset("f", data=data.astype("f4"), chunks=(2, 32, 80))
    convert(src, out, options=ConvertOptions(codec=CodecChoice(itrunc_max_error=max_error)))
    with h5py.File(out) as f:
        got = f["d"][()].astype(np.int64)
        got_be = f["be"][()].astype(np.int64)
        np.testing.assert_array_equal(f["f"][()], data.astype("f4"))  # floats stay lossless
    for values in (got, got_be):
        err = np.abs(values - data)
        assert err.max() <= max_error
        assert err.max() > 0  # really lossy


def _assert_truncated_keeping(got: np.ndarray, data: np.ndarray, marks: list[int], n: int) -> None:
    """``got`` is ``data`` truncated within ``n`` (``0 <= x - y <= n``, in the unsigned view of the
    words too), its markers exact, and no other item turned into a marker."""
    at = np.isin(data, marks)
    np.testing.assert_array_equal(got[at], data[at])
    np.testing.assert_array_equal(np.isin(got, marks), at)  # no value fell onto a marker
    for a, b in ((data, got), (data.view(f"u{data.itemsize}"), got.view(f"u{got.itemsize}"))):
        err = a.astype(np.int64) - b.astype(np.int64)
        assert err.min() >= 0 and err.max() <= n
    assert (got != data).any()  # really lossy


def test_itrunc_keeps_missing_data_markers(tmp_path: Path) -> None:
    """Truncation changed the values that mark missing data (netCDF-C's int16 _FillValue -1 came
    out -4 with itrunc_max_error=3, so CF readers showed missing items as data), and turned
    values just above a marker into it (1..3 became a _FillValue of 0, read as missing). The
    markers (_FillValue/missing_value attributes, else a non-zero HDF5 fill value) are kept
    exact with the codec's ``keep`` key; the rest of the dataset is truncated within the bound."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(2)
    i2 = rng.integers(-3000, 3000, (80, 60), dtype="i2")
    i2[:10] = -1
    i2[10:12] = rng.integers(-4, 8, (2, 60))  # values that truncate onto -4, 0, 4 (and 7 -> 4)
    i2[12, :4] = [-32768, -32767, -32766, -32765]
    u2 = rng.integers(0, 65536, (80, 60), dtype="u2")
    u2[:5], u2[5] = 0, np.arange(60) % 8  # _FillValue 0 and the values that truncate onto it
    u2[6], u2[7] = 65535, 65535 - np.arange(60) % 8
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    cases = {  # name: (data, attributes, HDF5 fill value, markers)
        "fill_attr": (i2, {"_FillValue": np.int16(-1)}, None, [-1]),
        "missing": (i2, {"missing_value": [-1, 7]}, None, [-1, 7]),
        "both": (i2, {"_FillValue": np.int16(-1), "missing_value": np.int16(4)}, -1, [-1, 4]),
        "h5fill": (i2, {}, -1, [-1]),
        "lowest": (i2, {"_FillValue": np.int16(-32768)}, None, [-32768]),
        "u2_top": (u2, {"_FillValue": np.uint16(65535)}, 65535, [65535]),
        "u2_zero": (u2, {"_FillValue": np.uint16(0)}, None, [0]),
        "float_attr": (u2, {"missing_value": np.float32(65535.0)}, None, [65535]),
    }
    with h5py.File(src, "w") as f:
        for name, (data, attrs, fill, _) in cases.items():
            f.create_dataset(name, data=data, chunks=(40, 60), fillvalue=fill)
            f[name].attrs.update(attrs)
    lines: list[str] = []
    options = ConvertOptions(codec=CodecChoice(itrunc_max_error=3))
    rep = convert(src, out, options=options, log=lines.append)
    codecs = {d.path: d.codec for d in rep.datasets}
    with h5py.File(out) as f:
        for name, (data, _, _, marks) in cases.items():
            _assert_truncated_keeping(f[name][()], data, marks, 3)
            assert codecs[f"/{name}"].startswith(f"itrunc(max_error=3, keep={marks})"), codecs
            assert any(f"/{name}: itrunc stores the missing-data markers" in m for m in lines)
    assert not any("stored lossless" in m for m in lines), lines


def test_itrunc_markers_keep_cannot_help(tmp_path: Path) -> None:
    """Markers no item can equal (out of range, fractional, NaN, text) are left out with a
    message; an ``_Unsigned`` dataset's markers count in the unsigned twin dtype; more markers
    than ``keep`` takes (16) leave the dataset lossless, with a message."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(4)
    i2 = rng.integers(-3000, 3000, (80, 60), dtype="i2")
    i2[:4] = -1
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("odd", data=i2, chunks=(40, 60))
        d.attrs["_FillValue"] = np.int16(-1)
        d.attrs["missing_value"] = [70000.0, -999.5, np.nan]
        d.attrs.create("valid_min", 0)
        d = f.create_dataset("text", data=i2, chunks=(40, 60))
        d.attrs["missing_value"] = "n/a"
        d = f.create_dataset("unsigned", data=i2, chunks=(40, 60))
        d.attrs["_Unsigned"] = "true"
        d.attrs["_FillValue"] = np.uint16(65535)  # the int16 item -1
        d = f.create_dataset("many", data=i2, chunks=(40, 60))
        d.attrs["missing_value"] = np.arange(-1, 16, dtype="i2")  # 17 markers
    lines: list[str] = []
    convert(
        src, out, options=ConvertOptions(codec=CodecChoice(itrunc_max_error=3)), log=lines.append
    )
    with h5py.File(out) as f:
        _assert_truncated_keeping(f["odd"][()], i2, [-1], 3)
        _assert_truncated_keeping(f["unsigned"][()], i2, [-1], 3)
        assert (f["text"][()] != i2).any()
        np.testing.assert_array_equal(f["many"][()], i2)
    said = "\n".join(lines)
    assert (
        "/odd: missing_value attribute 70000.0, missing_value attribute -999.5, missing_value "
        "attribute nan: not a value of int16" in said
    ), said
    assert "/text: missing_value attribute 'n/a': not a value of int16" in said, said
    assert (
        "/unsigned: itrunc stores the missing-data markers exactly: _FillValue attribute -1" in said
    )
    assert "/many: 17 missing-data markers, more than the truncation keeps exactly" in said, said
    assert (
        "/many: 17 missing-data markers" in said and "stored lossless (itrunc not applied)" in said
    )


def test_itrunc_keep_option_and_auto(tmp_path: Path) -> None:
    """``CodecChoice(itrunc_keep=...)`` adds values to every dataset's markers (leaving out those
    a dtype cannot hold), and ``--auto`` tunes with them."""
    import h5py

    from b2store.convert import CodecChoice, ConvertError, ConvertOptions, convert

    with pytest.raises(ConvertError, match="itrunc_keep applies to itrunc_max_error"):
        CodecChoice(itrunc_keep=(1,))
    with pytest.raises(ConvertError, match=r"itrunc_keep: Expected at most 16 values. Got 17"):
        CodecChoice(itrunc_max_error=3, itrunc_keep=tuple(range(17)))
    with pytest.raises(ConvertError, match="itrunc_keep: Expected a list of numbers"):
        CodecChoice(itrunc_max_error=3, itrunc_keep=("x",))  # type: ignore[arg-type]
    rng = np.random.default_rng(6)
    u1 = rng.integers(0, 256, (64, 64), dtype="u1")
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("a", data=u1, chunks=(32, 64)).attrs["_FillValue"] = np.uint8(255)
    lines: list[str] = []
    choice = CodecChoice(itrunc_max_error=7, itrunc_keep=(128, 1000))
    rep = convert(src, out, options=ConvertOptions(codec=choice, auto=True), log=lines.append)
    assert rep.datasets[0].codec.startswith("itrunc(max_error=7, keep=[128, 255])+"), rep
    assert any("itrunc_keep value 1000: not a value of uint8" in m for m in lines), lines
    with h5py.File(out) as f:
        _assert_truncated_keeping(f["a"][()], u1, [128, 255], 7)


@requires_xarray
def test_itrunc_corpus_goes16_markers(corpus: Path, tmp_path: Path) -> None:
    """GOES-16 cloud-top height (int16, ``_Unsigned``, ``_FillValue=-1`` on 57,432 items, scale
    0.305): truncated within the bound, and xarray masks exactly the items it masked before."""
    import h5py
    import xarray as xr

    from b2store.convert import CodecChoice, ConvertOptions, convert

    src, out = corpus / "goes16_cloud_top_height.nc", tmp_path / "out.nc"
    convert(src, out, options=ConvertOptions(codec=CodecChoice(itrunc_max_error=3)))
    with h5py.File(src) as a, h5py.File(out) as b:
        data, got = a["HT"][()], b["HT"][()]
    assert (data == -1).sum() == 57432
    _assert_truncated_keeping(got, data, [-1], 3)
    with (
        xr.open_dataset(src, engine="h5netcdf") as x0,
        xr.open_dataset(out, engine="h5netcdf") as x1,
    ):
        v0, v1 = x0["HT"].values, x1["HT"].values
        scale = float(x0["HT"].encoding["scale_factor"])
    np.testing.assert_array_equal(np.isnan(v1), np.isnan(v0))
    assert np.isnan(v0).sum() == 57432
    assert np.nanmax(np.abs(v1 - v0)) <= 3 * scale * (1 + 1e-3)  # float32 rounding


@pytest.mark.parametrize("auto", [False, True])
def test_itrunc_leaves_coordinates_flags_and_categories_exact(tmp_path: Path, auto: bool) -> None:
    """Truncation changes what a value means, not just its precision, for dimension scales and
    coordinates (repeated values: a non-unique xarray index), CF flags (an "invalid" flag read
    as "good"), counts, indices and categories: such datasets are stored lossless, with a line
    naming why, with and without --auto; the plain data beside them is still truncated."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:80, :60]  # smooth: compressible, so Blosc2 never stores it raw
    data = (1500 + 1000 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype("i2")
    data += rng.integers(0, 16, data.shape, dtype="i2")
    cat = rng.integers(0, 7, (80, 60), dtype="u1")
    exact: dict[str, np.ndarray] = {
        "x": (np.arange(60) * 7 - 200).astype("i2"),  # contiguous: needs --contiguous
        "y": np.arange(80, dtype="i4") * 3,
        "x_bnds": np.stack([np.arange(60), np.arange(60) + 1], 1).astype("i4") * 7,
        "lat2d": rng.integers(-9000, 9000, (80, 60), dtype="i2"),
        "flags": cat,
        "masks": cat,
        "meanings": cat,
        "land": (cat > 3).astype("u1"),
        "region": cat,
        "status": cat,
        "rowsize": rng.integers(0, 50, 60, dtype="i4"),
        "g/conn": rng.integers(0, 1000, (60, 3), dtype="i4"),
        "g/ens": np.arange(60, dtype="i4"),
    }
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        for name, arr in exact.items():
            chunks = None if name == "x" else tuple(max(1, s // 2) for s in arr.shape)
            f.create_dataset(name, data=arr, chunks=chunks)
        f.create_dataset("enum", data=cat, chunks=(20, 30), dtype=h5py.enum_dtype({"a": 0}, "u1"))
        exact["enum"] = cat
        f["x"].make_scale("x")
        f["y"].make_scale("y")
        f["x"].attrs["bounds"] = "x_bnds"
        for name in ("data", "g/data"):
            d = f.create_dataset(name, data=data, chunks=(20, 30))
            d.dims[0].attach_scale(f["y"])
            d.dims[1].attach_scale(f["x"])
            d.attrs["coordinates"] = "lat2d"  # g/data: found in the parent group, as CF says
        f["flags"].attrs["flag_values"] = np.arange(7, dtype="u1")
        f["masks"].attrs["flag_masks"] = np.array([1, 2, 4], dtype="u1")
        f["meanings"].attrs["flag_meanings"] = "a b c d e f g"
        f["land"].attrs["standard_name"] = "land_binary_mask"
        f["region"].attrs["standard_name"] = "region"
        f["status"].attrs["standard_name"] = "air_temperature status_flag"
        f["rowsize"].attrs["sample_dimension"] = "obs"
        f["g"].create_dataset("mesh", data=0).attrs["face_node_connectivity"] = "conn"
        f["g/ens"].attrs["standard_name"] = "realization"
    lines: list[str] = []
    options = ConvertOptions(
        codec=CodecChoice(itrunc_max_error=3), auto=auto, contiguous=True, nthreads=2
    )
    rep = convert(src, out, options=options, log=lines.append)
    actions = {d.path: (d.action, d.codec) for d in rep.datasets}
    with h5py.File(out) as f:
        for name, arr in exact.items():
            np.testing.assert_array_equal(f[name][()], arr, err_msg=name)
            assert actions["/" + name][0] == "converted" and "itrunc" not in actions["/" + name][1]
        for name in ("data", "g/data"):
            err = data.astype(int) - f[name][()]
            assert err.min() == 0 and err.max() == 3, (name, lines)  # the data is truncated
            assert [s.name for s in f[name].dims[1].values()] == ["/x"]
    said = "\n".join(lines)
    for name, why in {
        "x": "dimension scale (a coordinate variable)",
        "y": "dimension scale (a coordinate variable)",
        "x_bnds": "named by the bounds attribute of /x",
        "lat2d": "named by the coordinates attribute of /data",
        "flags": "CF flag variable (flag_values attribute)",
        "masks": "CF flag variable (flag_masks attribute)",
        "meanings": "CF flag variable (flag_meanings attribute)",
        "land": "categorical CF standard_name 'land_binary_mask'",
        "region": "categorical CF standard_name 'region'",
        "status": "categorical CF standard_name 'air_temperature status_flag'",
        "rowsize": "CF count, index or identifier variable (sample_dimension attribute)",
        "g/conn": "named by the face_node_connectivity attribute of /g/mesh",
        "g/ens": "categorical CF standard_name 'realization'",
        "enum": "enumerated type (categories)",
    }.items():
        assert f"/{name}: {why}: stored lossless (itrunc not applied)" in said, (name, said)


def test_itrunc_keeps_items_on_their_side_of_the_valid_range(tmp_path: Path) -> None:
    """Truncation floors items to the bottom of their bin of ``2**k`` values: valid_min 5 with
    k 2 turned 5..7 into 4 (then masked by CF readers), and an invalid 1002 (valid_max 1001)
    into a valid 1000. The bin of each bound inside the dtype's range goes to ``keep``, so no
    item crosses a bound; a fractional bound is rounded inwards; a bound at the end of the
    dtype (``_Unsigned`` counted) needs nothing."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(12)
    i2 = rng.integers(-20, 1100, (80, 60), dtype="i2")
    i2[0, :30] = np.arange(-10, 20)
    i2[1, :30] = np.arange(990, 1020)
    u = rng.integers(0, 65536, (80, 60), dtype="u2").view("i2")  # _Unsigned int16 words
    u[0, :20] = np.arange(65516, 65536).astype("u2").view("i2")
    cases = {  # name: (data, attributes, valid (lo, hi) in the compared values, keep)
        "minmax": (
            i2,
            {"valid_min": np.int16(5), "valid_max": np.int16(1001)},
            (5, 1001),
            [0, 4, 1000],
        ),
        "range": (i2, {"valid_range": np.array([5, 1001], "i2")}, (5, 1001), [4, 1000]),
        "fraction": (i2, {"valid_min": 4.5, "valid_max": 1001.7}, (5, 1001), [4, 1000]),
        "unsigned": (
            u,
            {
                "_Unsigned": "true",
                "_FillValue": np.int16(-1),
                "valid_range": np.array([0, -6], "i2"),
            },
            (0, 65530),
            [-8, -1],
        ),
    }
    cases["minmax"][1]["_FillValue"] = np.int16(0)
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        for name, (arr, attrs, _, _) in cases.items():
            f.create_dataset(name, data=arr, chunks=(40, 60)).attrs.update(attrs)
    lines: list[str] = []
    rep = convert(
        src, out, options=ConvertOptions(codec=CodecChoice(itrunc_max_error=3)), log=lines.append
    )
    codecs = {d.path: d.codec for d in rep.datasets}
    with h5py.File(out) as f:
        for name, (arr, attrs, (lo, hi), keep) in cases.items():
            got = f[name][()]
            a, b = arr.astype(int), got.astype(int)
            if "_Unsigned" in attrs:
                a, b = arr.view("u2").astype(int), got.view("u2").astype(int)
            assert codecs[f"/{name}"].startswith(f"itrunc(max_error=3, keep={keep})"), codecs
            np.testing.assert_array_equal((b >= lo) & (b <= hi), (a >= lo) & (a <= hi), name)
            assert (a - b).min() >= 0 and (a - b).max() <= 3 and (a != b).any()
    said = "\n".join(lines)
    assert (
        "/range: itrunc stores the missing-data markers exactly: valid_range minimum 5 (its "
        "truncation bin, from 4, exact)" in said
    ), said


@requires_xarray
def test_itrunc_corpus_goes16_flags_and_coordinates(corpus: Path, tmp_path: Path) -> None:
    """GOES-16 cloud-top height with --itrunc-max-error 3 --contiguous: the DQF flags (0..6) and
    the x/y dimension scales were truncated (335 pixels "invalid_due_to_LZA..." (2) read "good"
    (0); x had 125 distinct values of 500). They stay exact; HT keeps its valid range."""
    import xarray as xr

    from b2store.convert import CodecChoice, ConvertOptions, convert

    src, out = corpus / "goes16_cloud_top_height.nc", tmp_path / "out.nc"
    opts = ConvertOptions(codec=CodecChoice(itrunc_max_error=3), contiguous=True, nthreads=2)
    rep = convert(src, out, options=opts)
    codecs = {d.path: d.codec for d in rep.datasets}
    assert codecs["/HT"].startswith("itrunc(max_error=3, keep=[-8, -1])"), codecs
    assert not any("itrunc" in codecs[p] for p in ("/DQF", "/x", "/y")), codecs
    with (
        xr.open_dataset(src, engine="h5netcdf") as x0,
        xr.open_dataset(out, engine="h5netcdf") as x1,
    ):
        for name in ("DQF", "x", "y"):
            np.testing.assert_array_equal(x1[name].values, x0[name].values)
        assert x1.indexes["x"].is_unique and x1.indexes["y"].is_unique
        dqf = x1["DQF"].values
        assert dict(zip(*np.unique(dqf[~np.isnan(dqf)], return_counts=True), strict=True)) == {
            0: 92568,
            2: 335,
            4: 57095,
            6: 2,
        }


def _nexus_like(path: Path) -> dict[str, np.ndarray]:
    """A small NeXus-like tomography file: projections beside an NXdetector's categorical
    fields (image_key 0/1/2, a pixel_mask of bits, a scan_finished status, *_flag/*_key)."""
    import h5py

    rng = np.random.default_rng(21)
    y, x = np.mgrid[:64, :64]
    img = (20000 + 5000 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype("u2")
    key = np.repeat(np.array([2, 1, 0, 1], dtype="i4"), 1500)  # dark, flat, projections, flat
    fields = {
        "entry/instrument/detector/data": np.stack(
            [img + rng.integers(0, 40, img.shape).astype("u2") for _ in range(4)]
        ),
        "entry/instrument/detector/image_key": key,
        "entry/data/image_key": key.astype("u1"),
        "entry/instrument/detector/pixel_mask": rng.integers(0, 1 << 16, (64, 64), dtype="u2"),
        "entry/instrument/detector/frame_flag": rng.integers(0, 300, 5000, dtype="i2"),
        "entry/instrument/detector/sequence_key": rng.integers(0, 300, 5000, dtype="u2"),
        "entry/diamond_scan/scan_finished": np.array([1], dtype="i4"),
    }
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        for name, arr in fields.items():
            f.create_dataset(name, data=arr, chunks=arr.shape if arr.size > 1 else None)
        f["entry"].attrs["NX_class"] = "NXentry"
        f["entry/instrument/detector"].attrs["NX_class"] = "NXdetector"
    return fields


@pytest.mark.parametrize(
    "lossy",
    [
        {"itrunc_max_error": 3},
        pytest.param({"j2k_ratio": 8.0}, marks=requires_j2k),
    ],
    ids=["itrunc", "j2k"],
)
def test_lossy_leaves_nexus_categorical_fields_exact(tmp_path: Path, lossy: dict) -> None:
    """NeXus categorical fields (image_key: 0 projection, 1 flat, 2 dark) became all 0 under
    --itrunc-max-error 3, and a scan_finished of 1 became 0; a detector's pixel_mask bits were
    cleared. Such fields, by name (image_key, *_key, *_mask, *_flag, scan_finished), are stored
    lossless with a line naming why; the projections are still coded lossy."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    src, out = tmp_path / "in.nxs", tmp_path / "out.nxs"
    fields = _nexus_like(src)
    lines: list[str] = []
    opts = ConvertOptions(codec=CodecChoice(**lossy), contiguous=True, nthreads=2)
    rep = convert(src, out, options=opts, log=lines.append)
    codecs = {d.path: d.codec for d in rep.datasets}
    lossy_name = "itrunc" if "itrunc_max_error" in lossy else "j2k"
    assert codecs["/entry/instrument/detector/data"].startswith(lossy_name), codecs
    said = "\n".join(lines)
    with h5py.File(out) as f:
        for name, arr in fields.items():
            if name.endswith("/data"):
                continue
            np.testing.assert_array_equal(f[name][()], arr, err_msg=name)
            assert lossy_name not in codecs["/" + name], (name, codecs)
            if name != "entry/diamond_scan/scan_finished":  # 1 item: tiny too
                leaf = name.rpartition("/")[2]
                assert f"/{name}: categorical field by name ({leaf!r}" in said, (name, said)
    assert "/entry/diamond_scan/scan_finished: categorical field by name" in said, said


def test_itrunc_leaves_tiny_datasets_exact(tmp_path: Path) -> None:
    """A dataset of fewer items than 4096 (or than one --blocks block) has nothing to gain from
    truncation and everything to lose (a status scalar of 1 became 0): stored lossless, with a
    line; a larger one beside it is truncated."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(22)
    small = rng.integers(-3000, 3000, 4095, dtype="i2")
    big = (1000 * np.sin(np.arange(6000) / 50.0)).astype("i2") + rng.integers(
        0, 16, 6000, dtype="i2"
    )
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("small", data=small, chunks=(1000,))
        f.create_dataset("big", data=big, chunks=(3000,))
        f.create_dataset("one", data=np.array([1], "i4"), chunks=(1,))
    for blocks, tiny in (((1000,), ["small", "one"]), ((8192,), ["small", "one", "big"])):
        out = tmp_path / f"out{blocks[0]}.h5"
        lines: list[str] = []
        opts = ConvertOptions(codec=CodecChoice(itrunc_max_error=3, blocks=blocks))
        rep = convert(src, out, options=opts, log=lines.append)
        codecs = {d.path: d.codec for d in rep.datasets}
        said = "\n".join(lines)
        with h5py.File(out) as f:
            for name, arr in (("small", small), ("big", big), ("one", np.array([1]))):
                if name in tiny:
                    np.testing.assert_array_equal(f[name][()], arr, err_msg=name)
                    assert "itrunc" not in codecs["/" + name], codecs
                    limit = max(4096, blocks[0])
                    assert (
                        f"/{name}: {arr.size} items, fewer than {limit} (nothing to gain): "
                        "stored lossless (itrunc not applied)"
                    ) in said, said
                else:
                    _assert_truncated_keeping(f[name][()], arr, [], 3)


@pytest.mark.parametrize("auto", [False, True])
def test_itrunc_leaves_few_valued_integer_data_exact(
    tmp_path: Path, auto: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An integer dataset of at most 16 distinct values (counted exactly, or in a sample of
    chunks for a large one) that truncation would merge is most likely categorical (classes
    0..3 and 5 all became 0 or 4): stored lossless with a line; values truncation keeps apart
    (0, 8, 16, 24 with max error 3) and many-valued data are still truncated."""
    import h5py

    import b2store.convert._exact as exact_rules
    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(23)
    classes = rng.choice(np.array([0, 1, 2, 3, 5], "u1"), (80, 60))
    steps = rng.choice(np.array([0, 8, 16, 24], "i2"), (80, 60))
    signed = rng.choice(np.array([-1, 0, 1], "i4"), (80, 60))
    yy, xx = np.mgrid[:80, :60]  # smooth: compressible, so Blosc2 never stores it raw
    data = (1500 + 1000 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype("i2")
    data += rng.integers(0, 16, data.shape, dtype="i2")
    large = rng.choice(np.array([10, 11, 40], "u2"), (200, 100))
    monkeypatch.setattr(exact_rules, "_FEW_VALUES_EXACT", 10_000)  # 'large' is counted in a sample
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        for name, arr in (("classes", classes), ("steps", steps), ("signed", signed)):
            f.create_dataset(name, data=arr, chunks=(40, 30))
        f.create_dataset("data", data=data, chunks=(40, 30))
        f.create_dataset("large", data=large, chunks=(10, 50))
    lines: list[str] = []
    opts = ConvertOptions(codec=CodecChoice(itrunc_max_error=3), auto=auto, nthreads=2)
    rep = convert(src, out, options=opts, log=lines.append)
    codecs = {d.path: d.codec for d in rep.datasets}
    said = "\n".join(lines)
    with h5py.File(out) as f:
        for name, arr in (("classes", classes), ("signed", signed), ("large", large)):
            np.testing.assert_array_equal(f[name][()], arr, err_msg=name)
            assert "itrunc" not in codecs["/" + name], codecs
        np.testing.assert_array_equal(f["steps"][()], steps)  # truncated, but nothing merges
        assert codecs["/steps"].startswith("itrunc(max_error=3)"), codecs
        _assert_truncated_keeping(f["data"][()], data, [], 3)
    for name, what in {
        "classes": "only 5 distinct values in all (0, 1, 2, 3, 5)",
        "signed": "only 3 distinct values in all (-1, 0, 1)",
        "large": "only 3 distinct values in a sample of its chunks (10, 11, 40)",
    }.items():
        assert (
            f"/{name}: {what}, which truncation would merge: most likely categories: stored "
            "lossless (itrunc not applied)"
        ) in said, (name, said)


@requires_j2k
def test_j2k_leaves_few_valued_images_exact(tmp_path: Path) -> None:
    """JPEG 2000 keeps no value exact: a uint16 label image (3 values) would come back with
    values between the labels. At most 16 distinct values: stored lossless, with a line."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(24)
    labels = rng.choice(np.array([0, 1000, 2000], "u2"), (2, 64, 64))
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("labels", data=labels, chunks=(1, 64, 64))
    lines: list[str] = []
    convert(src, out, options=ConvertOptions(codec=CodecChoice(j2k_ratio=8.0)), log=lines.append)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["labels"][()], labels)
    assert any(
        m.startswith("/labels: only 3 distinct values in all (0, 1000, 2000)")
        and m.endswith("(JPEG 2000 not applied)")
        for m in lines
    ), lines


def test_itrunc_corpus_nexus_image_key(corpus: Path, tmp_path: Path) -> None:
    """The Diamond k11 NeXus tomography file with --itrunc-max-error 3 --contiguous: both
    image_key datasets (3001 projections, 100 flats, 100 darks: 0/1/2) became all 0 and
    scan_finished went 1 -> 0. They stay exact, stored lossless with a line."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    src, out = corpus / "httomo_k11-18014" / "k11-18014.nxs", tmp_path / "out.nxs"
    lines: list[str] = []
    opts = ConvertOptions(codec=CodecChoice(itrunc_max_error=3), contiguous=True, nthreads=2)
    rep = convert(src, out, options=opts, log=lines.append)
    codecs = {d.path: d.codec for d in rep.datasets}
    names = [
        "entry/instrument/imaging/image_key",
        "entry/instrument/EtherCAT/image_key",
        "entry/diamond_scan/scan_finished",
    ]
    with h5py.File(src) as a, h5py.File(out) as b:
        for name in names:
            np.testing.assert_array_equal(b[name][()], a[name][()], err_msg=name)
            assert "itrunc" not in codecs["/" + name], codecs
            assert f"/{name}: categorical field by name" in "\n".join(lines), name
        keys, counts = np.unique(b[names[0]][()], return_counts=True)
    assert dict(zip(keys.tolist(), counts.tolist(), strict=True)) == {0: 3001, 1: 100, 2: 100}


@requires_j2k
def test_j2k_leaves_datasets_with_missing_data_markers_lossless(tmp_path: Path) -> None:
    """JPEG 2000 keeps no value exact: with a _FillValue of 0 it turned real values into the
    marker (read as missing), and moved values across a valid range. Such datasets are stored
    lossless with a message; an image without markers is still coded."""
    import h5py

    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(13)
    y, x = np.mgrid[:64, :64]
    img = (200 + 150 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype("u2")
    img = np.stack([img + rng.integers(0, 40, img.shape).astype("u2") for _ in range(2)])
    img[:, :8] = 0
    attrs = {
        "plain": {},
        "fill0": {"_FillValue": np.uint16(0)},
        "valid": {"valid_range": np.array([1, 4000], "u2")},
        "full_range": {"valid_range": np.array([0, 65535], "u2")},
        "flags": {"flag_values": np.array([0, 1], "u2")},
    }
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        for name, a in attrs.items():
            f.create_dataset(name, data=img, chunks=(1, 64, 64)).attrs.update(a)
    said: list[str] = []
    rep = convert(
        src, out, options=ConvertOptions(codec=CodecChoice(j2k_ratio=8.0)), log=said.append
    )
    codecs = {d.path: d.codec for d in rep.datasets}
    with h5py.File(out) as f:
        for name in ("fill0", "valid", "flags"):
            np.testing.assert_array_equal(f[name][()], img, name)
            assert not codecs[f"/{name}"].startswith("j2k"), codecs
    assert codecs["/plain"].startswith("j2k") and codecs["/full_range"].startswith("j2k")
    text = "\n".join(said)
    assert "/fill0: _FillValue attribute 0: JPEG 2000 can move real values onto" in text, text
    assert "/valid: valid_range minimum 1, valid_range maximum 4000: JPEG 2000" in text, text
    assert (
        "/flags: CF flag variable (flag_values attribute): stored lossless (JPEG 2000 not applied)"
        in text
    )


def test_interrupted_run_leaves_no_file(sample: Path, tmp_path: Path) -> None:
    from b2store.convert import convert

    out = tmp_path / "out.h5"
    out.write_bytes(b"previous content")

    def boom(path: str, n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(sample, out, on_chunk=boom)
    assert out.read_bytes() == b"previous content"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "sample.h5"]  # no temp left


def test_auto_tuner_scores(tmp_path: Path) -> None:
    from b2store.convert import tune

    rng = np.random.default_rng(0)
    smooth = (np.add.outer(np.arange(64), np.arange(256)) * 3).astype("u2")[None].repeat(4, 0)
    noisy = smooth + rng.integers(0, 8, smooth.shape, dtype="u2")
    best_ratio = tune([noisy], tradeoff=1.0)
    best_speed = tune([noisy], tradeoff=0.0)
    ratios = {label: r for label, r, _t, _s in best_ratio.table}
    assert best_ratio.ratio == pytest.approx(max(ratios.values()))
    assert len(best_ratio.table) >= 5
    assert best_speed.seconds <= min(t for _l, _r, t, _s in best_speed.table) * 1.0001


def test_auto_end_to_end(sample: Path, tmp_path: Path) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    from b2store.convert import ConvertOptions, convert

    msgs: list[str] = []
    out = tmp_path / "out.h5"
    rep = convert(sample, out, options=ConvertOptions(auto=True, tradeoff=0.7), log=msgs.append)
    assert any("--auto chose" in m and "/entry/data/data" in m for m in msgs)
    assert next(d for d in rep.datasets if d.path == "/entry/data/data").codec
    with h5py.File(sample) as a, h5py.File(out) as b:
        np.testing.assert_array_equal(a["entry/data/data"][()], b["entry/data/data"][()])


@requires_j2k
def test_j2k_ratio(tmp_path: Path) -> None:
    import h5py
    import hdf5plugin

    from b2store.codecs.grok import Grok
    from b2store.convert import CodecChoice, ConvertOptions, convert

    y, x = np.mgrid[:128, :128]
    rng = np.random.default_rng(3)
    img = (20000 + 5000 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype("u2")
    data = np.stack([img + rng.integers(0, 40, img.shape).astype("u2") for _ in range(4)])
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=data, chunks=(2, 128, 128), **hdf5plugin.Blosc2())
    convert(src, out, options=ConvertOptions(codec=CodecChoice(j2k_ratio=8.0)))
    with h5py.File(out) as f:
        d = f["d"]
        _m, raw = d.id.read_direct_chunk((0, 0, 0))
        got = Grok().decode(raw).view("u2").reshape(d.chunks)
        stored = d.id.get_storage_size()
    err = np.abs(got.astype(np.int64) - data[:2])
    assert 0 < err.max() < 2000
    assert data.nbytes / stored > 5


@requires_j2k
def test_j2k_skips_datasets_it_cannot_code(tmp_path: Path) -> None:
    """A NeXus-like file holds angles (1-D floats) and signed images beside the projections:
    JPEG 2000 codes the projections, the others are stored lossless (the run does not fail).
    The b2store_grok codec's own checks decide, so big-endian uint16 images (which it refuses
    to encode: the run failed on them) are stored lossless too, each with the codec's reason."""
    import h5py
    import hdf5plugin

    from b2store.codecs.grok import Grok
    from b2store.convert import CodecChoice, ConvertOptions, convert

    rng = np.random.default_rng(5)
    y, x = np.mgrid[:64, :64]
    img = (20000 + 5000 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype("u2")
    proj = np.stack([img + rng.integers(0, 40, img.shape).astype("u2") for _ in range(4)])
    others = {
        "angles": np.linspace(0, 180, 5000, dtype="f8"),
        "signed": rng.integers(-300, 300, (4, 64, 64)).astype("i2"),
        "narrow": rng.integers(0, 4000, (640, 8)).astype("u2"),
        "big_endian": proj.astype(">u2"),
    }
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("proj", data=proj, chunks=(2, 64, 64), **hdf5plugin.Blosc2())
        for name, arr in others.items():
            f.create_dataset(name, data=arr, chunks=True, **hdf5plugin.Blosc2())
    said: list[str] = []
    convert(src, out, options=ConvertOptions(codec=CodecChoice(j2k_ratio=8.0)), log=said.append)
    with h5py.File(out) as f:
        for name, arr in others.items():
            np.testing.assert_array_equal(f[name][()], arr)
        _m, raw = f["proj"].id.read_direct_chunk((0, 0, 0))
        got = Grok().decode(raw).view("u2").reshape(2, 64, 64)
    assert 0 < np.abs(got.astype(np.int64) - proj[:2]).max() < 2000
    skipped = [m for m in said if "JPEG 2000 not applied" in m]
    assert len(skipped) == 4, said
    reasons = {m.split(":")[0]: m for m in skipped}
    assert "float64" in reasons["/angles"]
    assert "signed dtype int16" in reasons["/signed"]
    assert "x 8" in reasons["/narrow"] and "16 x 16" in reasons["/narrow"]
    assert "big-endian" in reasons["/big_endian"]
    assert not any(m.startswith("/proj:") for m in skipped)


def test_bad_options() -> None:
    from b2store.convert import CodecChoice, ConvertError, ConvertOptions

    with pytest.raises(ConvertError, match=r"inclusive range \(0, 9\)\. Got 17 instead"):
        CodecChoice(clevel=17)
    with pytest.raises(ConvertError, match="codec name"):
        CodecChoice(cname="snappy")
    with pytest.raises(ConvertError, match="at most one"):
        CodecChoice(itrunc_max_error=3, j2k_ratio=4)
    with pytest.raises(ConvertError, match="tradeoff"):
        ConvertOptions(tradeoff=1.5)
    with pytest.raises(ValueError):
        CodecChoice(filters=("zigzag",))


def test_option_checks_reuse_the_codecs(tmp_path: Path) -> None:
    """The option checks are the codecs' own: integers through parse_int_range (a wrong type is
    a ConvertError too), codec names, the filter limit and the rank limit of b2store_b2nd."""
    from b2store import convert as conv
    from b2store.codecs import b2nd
    from b2store.codecs._common import CNAMES, MAX_BLOSC2_FILTERS
    from b2store.convert import (
        B2ND_MAX_DIM,
        MAX_FILTERS,
        CodecChoice,
        ConvertError,
        ConvertOptions,
    )
    from b2store.errors import CodecError

    assert list(conv.CNAMES) == list(CNAMES)
    assert MAX_FILTERS == MAX_BLOSC2_FILTERS
    for cname in CNAMES:
        assert CodecChoice(cname=cname).cname == cname
    with pytest.raises(ConvertError, match=r"^clevel: Expected an integer\. Got '5' instead\.$"):
        CodecChoice(clevel="5")  # type: ignore[arg-type]
    with pytest.raises(ConvertError, match=r"^clevel: Expected an integer\. Got True instead"):
        CodecChoice(clevel=True)
    with pytest.raises(ConvertError, match=r"^nthreads: .*range \(1, 256\)\. Got 0 instead\.$"):
        ConvertOptions(nthreads=0)
    with pytest.raises(ConvertError, match="Expected at most 2 filters"):
        CodecChoice(filters=("shuffle", "delta", "bytedelta"))
    # the rank b2store_b2nd encodes: convert copies datasets of more dimensions as they are
    codec = b2nd.B2nd()
    codec.encode(np.zeros((1,) * B2ND_MAX_DIM, dtype="u1"))
    with pytest.raises(CodecError, match="dimensions"):
        codec.encode(np.zeros((1,) * (B2ND_MAX_DIM + 1), dtype="u1"))


def test_same_file_refused(sample: Path) -> None:
    from b2store.convert import ConvertError, convert

    with pytest.raises(ConvertError, match="input file"):
        convert(sample, sample)


def test_raw_fast_path_and_hdf5_fallback(tmp_path: Path) -> None:
    """Chunks b2store can decode are read raw (masks included); others go through HDF5."""
    import h5py
    import hdf5plugin

    from b2store.convert import convert

    rng = np.random.default_rng(5)
    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        noise = rng.integers(0, 2**32, (64, 64), dtype="u4")
        noise[:32, :32] = 7  # one compressible chunk, three stored raw with filter mask 1
        f.create_dataset("lzf", data=noise, chunks=(32, 32), compression="lzf")
        f.create_dataset("be", data=np.arange(500, dtype=">i4"), chunks=(64,), shuffle=True,
                         compression="gzip")  # fmt: skip
        f.create_dataset("b2", data=rng.normal(size=(4, 50, 70)), chunks=(2, 25, 70),
                         **hdf5plugin.Blosc2(cname="lz4"))  # fmt: skip
        f.create_dataset("so", data=np.arange(300, dtype="i4"), chunks=(50,), scaleoffset=0)
    with h5py.File(src) as f:
        masks: list[int] = []
        f["lzf"].id.chunk_iter(lambda i: masks.append(i.filter_mask))
    assert sorted(set(masks)) == [0, 1]
    rep = {d.path: d for d in convert(src, out).datasets}
    for name in ("/lzf", "/be", "/b2"):
        assert "decoded from raw bytes" in rep[name].note, rep[name]
    assert "raw bytes" not in rep["/so"].note  # scaleoffset: read through HDF5
    with h5py.File(src) as a, h5py.File(out) as b:
        for k in ("lzf", "be", "b2", "so"):
            np.testing.assert_array_equal(a[k][()], b[k][()])
            assert b[k].dtype == a[k].dtype


def test_links_are_kept(tmp_path: Path) -> None:
    import h5py

    from b2store.convert import convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("g/d", data=np.arange(100), chunks=(10,))
        f["hard"] = d
        f["soft"] = h5py.SoftLink("/g/d")
        f["ext"] = h5py.ExternalLink("other.h5", "/x")
        f["g/sub/dangling"] = h5py.SoftLink("/nope")
    convert(src, out)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["hard"][()], np.arange(100))
        np.testing.assert_array_equal(f["soft"][()], np.arange(100))
        assert f["hard"].id == f["g/d"].id  # still one object
        assert f.get("soft", getlink=True).path == "/g/d"
        ext = f.get("ext", getlink=True)
        assert (ext.filename, ext.path) == ("other.h5", "/x")
        assert f.get("g/sub/dangling", getlink=True).path == "/nope"


def test_dtypes(tmp_path: Path) -> None:
    """Numeric dtypes (bool, complex, big-endian) are converted; compound and strings copied."""
    import h5py

    from b2store.convert import convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    cmp = np.array([(i, i * 1.5) for i in range(100)], dtype=[("a", "<i2"), ("b", "<f8")])
    with h5py.File(src, "w") as f:
        f.create_dataset("cmp", data=cmp, chunks=(30,))
        f.create_dataset("bool", data=np.arange(100) % 3 == 0, chunks=(30,))
        f.create_dataset("complex", data=np.arange(100) * (1 + 2j), chunks=(30,))
        f.create_dataset("str", data=np.array([b"abc", b"de"] * 50), chunks=(30,))
        f.create_dataset("be", data=np.arange(100, dtype=">f8").reshape(10, 10), chunks=(5, 5))
    rep = {d.path: d.action for d in convert(src, out).datasets}
    assert rep == {
        "/be": "converted", "/bool": "converted", "/complex": "converted",
        "/cmp": "copied", "/str": "copied",
    }  # fmt: skip
    with h5py.File(src) as a, h5py.File(out) as b:
        for k in a:
            assert b[k].dtype == a[k].dtype
            np.testing.assert_array_equal(a[k][()], b[k][()])


def test_auto_skips_constant_chunks(tmp_path: Path) -> None:
    """The tuner samples chunks with content, not the all-zero edges of sparse data."""
    from b2store.convert import ConvertOptions, convert
    from b2store.demo import SIZES, write_tomography

    src = tmp_path / "tomo.h5"
    write_tomography(src, SIZES["small"], progress=False)
    msgs: list[str] = []
    convert(
        src, tmp_path / "o.h5", options=ConvertOptions(auto=True, tradeoff=1.0), log=msgs.append
    )
    (line,) = [m for m in msgs if "--auto chose" in m]
    ratio = float(line.split("sample ratio ")[1].split(",")[0])
    assert ratio < 50, line  # an all-zero sample compresses thousands of times


def test_pytables_style_class_attribute_kept(tmp_path: Path) -> None:
    import h5py

    from b2store.convert import convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("arr", data=np.arange(40).reshape(4, 10), chunks=(2, 10))
        d.attrs["CLASS"] = np.bytes_(b"CARRAY")
        d.attrs["TITLE"] = np.bytes_(b"")
        d.attrs["NAME"] = np.bytes_(b"not a scale")
    convert(src, out)
    with h5py.File(out) as f:
        assert f["arr"].attrs["CLASS"] == b"CARRAY" and f["arr"].attrs["NAME"] == b"not a scale"
        assert "TITLE" in f["arr"].attrs


def test_netcdf4_stays_netcdf4(tmp_path: Path) -> None:
    """A netCDF-4 file converts to an identical Dataset (h5netcdf) that b2h5 also reads."""
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    from b2store.convert import ConvertOptions, convert

    ds = xr.Dataset(
        {"t": (("time", "y", "x"), np.random.default_rng(0).normal(size=(5, 30, 40)).astype("f4"))},
        coords={"time": np.arange(5), "y": np.linspace(0, 1, 30), "x": np.arange(40.0)},
        attrs={"title": "nc"},
    )
    ds["t"].attrs["units"] = "K"
    src, out = tmp_path / "in.nc", tmp_path / "out.nc"
    ds.to_netcdf(src, engine="h5netcdf", encoding={"t": {"chunksizes": (1, 30, 40)}})
    convert(src, out, options=ConvertOptions(contiguous=True))
    a = xr.open_dataset(src, engine="h5netcdf")
    b = xr.open_dataset(out, engine="h5netcdf")
    xr.testing.assert_identical(a, b)
    c = xr.open_zarr(f"b2h5::{out}")
    xr.testing.assert_equal(a.load(), c.load())


@requires_h5py
@requires_hdf5plugin
def test_variable_length_and_reference_datasets(tmp_path: Path) -> None:
    """Variable-length data is copied by value (HDF5's object copy left a netCDF-4 string
    variable's fill value behind: nothing could open the output); references are copied but
    cannot be rewritten, and the report says so."""
    netCDF4 = pytest.importorskip("netCDF4")
    xr = pytest.importorskip("xarray")
    import h5py

    from b2store.convert import ConvertOptions, convert

    src, out = tmp_path / "in.nc", tmp_path / "out.nc"
    with netCDF4.Dataset(src, "w") as nc:
        nc.createDimension("n", 3)
        v = nc.createVariable("names", str, ("n",))
        v[:] = np.array(["a", "bb", "ccc"], dtype=object)
        nc.createVariable("t", "f4", ("n",))[:] = [1.0, 2.0, 3.0]
    convert(src, out, options=ConvertOptions())
    xr.testing.assert_identical(
        xr.open_dataset(src, engine="h5netcdf").load(), xr.open_dataset(out, engine="h5netcdf")
    )
    src, out = tmp_path / "refs.h5", tmp_path / "refs_out.h5"
    vint = h5py.vlen_dtype(np.int32)
    with h5py.File(src, "w") as f:
        a = f.create_dataset("a", data=np.arange(10), chunks=(5,))
        f.create_dataset("r", shape=(1,), dtype=h5py.ref_dtype)[0] = a.ref
        c = f.create_dataset("c", shape=(1,), dtype=np.dtype([("i", "i4"), ("r", h5py.ref_dtype)]))
        c[0] = (1, a.ref)
        v = f.create_dataset("v", shape=(2,), dtype=vint)  # equal lengths: read back as 2-D
        v[0], v[1] = np.array([1, 2], "i4"), np.array([3, 4], "i4")
        f.create_dataset("u", shape=(2,), dtype=vint)  # never written
    report = convert(src, out, options=ConvertOptions())
    notes = {d.path: d.note for d in report.datasets}
    assert "references are not rewritten" in notes["/r"]
    assert "references are not rewritten" in notes["/c"]  # not copied by value (raw addresses)
    with h5py.File(out) as f:
        assert [list(x) for x in f["v"][()]] == [[1, 2], [3, 4]]
        assert [len(x) for x in f["u"][()]] == [0, 0]


@requires_h5py
@requires_hdf5plugin
def test_rechunked_negative_zero_is_kept(tmp_path: Path) -> None:
    """Chunks equal to the fill value are left unallocated: compared by bytes, so a chunk of
    -0.0 under a 0.0 fill is written (was: read back as +0.0)."""
    import h5py

    from b2store.convert import ConvertOptions, convert

    src, out = tmp_path / "in.h5", tmp_path / "out.h5"
    data = np.array([-0.0] * 8 + [1.0] * 8)
    with h5py.File(src, "w") as f:
        f.create_dataset("z", data=data, chunks=(8,), compression="gzip")
    convert(src, out, options=ConvertOptions(chunks=(4,)))
    with h5py.File(out) as f:
        assert f["z"][()].tobytes() == data.tobytes()


# -- what a convert keeps ------------------------------------------------------------------------


def _convert(src: Path, dst: Path, **kw: object) -> tuple[object, list[str]]:
    """Run :func:`b2store.convert.convert` and return its report and log lines."""
    from b2store.convert import ConvertOptions, convert

    lines: list[str] = []
    report = convert(src, dst, options=ConvertOptions(nthreads=1, **kw), log=lines.append)  # type: ignore[arg-type]
    return report, lines


def test_convert_copies_datasets_of_more_than_8_dimensions(tmp_path: Path) -> None:
    """HDF5 allows 32 dimensions, b2nd 8: a 9-D dataset made the whole convert fail
    ("b2nd supports at most 8 dimensions, got 9"); it is now copied as it is."""
    import h5py
    import hdf5plugin  # noqa: F401

    src, dst = tmp_path / "nine.h5", tmp_path / "nine_out.h5"
    shape = (2, 3, 2, 3, 2, 2, 3, 2, 5)
    data = np.arange(np.prod(shape), dtype="i4").reshape(shape)
    with h5py.File(src, "w") as f:
        f.create_dataset("nine", data=data, chunks=(1, 2, 2, 2, 1, 2, 2, 1, 3), fillvalue=-1)
        f.create_dataset("two", data=np.arange(20.0).reshape(4, 5), chunks=(2, 5))
    report, _ = _convert(src, dst)
    actions = {d.path: (d.action, d.note) for d in report.datasets}  # type: ignore[attr-defined]
    assert actions["/nine"][0] == "copied" and "9 dimensions" in actions["/nine"][1]
    assert actions["/two"][0] == "converted"
    with h5py.File(dst) as f:
        np.testing.assert_array_equal(f["nine"][()], data)
        assert f["nine"].fillvalue == -1
        np.testing.assert_array_equal(f["two"][()], np.arange(20.0).reshape(4, 5))


def test_convert_keeps_committed_datatypes(tmp_path: Path) -> None:
    """Named (committed) datatypes were left out ("hard link … which was not copied"): netCDF-4
    user types then read back as ``_AnonymousCompound1`` / ``_AnonymousEnum1``."""
    import h5py

    src, dst = tmp_path / "types.h5", tmp_path / "types_out.h5"
    pair = np.dtype([("a", "<i4"), ("b", "<f8")])
    with h5py.File(src, "w") as f:
        f["pair_t"] = pair
        f["pair_t"].attrs["doc"] = "a pair"
        g = f.create_group("g")
        g["enum_t"] = h5py.enum_dtype({"clear": 0, "cloudy": 1}, basetype="u1")
        f.create_dataset("pairs", data=np.zeros(3, pair))
    _, lines = _convert(src, dst)
    assert not [line for line in lines if "not copied" in line]
    with h5py.File(dst) as f:
        assert isinstance(f.get("pair_t"), h5py.Datatype)
        assert f["pair_t"].dtype == pair and f["pair_t"].attrs["doc"] == "a pair"
        assert h5py.check_enum_dtype(f["g/enum_t"].dtype) == {"clear": 0, "cloudy": 1}


@pytest.mark.skipif(not has("netCDF4"), reason="needs netCDF4")
def test_convert_keeps_netcdf_type_names_and_variable_order(tmp_path: Path) -> None:
    """netCDF-4 variables, user types and attributes keep their names and creation order (the
    output listed variables alphabetically, and its types were anonymous)."""
    import netCDF4

    src, dst = tmp_path / "in.nc", tmp_path / "out.nc"
    with netCDF4.Dataset(src, "w") as nc:
        nc.createDimension("n", 3)
        ctype = nc.createCompoundType(np.dtype([("a", "<i4"), ("b", "<f8")], align=True), "pair")
        etype = nc.createEnumType(np.uint8, "cloud_t", {"clear": 0, "cloudy": 1})
        nc.createVariable("zeta", "f4", ("n",))[:] = [1, 2, 3]
        nc.createVariable("alpha", "i2", ("n",))[:] = [4, 5, 6]
        v = nc.createVariable("compound", ctype, ("n",))
        v.zz_units, v.aa_note = "m", "first after units"
        nc.createVariable("cloud", etype, ("n",), fill_value=0)
    _convert(src, dst)
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst) as b:  # metadata only: no filter needed
        assert list(b.variables) == list(a.variables) == ["zeta", "alpha", "compound", "cloud"]
        assert b["compound"].datatype.name == "pair"
        assert b["cloud"].datatype.name == "cloud_t"
        assert b["compound"].ncattrs() == ["zz_units", "aa_note"]


def test_convert_keeps_link_creation_order(tmp_path: Path) -> None:
    """Groups that track creation order keep it, links included (``visit`` sorted by name, and
    soft/external links were appended at the end)."""
    import h5py

    src, dst = tmp_path / "order.h5", tmp_path / "order_out.h5"
    with h5py.File(src, "w", track_order=True) as f:
        f.create_dataset("z", data=np.arange(6), chunks=(3,), track_order=True)
        f["b_soft"] = h5py.SoftLink("/z")
        g = f.create_group("m", track_order=True)
        g.create_dataset("y", data=np.arange(4.0), chunks=(2,))
        g["x_ext"] = h5py.ExternalLink("other.h5", "/d")
        g.create_dataset("a", data=np.arange(3))
        f["a_hard"] = f["z"]
        d = f["z"]
        d.attrs["zz"], d.attrs["aa"] = 1, 2
    _convert(src, dst)
    with h5py.File(src) as a, h5py.File(dst) as b:
        assert list(b) == list(a) == ["z", "b_soft", "m", "a_hard"]
        assert list(b["m"]) == list(a["m"]) == ["y", "x_ext", "a"]
        assert list(b["z"].attrs) == list(a["z"].attrs) == ["zz", "aa"]
        assert isinstance(b.get("b_soft", getlink=True), h5py.SoftLink)
        assert b["a_hard"] == b["z"]
        np.testing.assert_array_equal(b["a_hard"][()], np.arange(6))


def test_convert_names_reference_attributes_it_leaves_out(tmp_path: Path) -> None:
    """An attribute holding an object reference cannot be copied; it was dropped silently."""
    import h5py

    src, dst = tmp_path / "ref.h5", tmp_path / "ref_out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("d", data=np.arange(4), chunks=(2,))
        d.attrs["target"] = f.ref
        d.attrs["plain"] = 3
    _, lines = _convert(src, dst)
    assert any("/d: attributes target not copied" in line for line in lines)
    with h5py.File(dst) as f:
        assert f["d"].attrs["plain"] == 3


def test_convert_to_another_folder_keeps_virtual_sources_and_external_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative source names of virtual datasets and external links resolve from the file's own
    folder: copied unchanged into an output elsewhere, the virtual dataset read the fill value
    (silently) and the link failed. They are rewritten relative to the output's folder."""
    import h5py

    indir, outdir, elsewhere = tmp_path / "in", tmp_path / "out" / "deep", tmp_path / "cwd"
    for d in (indir, outdir, elsewhere):
        d.mkdir(parents=True)
    with h5py.File(indir / "src.h5", "w") as f:
        f.create_dataset("d", data=np.arange(1, 13).reshape(3, 4), chunks=(3, 4))
    src = indir / "main.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("local", data=np.arange(100, 112).reshape(3, 4), chunks=(3, 4))
        layout = h5py.VirtualLayout(shape=(6, 4), dtype="i8")
        layout[:3] = h5py.VirtualSource("src.h5", "d", shape=(3, 4))
        layout[3:] = h5py.VirtualSource(".", "local", shape=(3, 4))
        f.create_virtual_dataset("v", layout, fillvalue=-1)
        f["v"].attrs["units"] = "counts"
        f["ext"] = h5py.ExternalLink("src.h5", "/d")
        expected = f["v"][()]
    assert (expected != -1).all()
    dst = outdir / "main_b2.h5"
    _convert(src, dst)
    monkeypatch.chdir(elsewhere)  # HDF5 also tries the working folder: keep it out of the test
    with h5py.File(dst) as f:
        assert f["v"].is_virtual and f["v"].fillvalue == -1 and f["v"].attrs["units"] == "counts"
        np.testing.assert_array_equal(f["v"][()], expected)
        np.testing.assert_array_equal(f["ext"][()], np.arange(1, 13).reshape(3, 4))
    dst2 = indir / "same_folder.h5"  # same folder: names stay as they were
    _convert(src, dst2)
    with h5py.File(dst2) as f:
        assert f.get("ext", getlink=True).filename == "src.h5"
        assert [s.file_name for s in f["v"].virtual_sources()] == ["src.h5", "."]


def test_convert_keeps_a_virtual_dataset_that_names_its_own_file(tmp_path: Path) -> None:
    """A VDS whose source names the file itself by its base name (C tools write that) pointed
    at the input after a convert into another folder: moving the input made it read the fill
    value. It now names the output itself (".")."""
    import h5py

    from b2store.convert import convert

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    src, dst = tmp_path / "in" / "self.h5", tmp_path / "out" / "self.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("own", data=np.arange(1000).reshape(1, 1000) + 7, chunks=(1, 100))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_fill_value(np.array(-1, "i8"))
        space = h5py.h5s.create_simple((1, 1000))
        dcpl.set_virtual(space, b"self.h5", b"own", h5py.h5s.create_simple((1, 1000)))
        h5py.h5d.create(f.id, b"v", h5py.h5t.NATIVE_INT64, space, dcpl=dcpl)
    convert(src, dst, log=lambda s: None)
    src.rename(tmp_path / "moved.h5")
    with h5py.File(dst) as f:
        assert f["v"].virtual_sources()[0].file_name == "."
        np.testing.assert_array_equal(f["v"][0, :3], [7, 8, 9])


def test_convert_walks_groups_nested_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    """1,100 nested groups raised RecursionError once the walk recursed in Python."""
    import h5py

    from b2store.convert import convert

    src, dst = tmp_path / "deep.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        g = f
        for _ in range(1100):
            g = g.create_group("g")
        g["x"] = 1
    convert(src, dst, log=lambda s: None)
    with h5py.File(dst) as f:
        assert f["/".join(["g"] * 1100) + "/x"][()] == 1


def test_attributes_keep_their_string_padding_and_character_set(tmp_path: Path) -> None:
    """Fixed-length string attributes were rewritten from their numpy dtype: netCDF-C's and
    NeXus writers' NULLTERM strings came out NULLPAD (every global attribute of a netCDF-4
    file changed type), although docs/cli.md promises attributes "with their HDF5 types"."""
    import h5py

    from b2store.convert import convert

    src = tmp_path / "s.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("d", data=np.arange(10.0), chunks=(5,))
        for obj in (f, d):
            for name, cset, text in (
                (b"ascii_nullterm", h5py.h5t.CSET_ASCII, b"hello"),
                (b"utf8_nullterm", h5py.h5t.CSET_UTF8, "h\u00e9llo".encode()),
            ):
                tid = h5py.h5t.C_S1.copy()
                tid.set_size(len(text) + 1)
                tid.set_strpad(h5py.h5t.STR_NULLTERM)
                tid.set_cset(cset)
                attr = h5py.h5a.create(obj.id, name, tid, h5py.h5s.create(h5py.h5s.SCALAR))
                attr.write(np.array(text, dtype=f"S{len(text) + 1}"), mtype=tid)
            obj.attrs["nullpad"] = np.bytes_(b"abc")
            obj.attrs["num"] = np.float32(1.5)
    out = tmp_path / "o.h5"
    convert(src, out)
    with h5py.File(src) as f, h5py.File(out) as g:
        for path in ("/", "/d"):
            for name in f[path].attrs:
                a, b = f[path].attrs.get_id(name), g[path].attrs.get_id(name)
                assert a.get_type() == b.get_type(), (path, name)
                assert f[path].attrs[name] == g[path].attrs[name]
        assert g["d"].attrs.get_id("ascii_nullterm").get_type().get_strpad() == 0  # NULLTERM


def test_attributes_of_nullterm_strings_without_room_for_the_nul_keep_every_character(
    tmp_path: Path,
) -> None:
    """netCDF-C writes NULLTERM string attributes with no room for the NUL ('level' in 5
    bytes). Converting the value from numpy's NULLPAD bytes to that type made HDF5 cut the last
    character to make room for one: 'level' came out 'leve' and valid_min '0' came out '' in
    every netCDF-4 file (silently). Attributes of fixed-size types are now copied byte for byte."""
    import h5py

    from b2store.convert import convert

    src = tmp_path / "nc.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("d", data=np.arange(10.0), chunks=(5,))
        for obj in (f, d):
            for name, texts in ((b"units", [b"level"]), (b"one", [b"0"]), (b"arr", [b"ab", b"cd"])):
                tid = h5py.h5t.C_S1.copy()
                tid.set_size(len(texts[0]))
                tid.set_strpad(h5py.h5t.STR_NULLTERM)
                shape = () if len(texts) == 1 else (len(texts),)
                space = h5py.h5s.create_simple(shape) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
                value = np.array(texts if shape else texts[0], dtype=f"S{len(texts[0])}")
                h5py.h5a.create(obj.id, name, tid, space).write(value, mtype=tid)
            cmp = np.dtype([("s", "S3"), ("x", ">i4")])
            obj.attrs.create("cmp", np.array([(b"xyz", 7)], dtype=cmp))
            obj.attrs["empty"] = h5py.Empty("f4")
    out = tmp_path / "o.h5"
    convert(src, out, log=lambda s: None)
    with h5py.File(src) as f, h5py.File(out) as g:
        for path in ("/", "/d"):
            assert g[path].attrs["units"] == b"level"
            assert g[path].attrs["one"] == b"0"
            assert list(g[path].attrs["arr"]) == [b"ab", b"cd"]
            assert g[path].attrs["cmp"].tolist() == [(b"xyz", 7)]
            assert isinstance(g[path].attrs["empty"], h5py.Empty)
            for name in f[path].attrs:
                want_type = f[path].attrs.get_id(name).get_type()
                assert g[path].attrs.get_id(name).get_type() == want_type, (path, name)
