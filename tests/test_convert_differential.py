"""Differential test: ``b2store convert`` output reads exactly as its input does (property-based).

Random source files are assembled from the dataset descriptions of the b2h5 differential test
(``tests/hdf5/test_b2h5_differential.py``: dtypes, layouts, chunks, filter pipelines, fill values,
partially written chunks, filter masks through ``write_direct_chunk``), each dataset copied with
HDF5's object copy (raw chunks and masks kept) into groups of one file, with attributes,
missing-data markers and sometimes dimension scales. The file is converted with drawn options
(codec, level, filters, blocks, chunks, ``contiguous``, ``auto``, itrunc) and every dataset is
compared with the source through h5py (values, dtype, shape, fill value, max shape, attributes,
scales, allocated chunks) and, when converted, through ``zarr.open_array("b2h5::...")``:
NaN-aware and dtype-exact. Under itrunc, every item of a truncated dataset keeps
``0 <= x - y <= max_error``, its markers exact, no new marker and no item across its valid range;
every other dataset stays exact. Options the file cannot take fail with ``ConvertError`` and
leave no file behind.

Regression tests for what the property test found sit at the end of the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from tests.conftest import has, requires_h5py, requires_hdf5plugin

pytestmark = [requires_h5py, requires_hdf5plugin]

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")
zarr = pytest.importorskip("zarr")

sys.path.insert(0, str(Path(__file__).parent / "hdf5"))
import test_b2h5_differential as diff  # noqa: E402
from h5view_helpers import assert_same  # noqa: E402

from b2store.convert import (  # noqa: E402
    CNAMES,
    FILTERS,
    TINY_ITEMS,
    CodecChoice,
    ConvertError,
    ConvertOptions,
    convert,
)
from b2store.errors import UnsupportedHDF5FeatureError  # noqa: E402

HAS_J2K = has("blosc2_j2k")
INTS = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", ">u2", ">i2", ">i4", ">u8"]


# --- source files -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Member:
    """One dataset of a source file: where it goes, how it is written, its attributes."""

    path: str
    desc: diff.Desc
    attrs: tuple[tuple[str, Any], ...]
    scale: bool  # a 1-D dataset made a dimension scale and attached to the other datasets


@st.composite
def lossy_ints(draw: Any) -> diff.Desc:
    """Integer datasets large enough for itrunc (at least TINY_ITEMS items), mostly noise."""
    dtype = draw(st.sampled_from(INTS))
    ndim = draw(st.integers(1, 3))
    shape = {1: (draw(st.integers(4096, 6000)),), 2: (64, draw(st.integers(64, 90)))}.get(
        ndim, (draw(st.integers(2, 4)), 40, 52)
    )
    chunks = tuple(draw(st.integers(max(1, n // 4), n + 2)) for n in shape)
    pipeline = draw(st.sampled_from([(), (("shuffle", ()), ("gzip", (1,)))]))
    if draw(st.booleans()):
        pipeline = (("blosc2", draw(diff.filter_options("blosc2", dtype))),)
    nchunks = int(np.prod([-(-n // c) for n, c in zip(shape, chunks, strict=True)]))
    written = draw(st.sampled_from(["all", "all", "some"]))
    mask = tuple(draw(st.lists(st.booleans(), min_size=nchunks, max_size=nchunks)))
    fill = draw(st.sampled_from(["none", "zero", "nonzero"]))
    return diff.Desc(
        dtype, shape, "chunked", chunks, pipeline, fill, "default", "default", written, mask,
        None, (), draw(st.integers(0, 2**16)),
    )  # fmt: skip


def twin(dt: np.dtype[Any]) -> np.dtype[Any]:
    """The integer dtype of the other signedness, same size and byte order."""
    return np.dtype(dt.str.replace(dt.kind, "u" if dt.kind == "i" else "i"))


def marker_attrs(draw: Any, desc: diff.Desc) -> tuple[tuple[str, Any], ...]:
    """Missing-data markers and CF valid ranges, mostly values the data holds (or just above),
    sometimes counted in the ``_Unsigned`` twin dtype as netCDF does."""
    dt = desc.np_dtype
    if dt.kind not in "ui" or not draw(st.booleans()):
        return ()
    out: list[tuple[str, Any]] = []
    data = diff.values(desc, desc.shape, desc.seed).ravel()
    if draw(st.integers(0, 3)) == 0:
        out.append(("_Unsigned", "true" if dt.kind == "i" else "false"))
        dt = twin(dt)
        data = data.view(dt)
    info = np.iinfo(dt)

    def value() -> Any:
        base = int(data[draw(st.integers(0, data.size - 1))]) if data.size else 0
        v = base + draw(st.integers(-2, 3))
        v = draw(st.sampled_from([v, v, info.min, info.max]))
        return np.array(min(max(v, info.min), info.max), dtype=dt.newbyteorder("="))

    names = ["_FillValue", "missing_value", "valid_min", "valid_max", "valid_range"]
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        if name == "valid_range":
            lo, hi = sorted([value(), value()])
            out.append((name, np.array([lo, hi])))
        else:
            out.append((name, value()))
    return tuple(out)


@st.composite
def source_files(draw: Any, *, lossy: bool = False) -> list[Member]:
    """One to four datasets in groups; with ``lossy``, integer datasets itrunc can apply to."""
    members: list[Member] = []
    n = draw(st.integers(1, 4 if not lossy else 3))
    for i in range(n):
        if lossy and draw(st.integers(0, 3)):
            desc = draw(lossy_ints())
        elif draw(st.integers(0, 9)) == 0:  # Blosc2 chunks above hdf5plugin's 128 KiB block
            desc = draw(diff.big_blosc2())
        else:
            kind = draw(st.sampled_from(["filtered", "any", "plain", "unsupported"]))
            desc = draw(
                diff.descriptions(
                    filtered={"filtered": True, "plain": False}.get(kind),
                    unsupported=kind == "unsupported",
                )
            )
        group = draw(st.sampled_from(["", "g/", "g/h/", "entry/data/"]))
        attrs = (("units", "counts"), ("index", np.int32(i)))[: draw(st.integers(0, 2))]
        attrs += marker_attrs(draw, desc)
        scale = len(desc.shape) == 1 and desc.dtype in diff.SIMPLE and draw(st.integers(0, 2)) == 0
        members.append(Member(f"{group}d{i}", desc, attrs, scale))
    return members


def write_source(members: list[Member], path: Path) -> None:
    """Write each member with the b2h5 differential's writer, then copy it in place (HDF5's
    object copy keeps raw chunks, filter masks and fill values)."""
    parts = []
    for i, m in enumerate(members):
        part = path.parent / f"part{i}.h5"
        try:
            diff.write(m.desc, part)
        except (OSError, ValueError):
            if diff.expect_unsupported(m.desc) is None:
                raise
            reject()  # HDF5 itself refuses some (scaleoffset with a NaN fill value)
        parts.append(part)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "differential"
        for m, part in zip(members, parts, strict=True):
            parent = f.require_group(m.path.rpartition("/")[0] or "/")
            parent.attrs["NX_class"] = "NXdata"
            with h5py.File(part, "r") as p:
                p.copy(p["x"], parent, name=m.path.rpartition("/")[2])
            ds = f[m.path]
            for k, v in m.attrs:
                ds.attrs[k] = v
        for m in members:  # scales first: a dataset with scales attached cannot become one
            if m.scale:
                f[m.path].make_scale(m.path.rpartition("/")[2])
        for m in members:
            if not m.scale:
                continue
            sc = f[m.path]
            for other in members:
                d = f[other.path]
                if other.scale or d.shape is None:
                    continue
                for axis, n in enumerate(d.shape):
                    if n == sc.shape[0]:
                        d.dims[axis].attach_scale(sc)
                        break
        first = members[0].path
        f["links/soft"] = h5py.SoftLink("/" + first)
        f["links/hard"] = f[first]
    for part in parts:
        part.unlink()


# --- options ------------------------------------------------------------------------------------


@st.composite
def options(draw: Any, *, lossy: bool = False) -> ConvertOptions:
    active = [f for f in FILTERS if f != "none"]
    filters = tuple(draw(st.lists(st.sampled_from(active), max_size=2)))
    if draw(st.integers(0, 4)) == 0:
        filters = ("none", *filters)
    blocks = None
    if draw(st.integers(0, 2)) == 0:
        rank = draw(st.integers(1, 4))
        blocks = tuple(draw(st.lists(st.integers(1, 9), min_size=rank, max_size=rank)))
    itrunc = None
    keep = None
    j2k: dict[str, float] = {}
    if lossy and HAS_J2K and draw(st.integers(0, 5)) == 0:
        j2k = draw(st.sampled_from([{"j2k_ratio": 4.0}, {"j2k_ratio": 20.0}, {"j2k_psnr": 60.0}]))
    elif lossy:
        itrunc = draw(st.sampled_from([1, 2, 3, 7, 15, 100, 255, 1000, 70000]))
        if draw(st.integers(0, 3)) == 0:
            keep = tuple(draw(st.lists(st.integers(-3, 300), min_size=1, max_size=3)))
    try:
        codec = CodecChoice(
            cname=draw(st.sampled_from(CNAMES)),
            clevel=draw(st.integers(0, 9)),
            filters=filters,
            blocks=blocks,
            itrunc_max_error=itrunc,
            itrunc_keep=keep,
            **j2k,
        )
    except ConvertError as exc:  # refused up front (test_two_delta_filters_are_refused_...)
        # two deltas, or a delta after another filter (which python-blosc2 misreads)
        real = [f for f in filters if f != "none"]
        assert "delta" in real[1:] and "delta" in str(exc), exc
        reject()
    chunks = None
    if draw(st.integers(0, 3)) == 0:
        rank = draw(st.integers(1, 4))
        chunks = tuple(draw(st.lists(st.integers(1, 12), min_size=rank, max_size=rank)))
    return ConvertOptions(
        codec=codec,
        auto=not j2k and draw(st.integers(0, 3)) == 0,
        tradeoff=1.0,
        chunks=chunks,
        contiguous=draw(st.booleans()),
        nthreads=draw(st.integers(1, 2)),
    )


# --- comparing ----------------------------------------------------------------------------------


def converts(ds: Any, opts: ConvertOptions) -> bool:
    """Whether the contract says ``ds`` is converted (numeric, 1-8 dimensions, not empty,
    chunked, or contiguous with ``contiguous``)."""
    if ds.shape is None or ds.ndim == 0 or ds.size == 0 or ds.ndim > 8:
        return False
    dt = ds.dtype
    if dt.fields is not None or dt.subdtype is not None or dt.kind not in "biufc":
        return False
    dcpl = ds.id.get_create_plist()
    if ds.is_virtual or dcpl.get_external_count():
        return False
    layout = dcpl.get_layout()
    return layout == h5py.h5d.CHUNKED or (layout == h5py.h5d.CONTIGUOUS and opts.contiguous)


def allocated(ds: Any) -> set[tuple[int, ...]]:
    if ds.chunks is None:
        return set()
    out: set[tuple[int, ...]] = set()
    ds.id.chunk_iter(lambda info: out.add(tuple(int(o) for o in info.chunk_offset)))
    return out


def same_scalar(a: Any, b: Any) -> bool:
    """Fill values compared by their bytes (NaN == NaN, -0.0 != 0.0). A long double's padding
    bytes (6 of x86's 16) are left undefined by numpy and h5py, so only its value and sign count
    there."""
    if a is None or b is None:
        return a is None and b is None
    x, y = np.asarray(a), np.asarray(b)
    if x.dtype.char in "gG" or y.dtype.char in "gG":
        return bool(
            x.dtype == y.dtype
            and np.array_equal(x, y, equal_nan=True)
            and np.array_equal(np.signbit(x.real), np.signbit(y.real))
            and np.array_equal(np.signbit(x.imag), np.signbit(y.imag))
        )
    return bool(x.tobytes() == y.tobytes())


def same_attr(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def check_truncated(want: np.ndarray, got: np.ndarray, ds: Any, max_error: int, what: str) -> None:
    """itrunc's contract, item by item: ``0 <= x - y <= max_error`` (in the signed and the
    unsigned view of the words), the markers exact and no new one, every item on its side of
    the CF valid range (markers and range in the ``_Unsigned`` twin's values where set)."""
    for dt in (want.dtype, twin(want.dtype)):
        x, y = want.view(dt), got.view(dt)
        assert (y <= x).all(), f"{what}: an item grew"
        words = np.dtype(f"u{dt.itemsize}")  # x - y >= 0: exact in wrapping unsigned arithmetic
        as_words = words.newbyteorder(dt.byteorder)
        err = x.view(as_words).astype(words) - y.view(as_words).astype(words)
        assert (err <= max_error).all(), f"{what}: error beyond {max_error}"
    if "_Unsigned" in ds.attrs and want.dtype.kind == {"true": "i", "false": "u"}.get(
        str(ds.attrs["_Unsigned"])
    ):
        want, got = want.view(twin(want.dtype)), got.view(twin(want.dtype))
    marks: list[int] = []
    for name in ("_FillValue", "missing_value"):
        if name in ds.attrs:
            marks += [int(v) for v in np.asarray(ds.attrs[name]).ravel()]
    if "_FillValue" not in ds.attrs and ds.fillvalue:
        marks.append(int(np.array(ds.fillvalue, ds.dtype).view(want.dtype)))
    # exact marks: a list mixing values >= 2**63 with others goes through float64 in numpy
    if want.dtype.kind in "iu":
        info = np.iinfo(want.dtype)
        marks = [m for m in marks if info.min <= m <= info.max]
    mark_array = np.array(marks, dtype=want.dtype.newbyteorder("="))
    at = np.isin(want, mark_array)
    assert (got[at] == want[at]).all(), f"{what}: a marker changed"
    assert (np.isin(got, mark_array) == at).all(), f"{what}: an item became a marker"
    lo = hi = None
    if "valid_range" in ds.attrs:
        lo, hi = (int(v) for v in ds.attrs["valid_range"])
    lo = int(ds.attrs["valid_min"]) if "valid_min" in ds.attrs else lo
    hi = int(ds.attrs["valid_max"]) if "valid_max" in ds.attrs else hi
    if lo is not None:
        assert ((want >= lo) == (got >= lo)).all(), f"{what}: an item crossed valid min {lo}"
    if hi is not None:
        assert ((want <= hi) == (got <= hi)).all(), f"{what}: an item crossed valid max {hi}"


def check_b2h5(dst: Path, path: str, want: np.ndarray, what: str) -> None:
    """``path`` of ``dst`` reads as ``want`` through b2h5 (other datasets b2h5 cannot present
    skipped), or is refused loudly where b2h5 documents it (long double: no Zarr dtype)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if want.dtype.kind == "f" and want.dtype.itemsize > 8:
            with pytest.raises(UnsupportedHDF5FeatureError, match="long double"):
                zarr.open_array(f"b2h5::{dst}", path=path, mode="r")
            return
        opts = {"unsupported": "skip"}
        z = zarr.open_array(f"b2h5::{dst}", path=path, mode="r", storage_options=opts)
        assert_same(z[...], want, f"{what}: b2h5")


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in ``folder`` besides ``keep`` and the source's external raw files."""
    return sorted(n for n in set(os.listdir(folder)) - keep if not n.endswith(".raw"))


def check(members: list[Member], opts: ConvertOptions, tmp: Path, elsewhere: bool = False) -> None:
    """Write ``members``, convert them with ``opts`` (to another folder if ``elsewhere``) and
    compare."""
    if opts.chunks is not None:  # keep it fast: tiny new chunks on a 256 KiB Blosc2 dataset
        for m in members:
            shape = m.desc.grow_to or m.desc.shape
            if len(shape) == len(opts.chunks):
                grid = [-(-s // min(c, max(s, 1))) for s, c in zip(shape, opts.chunks, strict=True)]
                if math.prod(grid) > 2000:
                    reject()
    src = tmp / "in.h5"
    dst = (tmp / "out" if elsewhere else tmp) / "out.h5"
    dst.parent.mkdir(exist_ok=True)
    write_source(members, src)
    with h5py.File(src, "r") as f:
        ranks = {f[m.path].ndim for m in members if converts(f[m.path], opts)}
    try:
        rep = convert(src, dst, options=opts)
    except ConvertError as exc:
        # loud, only for a chunk shape of a rank no converted dataset has, and nothing left
        assert opts.chunks is not None and len(opts.chunks) not in ranks, (exc, ranks)
        assert "Expected chunks of the rank" in str(exc), exc
        assert leftovers(dst.parent, {"in.h5", "out"}) == [], leftovers(dst.parent, {"in.h5"})
        return
    assert opts.chunks is None or len(opts.chunks) in ranks or not ranks, (opts.chunks, ranks)
    assert leftovers(dst.parent, {"in.h5", "out.h5", "out"}) == []
    reports = {d.path: d for d in rep.datasets}
    itrunc = opts.codec.itrunc_max_error
    with h5py.File(src, "r") as a, h5py.File(dst, "r") as b:
        assert b.attrs["title"] == "differential"
        first = "/" + members[0].path
        assert b.get("links/soft", getlink=True).path == first
        assert b["links/hard"].id == b[first].id  # still one object
        for m in members:
            name = "/" + m.path
            x, y = a[name], b[name]
            what = f"{name} {m.desc} {opts}"
            assert y.dtype == x.dtype, f"{what}: dtype {y.dtype} != {x.dtype}"
            assert y.shape == x.shape, what
            assert same_scalar(y.fillvalue, x.fillvalue), f"{what}: {y.fillvalue} {x.fillvalue}"
            # attributes (dimension-scale bookkeeping is recreated, not copied)
            skip = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME"}
            assert set(y.attrs) - skip == set(x.attrs) - skip, what
            for k in set(x.attrs) - skip:
                assert same_attr(y.attrs[k], x.attrs[k]), f"{what}: attribute {k}"
            assert h5py.h5ds.is_scale(y.id) == h5py.h5ds.is_scale(x.id), what
            if x.ndim:
                for axis in range(x.ndim):
                    sx = [s.name for s in x.dims[axis].values()]
                    sy = [s.name for s in y.dims[axis].values()]
                    assert sy == sx, f"{what}: scales of axis {axis}"
            converted = converts(x, opts)
            r = reports[name]
            assert r.action == ("converted" if converted else "copied"), (what, r)
            if x.shape is None:
                continue
            try:
                want = np.asarray(x[()], dtype=x.dtype)
            except OSError:  # an external raw file never written: the copy fails the same
                assert not converted, what
                with pytest.raises(OSError, match="external raw data file"):
                    y[()]
                continue
            got = np.asarray(y[()], dtype=y.dtype)
            if not converted:
                assert_same(got, want, f"{what}: copied")
                continue
            assert y.maxshape == (x.maxshape if x.chunks else x.shape), what
            if "32026" not in y._filters:
                raise AssertionError(f"{what}: not Blosc2 ({y._filters})")
            rechunked = y.chunks != x.chunks
            if not rechunked:
                assert allocated(y) == allocated(x), f"{what}: allocated chunks"
            if r.codec.startswith("itrunc("):
                assert itrunc is not None and x.dtype.kind in "ui", (what, r)
                # coordinates and tiny datasets stay exact
                assert not h5py.h5ds.is_scale(x.id) and x.size >= TINY_ITEMS, (what, r)
                check_truncated(want, got, x, itrunc, what)
            elif r.codec.startswith("j2k"):
                # little-endian uint8/uint16 images without markers or valid range only
                assert x.dtype.str in ("|u1", "<u2") and x.ndim >= 2, (what, r)
                markers = {"_FillValue", "missing_value"} & set(x.attrs)
                assert not markers and not x.fillvalue, (what, r)
                assert not h5py.h5ds.is_scale(x.id) and x.size >= TINY_ITEMS, (what, r)
            else:
                assert_same(got, want, f"{what}: h5py")
            check_b2h5(dst, m.path, got, what)


SETTINGS = settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@settings(SETTINGS, max_examples=80)
@given(members=source_files(), opts=options(), elsewhere=st.booleans())
def test_lossless_convert_reads_like_the_source(tmp_path_factory, members, opts, elsewhere) -> None:
    check(members, opts, tmp_path_factory.mktemp("conv"), elsewhere)


@settings(SETTINGS, max_examples=30)
@given(members=source_files(lossy=True), opts=options(lossy=True))
def test_itrunc_keeps_its_bounds_item_by_item(tmp_path_factory, members, opts) -> None:
    check(members, opts, tmp_path_factory.mktemp("conv"))


# --- regressions found by the property tests ----------------------------------------------------


def _never_filled(path: Path) -> None:
    """A dataset with fill value 7 and fill time "never", one chunk of four written: HDF5
    reads its unallocated chunks as zeros, not 7."""
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4, 4))
        dcpl.set_fill_value(np.array(7, "u2"))
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        tid = h5py.h5t.py_create(np.dtype("u2"))
        sid = h5py.h5s.create_simple((8, 8))
        ds = h5py.Dataset(h5py.h5d.create(f.id, b"x", tid, sid, dcpl=dcpl))
        ds[:4, :4] = 7  # a chunk of the fill value: not "unallocated" after rechunking
        ds[0, 0] = 1


@pytest.mark.parametrize("chunks", [None, (2, 8)])
def test_fill_time_never_reads_zeros_after_convert(tmp_path: Path, chunks: Any) -> None:
    """Unallocated chunks of a dataset with fill time "never" read as zeros in HDF5 (and
    b2h5), whatever its fill value: the output, created with the default fill time, read them
    as the fill value 7. Rechunked, chunks that read as the fill value were also left
    unallocated, so 7s became 0s. The fill time is kept, and a new chunk is left unallocated
    only if it reads as unallocated ones do."""
    src, dst = tmp_path / "in.h5", tmp_path / "out.h5"
    _never_filled(src)
    convert(src, dst, options=ConvertOptions(chunks=chunks, nthreads=1))
    with h5py.File(src) as a, h5py.File(dst) as b:
        want = a["x"][()]
        assert want[4:].max() == 0 and want[1, 1] == 7  # the premise: HDF5 reads zeros
        assert_same(b["x"][()], want, "h5py")
        assert b["x"].fillvalue == 7
    check_b2h5(dst, "x", want, "b2h5")


def test_two_delta_filters_are_refused_before_writing(tmp_path: Path) -> None:
    """``filters=("delta", "delta")`` (``--filters delta,delta``), which the b2store_b2nd
    encoder refuses, passed the option checks: convert wrote the datasets before the first
    one it converted, then failed on that dataset's first chunk with the codec's error. It is
    refused when the options are made, in the options' own words."""
    with pytest.raises(ConvertError, match=r"^filters: Expected at most one delta filter"):
        CodecChoice(filters=("delta", "delta"))
    with pytest.raises(ConvertError, match="delta"):
        CodecChoice(filters=("delta", "none", "delta"), itrunc_max_error=3)
    with pytest.raises(ConvertError, match=r"^filters: Expected delta before shuffle"):
        CodecChoice(filters=("shuffle", "delta"))  # python-blosc2 misreads a delta after shuffle
    for ok in [("delta", "bytedelta"), ("delta", "shuffle"), ("delta",)]:
        CodecChoice(filters=ok)  # one delta, first, is fine


@pytest.mark.parametrize("dtype", ["u8", ">u8"])
def test_itrunc_keeps_uint64_markers_from_2_63_up(tmp_path: Path, dtype: str) -> None:
    """A uint64 dataset with two markers, one of them 2**63 or more (netCDF's default uint64
    fill is 2**64 - 2): the codec's ``keep_values`` turned ``[5, 2**64 - 1]`` into ``[5, 0]``
    (numpy cast the list through float64), so itrunc truncated every missing item 2**64 - 1 to
    2**64 - 4 while the log said the markers were stored exactly. Convert now checks that the
    keep key holds the markers and otherwise stores the dataset lossless, with a message."""
    top = int(np.iinfo("u8").max)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 2**64, 8192, dtype="u8").astype(dtype)
    data[:100], data[100:200], data[200:300] = top, top - 2, 5
    src, dst = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("x", data=data, chunks=(4096,))
        d.attrs["_FillValue"] = np.uint64(top)
        d.attrs["missing_value"] = np.uint64(5)
    lines: list[str] = []
    opts = ConvertOptions(codec=CodecChoice(itrunc_max_error=3), nthreads=1)
    rep = convert(src, dst, options=opts, log=lines.append)
    with h5py.File(src) as a, h5py.File(dst) as b:
        want, got = a["x"][()], b["x"][()]
        if rep.datasets[0].codec.startswith("itrunc("):  # once keep_values holds them
            check_truncated(want, got, a["x"], 3, "x")
        else:
            assert_same(got, want, "lossless")
            assert any("stored lossless" in m and str(top) in m for m in lines), lines
        assert (got[:100] == top).all()


@pytest.mark.skipif(np.dtype("g").itemsize <= 8, reason="long double is a double here")
def test_long_double_fill_values_compare_without_their_padding(tmp_path: Path) -> None:
    """Soak finding (3.12, h5py 3.14): a ``<f16`` fill value 7.0 read as 7.0 from source and
    converted file but failed ``same_scalar``: numpy and h5py leave a long double's padding
    bytes undefined (different on every read). The oracle compares value and sign there."""
    g = np.dtype("g")
    seven = np.zeros(1, g)
    seven[0] = 7.0
    dirty = bytearray(seven.tobytes())
    dirty[-4:] = b"\xde\xad\xbe\xef"  # x86's 80-bit value sits in the low 10 of 16 bytes
    other = np.frombuffer(bytes(dirty), g)
    assert other[0] == seven[0] and other.tobytes() != seven.tobytes()
    assert same_scalar(other.reshape(()), seven.reshape(()))  # 0-d views keep the padding
    assert same_scalar(np.array([0], "G")[0], np.array([0], "G")[0])
    assert not same_scalar(np.longdouble(-0.0), np.longdouble(0.0))
    assert not same_scalar(np.longdouble(7.0), np.longdouble(8.0))
    assert same_scalar(np.longdouble("nan"), np.longdouble("nan"))
    src, dst = tmp_path / "in.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("x", shape=(22, 21), chunks=(14, 20), dtype=g, fillvalue=seven[0])
    convert(src, dst, options=ConvertOptions(nthreads=1))
    with h5py.File(src) as a, h5py.File(dst) as b:
        assert b["x"].dtype == g and same_scalar(b["x"].fillvalue, a["x"].fillvalue)
        assert b["x"].fillvalue == 7.0
