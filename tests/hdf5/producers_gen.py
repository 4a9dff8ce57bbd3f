"""Writers of small HDF5/netCDF4 files from many producers, for the b2h5 robustness tests.

Contract: every ``write_<producer>(folder)`` function writes one or more small files into
``folder`` with one producer (netCDF4-python, h5netcdf, xarray, h5py, PyTables, hdf5plugin) and
returns their paths. A writer whose library is not installed returns an empty list. The files
exercise features that the b2h5 view must read exactly like h5py (or reject loudly).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import h5py
import numpy as np

__all__ = [
    "WRITERS",
    "write_h5netcdf",
    "write_h5py_features",
    "write_hdf5plugin_blosc2",
    "write_netcdf4",
    "write_pytables",
    "write_xarray",
]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def write_netcdf4(folder: Path) -> list[Path]:
    """netCDF4-python: groups, unlimited dims, vlen/char strings, compound, enum, filters."""
    if not _has("netCDF4"):
        return []
    import netCDF4

    path = folder / "netcdf4_features.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "netCDF4 producer test"
        nc.int_array = np.arange(3, dtype="i4")
        nc.float_attr = np.float32(1.5)
        nc.unicode = "héllo ✓"
        nc.empty_string = ""
        nc.doubles = np.array([1.0, 2.5])
        nc.createDimension("time", None)
        nc.createDimension("lat", 4)
        nc.createDimension("lon", 5)
        nc.createDimension("nchar", 3)
        nc.createDimension("nodim_used", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t[:] = np.arange(6)
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat[:] = np.linspace(-45, 45, 4)
        lon = nc.createVariable("lon", "f4", ("lon",))
        lon[:] = np.linspace(0, 40, 5)
        v = nc.createVariable(
            "temp",
            "f4",
            ("time", "lat", "lon"),
            zlib=True,
            shuffle=True,
            fletcher32=True,
            complevel=7,
            fill_value=np.float32(-999.0),
            least_significant_digit=2,
            chunksizes=(2, 3, 5),
        )
        v.units = "K"
        v[:] = np.random.default_rng(0).normal(280, 5, (6, 4, 5)).astype("f4")
        v[0, 0, 0] = np.ma.masked
        q = nc.createVariable("quantized", "f8", ("time", "lat"), zlib=True, significant_digits=3)
        q[:] = np.random.default_rng(1).random((6, 4))
        be = nc.createVariable("big_endian", ">i4", ("lat", "lon"), endian="big")
        be[:] = np.arange(20, dtype="i4").reshape(4, 5) - 7
        nanfill = nc.createVariable("nanfill", "f8", ("time",), fill_value=np.nan)
        nanfill[:4] = [1.0, np.nan, 3.0, 4.0]
        short = nc.createVariable("short_default_fill", "i4", ("time",))
        short[:2] = [1, 2]
        mv = nc.createVariable("with_missing", "i2", ("lat",))
        mv.missing_value = np.int16(-1)
        mv[:] = [1, -1, 3, 4]
        s = nc.createVariable("scalar", "f8")
        s[...] = 3.25
        s.long_name = "a scalar"
        names = nc.createVariable("names", str, ("lat",))
        names[:] = np.array(["a", "bb", "ccc", "ünï"], dtype=object)
        chars = nc.createVariable("chars", "S1", ("lat", "nchar"))
        chars[:] = netCDF4.stringtochar(np.array(["abc", "de", "f", ""], dtype="S3"))
        cmp_t = nc.createCompoundType(np.dtype([("a", "<i4"), ("b", "<f8")]), "pair")
        cmp = nc.createVariable("compound", cmp_t, ("lat",))
        data = np.zeros(4, dtype=[("a", "<i4"), ("b", "<f8")])
        data["a"], data["b"] = np.arange(4), np.arange(4) / 2
        cmp[:] = data
        enum_t = nc.createEnumType("u1", "cloud_t", {"clear": 0, "cloudy": 1, "missing": 255})
        en = nc.createVariable("cloud", enum_t, ("lon",), fill_value=255)
        en[:] = np.array([0, 1, 1, 0, 255], dtype="u1")
        for kind in ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]:
            fv = np.array(7, dtype=kind)
            var = nc.createVariable(f"fill_{kind}", kind, ("lon",), fill_value=fv)
            var[:3] = np.arange(3, dtype=kind)
        nd = nc.createVariable("no_dims_var", "i4", ("nodim_used",))
        nd[:] = [5, 6]
        g = nc.createGroup("sub")
        g.createDimension("level", 3)
        g.group_attr = "in a group"
        lev = g.createVariable("level", "i4", ("level",))
        lev[:] = [10, 20, 30]
        inner = g.createVariable("field", "f8", ("level", "lat"), zlib=True)
        inner[:] = np.arange(12, dtype="f8").reshape(3, 4)
        g2 = g.createGroup("deeper")
        deep = g2.createVariable("uses_parent_dims", "i2", ("time", "level"))
        deep[:] = np.arange(18, dtype="i2").reshape(6, 3)
    return [path]


def write_h5netcdf(folder: Path) -> list[Path]:
    """h5netcdf (plain and ``invalid_netcdf=True`` features)."""
    if not _has("h5netcdf"):
        return []
    import h5netcdf

    path = folder / "h5netcdf_features.nc"
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"x": 4, "y": None}
        f.attrs["history"] = "written by h5netcdf"
        x = f.create_variable("x", ("x",), "f8", data=np.arange(4.0))
        x.attrs["units"] = "m"
        y = f.create_variable("y", ("y",), "i4", chunks=(2,))
        f.resize_dimension("y", 5)
        y[:] = np.arange(5)
        v = f.create_variable(
            "v", ("y", "x"), "f4", compression="gzip", compression_opts=4, fillvalue=np.nan
        )
        v[:3, :] = np.arange(12, dtype="f4").reshape(3, 4)
        s = f.create_variable("s", ("x",), h5py.string_dtype())
        s[:] = ["one", "two", "three", "four"]
        g = f.create_group("grp")
        g.dimensions = {"z": 2}
        z = g.create_variable("z", ("z",), "i8", data=np.array([1, 2]))
        z.attrs["positive"] = "up"
        g.create_variable("w", ("z", "x"), "u2", data=np.arange(8, dtype="u2").reshape(2, 4))
    inv = folder / "h5netcdf_invalid.nc"
    with h5netcdf.File(inv, "w", invalid_netcdf=True) as f:
        f.dimensions = {"n": 3}
        f.create_variable("flags", ("n",), "bool", data=np.array([True, False, True]))
        f.create_variable("cplx", ("n",), "c16", data=np.array([1 + 2j, 3 - 1j, 0j]))
        f.create_variable("half", ("n",), "f2", data=np.array([0.5, 1.5, -2], dtype="f2"))
        f.attrs["complex_attr"] = np.array([1 + 1j])
        f.attrs["bool_attr"] = np.bool_(True)
        f.create_variable("lzf", ("n",), "i4", data=np.arange(3, dtype="i4"), compression="lzf")
    return [path, inv]


def write_xarray(folder: Path) -> list[Path]:
    """``xarray.Dataset.to_netcdf`` with engine h5netcdf and netcdf4 (when installed)."""
    import pandas as pd
    import xarray as xr

    ds = xr.Dataset(
        {
            "temp": (("time", "x"), np.random.default_rng(2).random((4, 3))),
            "dt": (("time",), pd.to_timedelta([1, 2, 3, 4], unit="h")),
            "flag": (("x",), np.array([True, False, True])),
            "label": (("x",), np.array(["a", "bb", "ccc"], dtype=object)),
            "fixed": (("x",), np.array([b"ab", b"c", b""], dtype="S2")),
            "cat": (("x",), np.array([0, 1, 0], dtype="i1"), {"flag_meanings": "lo hi"}),
            "packed": (("time",), np.array([1.0, 2.0, np.nan, 4.0])),
        },
        coords={
            "time": pd.date_range("2020-01-01", periods=4, freq="D"),
            "x": [10, 20, 30],
        },
        attrs={"title": "xarray round trip", "numbers": [1, 2, 3]},
    )
    encoding = {
        "packed": {"dtype": "i2", "scale_factor": 0.5, "add_offset": 1.0, "_FillValue": -1},
        "temp": {"zlib": True, "complevel": 3, "chunksizes": (2, 3)},
    }
    out = []
    for engine in ("h5netcdf", "netcdf4"):
        if not _has("netCDF4" if engine == "netcdf4" else engine):
            continue
        path = folder / f"xarray_{engine}.nc"
        ds.to_netcdf(path, engine=engine, encoding=encoding)
        out.append(path)
    return out


def write_h5py_features(folder: Path) -> list[Path]:
    """h5py: links, odd names, odd types, resized and sparse datasets, fills, libver, userblock."""
    out = []
    target = folder / "ext_target.h5"
    with h5py.File(target, "w") as f:
        f["data"] = np.arange(5, dtype="i2")
    path = folder / "h5py_features.h5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w", track_order=True) as f:
        f["base"] = np.arange(12, dtype="f4").reshape(3, 4)
        f["soft"] = h5py.SoftLink("/base")
        f["hard"] = f["base"]
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["external"] = h5py.ExternalLink(target.name, "/data")
        for name in ["with space", "dot.name", "pct%20x", "hash#1", "ünïcødé", "x" * 200]:
            f[name] = np.arange(3, dtype="u1")
        g = f.create_group("ordered", track_order=True)
        for name in ["z", "a", "m"]:
            g[name] = np.array([ord(name)], dtype="i4")
        g.attrs["empty"] = h5py.Empty("f8")
        g.attrs["ref"] = f["base"].ref
        g.attrs["str_list"] = ["a", "b"]
        g.attrs["unicode"] = "ünï"
        g.attrs["bytes"] = np.bytes_(b"raw")
        g.attrs["int_array"] = np.arange(4, dtype="i8")
        f.create_dataset("refs", data=np.array([f["base"].ref], dtype=h5py.ref_dtype))
        f.create_dataset(
            "regrefs", data=np.array([f["base"].regionref[0:1]], dtype=h5py.regionref_dtype)
        )
        enum_dt = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype="i1")
        f.create_dataset("enum", data=np.array([0, 1, 42, 1], dtype="i1"), dtype=enum_dt)
        f.create_dataset("bool", data=np.array([True, False, True]))
        f.create_dataset("opaque", data=np.array([b"ab\x00d", b"efgh"], dtype="V4"))
        arr = f.create_dataset("array_dtype", shape=(4,), dtype=np.dtype(("i2", (2, 3))))
        arr[...] = np.arange(24, dtype="i2").reshape(4, 2, 3)
        f.create_dataset("float16", data=rng.random((7, 5)).astype("f2"), chunks=(3, 2))
        f.create_dataset("complex64", data=(rng.random(9) + 1j).astype("c8"), chunks=(4,))
        f.create_dataset(
            "big_endian",
            data=np.arange(-5, 5, dtype=">i8"),
            chunks=(3,),
            compression="gzip",
            shuffle=True,
        )
        r = f.create_dataset(
            "resized", shape=(3, 4), maxshape=(None, None), chunks=(2, 3), dtype="i4", fillvalue=-5
        )
        r[...] = np.arange(12).reshape(3, 4)
        r.resize((7, 9))
        r[6, 8] = 99
        r.resize((6, 10))
        f.create_dataset("fill_chunked", shape=(5, 5), chunks=(2, 2), dtype="f8", fillvalue=np.nan)[
            1, 1
        ] = 1.0
        f.create_dataset("fill_contiguous", shape=(5,), dtype="i2", fillvalue=17)
        f.create_dataset("fill_contig_written", shape=(5,), dtype="i2", fillvalue=17)[2:] = 3
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dcpl.set_fill_value(np.array(9, dtype="i4"))
        sid = h5py.h5s.create_simple((4,))
        h5py.h5d.create(f.id, b"fill_compact", h5py.h5t.STD_I32LE, sid, dcpl=dcpl)
        f["fill_compact"][1] = 2
        for alloc, name in [
            (h5py.h5d.ALLOC_TIME_EARLY, "early"),
            (h5py.h5d.ALLOC_TIME_INCR, "incr"),
            (h5py.h5d.ALLOC_TIME_LATE, "late"),
        ]:
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((2, 2))
            dcpl.set_fill_value(np.array(3.5, dtype="f4"))
            dcpl.set_alloc_time(alloc)
            sid = h5py.h5s.create_simple((5, 3))
            h5py.h5d.create(f.id, f"alloc_{name}".encode(), h5py.h5t.IEEE_F32LE, sid, dcpl=dcpl)
            f[f"alloc_{name}"][0, 0] = 1
        five = rng.integers(0, 1000, (5, 3, 7, 4, 6)).astype("u2")
        f.create_dataset("odd5d", data=five, chunks=(2, 2, 3, 3, 4), compression="gzip")
        f.create_dataset("zero_len", shape=(0, 10), dtype="f4", chunks=(4, 10), maxshape=(None, 10))
        f.create_dataset("zero_contig", shape=(0, 10), dtype="f4")
        f.create_dataset(
            "big_chunk", data=np.arange(10, dtype="i4"), chunks=(10,), maxshape=(None,)
        )
        f.create_dataset("scalar", data=np.float64(2.5))
        f.create_dataset("fixed_str", data=np.array([b"abc", b"de"], dtype="S3"))
        f.create_dataset("vlen_str", data=["x", "yy", "ünï"], dtype=h5py.string_dtype())
        cmp = np.zeros(4, dtype=[("a", "<i2"), ("b", "<f4"), ("c", "S2")])
        cmp["a"] = [1, 2, 3, 4]
        f.create_dataset("compound", data=cmp, chunks=(2,), compression="gzip")
    out.append(path)
    for libver in ("earliest", "latest"):
        p = folder / f"libver_{libver}.h5"
        with h5py.File(p, "w", libver=libver) as f:
            f.create_dataset(
                "c",
                data=np.arange(40, dtype="i4").reshape(5, 8),
                chunks=(2, 3),
                maxshape=(None, 8),
                compression="gzip",
            )
            f.create_dataset("sparse", shape=(100,), chunks=(10,), dtype="f8", fillvalue=1.25)[
                50:60
            ] = 2
            f.create_dataset("plain", data=np.arange(6.0))
            f.attrs["a"] = 1
        out.append(p)
    p = folder / "swmr.h5"
    with h5py.File(p, "w", libver="latest") as f:
        d = f.create_dataset("grow", shape=(0, 3), maxshape=(None, 3), chunks=(2, 3), dtype="i8")
        f.swmr_mode = True
        for i in range(5):
            d.resize((i + 1, 3))
            d[i] = i
            d.flush()
    out.append(p)
    p = folder / "userblock.h5"
    with h5py.File(p, "w", userblock_size=512) as f:
        f.create_dataset(
            "chunked",
            data=np.arange(30, dtype="f8").reshape(5, 6),
            chunks=(2, 4),
            compression="gzip",
        )
        f.create_dataset("contig", data=np.arange(7, dtype="i2"))
    with open(p, "r+b") as fh:
        fh.write(b"user block text")
    out.append(p)
    return out


def write_pytables(folder: Path) -> list[Path]:
    """PyTables: Array, CArray (Blosc, Blosc2), EArray, Table, VLArray; TITLE/CLASS attrs."""
    if not _has("tables"):
        return []
    import tables

    path = folder / "pytables.h5"
    with tables.open_file(str(path), "w", title="pytables file") as f:
        f.create_array("/", "array", np.arange(10, dtype="i4"), title="an Array")
        f.create_array("/", "array2d", np.arange(12.0).reshape(3, 4))
        data = np.random.default_rng(4).integers(0, 50, (40, 30)).astype("i2")
        for name, flt in [
            ("carray_blosc", tables.Filters(complevel=5, complib="blosc:lz4", shuffle=True)),
            ("carray_blosc2", tables.Filters(complevel=5, complib="blosc2:zstd", shuffle=True)),
            ("carray_blosc2_bit", tables.Filters(complevel=5, complib="blosc2", bitshuffle=True)),
            ("carray_zlib", tables.Filters(complevel=3, complib="zlib", fletcher32=True)),
        ]:
            c = f.create_carray("/", name, obj=data, filters=flt, chunkshape=(16, 8))
            c.attrs.note = name
        big = np.arange(200 * 300, dtype="f8").reshape(200, 300)
        f.create_carray(
            "/",
            "carray_blosc2_big",
            obj=big,
            filters=tables.Filters(complevel=5, complib="blosc2:lz4"),
            chunkshape=(100, 150),
        )
        e = f.create_earray(
            "/",
            "earray",
            tables.Float32Atom(),
            shape=(0, 4),
            filters=tables.Filters(complevel=1, complib="blosc2"),
            chunkshape=(8, 4),
        )
        for i in range(5):
            e.append(np.full((3, 4), i, dtype="f4"))

        class Row(tables.IsDescription):
            ident = tables.Int32Col(pos=0)
            value = tables.Float64Col(pos=1)
            name = tables.StringCol(8, pos=2)

        t = f.create_table("/", "table", Row, filters=tables.Filters(complevel=5, complib="blosc2"))
        row = t.row
        for i in range(25):
            row["ident"], row["value"], row["name"] = i, i / 4, f"r{i}".encode()
            row.append()
        t.flush()
        vl = f.create_vlarray("/", "vlarray", tables.Int32Atom())
        vl.append([1, 2])
        vl.append([3])
        g = f.create_group("/", "grp", title="a group")
        f.create_array(g, "inner", np.array([1.5, 2.5]))
    return [path]


def write_hdf5plugin_blosc2(folder: Path) -> list[Path]:
    """hdf5plugin's Blosc2: every cname and filter, 1-D and 9-D, float16/complex/compound."""
    import hdf5plugin

    path = folder / "blosc2_variants.h5"
    rng = np.random.default_rng(5)
    base = rng.normal(0, 100, (30, 20)).astype("f4")
    with h5py.File(path, "w") as f:
        for cname in ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]:
            for flt_name, flt in [
                ("none", hdf5plugin.Blosc2.NOFILTER),
                ("shuffle", hdf5plugin.Blosc2.SHUFFLE),
                ("bitshuffle", hdf5plugin.Blosc2.BITSHUFFLE),
            ]:
                f.create_dataset(
                    f"{cname}_{flt_name}",
                    data=base,
                    chunks=(7, 9),
                    **hdf5plugin.Blosc2(cname=cname, clevel=5, filters=flt),
                )
        ints = np.cumsum(rng.integers(0, 3, (20, 16)), axis=1).astype("i4")
        f.create_dataset(
            "delta",
            data=ints,
            chunks=(8, 8),
            **hdf5plugin.Blosc2(cname="zstd", filters=hdf5plugin.Blosc2.DELTA),
        )
        f.create_dataset(
            "trunc_prec", data=base, chunks=(8, 8), **hdf5plugin.Blosc2(cname="zstd", filters=4)
        )  # TRUNC_PREC
        f.create_dataset(
            "one_d", data=np.arange(1000, dtype="u8"), chunks=(300,), **hdf5plugin.Blosc2()
        )
        nine = rng.integers(0, 9, (2, 3, 2, 3, 2, 2, 3, 2, 5)).astype("i2")
        f.create_dataset(
            "nine_d",
            data=nine,
            chunks=(1, 2, 2, 2, 1, 2, 2, 1, 3),
            **hdf5plugin.Blosc2(cname="lz4"),
        )
        f.create_dataset("float16", data=base.astype("f2"), chunks=(16, 8), **hdf5plugin.Blosc2())
        f.create_dataset(
            "complex",
            data=(base + 1j * base[::-1]).astype("c16"),
            chunks=(16, 8),
            **hdf5plugin.Blosc2(),
        )
        cmp = np.zeros((10, 6), dtype=[("a", "<u1"), ("b", "<f8")])
        cmp["a"], cmp["b"] = 3, base[:10, :6]
        f.create_dataset("compound", data=cmp, chunks=(4, 4), **hdf5plugin.Blosc2())
        f.create_dataset(
            "big_endian", data=ints.astype(">i4"), chunks=(8, 8), **hdf5plugin.Blosc2()
        )
        f.create_dataset(
            "sparse_fill",
            shape=(20, 20),
            chunks=(5, 5),
            dtype="f4",
            fillvalue=-1.0,
            **hdf5plugin.Blosc2(),
        )[3:7, 3:7] = 2.0
    return [path]


WRITERS = {
    "netcdf4": write_netcdf4,
    "h5netcdf": write_h5netcdf,
    "xarray": write_xarray,
    "h5py": write_h5py_features,
    "pytables": write_pytables,
    "blosc2": write_hdf5plugin_blosc2,
}
