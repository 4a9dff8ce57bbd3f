"""Generators of the small HDF5/netCDF4 files the b2h5 tests read (provenance of the test data).

Every function writes one file with h5py (+ hdf5plugin), netCDF4 or h5netcdf and returns its
path. Run as a script to write them all into a folder: ``python gen_files.py /tmp/b2h5-files``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

RNG = np.random.default_rng(42)


def tomo_stack(shape: tuple[int, int, int] = (16, 64, 80), seed: int = 0) -> np.ndarray:
    """A small uint16 "tomography" stack: a noisy disc on a sparse (mostly zero) background."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    cy, cx, r = shape[1] / 2, shape[2] / 2, min(shape[1:]) / 3
    disc = ((y - cy) ** 2 + (x - cx) ** 2 < r**2) * (1000 + 10 * z)
    noise = rng.integers(0, 50, size=shape) * (rng.random(shape) < 0.3)
    return (disc + noise * (disc > 0)).astype(np.uint16)


def filters_file(path: Path) -> Path:
    """One dataset per supported filter; odd shapes with edge chunks; attributes; groups."""
    a = np.arange(7 * 9 * 11, dtype="f4").reshape(7, 9, 11) / 3
    i = RNG.integers(-1000, 1000, size=(13, 17), dtype="i4")
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "filters"
        g = f.create_group("f")
        g.attrs["bytes_attr"] = b"raw bytes"
        g.attrs["int_list"] = np.arange(3)
        g.attrs["one"] = np.array([2.5])
        g.create_dataset("none", data=a, chunks=(3, 4, 5))
        g.create_dataset("gzip", data=a, chunks=(3, 4, 5), compression="gzip")
        g.create_dataset("shuffle_gzip", data=i, chunks=(5, 6), compression="gzip", shuffle=True)
        g.create_dataset("fletcher32", data=i, chunks=(5, 6), fletcher32=True)
        g.create_dataset("lzf", data=i, chunks=(5, 6), compression="lzf")
        g.create_dataset("blosc2", data=a, chunks=(3, 4, 5), **hdf5plugin.Blosc2())
        g.create_dataset("blosc2_1d", data=i.ravel(), chunks=(50,), **hdf5plugin.Blosc2())
        g.create_dataset(
            "shuffle_blosc2", data=i, chunks=(5, 6), shuffle=True, **hdf5plugin.Blosc2()
        )
        g.create_dataset("blosc", data=i, chunks=(5, 6), **hdf5plugin.Blosc())
        g.create_dataset("zstd", data=i, chunks=(5, 6), **hdf5plugin.Zstd())
        g.create_dataset("lz4", data=i, chunks=(5, 6), **hdf5plugin.LZ4())
        g.create_dataset("bitshuffle", data=i, chunks=(5, 6), **hdf5plugin.Bitshuffle())
        g.create_dataset("bzip2", data=i, chunks=(5, 6), **hdf5plugin.BZip2())
        g["none"].attrs["units"] = "counts"
    return path


def layouts_file(path: Path) -> Path:
    """Contiguous, compact, scalar, empty-shape, big-endian, compound, strings, sparse, fills."""
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", data=np.arange(3000, dtype="<f8").reshape(300, 10))
        f.create_dataset("contiguous_unwritten", shape=(4, 5), dtype="i2")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((6,))
        h5py.h5d.create(f.id, b"compact", h5py.h5t.NATIVE_INT16, space, dcpl=dcpl)
        f["compact"][...] = np.arange(6, dtype="i2") * 7
        f.create_dataset("scalar", data=np.float32(3.25))
        f.create_dataset("zero_length", shape=(0, 4), dtype="f4", maxshape=(None, 4), chunks=(2, 4))
        f.create_dataset("big_endian", data=np.arange(50, dtype=">i4"), chunks=(16,))
        f.create_dataset("big_endian_f8", data=np.linspace(0, 1, 30).astype(">f8"))
        comp = np.dtype([("a", "<i4"), ("b", "<f8"), ("c", "S3")])
        rec = np.zeros(20, dtype=comp)
        rec["a"], rec["b"], rec["c"] = np.arange(20), np.arange(20) / 4, b"xyz"
        f.create_dataset("compound", data=rec, chunks=(8,))
        f.create_dataset("fixed_str", data=np.array([b"ab", b"cde", b""], dtype="S3"))
        f.create_dataset("vlen_str", data=["alpha", "βeta", ""], dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("vlen_scalar", data="hello", dtype=h5py.string_dtype())
        sp = f.create_dataset(
            "sparse_fill", shape=(10, 12), chunks=(3, 5), dtype="i4", fillvalue=-7
        )
        sp[0:3, 0:5] = 1
        sp[9, 11] = 2
        sz = f.create_dataset("sparse_zero", shape=(10, 12), chunks=(3, 5), dtype="f4")
        sz[4:6, 4:6] = 5.5
        sg = f.create_dataset(
            "sparse_fill_gzip",
            shape=(9,),
            chunks=(4,),
            dtype="f8",
            fillvalue=np.nan,
            compression="gzip",
        )
        sg[0:4] = [1, 2, 3, 0]
        zb = f.create_dataset(
            "sparse_blosc2", shape=(8, 8), chunks=(4, 4), dtype="u2", **hdf5plugin.Blosc2()
        )
        zb[0:4, 0:4] = 9
        zb[4:8, 4:8] = 0  # an all-zero chunk: a special ZERO Blosc2 frame
        f.create_dataset("bools", data=np.array([True, False, True]))
        f.create_dataset("complex", data=np.arange(6) * (1 + 2j), chunks=(4,))
        ad = f.create_dataset("array_dtype", shape=(3,), dtype=np.dtype(("<f8", (4,))))
        ad[...] = np.arange(12.0).reshape(3, 4)
        g = f.create_group("deep/er/group")
        g.create_dataset("x", data=np.arange(5))
        f["soft"] = h5py.SoftLink("/deep/er/group/x")
        f["hard"] = f["big_endian"]
        f["ext"] = h5py.ExternalLink("other.h5", "/y")
    with h5py.File(path.with_name("other.h5"), "w") as f:
        f.create_dataset("y", data=np.arange(4, dtype="u1"))
    return path


def unsupported_file(path: Path) -> Path:
    """A file with one good dataset and several b2store cannot present."""
    with h5py.File(path, "w") as f:
        f.create_dataset("good", data=np.arange(10))
        f.create_dataset("null", data=h5py.Empty("f4"))
        f.create_dataset(
            "scaleoffset", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0
        )
        f.create_dataset("vlen_ints", shape=(3,), dtype=h5py.vlen_dtype("i4"))
        layout = h5py.VirtualLayout(shape=(20,), dtype="i8")  # strided: a block repeated
        layout[::2] = h5py.VirtualSource(".", "good", shape=(10,))
        f.create_virtual_dataset("vds", layout)
    return path


def vds_file(path: Path) -> Path:
    """Virtual datasets: one plain (two source files + a same-file source), two not mappable."""
    src = path.with_name("vds_source.h5")
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=np.arange(48).reshape(4, 12), chunks=(2, 4), compression="gzip")
    with h5py.File(path, "w") as f:
        d = f.create_dataset("local", shape=(4, 12), dtype="i8", chunks=(2, 4), compression="gzip")
        d[0:2] = 5  # rows 2-3 never written: source fill 0 == virtual fill 0
        lay = h5py.VirtualLayout(shape=(10, 12), dtype="i8")
        lay[0:4] = h5py.VirtualSource(src.name, "d", shape=(4, 12))
        lay[4:8] = h5py.VirtualSource(".", "local", shape=(4, 12))
        f.create_virtual_dataset("plain", lay, fillvalue=0)
        odd = h5py.VirtualLayout(shape=(9, 12), dtype="i8")
        odd[1:5] = h5py.VirtualSource(".", "local", shape=(4, 12))  # not on a chunk boundary
        f.create_virtual_dataset("unaligned", odd, fillvalue=0)
        gone = h5py.VirtualLayout(shape=(4, 12), dtype="i8")
        gone[:] = h5py.VirtualSource("missing.h5", "d", shape=(4, 12))
        f.create_virtual_dataset("missing_source", gone, fillvalue=0)
    return path


def netcdf4_file(path: Path) -> Path:
    """A netCDF4 file written by netCDF4-python: dims, coords, CF attrs, unlimited dim, groups."""
    import netCDF4

    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "netCDF4 test"
        nc.createDimension("time", None)
        nc.createDimension("lat", 5)
        nc.createDimension("lon", 6)
        nc.createDimension("bnds", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "standard"
        t[:] = np.arange(4)
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat[:] = np.linspace(-10, 10, 5)
        lat.units = "degrees_north"
        lon = nc.createVariable("lon", "f4", ("lon",))
        lon[:] = np.linspace(0, 50, 6)
        lb = nc.createVariable("lat_bnds", "f4", ("lat", "bnds"))
        lb[:] = np.stack([lat[:] - 1, lat[:] + 1], axis=-1)
        v = nc.createVariable(
            "temp",
            "i2",
            ("time", "lat", "lon"),
            zlib=True,
            shuffle=True,
            fill_value=-999,
            chunksizes=(1, 5, 3),
        )
        v.scale_factor = 0.01
        v.add_offset = 273.15
        v.units = "K"
        data = RNG.integers(-2000, 2000, size=(4, 5, 6)).astype("i2")
        v.set_auto_maskandscale(False)
        v[:] = data
        v[0, 0, 0] = -999
        p = nc.createVariable("precip", "f4", ("time", "lat", "lon"))
        p[:2] = RNG.random((2, 5, 6)).astype("f4")  # time 2..3 never written: default fill
        s = nc.createVariable("station", str, ("lat",))
        s[:] = np.array(["a", "bb", "ccc", "dd", "e"], dtype=object)
        g = nc.createGroup("sub")
        g.createDimension("x", 3)
        gx = g.createVariable("vx", "u1", ("x",))
        gx[:] = [1, 2, 3]
    return path


def h5netcdf_file(path: Path) -> Path:
    """A netCDF4 file written by h5netcdf: dims without coordinates, attrs, compression."""
    import h5netcdf

    with h5netcdf.File(path, "w") as f:
        f.attrs["source"] = "h5netcdf"
        f.dimensions = {"x": 8, "y": 3, "n": 4}
        x = f.create_variable("x", ("x",), data=np.arange(8.0))
        x.attrs["units"] = "m"
        v = f.create_variable(
            "v", ("x", "y"), dtype="f8", compression="gzip", chunks=(4, 3), fillvalue=np.nan
        )
        v[...] = RNG.random((8, 3))
        v.attrs["long_name"] = "a variable"
        w = f.create_variable("w", ("n",), dtype="i4", data=np.arange(4) * 3)
        w.attrs["valid_range"] = np.array([0, 100], dtype="i4")
    return path


def many_chunks_file(path: Path, nchunks: int = 100_000) -> Path:
    """A 1-D int32 dataset of ``nchunks`` chunks of 4 elements each (index-cost benchmark)."""
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("x", data=np.arange(nchunks * 4, dtype="i4"), chunks=(4,))
    return path


def tomo_file(path: Path, shape: tuple[int, int, int] = (16, 64, 80)) -> Path:
    """A Blosc2 (zstd + shuffle) tomography stack, one projection per chunk."""
    with h5py.File(path, "w") as f:
        g = f.create_group("entry/data")
        g.create_dataset(
            "data",
            data=tomo_stack(shape),
            chunks=(1, *shape[1:]),
            **hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE),
        )
    return path


ALL = {
    "filters.h5": filters_file,
    "layouts.h5": layouts_file,
    "unsupported.h5": unsupported_file,
    "vds.h5": vds_file,
    "netcdf4.nc": netcdf4_file,
    "h5netcdf.nc": h5netcdf_file,
    "tomo.h5": tomo_file,
}

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    for name, gen in ALL.items():
        print(gen(out / name))
