"""Helpers shared by the b2h5 tests: list and read like h5py, compare exactly, open a zarr root."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import h5py
import numpy as np


def dataset_names(f: h5py.Group) -> list[str]:
    """The paths of every dataset under *f* (h5py's visit order)."""
    names: list[str] = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def h5_values(ds: Any, sel: Any = ()) -> np.ndarray:
    """What h5py reads (vlen strings decoded to str)."""
    info = h5py.check_string_dtype(ds.dtype)
    if info is not None and info.length is None:
        return np.asarray(ds.asstr()[sel] if sel != () else ds.asstr()[()], dtype=object)
    return np.asarray(ds[sel] if sel != () else ds[()])


def assert_same(got: Any, want: np.ndarray, what: str = "") -> None:
    """Exact equality (NaN == NaN, strings compared as Python str), shape and values."""
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if want.dtype.kind == "O" or got.dtype.kind in "OT":
        assert [str(x) for x in got.ravel().tolist()] == [str(x) for x in want.ravel().tolist()], (
            what
        )
        return
    if want.dtype.fields:
        assert got.tobytes() == want.astype(got.dtype).tobytes(), what
        return
    assert got.dtype == want.dtype or got.dtype.newbyteorder("=") == want.dtype.newbyteorder("="), (
        f"{what}: dtype {got.dtype} != {want.dtype}"
    )
    np.testing.assert_array_equal(got, want, err_msg=what)


def open_root(fs: Any) -> Any:
    """The zarr root group over an HDF5FileSystem instance."""
    import zarr
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        afs = fs if fs.async_impl else AsyncFileSystemWrapper(fs, asynchronous=True)
        store = zarr.storage.FsspecStore(afs, read_only=True)
        return zarr.open_group(store, mode="r", zarr_format=fs.zarr_format)


@functools.lru_cache(maxsize=512)
def xr_group(path: str, group: str) -> Any:
    """``xr.open_zarr`` of one group of the b2h5 view of *path* (skipping what is unsupported,
    no CF decoding, numpy-backed), cached: the corpus tests read many variables of each."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(
            f"b2h5::{path}",
            group=group or None,
            storage_options={"unsupported": "skip"},
            decode_cf=False,
            chunks=None,
        )
