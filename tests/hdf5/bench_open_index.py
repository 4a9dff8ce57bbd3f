"""Benchmark (not a test): open time of a 100,000-chunk HDF5 file through b2h5.

Prints cold (h5py + chunk_iter), memory-cached and sidecar-cached (``index_cache=folder``) open
times, 3 runs each. Run: ``python tests/hdf5/bench_open_index.py [nchunks]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import gen_hdf5_files
import xarray as xr

from b2store.hdf5 import filesystem as fsmod
from b2store.hdf5.filesystem import HDF5FileSystem


def main(nchunks: int = 100_000) -> None:
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp())
    path = gen_hdf5_files.many_chunks_file(tmp / "many.h5", nchunks)
    cache = tmp / "cache"

    def timed(**kw: Any) -> tuple[float, HDF5FileSystem]:
        t0 = time.perf_counter()
        fs = HDF5FileSystem(str(path), skip_instance_cache=True, **kw)
        return time.perf_counter() - t0, fs

    for i in range(3):
        fsmod._MEMORY.clear()
        cold, fs = timed()
        mem, _ = timed()
        fsmod._MEMORY.clear()
        timed(index_cache=cache)  # writes the sidecar
        fsmod._MEMORY.clear()
        side, _ = timed(index_cache=cache)
        print(
            f"run {i}: cold {cold:.3f} s, memory-cached {mem * 1000:.2f} ms, "
            f"sidecar {side * 1000:.1f} ms, chunks={fs.index.tables['x'].lin.size}"
        )
    fsmod._MEMORY.clear()
    t0 = time.perf_counter()
    xr.open_zarr(f"b2h5::{path}", chunks=None)
    print(f"xr.open_zarr cold {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    xr.open_zarr(f"b2h5::{path}", chunks=None)
    print(f"xr.open_zarr again {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
