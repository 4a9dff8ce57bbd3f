"""Writing with b2store's codecs the way PyData users do: config spellings of neighbouring
libraries (blosc2 enum members, hdf5plugin/blosc2 filter names, numpy scalars), float16
truncation, CF marker values kept exactly (``keep``), and xarray ``to_zarr`` (Zarr v2 and v3,
append, region) read back with ``xr.open_zarr``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import blosc2
import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numcodecs
import numpy as np
import pytest

from b2store.codecs.b2nd import B2nd
from b2store.codecs.itrunc import ITrunc
from b2store.codecs.zarr3 import B2ndCodec, ITruncCodec
from b2store.errors import CodecError

ARR = np.arange(600, dtype="u2").reshape(20, 30)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ({"cname": blosc2.Codec.LZ4}, {"cname": "lz4"}),
        ({"cname": "ZSTD"}, {"cname": "zstd"}),
        ({"filters": [blosc2.Filter.BITSHUFFLE]}, {"filters": [{"id": "bitshuffle"}]}),
        ({"filters": [{"id": blosc2.Filter.SHUFFLE}]}, {"filters": [{"id": "shuffle"}]}),
        (
            {"filters": ["SHUFFLE", blosc2.Filter.BYTEDELTA]},
            {"filters": [{"id": "shuffle"}, {"id": "bytedelta"}]},
        ),
        ({"filters": [blosc2.Filter.NOFILTER]}, {"filters": []}),
        ({"filters": ["NOSHUFFLE"]}, {"filters": []}),
        ({"filters": ["NOFILTER", "shuffle"]}, {"filters": [{"id": "shuffle"}]}),
        (
            {"filters": [{"id": "INT_TRUNC", "max_abs_error": np.int64(7)}, "BITSHUFFLE"]},
            {"filters": [{"id": "itrunc", "max_abs_error": 7}, {"id": "bitshuffle"}]},
        ),
        (
            {"filters": [{"id": blosc2.Filter.INT_TRUNC, "bits": np.uint8(2)}]},
            {"filters": [{"id": "itrunc", "bits": 2}]},
        ),
        (
            {"filters": [{"id": "TRUNC_PREC", "max_rel_error": np.float32(1e-3)}]},
            {"filters": [{"id": "trunc_prec", "max_rel_error": 0.001}]},
        ),
        ({"clevel": np.int64(3), "nthreads": np.int32(2)}, {"clevel": 3, "nthreads": 2}),
        ({"blocks": (np.int64(4), 5)}, {"blocks": [4, 5]}),
        ({"blocks": np.array([4, 5])}, {"blocks": [4, 5]}),
        ({"splitmode": blosc2.SplitMode.NEVER_SPLIT}, {"splitmode": "never"}),
    ],
)  # fmt: skip
def test_neighbouring_spellings_are_normalised(
    given: dict[str, Any], stored: dict[str, Any]
) -> None:
    """blosc2 enum members and blosc2/hdf5plugin filter names were refused ("Expected a string",
    "unknown filter 'NOFILTER'"); numpy scalars must be stored as plain JSON numbers. Every
    spelling is stored canonically, the same in v2 (.zarray) and v3 (zarr.json), and stays so
    through a JSON round trip and a re-open."""
    codec = B2nd(**given)
    config = codec.get_config()
    for key, value in stored.items():
        assert config[key] == value
    text = json.dumps(config)
    again = numcodecs.get_codec(json.loads(text))
    assert json.dumps(again.get_config()) == text
    v3 = B2ndCodec(**given).to_dict()
    v3_text = json.dumps(v3)
    assert json.dumps(B2ndCodec.from_dict(json.loads(v3_text)).to_dict()) == v3_text
    for key, value in stored.items():
        assert v3["configuration"][key] == value
    if "filters" in stored:  # "id" first, as in the v2 config
        assert [next(iter(f)) for f in v3["configuration"]["filters"]] == ["id"] * len(
            stored["filters"]
        )
    if "max_rel_error" in text:
        x = ARR.astype("f4") + 1
        out = np.asarray(codec.decode(codec.encode(x))).view("f4").reshape(x.shape)
        assert np.max(np.abs(out - x) / x) < 1e-3
    else:
        out = np.asarray(codec.decode(codec.encode(ARR))).view("u2").reshape(ARR.shape)
        err = ARR.astype(np.int64) - out
        assert err.min() >= 0 and err.max() <= 7


@pytest.mark.parametrize(
    ("given", "error", "match"),
    [
        ({"cname": blosc2.Codec.ZFP_ACC}, CodecError, r"Expected one of .* Got <Codec.ZFP_ACC"),
        ({"cname": 5}, TypeError, "Expected a string. Got 5 instead"),
        ({"filters": [2]}, TypeError, "Got 2 instead"),
        ({"filters": [blosc2.Filter.NDCELL]}, CodecError, "unknown filter.*Got 'NDCELL' instead"),
        ({"filters": [blosc2.Filter.INT_TRUNC]}, CodecError, "set max_abs_error"),
        ({"filters": [{"id": "nofilter", "bits": 2}]}, CodecError, "takes no parameters"),
        ({"clevel": 3.0}, TypeError, "Expected an integer. Got 3.0 instead"),
        ({"splitmode": blosc2.Codec.ZSTD}, CodecError, "Expected one of"),
        ({"filters": [{"id": "itrunc", "bits": 1, "keep": [np.nan]}]}, CodecError, "finite"),
        ({"filters": [{"id": "itrunc", "bits": 1, "keep": 3}]}, TypeError, "list of numbers"),
    ],
)  # fmt: skip
def test_other_spellings_are_refused(given: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        B2nd(**given)


def test_float16_truncation_inside_b2nd() -> None:
    """The itrunc filter of b2store_b2nd refused float16 ("Blosc2's float truncation needs
    float32 or float64") while the standalone filter took it: it now runs in numpy, with the
    same values as b2store_itrunc, in numcodecs and in a Zarr v3 array."""
    zarr = pytest.importorskip("zarr")
    x = np.random.default_rng(0).normal(size=(40, 50)).astype("f2")
    spec = {"id": "itrunc", "max_rel_error": 0.1}
    got = B2nd(filters=[spec, "shuffle"]).decode(B2nd(filters=[spec, "shuffle"]).encode(x))
    want = ITrunc(max_rel_error=0.1).encode(x)
    np.testing.assert_array_equal(np.asarray(got).view("u2").reshape(x.shape), want.view("u2"))
    assert float(np.max(np.abs(want - x) / np.abs(x))) < 0.1
    z = zarr.create_array(
        zarr.storage.MemoryStore(),
        shape=x.shape,
        chunks=(16, 32),
        dtype="f2",
        serializer=B2ndCodec(filters=[spec]),
        compressors=None,
    )
    z[...] = x
    np.testing.assert_array_equal(z[...].view("u2"), want.view("u2"))


@pytest.mark.parametrize("dtype", ["u2", "i2", "u1", "i4"])
def test_keep_stores_markers_exactly(dtype: str) -> None:
    """Truncation moved a missing-data marker at the top of the range (uint16 65535 -> 65532,
    netCDF's int16 fill -32767 -> -32768) and pulled small values onto a marker at the bottom
    (1..3 -> 0 with _FillValue=0): CF readers then showed missing items as data and masked
    valid ones. ``keep`` stores markers exactly and keeps the values truncation would turn into
    one exact (error 0); every other item keeps the bound."""
    info = np.iinfo(dtype)
    marks = [int(info.max), 0] if info.min == 0 else [int(info.min) + 1, 0]
    x = np.random.default_rng(1).integers(info.min, info.max, 3000, dtype=dtype, endpoint=True)
    x[:8] = [marks[0], marks[0], 0, 1, 2, 3, marks[0] ^ 1, marks[0] ^ 2]
    for codec in (
        ITrunc(max_abs_error=3, keep=marks),
        B2nd(filters=[{"id": "itrunc", "max_abs_error": 3, "keep": marks}, "shuffle"]),
    ):
        y = np.asarray(codec.decode(codec.encode(x))).view(dtype)
        err = x.astype(np.int64) - y
        assert err.min() >= 0 and err.max() <= 3
        for m in marks:
            np.testing.assert_array_equal(x == m, y == m)  # no marker made, none lost
    # without keep the hazard is real (what the parameter is for)
    plain = ITrunc(max_abs_error=3).encode(x)
    assert not np.array_equal(x == marks[0], plain == marks[0]) or not np.array_equal(
        x == 0, plain == 0
    )


def test_keep_config() -> None:
    assert "keep" not in ITrunc(bits=2).get_config()  # older versions read the config
    assert "keep" not in ITruncCodec(bits=2).to_dict()["configuration"]
    c = ITrunc(max_abs_error=3, keep=[np.uint16(65535), 65535.0, -1])
    assert c.get_config()["keep"] == [-1, 65535]
    assert numcodecs.get_codec(json.loads(json.dumps(c.get_config()))) == c
    v3 = ITruncCodec(max_rel_error=1e-3, keep=[np.float32(9.96921e36)])
    assert v3.to_dict()["configuration"]["keep"] == [9.96921e36]
    assert ITruncCodec.from_dict(json.loads(json.dumps(v3.to_dict()))) == v3
    with pytest.raises(CodecError, match=r"keep: Expected values uint16 can hold\. Got -1"):
        c.encode(np.zeros(4, "u2"))
    f = np.array([9.96921e36, 1.2345678, -9999.25], "f4")
    kept = ITrunc(max_rel_error=0.01, keep=[9.96921e36, -9999.25]).encode(f)
    np.testing.assert_array_equal(kept[[0, 2]], f[[0, 2]])


def _cf_dataset() -> Any:
    xr = pytest.importorskip("xarray")
    x = np.array([np.nan, 1.0, 2.0, 0.01, 0.02, 0.03, 655.0, np.nan] * 4)
    return xr.Dataset({"v": (("i",), x)}), x


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("where", ["filter", "serializer"])
@pytest.mark.parametrize("fill", [65535, 0])
def test_xarray_cf_fill_value_with_keep(
    tmp_path: Path, zarr_format: int, where: str, fill: int
) -> None:
    """A CF-encoded variable (uint16, scale_factor, _FillValue) through itrunc: NaN read back as
    655.32 (fill 65535 truncated) or 0.01..0.03 as NaN (fill 0) before ``keep`` existed."""
    xr = pytest.importorskip("xarray")
    ds, x = _cf_dataset()
    trunc = {"max_abs_error": 3, "keep": [fill]}
    enc: dict[str, Any]
    if zarr_format == 3:
        enc = {"serializer": B2ndCodec(), "compressors": None}
        if where == "filter":
            enc["filters"] = [ITruncCodec(**trunc)]
        else:
            enc["serializer"] = {
                "name": "b2store.b2nd",
                "configuration": {"filters": [{"id": "itrunc", **trunc}, "shuffle"]},
            }
    elif where == "filter":
        enc = {"filters": [ITrunc(**trunc)], "compressors": [B2nd()]}
    else:
        enc = {"compressors": [{"id": "b2store_b2nd", "filters": [{"id": "INT_TRUNC", **trunc}]}]}
    enc.update(dtype="uint16", scale_factor=0.01, _FillValue=fill)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # xarray on NaN -> uint16
        ds.to_zarr(
            tmp_path / "cf.zarr", zarr_format=zarr_format, encoding={"v": enc}, consolidated=False
        )
    back = xr.open_zarr(tmp_path / "cf.zarr", consolidated=False)["v"].values
    np.testing.assert_array_equal(np.isnan(back), np.isnan(x))
    assert np.nanmax(np.abs(back - x)) <= 0.03 + 1e-9


@common.requires_dask
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_xarray_append_and_region_keep_the_bound(tmp_path: Path, zarr_format: int) -> None:
    """Appends re-encode edge chunks (truncated values truncated again) and region writes from
    dask threads: every value within the stated bound, floats within max_rel_error, NaN kept."""
    xr = pytest.importorskip("xarray")
    import dask

    rng = np.random.default_rng(4)
    ints = rng.integers(0, 60000, (10, 17, 13)).astype("u2")
    floats = rng.normal(size=(10, 17, 13)).astype("f4")
    floats[0, 0, :3] = [np.nan, np.inf, -0.0]
    specs = [{"id": "itrunc", "max_abs_error": 7, "max_rel_error": 1e-3}, "bitshuffle"]
    if zarr_format == 3:
        one: dict[str, Any] = {
            "serializer": B2ndCodec(filters=specs, blocks=(2, 5, 13)),
            "compressors": None,
        }
    else:
        one = {"compressors": [B2nd(filters=specs, blocks=[2, 5, 13])]}
    enc = {v: {**one, "chunks": (3, 8, 13)} for v in ("i", "f")}

    def ds(sl: slice) -> Any:
        return xr.Dataset({"i": (("t", "y", "x"), ints[sl]), "f": (("t", "y", "x"), floats[sl])})

    def check(path: Path) -> None:
        back = xr.open_zarr(path, consolidated=False)
        err = ints.astype(np.int64) - back["i"].values
        assert err.min() >= 0 and err.max() <= 7
        f = back["f"].values
        np.testing.assert_array_equal(np.isnan(f), np.isnan(floats))
        fin = np.isfinite(floats)
        assert np.all(np.abs(f[fin] - floats[fin]) <= 1e-3 * np.abs(floats[fin]))
        assert f[0, 0, 1] == np.inf

    kw: dict[str, Any] = {"consolidated": False}
    ds(slice(0, 4)).to_zarr(tmp_path / "a.zarr", zarr_format=zarr_format, encoding=enc, **kw)
    for sl in (slice(4, 5), slice(5, 9), slice(9, 10)):
        ds(sl).to_zarr(tmp_path / "a.zarr", append_dim="t", **kw)
    check(tmp_path / "a.zarr")
    region = ds(slice(0, 10)).chunk({"t": 3, "y": 8})
    region.to_zarr(tmp_path / "r.zarr", zarr_format=zarr_format, encoding=enc, compute=False, **kw)
    with dask.config.set(scheduler="threads", num_workers=2):
        for sl in (slice(0, 6), slice(6, 10)):
            region.isel(t=sl).to_zarr(tmp_path / "r.zarr", region={"t": sl}, **kw)
    check(tmp_path / "r.zarr")
