"""Mean and sum projections of a sparse tomography stack with dask, zero chunks skipped.

Writes a small synthetic stack (noisy disc on a zero background, Blosc2 via hdf5plugin; the chunks
outside the disc are all zeros), opens it with ``dask.array.from_zarr("b2h5::...")`` and computes
the mean and sum over the angle axis. b2store recognises an all-zero Blosc2 chunk from its header
(O(1), no decompression) and serves it as a missing key, which zarr fills with the fill value 0:
the script counts those chunks and checks both projections against numpy on h5py's data.

Run: ``python examples/dask_sparse_tomography.py``
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import fsspec
import h5py
import hdf5plugin  # noqa: F401  (h5py reads the Blosc2 filter for the reference values)
import numpy as np

from b2store.demo import SIZES, write_tomography

DATASET = "entry/data/data"


def main() -> None:
    if len(sys.argv) > 1:  # no arguments: say so rather than ignore them
        if sys.argv[1] in ("-h", "--help"):
            print(__doc__)
            return
        sys.exit(f"usage: python {sys.argv[0]}  (takes no arguments; got {sys.argv[1:]})")
    with tempfile.TemporaryDirectory(prefix="b2store-example-") as tmp:
        run(Path(tmp) / "tomo.h5")


def run(path: Path) -> None:
    write_tomography(path, SIZES["small"], progress=False)

    # how many chunks are all zero, and so never decompressed?
    fs = fsspec.filesystem("b2h5", fo=str(path))
    z = da.from_zarr(f"b2h5::{path}", component=DATASET)
    grid = [range(n) for n in z.numblocks]
    skipped = 0
    for idx in np.ndindex(*[len(g) for g in grid]):
        key = f"{DATASET}/c/" + "/".join(map(str, idx))
        try:
            fs.cat_file(key)
        except FileNotFoundError:
            skipped += 1
    print(f"stack {z.shape} {z.dtype}, {z.npartitions} chunks, {skipped} all-zero chunks skipped")

    t0 = time.perf_counter()
    mean, total = da.compute(z.mean(axis=0, dtype="f8"), z.sum(axis=0, dtype="u8"))
    print(f"dask mean + sum projections: {time.perf_counter() - t0:.3f} s")

    with h5py.File(path) as f:
        ref = f[DATASET][...]
    np.testing.assert_allclose(mean, ref.mean(axis=0, dtype="f8"), rtol=1e-12)
    np.testing.assert_array_equal(total, ref.sum(axis=0, dtype="u8"))
    print("mean and sum identical to numpy on h5py's data: OK")
    assert skipped > 0


if __name__ == "__main__":
    main()
