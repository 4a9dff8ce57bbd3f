"""Open a Blosc2-compressed HDF5 file with ``xarray.open_zarr("b2h5::...")``.

Writes a small netCDF-like HDF5 file (a (time, y, x) variable compressed with hdf5plugin's Blosc2
filter, with dimension scales as coordinates), opens it through b2store's ``b2h5`` filesystem —
the chunks are read at their file offsets and decoded by b2store's codecs, not by the HDF5 filter
pipeline — and checks the values against h5py.

Run: ``python examples/open_hdf5_with_xarray.py [FILE.h5]``: the file is written to FILE.h5 (and
kept; an existing FILE.h5 is opened, never overwritten) or, without FILE, to a temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import xarray as xr


def write_example(path: Path) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "b2store example"
        t = f.create_dataset("time", data=np.arange(12.0))
        t.attrs["units"] = "hours since 2026-01-01"
        y = f.create_dataset("y", data=np.linspace(-1, 1, 180))
        x = f.create_dataset("x", data=np.linspace(-2, 2, 240))
        for s in (t, y, x):
            s.make_scale(s.name[1:])
        temp = 15 + 5 * np.sin(np.arange(12))[:, None, None] + rng.normal(0, 0.5, (12, 180, 240))
        v = f.create_dataset(
            "temperature",
            data=temp.astype("f4"),
            chunks=(4, 90, 120),
            **hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE),
        )
        v.attrs["units"] = "degC"
        for axis, s in enumerate((t, y, x)):
            v.dims[axis].attach_scale(s)


def main() -> None:
    if len(sys.argv) > 2:
        sys.exit(f"usage: python {sys.argv[0]} [FILE.h5]")
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return
    if len(sys.argv) > 1:
        # absolute: fsspec reads a one-letter name in "b2h5::a" as a drive letter ("a:")
        path = Path(sys.argv[1]).absolute()
        if path.is_dir():
            sys.exit(f"{path} is a folder: name a file, e.g. {path / 'example.h5'}")
        if not path.parent.is_dir():
            sys.exit(f"{path.parent}: no such folder: create it first or name another file")
        if not path.exists():
            write_example(path)
        show(path)
        return
    with tempfile.TemporaryDirectory(prefix="b2store-example-") as tmp:
        path = Path(tmp) / "example.h5"
        write_example(path)
        show(path)


def show(path: Path) -> None:
    try:
        ds = xr.open_zarr(f"b2h5::{path}")
    except (OSError, ValueError, NotImplementedError) as exc:  # not HDF5, damaged, unsupported
        sys.exit(f"{exc} (not this example's file: name a new file)")
    if "temperature" not in ds:
        sys.exit(f"{path} is not this example's file (no 'temperature' variable): name a new file")
    print(ds)
    mean = ds["temperature"].mean(dim=("y", "x")).compute()
    print("spatial mean per time step:", np.round(mean.values, 3))
    with h5py.File(path) as f:
        expected = f["temperature"][...]
    np.testing.assert_array_equal(ds["temperature"].values, expected)
    print("values identical to h5py + hdf5plugin: OK")


if __name__ == "__main__":
    main()
