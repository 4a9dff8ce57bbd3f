"""Differential test: b2h5 reads random HDF5 files exactly as h5py does (property-based).

A Hypothesis strategy draws a dataset description (dtype, shape, layout, chunks, filter pipeline,
fill value with allocation/fill times, which chunks are written, growth through ``maxshape``,
chunks written with ``write_direct_chunk`` that skip filters through their filter mask); the
dataset is written with h5py + hdf5plugin and read back through b2h5's v3 view
(``zarr.open_array("b2h5::...")``), its v2 view (``zarr_format=2`` mapper) and dask, whole and
through random basic selections, and compared with h5py value for value (NaN-aware, dtype-exact
up to byte order: Zarr v3 data types carry none). Features b2h5 documents as unsupported must
raise ``UnsupportedHDF5FeatureError`` at open instead.

Regression tests for what the property test found sit at the end of the file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from h5view_helpers import assert_same
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")
zarr = pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")

import fsspec  # noqa: E402

from b2store.errors import UnsupportedHDF5FeatureError  # noqa: E402

# --- dataset descriptions -----------------------------------------------------------------------

SIMPLE = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"]
BIG = [">u2", ">i2", ">i4", ">u4", ">i8", ">f4", ">f8", ">f2"]
OTHER = ["?", "c8", "S1", "S5", "cmp", "cmp_pad"]
COMPOUNDS = {
    "cmp": np.dtype([("a", "<i2"), ("b", "<f4")]),
    # a compound h5py writes packed ('u1' then '<f8': 9 bytes)
    "cmp_pad": np.dtype([("x", "u1"), ("y", "<f8")]),
}

# HDF5 filters by name; "compressions" are the ones h5py's high-level API takes one of
COMPRESSIONS = ["gzip", "lzf", "blosc", "blosc2", "lz4", "bitshuffle", "zstd", "bzip2", "szip"]
#: filters b2h5 documents as unsupported (raise UnsupportedHDF5FeatureError, or read right
#: where HDF5 stored every chunk unfiltered)
UNSUPPORTED = ["scaleoffset", "nbit", "zfp"]
BLOSC_CNAMES = ["blosclz", "lz4", "lz4hc", "zlib", "zstd", "snappy"]
BLOSC2_CNAMES = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]

Filter = tuple[str, tuple[Any, ...]]


def as_dtype(name: str) -> np.dtype[Any]:
    return COMPOUNDS[name] if name in COMPOUNDS else np.dtype(name)


@dataclasses.dataclass(frozen=True)
class Desc:
    """One HDF5 dataset to write and compare."""

    dtype: str
    shape: tuple[int, ...]
    layout: str  # chunked | contiguous | compact | external
    chunks: tuple[int, ...] | None
    pipeline: tuple[Filter, ...]  # in HDF5 (encode) order
    fill: str  # none | zero | nonzero | nan
    alloc_time: str  # default | early | incr | late
    fill_time: str  # default | alloc | never | ifset
    written: str  # all | some | none
    written_mask: tuple[bool, ...]  # per chunk (C order), for written == "some"
    grow_to: tuple[int, ...] | None  # resized after writing (chunked, maxshape=None)
    direct: tuple[tuple[int, int], ...]  # (chunk number, filter mask) written directly
    seed: int

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return as_dtype(self.dtype)


@st.composite
def pipelines(draw: Any, dtype: str, nelem: int) -> tuple[Filter, ...]:
    """h5py's order (shuffle, one compression, fletcher32) mostly; any order of 1-3 otherwise."""
    dt = as_dtype(dtype)
    szip_ok = dt.kind in "iuf" and dt.itemsize > 1 and nelem >= 2  # pixels per block <= nelem
    comps = [c for c in COMPRESSIONS if c != "szip" or szip_ok]
    if draw(st.integers(0, 2)):
        out: list[Filter] = []
        if draw(st.booleans()):
            out.append(("shuffle", ()))
        if draw(st.integers(0, 5)):
            c = draw(st.sampled_from(comps))
            out.append((c, draw(filter_options(c, dtype))))
        if draw(st.booleans()):
            out.append(("fletcher32", ()))
        if not out:
            out.append(("gzip", (draw(st.integers(0, 9)),)))
        return tuple(out)
    # each filter once: HDF5's set_local fills in the cd_values of the first filter with an id
    # only, and hdf5plugin's Blosc/Blosc2 then die of SIGFPE writing through the second
    # (HDF5 2.0, hdf5plugin 7.1): a writer-side crash, not b2h5's
    # szip only on typed data (h5py's order): after a filter that changes the bytes, HDF5's
    # szip filter corrupts the writer's heap ("malloc(): invalid size")
    everything = st.sampled_from([*(c for c in comps if c != "szip"), "shuffle", "fletcher32"])
    names = draw(st.lists(everything, min_size=1, max_size=3, unique=True))
    return tuple((n, draw(filter_options(n, dtype))) for n in names)


@st.composite
def descriptions(draw: Any, *, filtered: bool | None = None, unsupported: bool = False) -> Desc:
    """Draw a dataset: ``filtered`` True forces chunked + filters, False no filter at all;
    ``unsupported`` adds features b2h5 documents as unsupported."""
    extra = ["g"] if unsupported else []  # long double
    dtype = draw(st.sampled_from(SIMPLE + BIG + OTHER + extra))
    ndim = draw(st.integers(0, 4))
    max_axis = {0: 1, 1: 40, 2: 24, 3: 10, 4: 6}[ndim]
    shape = tuple(draw(st.lists(st.integers(0, max_axis), min_size=ndim, max_size=ndim)))
    if ndim == 0:
        layouts = ["contiguous", "compact"]
    elif filtered:
        layouts = ["chunked"]
    else:
        layouts = ["chunked", "chunked", "chunked", "contiguous", "compact"]
    if unsupported:
        layouts.append("external")
    layout = draw(st.sampled_from(layouts))
    chunks = None
    pipeline: tuple[Filter, ...] = ()
    grow_to = None
    if layout == "chunked":
        chunks = tuple(draw(st.integers(1, max(1, n + 3))) for n in shape)
        if filtered is not False:
            pipeline = draw(pipelines(dtype, int(np.prod(chunks))))
        dt = as_dtype(dtype)
        if unsupported and dt.kind in "iuf" and dt.itemsize <= 8 and draw(st.booleans()):
            bad = draw(st.sampled_from(UNSUPPORTED))
            if bad != "nbit" and dt.kind == "f" and dt.itemsize < 4:
                bad = "nbit"  # HDF5's scaleoffset and ZFP take 32/64-bit floats only
            if bad == "zfp" and dt.kind != "f":
                bad = "nbit"
            # first: after a filter that changes sizes HDF5 itself crashes reading them
            pipeline = ((bad, ()), *pipeline)
        if draw(st.integers(0, 4)) == 0:
            grow_to = tuple(n + draw(st.integers(0, 5)) for n in shape)
    fills = ["none", "zero", "nonzero"]
    if as_dtype(dtype).kind in "fc":
        fills.append("nan")
    fill = draw(st.sampled_from(fills))
    if layout == "compact":
        alloc = "early"
    else:
        alloc = draw(st.sampled_from(["default", "early", "incr", "late"]))
    fill_time = draw(st.sampled_from(["default", "alloc", "never", "ifset"]))
    written = draw(st.sampled_from(["all", "all", "some", "none"]))
    nchunks = 1
    if chunks is not None:
        nchunks = int(np.prod([-(-n // c) for n, c in zip(shape, chunks, strict=True)]))
    mask = tuple(draw(st.lists(st.booleans(), min_size=nchunks, max_size=nchunks)))
    direct: tuple[tuple[int, int], ...] = ()
    if layout == "chunked" and nchunks and pipeline and draw(st.integers(0, 2)) == 0:
        picks = draw(st.lists(st.integers(0, nchunks - 1), min_size=1, max_size=3, unique=True))
        direct = tuple((p, draw(st.integers(0, (1 << len(pipeline)) - 1))) for p in picks)
    seed = draw(st.integers(0, 2**16))
    return Desc(
        dtype, shape, layout, chunks, pipeline, fill, alloc, fill_time, written, mask, grow_to,
        direct, seed,
    )  # fmt: skip


@st.composite
def filter_options(draw: Any, name: str, dtype: str) -> tuple[Any, ...]:
    if name == "gzip":
        return (draw(st.integers(0, 9)),)
    if name == "blosc":
        return (
            draw(st.sampled_from(BLOSC_CNAMES)),
            draw(st.integers(0, 9)),
            draw(st.sampled_from([0, 1, 2])),
        )
    if name == "blosc2":
        flts = [0, 1, 2, 3]
        if as_dtype(dtype).kind == "f" and as_dtype(dtype).itemsize in (4, 8):
            flts.append(4)  # TRUNC_PREC: floats only
        return (
            draw(st.sampled_from(BLOSC2_CNAMES)),
            draw(st.integers(0, 9)),
            draw(st.sampled_from(flts)),
        )
    if name == "lz4":
        return (draw(st.sampled_from([0, 64, 1000])),)
    if name == "bitshuffle":
        return (draw(st.sampled_from([None, "lz4", "zstd"])), draw(st.sampled_from([0, 8, 16])))
    if name == "zstd":
        return (draw(st.integers(1, 9)),)
    if name == "bzip2":
        return (draw(st.integers(1, 9)),)
    if name == "szip":
        return (draw(st.sampled_from(["nn", "ec"])), draw(st.sampled_from([2, 8, 32])))
    return ()


# --- writing ------------------------------------------------------------------------------------


def fill_scalar(desc: Desc) -> Any:
    """The fill value as a 0-d array of the dataset's dtype (None: no fill value set)."""
    dt = desc.np_dtype
    if desc.fill == "none":
        return None
    out = np.zeros((), dt)
    if desc.fill == "nan":
        out[()] = np.nan
    elif desc.fill == "nonzero":
        if dt.fields:
            for name in dt.names or ():
                out[name] = 7
        elif dt.kind == "S":
            out[()] = b"fv"
        elif dt.kind == "b":
            out[()] = True
        else:
            out[()] = 7
    return out


def values(desc: Desc, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Data mixing runs (compressible) and noise, with NaN/inf/-0.0 for floats."""
    dt = desc.np_dtype
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dt.fields:
        out = np.zeros(n, dt)
        for name in dt.names or ():
            out[name] = rng.integers(-50, 50, n)
        return out.reshape(shape)
    if dt.kind == "S":
        letters = np.frombuffer(b"abcdefgh\0", "S1")
        raw = rng.choice(letters, (n, dt.itemsize))
        return np.frombuffer(raw.tobytes(), dt).reshape(shape).copy()
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if rng.integers(0, 2) or dt.itemsize > 8:
        raw = (np.arange(n) // 3 % 11 + rng.integers(0, 2, n)).astype(dt)
    else:
        raw = np.frombuffer(rng.bytes(n * dt.itemsize), dt).copy()
        if dt.kind == "c":  # random complex bits: keep finite, NaN set below
            raw = np.nan_to_num(raw)
    if dt.kind in "fc" and n:
        special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype=dt)
        where = rng.integers(0, n, min(n, 4))
        raw[where] = special[rng.integers(0, len(special), len(where))]
    return raw.reshape(shape)


def add_filter(dcpl: Any, name: str, opts: tuple[Any, ...], dt: np.dtype[Any], nelem: int) -> None:
    """Append one filter to a dataset creation property list, as h5py/hdf5plugin would."""
    h5z = h5py.h5z
    plugin: Any = None
    if name == "shuffle":
        dcpl.set_shuffle()
    elif name == "fletcher32":
        dcpl.set_fletcher32()
    elif name == "gzip":
        dcpl.set_deflate(opts[0])
    elif name == "lzf":
        dcpl.set_filter(h5z.FILTER_LZF, h5z.FLAG_OPTIONAL)
    elif name == "szip":
        nn = h5z.SZIP_NN_OPTION_MASK if opts[0] == "nn" else h5z.SZIP_EC_OPTION_MASK
        dcpl.set_szip(nn, min(opts[1], nelem - nelem % 2))
    elif name == "scaleoffset":
        if dt.kind == "f":
            dcpl.set_scaleoffset(h5z.SO_FLOAT_DSCALE, 2)
        else:
            dcpl.set_scaleoffset(h5z.SO_INT, h5z.SO_INT_MINBITS_DEFAULT)
    elif name == "nbit":
        dcpl.set_filter(h5z.FILTER_NBIT, 0, ())
    elif name == "zfp":
        plugin = hdf5plugin.Zfp(rate=16)
    elif name == "blosc":
        plugin = hdf5plugin.Blosc(cname=opts[0], clevel=opts[1], shuffle=opts[2])
    elif name == "blosc2":
        plugin = hdf5plugin.Blosc2(cname=opts[0], clevel=opts[1], filters=opts[2])
    elif name == "lz4":
        plugin = hdf5plugin.LZ4(nbytes=opts[0])
    elif name == "bitshuffle":
        plugin = hdf5plugin.Bitshuffle(nelems=opts[1], cname=opts[0])
    elif name == "zstd":
        plugin = hdf5plugin.Zstd(clevel=opts[0])
    elif name == "bzip2":
        plugin = hdf5plugin.BZip2(blocksize=opts[0])
    else:
        raise AssertionError(name)
    if plugin is not None:
        dcpl.set_filter(plugin.filter_id, h5z.FLAG_OPTIONAL, plugin.filter_options)


def dcpl_for(desc: Desc, pipeline: tuple[Filter, ...] = ()) -> Any:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    alloc = {
        "early": h5py.h5d.ALLOC_TIME_EARLY,
        "incr": h5py.h5d.ALLOC_TIME_INCR,
        "late": h5py.h5d.ALLOC_TIME_LATE,
    }
    if desc.alloc_time in alloc:
        dcpl.set_alloc_time(alloc[desc.alloc_time])
    times = {
        "alloc": h5py.h5d.FILL_TIME_ALLOC,
        "never": h5py.h5d.FILL_TIME_NEVER,
        "ifset": h5py.h5d.FILL_TIME_IFSET,
    }
    if desc.fill_time in times:
        dcpl.set_fill_time(times[desc.fill_time])
    fv = fill_scalar(desc)
    if fv is not None:
        dcpl.set_fill_value(np.ascontiguousarray(fv))
    for name, opts in pipeline:
        add_filter(dcpl, name, opts, desc.np_dtype, int(np.prod(desc.chunks or ())))
    return dcpl


def chunk_grid(desc: Desc) -> list[tuple[int, ...]]:
    """Chunk offsets (element coordinates), C order, of the written shape."""
    assert desc.chunks is not None
    axes = [range(0, n, c) for n, c in zip(desc.shape, desc.chunks, strict=True)]
    counts = [len(a) for a in axes]
    return [tuple(a[i] for a, i in zip(axes, t, strict=True)) for t in np.ndindex(*counts)]


def write(desc: Desc, path: Path) -> None:
    dt = desc.np_dtype
    data = values(desc, desc.shape, desc.seed)
    with h5py.File(path, "w") as f:
        if desc.layout == "chunked":
            maxshape = None
            chunks = desc.chunks or ()
            big = any(c > n for c, n in zip(chunks, desc.shape, strict=True))
            if desc.grow_to is not None or big:  # h5py: chunks beyond the shape need maxshape
                maxshape = tuple(None for _ in desc.shape)
            ds = f.create_dataset(
                "x",
                shape=desc.shape,
                dtype=dt,
                chunks=desc.chunks,
                maxshape=maxshape,
                dcpl=dcpl_for(desc, desc.pipeline),
            )
            grid = chunk_grid(desc)
            if desc.written == "all":
                ds[...] = data
            elif desc.written == "some":
                for off, keep in zip(grid, desc.written_mask, strict=False):
                    if keep:
                        sel = tuple(slice(o, o + c) for o, c in zip(off, chunks, strict=True))
                        ds[sel] = data[sel]
            if desc.grow_to is not None:
                ds.resize(desc.grow_to)
                if desc.written == "all" and ds.size:
                    # write one element in the grown part (a new chunk, or a partial one)
                    last = tuple(n - 1 for n in desc.grow_to)
                    ds[last] = values(desc, (1,), desc.seed + 1)[0]
        elif desc.layout == "external":
            ds = f.create_dataset(
                # an absolute name: HDF5 resolves a relative one against the working
                # directory, so the raw file landed wherever pytest ran (the repo's root)
                "x",
                shape=desc.shape,
                dtype=dt,
                external=[(f"{path}.raw", 0, 2**20)],
            )
            if desc.written != "none":
                ds[...] = data
        else:
            space = (
                h5py.h5s.create_simple(desc.shape)
                if desc.shape
                else h5py.h5s.create(h5py.h5s.SCALAR)
            )
            dcpl = dcpl_for(desc)
            dcpl.set_layout(h5py.h5d.COMPACT if desc.layout == "compact" else h5py.h5d.CONTIGUOUS)
            tid = h5py.h5t.py_create(dt, logical=True)
            dsid = h5py.h5d.create(f.id, b"x", tid, space, dcpl=dcpl)
            ds = h5py.Dataset(dsid)
            if desc.written != "none":
                ds[...] = data
    if desc.direct:
        # in a new session, last: HDF5 2.0 ignores the mask of a direct chunk when the same
        # open file reads it again (a partial write), and after a resize in the same session
        # it stored mask 0 for a chunk written with mask 2
        with h5py.File(path, "a") as f:
            grid = chunk_grid(desc)
            want = {grid[n]: write_direct(f, f["x"], desc, grid[n], m) for n, m in desc.direct}
        with h5py.File(path, "r") as f:
            got: dict[tuple[int, ...], int] = {}
            f["x"].id.chunk_iter(lambda si: got.__setitem__(tuple(si.chunk_offset), si.filter_mask))
        if any(got.get(off) != mask for off, mask in want.items()):
            # HDF5 2.0 sometimes stores mask 0 for a chunk rewritten with write_direct_chunk
            # (seen: >u2 [shuffle, zstd], mask 2 over a written chunk): h5py and b2h5 then both
            # fail loudly on it, so the example says nothing about b2h5
            reject()


def write_direct(f: Any, ds: Any, desc: Desc, offset: tuple[int, ...], mask: int) -> int:
    """Write one full chunk with write_direct_chunk, skipping the filters set in ``mask``.

    The bytes for the filters kept are made by HDF5 itself: the chunk is written to a scratch
    dataset with only those filters (in the same order) and read back raw; the scratch chunk's
    own mask (an optional filter that did not reduce the size) is carried over.
    """
    assert desc.chunks is not None
    kept = [i for i in range(len(desc.pipeline)) if not mask >> i & 1]
    chunk = values(desc, desc.chunks, desc.seed + 2 + sum(offset))
    scratch = f.create_dataset(
        f"scratch{len(f)}",
        shape=desc.chunks,
        dtype=desc.np_dtype,
        chunks=desc.chunks,
        dcpl=dcpl_for(desc, tuple(desc.pipeline[i] for i in kept)),
    )
    scratch[...] = chunk
    f.flush()
    smask, raw = scratch.id.read_direct_chunk((0,) * len(desc.chunks))
    full = mask
    for j, i in enumerate(kept):  # scratch bit j belongs to filter kept[j]
        if smask >> j & 1:
            full |= 1 << i
    del f[scratch.name]
    ds.id.write_direct_chunk(offset, raw, filter_mask=full)
    return full


# --- reading and comparing ----------------------------------------------------------------------


def selection(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    sel: list[Any] = []
    for n in shape:
        kinds = ["slice"] if n == 0 else ["int", "slice", "full"]
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            sel.append(draw(st.integers(-n, n - 1)))
        elif kind == "full":
            sel.append(slice(None))
        else:
            start = draw(st.one_of(st.none(), st.integers(-n - 2, n + 2)))
            stop = draw(st.one_of(st.none(), st.integers(-n - 2, n + 2)))
            step = draw(st.one_of(st.none(), st.integers(1, 5)))
            sel.append(slice(start, stop, step))
    return tuple(sel)


def open_views(path: Path) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v3 = zarr.open_array(f"b2h5::{path}", path="x", mode="r")
        mapper = fsspec.filesystem("b2h5", fo=str(path), zarr_format=2).get_mapper("x")
        v2 = zarr.open_array(mapper, mode="r", zarr_format=2)
    return {"v3": v3, "v2": v2}


def expect_unsupported(desc: Desc) -> str | None:
    """A regex of the errors b2h5 documents for this description, or None (must read right)."""
    why = []
    if desc.layout == "external":
        why.append("external raw files")
    if desc.dtype == "g":
        why.append("long double")
    why += [n for n, _ in desc.pipeline if n in UNSUPPORTED]
    why += ["snappy" for n, opts in desc.pipeline if n == "blosc" and opts[0] == "snappy"]
    return "|".join(why) or None


def as_read(got: Any, want: np.ndarray) -> Any:
    """zarr returns a numpy scalar for a 0-d result; bytes scalars lose their length there
    (and dask's 0-d result, made from that scalar, too)."""
    if np.ndim(got) == 0 and want.dtype.kind == "S":
        return np.asarray(got, dtype=want.dtype)
    return got


def reference_may_fail(desc: Desc) -> bool:
    """hdf5plugin's Blosc2 filter cannot always decode its own plain frames behind fletcher32
    (an all-zero (1, 2, 2) u8 chunk: chunk + 4 checksum bytes, not a multiple of the typesize):
    h5py raises "filter returned failure during read", on write too when HDF5 re-reads a chunk
    to update it. b2store decodes those frames (see the regression test below); such examples
    have no reference, so they are rejected."""
    names = [name for name, _ in desc.pipeline]
    return "blosc2" in names and "fletcher32" in names[: names.index("blosc2")]


def check(desc: Desc, tmp: Path, data: Any) -> None:
    path = tmp / "d.h5"
    unsupported = expect_unsupported(desc)
    try:
        write(desc, path)
    except (OSError, ValueError) as e:
        if unsupported is None and not (isinstance(e, OSError) and reference_may_fail(desc)):
            raise
        reject()  # HDF5 itself refuses some (scaleoffset with a NaN fill value)
    try:
        views = open_views(path)
    except UnsupportedHDF5FeatureError as e:
        # correct or loud: only what docs/hdf5.md lists as unsupported may refuse to open (the
        # v2 view's fill chunks that a pipeline cannot encode skip every filter instead)
        assert unsupported is not None and re.search(unsupported, str(e)), (desc, e)
        assert "d.h5:/x" in str(e), e  # names the file and the dataset
        return
    with h5py.File(path, "r") as f:
        ds = f["x"]
        try:
            want = np.asarray(ds[...], dtype=ds.dtype)
        except OSError:
            if not reference_may_fail(desc):
                raise
            reject()
        shape = ds.shape
        sels = [selection(data.draw, shape) for _ in range(3)]
        wants = [np.asarray(ds[s], dtype=ds.dtype) for s in sels]
    for name, z in views.items():
        where = f"{name} {desc}"
        assert z.shape == shape, where
        assert_same(as_read(z[...], want), want, f"{where} [...]")
        for s, w in zip(sels, wants, strict=True):
            assert_same(as_read(z[s], w), w, f"{where} {s}")
    got = da.from_zarr(views["v3"]).compute(scheduler="threads")
    assert_same(as_read(got, want), want, f"dask {desc}")
    if want.dtype.kind in "biufc" and want.ndim:
        check_engine(path, desc, want, sels, wants)


def check_engine(
    path: Path, desc: Desc, want: np.ndarray, sels: list[Any], wants: list[np.ndarray]
) -> None:
    """``xr.open_dataset(path, engine="b2h5")`` reads like h5py, lazily and with dask chunks
    equal to the stored ones; a chunked little-endian dataset whose only filter is Blosc2
    takes the whole-chunk path (no zarr pipeline), every other one zarr's (a big-endian one
    decodes through the generic HDF5 pipeline codec)."""
    import xarray as xr

    from b2store._whole_chunks import WholeChunkArrayWrapper
    from tests._engines import innermost_array

    blosc2_only = (
        desc.layout == "chunked"
        and [n for n, _ in desc.pipeline] == ["blosc2"]
        and desc.np_dtype.byteorder != ">"
    )
    for chunks in (None, {}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_dataset(path, engine="b2h5", decode_cf=False, chunks=chunks)
        var = ds["x"]
        if chunks is None:
            whole = isinstance(innermost_array(ds, "x"), WholeChunkArrayWrapper)
            assert whole == blosc2_only, f"whole-chunk path {whole} for {desc}"
        where = f"engine chunks={chunks} {desc}"
        assert_same(var.values, want, f"{where} [...]")
        for s, w in zip(sels, wants, strict=True):
            assert_same(np.asarray(var[s].values), w, f"{where} {s}")


SETTINGS = settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(SETTINGS, max_examples=100)
@given(desc=descriptions(filtered=True), data=st.data())
def test_filtered_chunked_reads_like_h5py(tmp_path_factory, desc: Desc, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("diff"), data)


@settings(SETTINGS, max_examples=70)
@given(desc=descriptions(filtered=False), data=st.data())
def test_layouts_and_fills_read_like_h5py(tmp_path_factory, desc: Desc, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("diff"), data)


@settings(SETTINGS, max_examples=70)
@given(desc=descriptions(), data=st.data())
def test_any_dataset_reads_like_h5py(tmp_path_factory, desc: Desc, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("diff"), data)


@settings(SETTINGS, max_examples=40)
@given(desc=descriptions(unsupported=True), data=st.data())
def test_unsupported_features_are_loud(tmp_path_factory, desc: Desc, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("diff"), data)


@st.composite
def big_blosc2(draw: Any) -> Desc:
    """Blosc2 chunks above hdf5plugin's 128 KiB block: b2nd frames stored block-major, padded."""
    dtype = draw(st.sampled_from(["u2", ">i4", "f4", "f8", "c8", "i1"]))
    ndim = draw(st.integers(2, 3))
    itemsize = as_dtype(dtype).itemsize
    inner = draw(st.lists(st.integers(3, 40), min_size=ndim - 1, max_size=ndim - 1))
    first = -(-131072 // (itemsize * int(np.prod(inner)))) + draw(st.integers(0, 50))
    chunks = (first, *inner)
    shape = tuple(
        c * draw(st.sampled_from([1, 1, 2])) - draw(st.integers(0, c - 1)) for c in chunks
    )
    blosc2 = ("blosc2", draw(filter_options("blosc2", dtype)))
    pipeline: tuple[Filter, ...] = (blosc2,)
    if draw(st.booleans()):
        pipeline = (("shuffle", ()), *pipeline)
    if draw(st.booleans()):
        pipeline = (*pipeline, ("fletcher32", ()))
    nchunks = int(np.prod([-(-n // c) for n, c in zip(shape, chunks, strict=True)]))
    return Desc(
        dtype, shape, "chunked", chunks, pipeline, draw(st.sampled_from(["none", "nonzero"])),
        "default", "default", draw(st.sampled_from(["all", "some"])),
        tuple(draw(st.lists(st.booleans(), min_size=nchunks, max_size=nchunks))), None, (),
        draw(st.integers(0, 2**16)),
    )  # fmt: skip


@settings(SETTINGS, max_examples=12)
@given(desc=big_blosc2(), data=st.data())
def test_big_blosc2_chunks_read_like_h5py(tmp_path_factory, desc: Desc, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("diff"), data)


# --- regressions found by the property tests ----------------------------------------------------


@pytest.mark.parametrize("before", ["lz4", "bzip2", "gzip"])
@pytest.mark.parametrize("zarr_format", [3, 2])
def test_lzf_after_a_filter_that_changes_sizes(tmp_path, before, zarr_format) -> None:
    """LZF's decoded size is not the chunk's when a filter before it (in HDF5's encode order)
    changed the bytes: b2h5 took cd_values[2] (the chunk size) and raised "invalid LZF stream
    (... output buffer is not large enough ...)"; h5py's filter grows its buffer."""
    path = tmp_path / "lzf.h5"
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    opts = {"lz4": (0,), "bzip2": (9,), "gzip": (0,)}[before]
    add_filter(dcpl, before, opts, np.dtype("u1"), 40)
    add_filter(dcpl, "lzf", (), np.dtype("u1"), 40)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(3, 40), chunks=(1, 40), dtype="u1", dcpl=dcpl)[...] = 7
        masks: list[int] = []
        f["x"].id.chunk_iter(lambda si: masks.append(si.filter_mask))
        assert masks == [0, 0, 0]  # LZF did compress the output of the first filter
        want = f["x"][...]
    fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format)
    z = zarr.open_array(fs.get_mapper("x"), mode="r", zarr_format=zarr_format)
    assert_same(z[...], want, before)


def test_lzf_of_unknown_size_stays_bounded_and_loud() -> None:
    """Growing LZF's buffer stops at LZF's largest expansion: a corrupt stream is a ValueError
    naming the filter, never an endless loop or a huge allocation."""
    from b2store.codecs.hdf5_pipeline import _DECODERS, LZF

    decode = _DECODERS[LZF][0]
    with pytest.raises(ValueError, match="lzf"):
        decode((4, 261, 40), memoryview(b"\xff" * 64), None, 1)
    # a valid stream decoding to far more than cd_values[2] (zeros: ~88x) still decodes
    import imagecodecs

    stream = imagecodecs.lzf_encode(bytes(100_000), header=False)
    assert bytes(decode((4, 261, 40), memoryview(stream), None, 1)) == bytes(100_000)


@pytest.mark.parametrize("dtype", ["f4", ">f8"])
def test_v2_fill_chunks_of_blosc2_trunc_prec(tmp_path, dtype) -> None:
    """The v2 view encodes the unallocated chunks of a dataset with a non-zero fill value.
    With the b2store_hdf5 pipeline (Blosc2 + fletcher32) and hdf5plugin's Blosc2 TRUNC_PREC
    (filters=4, no precision given: C-Blosc2 keeps every bit), python-blosc2 refused to encode
    them and the open raised UnsupportedHDF5FeatureError ("... the Zarr v2 view cannot encode
    ... Error while creating the NDArray")."""
    path = tmp_path / "trunc.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "x", shape=(24, 7), chunks=(12, 7), dtype=dtype, fillvalue=7.5, fletcher32=True,
            compression=hdf5plugin.Blosc2(filters=hdf5plugin.Blosc2.TRUNC_PREC),
        )  # fmt: skip
        want = d[...]  # no chunk written (a written one may skip Blosc2 through its mask)
    for zarr_format in (2, 3):
        fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format)
        z = zarr.open_array(fs.get_mapper("x"), mode="r", zarr_format=zarr_format)
        assert_same(z[...], want, f"v{zarr_format}")


def test_v2_fill_chunk_that_bitshuffle_cannot_take(tmp_path) -> None:
    """[Blosc2, bitshuffle] with a non-zero fill: b2store's Blosc2 fill frame had an odd size,
    bitshuffle's encoder took it and wrote a header its decoder refuses, so the v2 view served
    fill chunks that failed at read ("323 bytes is not a whole number of 2-byte items"). The
    encoder now fails like HDF5's filter; the v2 view then serves the dataset masked, its fill
    chunk skipping every filter (as HDF5 skips an optional filter that fails), and reads."""
    path = tmp_path / "bs.h5"
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    add_filter(dcpl, "blosc2", ("blosclz", 0, 0), np.dtype("u2"), 3)
    add_filter(dcpl, "bitshuffle", ("lz4", 0), np.dtype("u2"), 3)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", shape=(2, 3), chunks=(1, 3), dtype="u2", fillvalue=7, dcpl=dcpl)
        d[0] = [1, 2, 3]
        want = d[...]
    for zarr_format in (3, 2):
        fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format)
        z = zarr.open_array(fs.get_mapper("x"), mode="r", zarr_format=zarr_format)
        assert_same(z[...], want, f"v{zarr_format}")
        assert_same(z[1:, 1:], want[1:, 1:], f"v{zarr_format} fill chunk")
    v2 = json.loads(fs.cat("x/.zarray"))
    assert v2["compressor"]["masked"] is True  # the written chunk is served framed too


def test_v2_fill_chunk_that_bitshuffle_cannot_take_through_a_virtual_dataset(tmp_path) -> None:
    """The same through a virtual dataset mapped onto that source: served masked as well."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    add_filter(dcpl, "blosc2", ("blosclz", 0, 0), np.dtype("u2"), 3)
    add_filter(dcpl, "bitshuffle", ("lz4", 0), np.dtype("u2"), 3)
    with h5py.File(tmp_path / "src.h5", "w") as f:
        d = f.create_dataset("x", shape=(2, 3), chunks=(1, 3), dtype="u2", fillvalue=7, dcpl=dcpl)
        d[0] = [1, 2, 3]
    path = tmp_path / "vds.h5"
    with h5py.File(path, "w") as f:
        layout = h5py.VirtualLayout(shape=(2, 3), dtype="u2")
        layout[...] = h5py.VirtualSource(str(tmp_path / "src.h5"), "x", shape=(2, 3))
        f.create_virtual_dataset("v", layout, fillvalue=7)
        want = f["v"][...]
    for zarr_format in (3, 2):
        fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format)
        z = zarr.open_array(fs.get_mapper("v"), mode="r", zarr_format=zarr_format)
        assert_same(z[...], want, f"v{zarr_format}")


def test_v2_fill_chunk_of_a_masked_dataset_stays_encoded(tmp_path) -> None:
    """A dataset served masked (chunks that skip a filter) keeps an encoded fill chunk when its
    pipeline can encode one: only a fill chunk that fails to encode is served raw (every
    filter skipped), so ``b2store refs`` does not inline raw fill chunks it can compress."""
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "x", shape=(3, 4096), chunks=(1, 4096), dtype="u2", fillvalue=7, compression="gzip"
        )
        d[0] = np.arange(4096)
        d.id.write_direct_chunk((1, 0), np.arange(4096, dtype="u2").tobytes(), filter_mask=1)
    with h5py.File(path, "r") as f:
        want = f["x"][...]
    fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=2)
    assert json.loads(fs.cat("x/.zarray"))["compressor"]["masked"] is True
    assert len(fs.cat("x/2.0")) < 1000  # 8 KiB of 7s, deflated
    z = zarr.open_array(fs.get_mapper("x"), mode="r", zarr_format=2)
    assert_same(z[...], want, "v2")


def test_fletcher32_then_blosc2_all_zero_chunk_that_hdf5plugin_cannot_read(tmp_path) -> None:
    """Soak finding (3.11, fresh seed): a (1, 0, 1) u8 dataset with chunks (1, 2, 2) and
    [fletcher32, blosc2, gzip 0], grown to (1, 1, 1) and its one item set to 0: h5py cannot read
    it back ("filter returned failure during read": hdf5plugin's Blosc2 filter fails on its own
    frame of the all-zero chunk plus checksum). Not a b2store bug: b2store reads the written
    zeros; the differential test rejects such examples (``reference_may_fail``)."""
    pipeline: tuple[Filter, ...] = (
        ("fletcher32", ()),
        ("blosc2", ("blosclz", 1, 0)),
        ("gzip", (0,)),
    )
    desc = Desc(
        dtype="u8", shape=(1, 0, 1), layout="chunked", chunks=(1, 2, 2), pipeline=pipeline,
        fill="none", alloc_time="default", fill_time="default", written="all", written_mask=(),
        grow_to=(1, 1, 1), direct=(), seed=1,
    )  # fmt: skip
    assert reference_may_fail(desc)
    assert values(desc, (1,), desc.seed + 1)[0] == 0  # the item written in the grown part
    path = tmp_path / "d.h5"
    write(desc, path)
    for name, z in open_views(path).items():
        got = z[...]
        assert got.dtype == np.dtype("u8") and got.shape == (1, 1, 1), name
        assert (got == 0).all(), (name, got)
