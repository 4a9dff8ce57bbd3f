"""Open cost of files of many small datasets (session 16): HDF5 calls and zarr scalar casts
per node, counted on real files. Never timings.

A MATLAB v7.3 file (EEGLAB .set: 15,000 tiny compact datasets with two or three attributes
each) opened about 11x slower than h5py's ``visititems``: every attribute was read up to six
times (node_attributes, CLASS for scales, NAME for pure dimensions, scale_factor/add_offset
types, ...), each member was looked up twice (``group.get(name, getlink=True)`` asked HDF5
whether the link resolves, then ``group[name]`` resolved it again), and zarr cast and encoded
the same fill value once per array. Results are checked against h5py as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr

from b2store import _zarrmeta
from b2store._zarrmeta import ArrayMeta, render_v2, render_v3
from b2store.hdf5.filesystem import HDF5FileSystem
from b2store.hdf5.index import build_index

N = 60


def _matlab_like(path: Path) -> Path:
    """N compact datasets with MATLAB's attributes, in nested groups (like pymatreader's
    EEGLAB test file), plus a netCDF-style dimension scale and a variable using it."""
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["MATLAB_class"] = np.bytes_(b"struct")
        for g in range(3):
            grp = f.create_group(f"#refs#/g{g}")
            grp.attrs["MATLAB_class"] = np.bytes_(b"struct")
            for i in range(N // 3):
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_layout(h5py.h5d.COMPACT)
                data = np.array([[i + 0.5]]) if i % 2 else np.arange(4, dtype="<u2")[:, None]
                space = h5py.h5s.create_simple(data.shape)
                tid = h5py.h5t.py_create(data.dtype)
                dsid = h5py.h5d.create(grp.id, f"d{i}".encode(), tid, space, dcpl=dcpl)
                ds = h5py.Dataset(dsid)
                ds[...] = data
                ds.attrs["MATLAB_class"] = np.bytes_(b"double" if i % 2 else b"char")
                ds.attrs["H5PATH"] = np.bytes_(f"/g{g}/d{i}".encode())
                if not i % 2:
                    ds.attrs["MATLAB_int_decode"] = np.int32(2)
        x = f.create_dataset("x", data=np.arange(5.0))
        x.make_scale("x")
        v = f.create_dataset("v", data=np.ones(5, "f4"))
        v.dims[0].attach_scale(x)
        v.attrs["scale_factor"] = np.float32(0.5)
        v.attrs["units"] = "m"
    return path


class _Counter:
    def __init__(self) -> None:
        self.n = 0


def _count(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> _Counter:
    """Count the calls of ``owner.name`` (the real function is still called)."""
    counter = _Counter()
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter.n += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return counter


def _attributes_in(path: Path) -> int:
    total = 0

    def visit(_: str, obj: Any) -> None:
        nonlocal total
        total += len(obj.attrs)

    with h5py.File(path, "r") as f:
        total += len(f.attrs)
        f.visititems(visit)
    return total


def test_each_attribute_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _matlab_like(tmp_path / "m.h5")
    stored = _attributes_in(path)
    reads = _count(monkeypatch, h5py._hl.attrs.AttributeManager, "__getitem__")
    with h5py.File(path, "r") as f:
        idx = build_index(f, url=str(path))
    assert "#refs#/g0/d1/zarr.json" in idx.meta
    # each attribute once (a few more for the dimension scale's structure is fine); it was
    # about 6 reads per dataset
    assert reads.n <= stored + 4, (reads.n, stored)


def test_members_are_looked_up_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _matlab_like(tmp_path / "m.h5")
    contains = _count(monkeypatch, h5py.Group, "__contains__")
    opens = _count(monkeypatch, h5py.h5o, "open")
    with h5py.File(path, "r") as f:
        build_index(f, url=str(path))
    # hard links: no "does it resolve?" (Group.__contains__) before the open
    assert contains.n == 0
    nodes = N + 4 + 2  # datasets, groups ("#refs#" and 3), x and v
    assert opens.n <= nodes + 2, (opens.n, nodes)


def test_same_fill_is_cast_by_zarr_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from zarr.core.dtype.npy.float import Float64

    monkeypatch.setattr(_zarrmeta, "_SCALARS", {})
    casts = _count(monkeypatch, Float64, "cast_scalar")
    nodes: dict[str, Any] = {
        f"a{i}": ArrayMeta(shape=(2,), chunks=(2,), dtype=np.dtype("<f8"), fill_value=0.125)
        for i in range(50)
    }
    meta = render_v3(nodes)
    assert casts.n <= 2  # zarr casts twice per encoding (it was 2 per array)
    assert all(json.loads(meta[f"a{i}/zarr.json"])["fill_value"] == 0.125 for i in range(50))
    render_v2({k: ArrayMeta(**{**v.__dict__, "v2_fill_value": 0.125}) for k, v in nodes.items()})
    assert casts.n <= 4


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_cached_fills_keep_their_exact_value(zarr_format: int) -> None:
    """The fill cache tells apart values == confuses: 0.0 / -0.0, 1 / True, NaN payloads."""
    f8, b1 = np.dtype("<f8"), np.dtype("?")
    nan2 = np.frombuffer(np.array(0x7FF8000000000002, "<u8").tobytes(), "<f8")[0]
    fills = [
        ("z", f8, 0.0),
        ("nz", f8, -0.0),
        ("nz32", f8, np.float64(-0.0)),
        ("one", np.dtype("<i4"), 1),
        ("t", b1, True),
        ("f", b1, False),
        ("nan", f8, float("nan")),
        ("nan2", f8, nan2),
        ("none", f8, None),
    ]
    kw = "fill_value" if zarr_format == 3 else "v2_fill_value"
    nodes: dict[str, Any] = {
        name: ArrayMeta(shape=(1,), chunks=(1,), dtype=dt, **{kw: v}) for name, dt, v in fills
    }
    render = render_v3 if zarr_format == 3 else render_v2
    key = "zarr.json" if zarr_format == 3 else ".zarray"
    first = {k: render({k: n})[f"{k}/{key}"] for k, n in nodes.items()}
    again = render(nodes)  # all at once, after each alone: served from the cache
    for k in nodes:
        assert again[f"{k}/{key}"] == first[k]
    nz = json.loads(first["nz"])["fill_value"]
    assert str(nz) == "-0.0"
    assert json.loads(first["t"])["fill_value"] is True


def test_matlab_like_file_reads_as_h5py(tmp_path: Path) -> None:
    """The compact datasets (read with one H5Dread at open) and attributes, as h5py reads them."""
    path = _matlab_like(tmp_path / "m.h5")
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    g = zarr.open_group(fs.get_mapper(""), mode="r", zarr_format=3)
    with h5py.File(path, "r") as f:
        for k in range(3):
            for i in range(N // 3):
                name = f"#refs#/g{k}/d{i}"
                np.testing.assert_array_equal(g[name][...], f[name][()])
                assert g[name].attrs["MATLAB_class"] == f[name].attrs["MATLAB_class"].decode()
                assert g[name].attrs["H5PATH"] == f[name].attrs["H5PATH"].decode()
        assert g["v"].attrs["scale_factor"] == 0.5
        assert g["v"].metadata.dimension_names == ("x",)
    assert fs.index.xarray_hints is not None
    assert fs.index.xarray_hints["v"] == {"attribute_types": {"scale_factor": "<f4"}}


@pytest.mark.parametrize(
    "dtype", ["<f8", ">f4", "<i2", ">u8", "?", "u1", ("<f4", (2,)), "S3", [("a", "<i4")]]
)
@pytest.mark.parametrize("shape", [(), (3,), (2, 2), (0,)])
def test_compact_datasets_read_as_h5py(tmp_path: Path, dtype: Any, shape: tuple[int, ...]) -> None:
    dt = np.dtype(dtype)
    path = tmp_path / "c.h5"
    rng = np.random.default_rng(1)
    full = shape + dt.shape
    data = np.frombuffer(rng.bytes(int(np.prod(full)) * dt.base.itemsize), dt.base).reshape(full)
    if dt.base.kind == "b":
        data = data.view("u1") % 2 == 1
    if dt.base.kind == "f":
        data = np.nan_to_num(data)
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple(shape) if shape else h5py.h5s.create(h5py.h5s.SCALAR)
        dsid = h5py.h5d.create(f.id, b"d", h5py.h5t.py_create(dt), space, dcpl=dcpl)
        if data.size:
            h5py.Dataset(dsid)[...] = data.reshape(shape + dt.shape) if dt.shape else data
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    got = zarr.open_array(fs.get_mapper("d"), mode="r", zarr_format=3)[...]
    with h5py.File(path, "r") as f:
        want = f["d"][()]
    assert got.shape == np.asarray(want).shape
    assert np.asarray(got).tobytes() == np.asarray(want).astype(got.dtype).tobytes()


def test_index_is_the_same_without_h5py_internals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The member fast path leans on h5py internals (``Group._lapl``, ``Dataset(readonly=)``):
    an h5py without them must give the same index through plain ``group[name]``."""
    from b2store.hdf5 import index as index_module

    path = _matlab_like(tmp_path / "m.h5")
    with h5py.File(path, "r") as f:
        fast = build_index(f, url=str(path))
    monkeypatch.setattr(index_module, "_DATASET_TAKES_READONLY", False)
    getitem = _count(monkeypatch, h5py.Group, "__getitem__")
    with h5py.File(path, "r") as f:
        plain = build_index(f, url=str(path))
    assert getitem.n >= N
    assert dict(plain.meta) == dict(fast.meta)
    assert plain.tables.keys() == fast.tables.keys()
