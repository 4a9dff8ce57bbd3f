"""Property-based differential test: netCDF4 files through b2h5 read as h5netcdf reads them.

Hypothesis draws an xarray Dataset (1-3 dimensions, one maybe unlimited, sizes 0..30;
coordinate variables that are numbers, CF times with several units and calendars, or strings;
data variables of every netCDF4 type: i1..u8, f4, f8, vlen strings, fixed-length bytes, char;
attributes of netCDF types; ``_FillValue``/``missing_value``; packing into int16/uint8 with
float32 or float64 ``scale_factor``/``add_offset``; NaNs; sometimes a sub-group), writes it with
``to_netcdf`` (engines netcdf4 and h5netcdf, with drawn chunk sizes, zlib levels, shuffle,
fletcher32, contiguous layout, unlimited dimensions) and checks that

* ``xr.open_zarr("b2h5::f.nc", group=g)`` (v3 view and, for some examples, the v2 view),
* ``xr.open_dataset(f, engine="b2h5", group=g)``,

are identical to ``xr.open_dataset(f, engine="h5netcdf", group=g)`` after ``.load()``, decoded
and raw (``decode_cf=False``), and that ``xr.open_datatree`` agrees when there are groups.

The comparison knows exactly the differences docs/hdf5.md documents, nothing more:

* ``xr.open_zarr`` decodes packed variables with float32 ``scale_factor``/``add_offset`` to
  float64 (JSON numbers carry no type): equal to float32 precision there, and cast back;
* the v3 view does not mask fixed-length bytes (char) variables equal to their ``_FillValue``
  (it drops that attribute), and publishes a string ``_FillValue`` or one that is no value of
  the variable's dtype as ``missing_value``;
* ``encoding`` is the Zarr one (not compared, except ``unlimited_dims`` for ``engine="b2h5"``).

One quirk of the reference is undone: h5netcdf reads the UTF-8 bytes of netCDF-C's text
attributes as surrogate escapes, where netCDF4-python and b2h5 read the text. A file h5netcdf
cannot decode (xarray writes some it cannot read back) must fail alike in every reader, and so
must ``open_datatree`` of groups that do not align.

Plain regression tests for the cases the property found follow the property tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("h5netcdf")
netCDF4 = pytest.importorskip("netCDF4")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

INT_DTYPES = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]
FLOAT_DTYPES = ["f4", "f8"]
NUMERIC_DTYPES = INT_DTYPES + FLOAT_DTYPES
TEXT = st.text(alphabet="abcXYZ é_-.0ü€", min_size=0, max_size=6)
ATTR_TEXT = st.text(alphabet="abc XYZé_-.0", min_size=1, max_size=8)


# ------------------------------------------------------------------------------------------
# strategies


def _values(draw: st.DrawFn, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Values of a numeric dtype: small ones and the dtype's extremes; NaN/inf for floats."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        elems = st.one_of(
            st.integers(max(info.min, -100), min(info.max, 100)),
            st.sampled_from([info.min, info.max]),
        )
    else:
        elems = st.one_of(
            st.floats(-1e3, 1e3, width=32 if dt.itemsize == 4 else 64),
            st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]),
        )
    seed = draw(st.lists(elems, min_size=min(n, 4), max_size=min(n, 4)))
    if n == 0:
        return np.zeros(shape, dt)
    # a few drawn values tiled over the array keeps examples small and shrinkable
    flat = np.resize(np.array(seed, dtype=dt), n)
    return flat.reshape(shape)


@st.composite
def attributes(draw: st.DrawFn, prefix: str) -> dict[str, Any]:
    """0-3 attributes of netCDF types: numbers of every type, arrays, strings, string lists."""
    out: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                ["scalar", "python", "array", "short", "numlist", "str", "strlist", "bytes"]
            )
        )
        if kind == "scalar":
            dtype = draw(st.sampled_from(NUMERIC_DTYPES))
            value: Any = _values(draw, dtype, (1,))[0]
        elif kind == "python":
            value = draw(st.one_of(st.integers(-(2**31), 2**31 - 1), st.floats(-1e6, 1e6)))
        elif kind == "array":
            dtype = draw(st.sampled_from(NUMERIC_DTYPES))
            value = _values(draw, dtype, (draw(st.integers(2, 4)),))
        elif kind == "short":  # arrays of one element (and none, netcdf4 only)
            dtype = draw(st.sampled_from(NUMERIC_DTYPES))
            value = _values(draw, dtype, (1,))
        elif kind == "numlist":  # a Python list of numbers
            value = draw(
                st.one_of(
                    st.lists(st.integers(-1000, 1000), min_size=2, max_size=3),
                    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=3),
                )
            )
        elif kind == "str":
            value = draw(st.one_of(ATTR_TEXT, st.just("")))
        elif kind == "bytes":
            value = draw(ATTR_TEXT).encode()
        else:
            value = draw(st.lists(ATTR_TEXT, min_size=2, max_size=3))
        out[f"{prefix}{i}"] = value
    return out


@st.composite
def coordinate(draw: st.DrawFn, dim: str, size: int) -> tuple[xr.Variable, dict[str, Any]]:
    kind = draw(st.sampled_from(["numeric", "time", "cftime", "string"]))
    enc: dict[str, Any] = {}
    if kind == "numeric":
        dtype = draw(st.sampled_from(NUMERIC_DTYPES))
        data = np.arange(size).astype(dtype)
        if dtype[0] == "f" and size and draw(st.booleans()):
            data[-1] = np.nan
    elif kind == "cftime" and size:
        calendar = draw(st.sampled_from(["360_day", "julian", "all_leap", "noleap"]))
        offsets = draw(st.lists(st.integers(0, 2000), min_size=size, max_size=size))
        index = xr.date_range("2000-01-01", periods=2001, freq="D", calendar=calendar)
        data = np.array([index[o] for o in offsets], dtype=object)
        enc["units"] = draw(st.sampled_from(["days since 2000-01-01", "hours since 1999-01-01"]))
        enc["calendar"] = calendar
    elif kind == "time":
        step = draw(st.sampled_from(["D", "h", "s"]))
        start = np.datetime64("2001-01-01T00:00:00", "s")
        offsets = draw(st.lists(st.integers(0, 900), min_size=size, max_size=size))
        data = (start + np.array(offsets, "timedelta64[D]")).astype("datetime64[ns]")
        if step == "h":
            data = data + np.timedelta64(7, "h")
        enc["units"] = draw(
            st.sampled_from(["days since 2000-01-01", "hours since 1970-01-01 00:00:00"])
            if step == "D"
            else st.sampled_from(["hours since 2000-01-01", "seconds since 1999-12-31"])
        )
        enc["calendar"] = draw(
            st.sampled_from(["standard", "gregorian", "proleptic_gregorian", "noleap"])
        )
        enc["dtype"] = draw(st.sampled_from(["int64", "int32", "float64"]))
        if size and enc["dtype"] != "int32" and draw(st.integers(0, 3)) == 0:
            data[0] = np.datetime64("NaT")  # (xarray writes int32 NaT without a fill)
    elif kind == "string":
        data = np.array([f"{draw(TEXT)}{i}" for i in range(size)], dtype=object)
    else:
        data = np.arange(size, dtype="i2")
    return xr.Variable((dim,), data, attrs=draw(attributes("c"))), enc


@st.composite
def data_variable(
    draw: st.DrawFn, dims: dict[str, int], engine: str
) -> tuple[xr.Variable, dict[str, Any]]:
    names = list(dims)
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    vdims = tuple(n for n in names if n in chosen)
    if draw(st.integers(0, 3)) == 0:
        vdims = tuple(draw(st.permutations(vdims)))
    shape = tuple(dims[d] for d in vdims)
    kind = draw(
        st.sampled_from(
            ["int", "float", "packed", "vlen", "bytes", "char", "timedelta", "unsigned"]
        )
    )
    enc: dict[str, Any] = {}
    attrs = draw(attributes("a"))
    if kind == "int":
        dtype = draw(st.sampled_from(INT_DTYPES))
        data = _values(draw, dtype, shape)
        fill = draw(st.sampled_from(["none", "fill", "missing", "both"]))
        if fill != "none":
            value = data.flat[0] if data.size and draw(st.booleans()) else np.iinfo(dtype).max
            value = np.dtype(dtype).type(value)
            if fill in ("fill", "both"):
                enc["_FillValue"] = value
            if fill in ("missing", "both"):
                enc["missing_value"] = value
    elif kind == "float":
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
        data = _values(draw, dtype, shape)
        fill = draw(st.sampled_from(["default", "none", "fill", "missing"]))
        if fill == "none":
            enc["_FillValue"] = None
        elif fill == "fill":
            enc["_FillValue"] = np.dtype(dtype).type(draw(st.sampled_from([-9999.0, 1e20])))
        elif fill == "missing":
            enc["missing_value"] = np.dtype(dtype).type(-1.0)
        if data.size and fill != "none" and draw(st.booleans()):
            data.flat[-1] = -1.0
    elif kind == "packed":
        packed = draw(st.sampled_from(["int16", "uint8"]))
        ftype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES))).type
        scale = ftype(draw(st.sampled_from([0.1, 0.5, 2.0, 0.01])))
        offset = ftype(draw(st.sampled_from([0.0, 1.5, -20.0])))
        lo, hi = (-32767, 32767) if packed == "int16" else (0, 254)
        ints = _values(draw, "i4", shape).clip(lo, hi)
        data = (ints * scale + offset).astype(ftype)
        if data.size and draw(st.booleans()):
            data.flat[0] = np.nan
        enc.update(dtype=packed, scale_factor=scale, add_offset=offset)
        enc["_FillValue"] = np.dtype(packed).type(-32768 if packed == "int16" else 255)
        if draw(st.booleans()):
            del enc["add_offset"]
    elif kind == "timedelta":
        # hours within +-10**5: the i4 extremes overflow nanoseconds (numpy 2.3 raises)
        hours = _values(draw, "i4", shape).clip(-(10**5), 10**5)
        data = hours.astype("timedelta64[h]").astype("timedelta64[ns]")
        if data.size and draw(st.booleans()):
            data.flat[0] = np.timedelta64("NaT")
        enc["units"] = draw(st.sampled_from(["hours", "days", "seconds"]))
        enc["dtype"] = draw(st.sampled_from(["int64", "float64"]))
        attrs = {}
    elif kind == "unsigned":  # uint8 data stored as netCDF byte with _Unsigned = "true"
        data = _values(draw, "u1", shape)
        enc["dtype"] = "i1"
        attrs["_Unsigned"] = "true"
        if draw(st.booleans()):
            enc["_FillValue"] = np.int8(-1)
    elif kind == "vlen":
        data = np.array(draw(st.lists(TEXT, min_size=4, max_size=4)), dtype=object)
        data = np.resize(data, int(np.prod(shape))).reshape(shape)
        if draw(st.booleans()):
            enc["dtype"] = str
    else:  # fixed-length bytes; "char" writes unicode as netCDF char (dtype S1)
        words = draw(st.lists(st.text(alphabet="abcxyz", max_size=4), min_size=4, max_size=4))
        if kind == "bytes":
            data = np.resize(np.array([w.encode() for w in words]), int(np.prod(shape)))
            data = data.reshape(shape)
        else:
            data = np.resize(np.array(words, dtype="U"), int(np.prod(shape))).reshape(shape)
            enc["dtype"] = "S1"
        if kind == "bytes" and engine == "netcdf4" and draw(st.booleans()):
            enc["_FillValue"] = b"x"
    return xr.Variable(vdims, data, attrs=attrs), enc


def _layout(
    draw: st.DrawFn, var: xr.Variable, enc: dict[str, Any], unlimited: set[str], engine: str
) -> dict[str, Any]:
    """chunksizes / zlib / complevel / shuffle / fletcher32 / contiguous / lzf / endian /
    significant_digits for one variable (not for strings: char ones have an extra axis)."""
    if not var.ndim or var.dtype.kind in "OSU" or enc.get("dtype") in ("S1", str):
        return {}
    out: dict[str, Any] = {}
    stored = np.dtype(enc.get("dtype", var.dtype if var.dtype.kind in "iuf" else "i8"))
    if engine == "h5netcdf" and draw(st.integers(0, 4)) == 0 and stored.itemsize > 1:
        out["endian"] = "big"
    if engine == "netcdf4" and stored.kind == "f" and draw(st.integers(0, 5)) == 0:
        out["significant_digits"] = draw(st.integers(2, 5))
    layout = draw(st.sampled_from(["default", "chunked", "contiguous"]))
    contiguous_ok = engine == "netcdf4" and var.size and not set(var.dims) & unlimited
    if layout == "contiguous" and contiguous_ok:  # netCDF-C refuses empty contiguous ones
        out["contiguous"] = True
        return out
    if layout == "chunked":
        out["chunksizes"] = tuple(
            draw(st.integers(1, max(n, 1) + (5 if d in unlimited else 0)))
            for d, n in zip(var.dims, var.shape, strict=True)
        )
        if engine == "h5netcdf" and draw(st.integers(0, 3)) == 0:
            out["compression"] = "lzf"
        elif draw(st.booleans()):
            out["zlib"] = True
            out["complevel"] = draw(st.integers(1, 9))
        if draw(st.booleans()):
            out["shuffle"] = True
        if draw(st.booleans()):
            out["fletcher32"] = True
    return out


@st.composite
def netcdf_group(
    draw: st.DrawFn, engine: str, dims_from: dict[str, int] | None = None, prefix: str = "d"
) -> tuple[xr.Dataset, dict[str, dict[str, Any]], set[str]]:
    """A Dataset, its encoding and its unlimited dimensions."""
    dims: dict[str, int] = {}
    if dims_from and draw(st.booleans()):
        dims.update(dims_from)  # the sub-group reuses the root's dimensions
    inherited = set(dims)
    for i in range(draw(st.integers(1 if not dims else 0, 3 - len(dims) if dims else 3))):
        dims[f"{prefix}{i}"] = draw(st.integers(0, 30))
        inherited.discard(f"{prefix}{i}")
    while int(np.prod(list(dims.values()))) > 900:
        big = max(dims, key=lambda d: dims[d])
        dims[big] //= 2
    unlimited: set[str] = set()
    if draw(st.booleans()):
        unlimited.add(draw(st.sampled_from(sorted(dims))))
    variables: dict[str, xr.Variable] = {}
    encoding: dict[str, dict[str, Any]] = {}
    for dim, size in dims.items():
        if dim in inherited:
            continue
        if draw(st.booleans()):
            variables[dim], encoding[dim] = draw(coordinate(dim, size))
    for i in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([f"v{i}", f"v{i} x", f"vä{i}"]))
        variables[name], encoding[name] = draw(data_variable(dims, engine))
    if draw(st.integers(0, 3)) == 0 and len(dims) >= 1:  # a non-dimension coordinate
        cdims = tuple(sorted(dims))[: draw(st.integers(1, len(dims)))]
        shape = tuple(dims[d] for d in cdims)
        variables["lat é"] = xr.Variable(cdims, _values(draw, "f4", shape), {"units": "deg"})
        encoding["lat é"] = {}
    for name, var in variables.items():
        encoding[name].update(_layout(draw, var, encoding[name], unlimited, engine))
    coords = {d: variables.pop(d) for d in list(variables) if d in dims or d == "lat é"}
    ds = xr.Dataset(variables, coords=coords, attrs=draw(attributes("g")))
    # dimensions no variable uses are not written by xarray: keep only the used ones
    used = set(ds.dims)
    return ds, encoding, unlimited & used


@st.composite
def netcdf_files(draw: st.DrawFn, engine: str) -> dict[str, Any]:
    root, enc, unlimited = draw(netcdf_group(engine))
    spec: dict[str, Any] = {"engine": engine, "groups": {"": (root, enc, unlimited)}}
    if draw(st.integers(0, 3)) == 0:
        # a sub-group reuses its parent's dimensions, adds its own, or shadows a parent's
        # dimension with one of the same name and another size (prefix "d")
        prefix = draw(st.sampled_from(["e", "d"]))
        sub = draw(netcdf_group(engine, dims_from=dict(root.sizes), prefix=prefix))
        spec["groups"]["g"] = sub
        if draw(st.booleans()):
            spec["groups"]["g/h"] = draw(
                netcdf_group(engine, dims_from=dict(sub[0].sizes), prefix="f")
            )
    spec["zarr_format"] = draw(st.sampled_from([3, 3, 2]))
    return spec


def write(spec: dict[str, Any], path: Path) -> None:
    mode = "w"
    warnings.simplefilter("ignore")  # (e.g. timedeltas written in nanoseconds)
    for group, (ds, enc, unlimited) in spec["groups"].items():
        ds.to_netcdf(
            path,
            mode=mode,
            engine=spec["engine"],
            group=group or None,
            encoding=enc,
            unlimited_dims=sorted(unlimited),
        )
        mode = "a"


# ------------------------------------------------------------------------------------------
# the comparison


def _quiet(fn: Callable[[], xr.Dataset]) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn().load()


def _packed_float32(ref_raw: xr.Dataset) -> set[str]:
    """Variables packed with float32 scale_factor/add_offset (open_zarr: float64)."""
    out = set()
    for name, var in ref_raw.variables.items():
        types = [type(var.attrs[a]) for a in ("scale_factor", "add_offset") if a in var.attrs]
        if types and all(t is np.float32 for t in types):
            out.add(str(name))
    return out


def _v3_string_fills(ref_raw: xr.Dataset) -> dict[str, Any]:
    """Variables whose _FillValue the v3 view cannot publish as its Zarr fill_value: string
    and bytes variables, and fills that are no value of the variable's dtype."""
    out = {}
    for name, var in ref_raw.variables.items():
        if "_FillValue" not in var.attrs:
            continue
        fill = var.attrs["_FillValue"]
        if var.dtype.kind in "OSU" or isinstance(fill, str | bytes):
            out[str(name)] = fill
        else:
            try:
                ok = np.array(fill).astype(var.dtype) == fill and np.ndim(fill) == 0
            except (TypeError, ValueError, OverflowError):
                ok = False
            if not ok:
                out[str(name)] = fill
    return out


def _align(
    ours: xr.Dataset,
    ref: xr.Dataset,
    ref_raw: xr.Dataset,
    zarr_format: int,
    raw: bool,
    url: str,
    float64_packing: bool,
) -> xr.Dataset:
    """Apply to ``ours`` the documented differences from h5netcdf, checking them."""
    ours = ours.copy()
    if not raw and float64_packing:
        for name in _packed_float32(ref_raw) & set(ours.variables):
            a, b = ours[name].values, ref[name].values
            assert a.dtype == np.float64, (url, name, a.dtype)
            np.testing.assert_allclose(a, b, rtol=2e-7, atol=0, equal_nan=True, err_msg=name)
            ours[name] = ours[name].copy(data=b)
    if zarr_format != 3:
        return ours
    for name, fill in _v3_string_fills(ref_raw).items():
        if name not in ours.variables:
            continue
        var = ours[name]
        attrs = dict(var.attrs)
        if ref_raw[name].dtype.kind == "S" and isinstance(fill, bytes):
            # dropped: items equal to the fill are not masked in the v3 view
            if not raw:
                want = ref[name].values
                got = var.values
                nulls = np.array([x is np.nan or x != x for x in want.ravel()], bool)
                nulls = nulls.reshape(want.shape)
                assert (got[nulls] == fill).all(), (url, name)
                ours[name] = var.copy(data=want)
            else:
                attrs["_FillValue"] = fill
        elif raw and "missing_value" in attrs and "missing_value" not in ref_raw[name].attrs:
            attrs["_FillValue"] = attrs.pop("missing_value")
        if raw:
            ours[name].attrs = attrs
    return ours


def _unescape(value: Any) -> Any:
    """h5netcdf reads the UTF-8 bytes of netCDF-C's text (ASCII-typed) attributes as surrogate
    escapes ('\\udcc3\\udca9' for 'é'); netCDF4-python and b2h5 read the text."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8")
        except UnicodeError:
            return value
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OU":
        return np.array([_unescape(v) for v in value.ravel()], value.dtype).reshape(value.shape)
    return value


def _unescaped(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: _unescape(v) for k, v in ds.attrs.items()}
    for var in ds.variables.values():
        var.attrs = {k: _unescape(v) for k, v in var.attrs.items()}
    return ds


def _open_all(path: Path, group: str, zarr_format: int, raw: bool) -> dict[str, xr.Dataset] | None:
    """The group through h5netcdf, open_zarr and engine="b2h5"; None when h5netcdf cannot
    decode it (a file xarray wrote but cannot read back), after checking that the others
    refuse it with the same exception type."""
    kw: dict[str, Any] = {"decode_cf": False} if raw else {}
    url = f"b2h5::{path}"
    so = {"zarr_format": zarr_format} if zarr_format == 2 else None
    g = group or None
    openers = {
        "h5netcdf": lambda: xr.open_dataset(path, engine="h5netcdf", group=g, **kw),
        "zarr": lambda: xr.open_zarr(url, group=g, chunks=None, storage_options=so, **kw),
        "b2h5": lambda: xr.open_dataset(
            path, engine="b2h5", group=g, zarr_format=zarr_format, **kw
        ),
    }
    try:
        ref = _unescaped(_quiet(openers.pop("h5netcdf")))
    except ValueError as err:
        for opener in openers.values():
            with pytest.raises(type(err)):
                _quiet(opener)
        return None
    return {"h5netcdf": ref} | {reader: _quiet(opener) for reader, opener in openers.items()}


def compare(path: Path, groups: list[str], zarr_format: int) -> None:
    for group in groups:
        raw = _open_all(path, group, zarr_format, raw=True)
        dec = _open_all(path, group, zarr_format, raw=False)
        if raw is None or dec is None:
            continue
        ref_raw, ref = raw["h5netcdf"], dec["h5netcdf"]
        where = f"{path.name} group={group!r} zarr_format={zarr_format}"
        for label, opened, reference, is_raw in (
            ("raw", raw, ref_raw, True),
            ("decoded", dec, ref, False),
        ):
            for reader in ("b2h5", "zarr"):
                ours = _align(
                    opened[reader], reference, ref_raw, zarr_format, is_raw, where, reader == "zarr"
                )
                try:
                    xr.testing.assert_identical(ours, reference)
                except AssertionError as err:
                    raise AssertionError(f"{reader} {label} {where}:\n{err}") from None
        want = ref.encoding.get("unlimited_dims", set())
        got = dec["b2h5"].encoding.get("unlimited_dims", set())
        assert set(got) == set(want), (where, got, want)
    if len(groups) > 1:
        compare_trees(path)


def compare_trees(path: Path) -> None:
    """open_datatree through b2h5 (engine zarr and b2h5) against h5netcdf; a file whose groups
    do not align (a sub-group with other coordinates on its parent's dimensions) must fail in
    every reader alike."""
    openers = {
        "h5netcdf": lambda: xr.open_datatree(path, engine="h5netcdf"),
        "zarr": lambda: xr.open_datatree(f"b2h5::{path}", engine="zarr"),
        "b2h5": lambda: xr.open_datatree(path, engine="b2h5"),
    }
    try:
        ref_tree = _quiet_tree(openers.pop("h5netcdf")).map_over_datasets(_unescaped)
    except ValueError as err:
        for opener in openers.values():
            with pytest.raises(type(err)):
                _quiet_tree(opener)
        return
    for reader, opener in openers.items():
        tree = _quiet_tree(opener)
        for node in ref_tree.subtree:
            p = node.path
            ref_ds = node.to_dataset(inherit=False)
            ref_raw = _quiet(
                lambda p=p: xr.open_dataset(path, engine="h5netcdf", group=p, decode_cf=False)
            )
            ds = _align(
                tree[p].to_dataset(inherit=False), ref_ds, ref_raw, 3, False, p, reader == "zarr"
            )
            try:
                xr.testing.assert_identical(ds, ref_ds)
            except AssertionError as err:
                raise AssertionError(f"open_datatree {reader} {path.name} {p}:\n{err}") from None


def _quiet_tree(fn: Callable[[], xr.DataTree]) -> xr.DataTree:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn().load()


# ------------------------------------------------------------------------------------------
# property tests


def _check(spec: dict[str, Any], tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("nc") / "f.nc"
    try:
        write(spec, path)
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        # what xarray or netCDF-C cannot write (an empty vlen string array, a chunk of a
        # sub-group's variable longer than a dimension, ...) is no file to compare
        hypothesis.reject()
    compare(path, list(spec["groups"]), spec["zarr_format"])


@SETTINGS
@given(spec=netcdf_files(engine="netcdf4"))
def test_netcdf4_written_files_read_like_h5netcdf(
    spec: dict[str, Any], tmp_path_factory: Any
) -> None:
    _check(spec, tmp_path_factory)


@SETTINGS
@given(spec=netcdf_files(engine="h5netcdf"))
def test_h5netcdf_written_files_read_like_h5netcdf(
    spec: dict[str, Any], tmp_path_factory: Any
) -> None:
    _check(spec, tmp_path_factory)


# ------------------------------------------------------------------------------------------
# plain regression tests of what the property found


def test_non_ascii_text_attribute_of_netcdf_c_reads_as_text(tmp_path: Path) -> None:
    """netCDF-C stores text attributes as ASCII-typed HDF5 strings holding UTF-8 bytes;
    netCDF4-python and b2h5 read "é", h5netcdf surrogate escapes ("\\udcc3\\udca9"): the
    property test compares with h5netcdf's text unescaped."""
    path = tmp_path / "t.nc"
    ds = xr.Dataset({"v": ("x", np.arange(3, dtype="i2"), {"a": "aé"})}, attrs={"g": "ü"})
    ds.to_netcdf(path, engine="netcdf4")
    with netCDF4.Dataset(path) as nc:
        want = (nc.getncattr("g"), nc["v"].getncattr("a"))
    assert want == ("ü", "aé")
    for opened in (
        _quiet(lambda: xr.open_zarr(f"b2h5::{path}", chunks=None)),
        _quiet(lambda: xr.open_dataset(path, engine="b2h5")),
    ):
        assert (opened.attrs["g"], opened.v.attrs["a"]) == want
    ref = _quiet(lambda: xr.open_dataset(path, engine="h5netcdf"))
    assert (_unescape(ref.attrs["g"]), _unescape(ref.v.attrs["a"])) == want
