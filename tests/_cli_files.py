"""Small HDF5 files for the CLI, convert and refs tests (written with h5py + hdf5plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def write_sample(path: Path) -> Path:
    """A file with groups, attributes, a dimension scale, Blosc2/gzip/LZF chunked datasets.

    Includes edge chunks, unallocated chunks, a non-zero fill value, a contiguous, a scalar and a
    vlen-string dataset.
    """
    import h5py
    import hdf5plugin

    rng = np.random.default_rng(42)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "sample"
        g = f.create_group("entry/data")
        g.attrs["NX_class"] = "NXdata"
        a = rng.normal(1000, 30, (6, 90, 130)).astype("u2")
        d = g.create_dataset(
            "data", data=a, chunks=(2, 40, 64), **hdf5plugin.Blosc2(cname="lz4", clevel=5)
        )
        d.attrs["units"] = "counts"
        x = f.create_dataset("x", data=np.linspace(0, 1, 130), chunks=(50,), compression="gzip")
        x.make_scale("x")
        d.dims[2].attach_scale(x)
        f.create_dataset("scalar", data=3.5)
        f.create_dataset("names", data=["a", "bb"], dtype=h5py.string_dtype())
        f.create_dataset("contig", data=np.arange(1000, dtype="i4").reshape(10, 100))
        s = f.create_dataset(
            "sparse",
            shape=(200, 200),
            dtype="f4",
            chunks=(50, 50),
            fillvalue=-1,
            compression="lzf",
        )
        s[0:50, 0:50] = 1.5
        s[150:, 150:] = rng.normal(0, 1, (50, 50)).astype("f4")
    return path


def run_b2store(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``b2store ARGS`` as a user types it (a new interpreter; ``B2STORE_DEBUG`` unset, so
    errors are the one-line messages users see; ``env`` adds variables)."""
    environ = {k: v for k, v in os.environ.items() if k != "B2STORE_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "b2store", *args],
        capture_output=True,
        text=True,
        env={**environ, **(env or {})},
        cwd=cwd,
        input=input,
        timeout=300,
    )
