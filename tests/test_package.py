"""The installed package: importing it stays light, and the entry points resolve."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest


def test_import_does_not_import_extras() -> None:
    code = (
        "import sys, b2store; "
        "bad = [m for m in ('h5py', 'hdf5plugin', 'xarray', 'dask', 'aiohttp', 'blosc2_j2k', "
        "'click') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_entry_points_resolve() -> None:
    groups = {"numcodecs.codecs": 4, "zarr.codecs": 4, "fsspec.specs": 3, "xarray.backends": 2}
    for group, n in groups.items():
        eps = [ep for ep in entry_points(group=group) if ep.value.startswith("b2store.")]
        assert len(eps) == n, (group, eps)
        for ep in eps:
            assert ep.load() is not None, ep


def test_cli_version() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "b2store", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "b2store" in res.stdout


def test_fresh_interpreter_opens_b2h5_urls(tmp_path: Path) -> None:
    """``b2h5::`` chaining works through the entry point alone (registered as an import string)."""
    h5py = pytest.importorskip("h5py")
    hdf5plugin = pytest.importorskip("hdf5plugin")

    path = tmp_path / "scan.h5"
    data = np.arange(6 * 10 * 12, dtype="u2").reshape(6, 10, 12)
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=data, chunks=(2, 10, 12), **hdf5plugin.Blosc2())
    code = f"""
import sys, numpy as np, xarray as xr, dask.array as da
expected = np.arange(720, dtype="u2").reshape(6, 10, 12)
ds = xr.open_zarr("b2h5::{path}", group="entry/data")
assert np.array_equal(ds["data"].values, expected)
arr = da.from_zarr("b2h5::file://{path}", component="entry/data/data")
assert np.array_equal(arr.compute(), expected)
assert "b2store" in sys.modules  # loaded lazily by fsspec/zarr, never imported here
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("ok")
