"""Rewrite an HDF5 file with Blosc2 b2nd chunks, written by HDF5 direct chunk writes.

Contract: :func:`convert` reads every dataset of ``src`` through h5py (+ hdf5plugin, so any filter
HDF5 can read is accepted) and writes ``dst`` where each converted dataset is created with
``hdf5plugin.Blosc2()`` and every allocated chunk is a one-chunk Blosc2 cframe holding a b2nd array
whose shape equals the HDF5 chunk shape (edge chunks padded with the fill value), compressed by
python-blosc2 with the chosen codec, level, filters and block shape (the b2h5py approach). Plain
h5py + hdf5plugin reads the output; so does b2store's ``b2h5`` filesystem.

* Groups, attributes, dimension scales (re-attached with ``h5py.dims``) and datasets that are not
  converted (scalars, strings, vlen, compact, virtual; contiguous unless asked) are kept.
* Unallocated chunks stay unallocated (sparse data stays sparse).
* Parallel: chunks whose filters b2store decodes are read raw and decoded on a thread pool; the
  others are read through h5py. python-blosc2's b2nd encoder (``blosc2.asarray``) holds the GIL,
  so each chunk is compressed with Blosc2's own ``nthreads`` threads while the pool overlaps
  reading, decoding and writing. h5py calls stay on the calling thread.
* The output is written to a temporary file in the destination folder and renamed at the end, so
  an interrupted run never leaves a half-written file under the final name.
* ``auto=True`` picks codec, level and filters per dataset with a small sampling tuner
  (:func:`tune`): the score is ``(size/min_size)**t * (time/min_time)**(1-t)`` over a grid of
  candidates compressing a few real chunks, ``t`` being the ratio/speed trade-off (1 = best ratio).

Lossy options:

* ``itrunc_max_error`` (integers): zero the low bits with the ``b2store_b2nd`` codec's itrunc
  filter (Blosc2's INT_TRUNC), so that ``0 <= x - y <= max_error``. A dataset's missing-data
  markers (its ``_FillValue`` and ``missing_value`` attributes, else a non-zero HDF5 fill value)
  go to the filter's ``keep`` key: items equal to a marker, or that truncation would turn into
  one, keep their values. So does the bin of each CF valid-range bound (``valid_min``,
  ``valid_max``, ``valid_range``), so no item crosses it. More values than ``keep`` takes (16):
  that dataset stays lossless.
* ``j2k_ratio``/``j2k_psnr``: lossy JPEG 2000 via blosc2-j2k (``b2store_grok``), one 2-D image
  per block, for the datasets that codec can code (little-endian uint8 or uint16 images of at
  least :data:`~b2store.codecs.grok.MIN_IMAGE_SIDE` pixels a side) and have no missing-data
  markers or valid range inside the dtype's range; the others stay lossless.
* Neither touches values that are meanings, not measurements (:func:`_exact_reason`):
  dimension scales, coordinates, bounds, counts and indices other variables name, CF flags,
  enumerated types and categorical CF standard names are stored lossless, with a message. So
  are NeXus-style categorical fields by name (:data:`_CATEGORICAL_FIELDS`: ``image_key``,
  masks, flags, ``scan_finished``), datasets smaller than :data:`TINY_ITEMS` items (or one
  ``--blocks`` block), and integer datasets of at most :data:`FEW_VALUES` distinct values that
  the option would merge or move (:func:`_few_values_reason`): most likely categories.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from b2store.codecs._common import CNAMES as _BLOSC2_CNAMES
from b2store.codecs._common import MAX_B2ND_DIMS, MAX_BLOSC2_FILTERS, parse_int_range
from b2store.errors import B2StoreError

__all__ = [
    "CNAMES",
    "FILTERS",
    "MAX_FILTERS",
    "CodecChoice",
    "ConvertError",
    "ConvertOptions",
    "ConvertReport",
    "DatasetReport",
    "convert",
    "encode_chunk",
    "out_of_room",
    "tune",
]

#: Codec names accepted on the command line: the ``b2store_b2nd`` codec's (those hdf5plugin's
#: Blosc2 filter decodes).
CNAMES: tuple[str, ...] = tuple(_BLOSC2_CNAMES)
#: Blosc2 filters accepted on the command line.
FILTERS = ("none", "shuffle", "bitshuffle", "delta", "bytedelta")
#: The highest rank a converted dataset can have: the ``b2store_b2nd`` encoder refuses more
#: dimensions (HDF5 allows 32).
B2ND_MAX_DIM = MAX_B2ND_DIMS
#: Most Blosc2 filters in one chunk's pipeline besides itrunc (the ``b2store_b2nd`` encoder's
#: limit: C-Blosc2 writes wrong data with three or more).
MAX_FILTERS = MAX_BLOSC2_FILTERS


class ConvertError(B2StoreError, ValueError):
    """Invalid conversion options, or a dataset the options cannot apply to."""


def _check_int_range(name: str, value: int, lo: int, hi: int) -> int:
    """:func:`b2store.codecs._common.parse_int_range`, raising :class:`ConvertError` (a wrong
    type too) with the option's name in front: ``clevel: Expected an integer from ...``."""
    try:
        return parse_int_range("convert", name, value, lo, hi)
    except (TypeError, ValueError) as exc:
        raise ConvertError(str(exc).removeprefix("convert: ")) from None


@dataclass(frozen=True, kw_only=True)
class CodecChoice:
    """How chunks are compressed.

    Parameters
    ----------
    cname : str
        One of :data:`CNAMES`.
    clevel : int
        0-9.
    filters : tuple of str
        Blosc2 filters in order, from :data:`FILTERS` (``()`` or ``("none",)`` for none).
    blocks : tuple of int, optional
        Block shape (clipped to the chunk shape); ``None`` lets blosc2 choose.
    itrunc_max_error : int, optional
        Integer data only: maximum absolute error of the INT_TRUNC filter (rounded down to
        ``2**k - 1``).
    itrunc_keep : tuple of numbers, optional
        With ``itrunc_max_error``: values stored exactly (the truncation's ``keep`` key, at most
        16). :func:`convert` adds each dataset's missing-data markers to them and leaves out
        the values a dataset's dtype cannot hold.
    j2k_ratio, j2k_psnr : float, optional
        JPEG 2000 (blosc2-j2k) target compression ratio or PSNR in dB (16-bit full scale);
        mutually exclusive, and exclusive with ``itrunc_max_error``.
    """

    cname: str = "zstd"
    clevel: int = 5
    filters: tuple[str, ...] = ("shuffle",)
    blocks: tuple[int, ...] | None = None
    itrunc_max_error: int | None = None
    itrunc_keep: tuple[int | float, ...] | None = None
    j2k_ratio: float | None = None
    j2k_psnr: float | None = None

    def __post_init__(self) -> None:
        if self.cname not in CNAMES:
            raise ConvertError(
                f"Expected a codec name from {', '.join(CNAMES)}. Got {self.cname!r} instead."
            )
        _check_int_range("clevel", self.clevel, 0, 9)
        for f in self.filters:
            if f not in FILTERS:
                raise ConvertError(
                    f"Expected filters from {', '.join(FILTERS)}. Got {f!r} instead."
                )
        active = [f for f in self.filters if f != "none"]
        if len(active) > MAX_FILTERS:
            raise ConvertError(
                f"Expected at most {MAX_FILTERS} filters (besides itrunc): C-Blosc2 writes wrong "
                f"data with 3 or more in its pipeline. Got {len(active)} ({', '.join(active)}) "
                "instead."
            )
        if self.blocks is not None:
            for b in self.blocks:
                _check_int_range("a block dimension", b, 1, 2**31 - 1)
        if self.itrunc_max_error is not None:
            _check_int_range("itrunc_max_error", self.itrunc_max_error, 1, 2**62)
        if self.itrunc_keep is not None:
            if self.itrunc_max_error is None:
                raise ConvertError("itrunc_keep applies to itrunc_max_error: set that too.")
            from b2store.codecs.itrunc import parse_keep  # numcodecs: loaded only when used

            try:
                keep = parse_keep("convert", self.itrunc_keep)
            except (TypeError, ValueError) as exc:
                raise ConvertError(str(exc).replace("convert: keep:", "itrunc_keep:")) from None
            object.__setattr__(self, "itrunc_keep", tuple(keep or ()))
        lossy = [
            x is not None for x in (self.itrunc_max_error, self.j2k_ratio, self.j2k_psnr)
        ].count(True)
        if lossy > 1:
            raise ConvertError(
                "Expected at most one of itrunc_max_error, j2k_ratio, j2k_psnr. Got "
                f"{lossy} instead."
            )
        if self.j2k_ratio is not None and not 1.0 <= self.j2k_ratio < 25.6:
            raise ConvertError(
                "Expected a JPEG 2000 ratio from the range [1, 25.6). "
                f"Got {self.j2k_ratio} instead."
            )
        if self.j2k_psnr is not None and not 20.0 <= self.j2k_psnr <= 200.0:
            raise ConvertError(
                f"Expected a JPEG 2000 PSNR from the inclusive range (20, 200) dB. "
                f"Got {self.j2k_psnr} instead."
            )

    @property
    def is_j2k(self) -> bool:
        return self.j2k_ratio is not None or self.j2k_psnr is not None

    def describe(self) -> str:
        """A short human label, e.g. ``zstd-5+shuffle``."""
        if self.is_j2k:
            what = f"ratio {self.j2k_ratio}" if self.j2k_ratio else f"psnr {self.j2k_psnr} dB"
            return f"j2k ({what})"
        filt = "+".join(f for f in self.filters if f != "none") or "nofilter"
        out = f"{self.cname}-{self.clevel}+{filt}"
        if self.itrunc_max_error is not None:
            keep = f", keep={list(self.itrunc_keep)}" if self.itrunc_keep else ""
            out = f"itrunc(max_error={self.itrunc_max_error}{keep})+" + out
        return out


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """What :func:`convert` does.

    Parameters
    ----------
    codec : CodecChoice
        Codec for every converted dataset (unless ``auto``).
    auto : bool
        Tune codec, level and filters per dataset (:func:`tune`).
    tradeoff : float
        For ``auto``: 1 favours ratio, 0 favours speed.
    chunks : tuple of int, optional
        New chunk shape for datasets of the same rank (others keep theirs).
    contiguous : bool
        Also convert contiguous datasets (chunked with ``chunks`` or an automatic ~4 MiB shape).
    nthreads : int
        Compression threads.
    """

    codec: CodecChoice = field(default_factory=CodecChoice)
    auto: bool = False
    tradeoff: float = 0.5
    chunks: tuple[int, ...] | None = None
    contiguous: bool = False
    nthreads: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __post_init__(self) -> None:
        if not 0.0 <= self.tradeoff <= 1.0:
            raise ConvertError(
                f"Expected a tradeoff from the inclusive range (0, 1). Got {self.tradeoff} instead."
            )
        _check_int_range("nthreads", self.nthreads, 1, 256)
        if self.chunks is not None:
            for c in self.chunks:
                _check_int_range("a chunk dimension", c, 1, 2**31 - 1)
        if self.auto and (self.codec.is_j2k):
            raise ConvertError("--auto tunes lossless codecs only; drop --j2k-ratio/--j2k-psnr.")


@dataclass(frozen=True, kw_only=True)
class DatasetReport:
    """What happened to one dataset."""

    path: str
    action: str  # "converted" or "copied"
    codec: str = ""
    chunks: tuple[int, ...] | None = None
    nbytes: int = 0
    stored: int = 0
    nchunks: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.nbytes / self.stored if self.stored else None


@dataclass(frozen=True, kw_only=True)
class ConvertReport:
    """The result of :func:`convert`."""

    src: str
    dst: str
    datasets: tuple[DatasetReport, ...]
    seconds: float


# --------------------------------------------------------------------------------------- encode


def _blocks_for(choice: CodecChoice, chunks: tuple[int, ...]) -> tuple[int, ...] | None:
    if choice.is_j2k:
        # one 2-D image per block
        return tuple([1] * (len(chunks) - 2) + list(chunks[-2:]))
    if choice.blocks is None:
        return None
    return tuple(min(b, c) for b, c in zip(choice.blocks, chunks, strict=True))


def encode_chunk(chunk: np.ndarray[Any, Any], choice: CodecChoice, *, nthreads: int = 1) -> bytes:
    """One full HDF5 chunk -> a one-chunk Blosc2 cframe holding a b2nd array of that shape.

    Written by b2store's own codecs (``b2store_b2nd``, or ``b2store_grok`` for JPEG 2000), so the
    frames are exactly what those codecs document (itrunc on big-endian data included).
    """
    chunk = np.ascontiguousarray(chunk)
    blocks = _blocks_for(choice, chunk.shape)
    return bytes(_codec_for(choice, blocks, nthreads).encode(chunk))


def _codec_for(choice: CodecChoice, blocks: tuple[int, ...] | None, nthreads: int) -> Any:
    """The numcodecs codec that writes ``choice``."""
    if choice.is_j2k:
        from b2store.codecs.grok import Grok

        return Grok(ratio=choice.j2k_ratio, psnr=choice.j2k_psnr, nthreads=nthreads)
    from b2store.codecs.b2nd import B2nd

    filters: list[dict[str, Any]] = []
    if choice.itrunc_max_error is not None:
        trunc: dict[str, Any] = {"id": "itrunc", "max_abs_error": choice.itrunc_max_error}
        if choice.itrunc_keep:
            trunc["keep"] = list(choice.itrunc_keep)
        filters.append(trunc)
    filters += [{"id": f} for f in choice.filters if f != "none"]
    return B2nd(
        cname=choice.cname,
        clevel=choice.clevel,
        filters=filters,
        blocks=list(blocks) if blocks is not None else None,
        nthreads=nthreads,
    )


def _j2k_unsuitable(
    choice: CodecChoice, dtype: np.dtype[Any], chunks: tuple[int, ...]
) -> str | None:
    """Why the ``b2store_grok`` codec cannot code chunks of this shape and dtype with the lossy
    settings of ``choice`` (its own checks: little-endian uint8/uint16 images of at least
    :data:`~b2store.codecs.grok.MIN_IMAGE_SIDE` pixels a side, 2-D or stacked), or ``None`` if
    it can."""
    from b2store.codecs.grok import Grok

    codec = _grok_for(choice)
    try:
        codec.check_layout(dtype, chunks)
        Grok.check_image_size(*chunks[-2:])
    except ValueError as exc:  # CodecError
        return str(exc).removeprefix("b2store_grok: ")
    return None


def _grok_for(choice: CodecChoice, path: str = "") -> Any:
    """The ``b2store_grok`` codec for ``choice``: it checks the settings and that blosc2-j2k
    (AGPL-3.0) is installed."""
    from b2store.codecs.grok import Grok

    try:
        return Grok(ratio=choice.j2k_ratio, psnr=choice.j2k_psnr)
    except ValueError as exc:
        raise ConvertError(f"{path}: {exc}" if path else str(exc)) from exc


# ---------------------------------------------------------------------------------------- tune

#: The tuner's candidate grid (lossless).
TUNE_GRID: tuple[CodecChoice, ...] = (
    CodecChoice(cname="lz4", clevel=5, filters=("shuffle",)),
    CodecChoice(cname="lz4", clevel=5, filters=("bitshuffle",)),
    CodecChoice(cname="blosclz", clevel=5, filters=("shuffle",)),
    CodecChoice(cname="zstd", clevel=1, filters=("shuffle",)),
    CodecChoice(cname="zstd", clevel=5, filters=("shuffle",)),
    CodecChoice(cname="zstd", clevel=5, filters=("bitshuffle",)),
    CodecChoice(cname="zstd", clevel=9, filters=("bitshuffle",)),
)


@dataclass(frozen=True, kw_only=True)
class TuneResult:
    """The tuner's pick for one dataset, with the sample measurements behind it."""

    choice: CodecChoice
    ratio: float
    seconds: float
    table: tuple[tuple[str, float, float, float], ...]  # (label, ratio, seconds, score)


def tune(
    samples: list[np.ndarray[Any, Any]],
    *,
    tradeoff: float,
    base: CodecChoice | None = None,
    grid: tuple[CodecChoice, ...] = TUNE_GRID,
) -> TuneResult:
    """Pick the candidate minimising ``(size/min)**t * (time/min)**(1-t)`` on sample chunks.

    ``base`` contributes its block shape and itrunc settings to every candidate.
    """
    if not samples:
        raise ConvertError("tune() needs at least one sample chunk")
    nbytes = sum(s.nbytes for s in samples)
    rows = []
    for cand in grid:
        if base is not None:
            cand = replace(
                cand,
                blocks=base.blocks,
                itrunc_max_error=base.itrunc_max_error,
                itrunc_keep=base.itrunc_keep,
            )
        t0 = time.perf_counter()
        size = sum(len(encode_chunk(s, cand)) for s in samples)
        rows.append((cand, size, max(time.perf_counter() - t0, 1e-9)))
    smin = min(r[1] for r in rows)
    tmin = min(r[2] for r in rows)
    scored = [
        (c, s, t, (s / smin) ** tradeoff * (t / tmin) ** (1.0 - tradeoff)) for c, s, t in rows
    ]
    best = min(scored, key=lambda r: r[3])
    table = tuple((c.describe(), nbytes / s, t, sc) for c, s, t, sc in scored)
    return TuneResult(choice=best[0], ratio=nbytes / best[1], seconds=best[2], table=table)


# ------------------------------------------------------------------------------------- convert

_REF_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST"}


def _skip_attrs(ds: Any) -> set[str]:
    """Attributes recreated by ``h5py.dims`` instead of copied (CLASS/NAME only on scales:
    PyTables and others use CLASS for their own purposes)."""
    import h5py

    return _REF_ATTRS | ({"CLASS", "NAME"} if h5py.h5ds.is_scale(ds.id) else set())


def _auto_chunks(shape: tuple[int, ...], itemsize: int, target: int = 4 << 20) -> tuple[int, ...]:
    chunks = list(shape)
    while int(np.prod(chunks)) * itemsize > target:
        i = int(np.argmax(chunks))
        chunks[i] = max(1, (chunks[i] + 1) // 2)
    return tuple(chunks)


def _copy_attrs(src: Any, dst: Any, skip: set[str]) -> list[str]:
    """Copy attributes with their HDF5 types; returns the names it could not copy."""
    import h5py

    failed = []
    for name in src.attrs:
        if name in skip:
            continue
        try:
            aid = src.attrs.get_id(name)
            value = src.attrs[name]
            if aid.dtype.kind == "O" and h5py.check_ref_dtype(aid.dtype) is not None:
                failed.append(name)  # object references point into the source file
                continue
            tid = aid.get_type()  # the file type: string padding and character set included
            if tid.committed():  # a named type lives in the source file: an anonymous copy
                tid = tid.copy()
            if not isinstance(value, h5py.Empty) and _copy_attr_bytes(aid, tid, dst, name):
                continue
            dst.attrs.create(name, value, dtype=h5py.Datatype(tid))
        except Exception:
            try:
                dst.attrs[name] = src.attrs[name]
            except Exception:
                failed.append(name)
    return failed


def _copy_attr_bytes(aid: Any, tid: Any, dst: Any, name: str) -> bool:
    """Copy attribute ``aid`` to ``dst`` byte for byte in its file type ``tid`` (no conversion);
    False for types whose items hold pointers (variable-length data, references).

    Converting through numpy changes values: netCDF-C writes NULLTERM strings with no room for
    the NUL ("units" in 5 bytes), which HDF5 cuts to make room for one when it converts numpy's
    NULLPAD bytes to that type ('level' came out 'leve', '0' came out '')."""
    import h5py

    if aid.dtype.hasobject or aid.dtype.itemsize != tid.get_size():
        return False
    space = aid.get_space()
    raw = np.empty(aid.shape or (), dtype=f"V{tid.get_size()}")
    aid.read(raw, mtype=tid)
    key = name.encode()
    if h5py.h5a.exists(dst.id, key):
        h5py.h5a.delete(dst.id, key)
    h5py.h5a.create(dst.id, key, tid, space).write(raw, mtype=tid)
    return True


def _copy_named_type(fin: Any, obj: Any, fout: Any, name: str) -> None:
    """Copy a committed (named) datatype, e.g. a netCDF-4 compound, enum or vlen user type:
    netCDF-C finds a variable's type name among them (else it reads ``_AnonymousCompound1``)."""
    parent = fout.require_group(obj.parent.name)
    fin.copy(obj, parent, name=name.rsplit("/", 1)[-1])


def _keep_attrs(src: Any, dst: Any, skip: set[str], say: Callable[[str], None]) -> None:
    """:func:`_copy_attrs`, naming the attributes left out (none is dropped silently)."""
    failed = _copy_attrs(src, dst, skip)
    if failed:
        say(
            f"{src.name}: attributes {', '.join(failed)} not copied (HDF5 references point into "
            "the input file, or the type cannot be written)"
        )


def _tracks_order(obj: Any) -> bool:
    """Whether a group or dataset tracks the creation order of its links or attributes (netCDF-4
    files do: netCDF-C lists variables, types and attributes in that order)."""
    import h5py

    plist = obj.id.get_create_plist()
    flags = plist.get_attr_creation_order()
    if isinstance(obj, h5py.Group):
        flags |= plist.get_link_creation_order()
    return bool(flags & h5py.h5p.CRT_ORDER_TRACKED)


def _walk(fin: Any) -> list[tuple[str, Any]]:
    """Every link reached from the root, parents first, in each group's own order (creation order
    where the group tracks it: ``visit`` would sort by name, and the output would list netCDF-4
    variables alphabetically). Each item is ``(path without the leading "/", link)``: ``link``
    is ``None`` for the first hard link to an object, the first path (``"/a/b"``) for a further
    hard link to it, else the ``h5py.SoftLink`` or ``h5py.ExternalLink``."""
    import h5py

    seen: dict[Any, str] = {fin["/"].id: "/"}
    out: list[tuple[str, Any]] = []
    # an explicit stack, not recursion: files nest groups deeper than Python's recursion limit
    stack: list[tuple[Any, str, Any]] = [(fin["/"], "", iter(fin["/"]))]
    while stack:
        group, prefix, keys = stack[-1]
        key = next(keys, None)  # h5py lists tracked groups in creation order
        if key is None:
            stack.pop()
            continue
        path, link = prefix + key, group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            out.append((path, link))
            continue
        obj = group.get(key)
        if obj is None:
            continue
        if obj.id in seen:
            out.append((path, seen[obj.id]))
            continue
        seen[obj.id] = "/" + path
        out.append((path, None))
        if isinstance(obj, h5py.Group):
            stack.append((obj, path + "/", iter(list(obj))))
    return out


def _relocator(src: str, dst: str) -> Callable[[str], str]:
    """Map a file name that ``src`` refers to (external link, virtual dataset source) to the
    name ``dst`` must use: relative names are resolved from the file's own folder, so they are
    rewritten when ``dst`` lies in another folder ("." and absolute names are kept)."""
    src_path = os.path.realpath(src)  # the OS resolves ".." through the real folders
    src_dir = os.path.dirname(src_path)
    dst_dir = os.path.dirname(os.path.realpath(dst))

    def moved(filename: str) -> str:
        if filename == "." or os.path.isabs(filename):
            return filename
        target = os.path.realpath(os.path.join(src_dir, filename))
        if target == src_path:
            return "."  # the input naming itself (C tools write its base name): the output
        if src_dir == dst_dir:
            return filename
        return os.path.relpath(target, dst_dir)

    return moved


def _copy_virtual(ds: Any, parent: Any, name: str, moved: Callable[[str], str]) -> bool:
    """Recreate a virtual dataset with the same mappings, its source file names rewritten by
    ``moved`` (an object copy keeps relative names, which then miss their sources when the
    output is in another folder, and HDF5 silently serves the fill value). False when HDF5
    refuses the mappings (the caller then copies the dataset as it is)."""
    try:
        _create_virtual(ds, parent, name, moved)
    except (ValueError, TypeError, RuntimeError, OSError):
        return False
    return True


def _create_virtual(ds: Any, parent: Any, name: str, moved: Callable[[str], str]) -> None:
    """The work of :func:`_copy_virtual`."""
    import h5py

    dcpl = ds.id.get_create_plist()
    new = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    new.set_fill_value(np.array(ds.fillvalue, dtype=ds.dtype))
    for i in range(dcpl.get_virtual_count()):
        vspace = dcpl.get_virtual_vspace(i)
        new.set_virtual(
            vspace,
            moved(dcpl.get_virtual_filename(i)).encode(),
            dcpl.get_virtual_dsetname(i).encode(),
            _source_space(dcpl.get_virtual_srcspace(i), vspace),
        )
    h5py.h5d.create(parent.id, name.encode(), ds.id.get_type(), ds.id.get_space(), dcpl=new)


def _source_space(src_space: Any, vspace: Any) -> Any:
    """The source dataspace of a mapping, ready for ``set_virtual``: HDF5 gives a "whole source"
    selection back as a scalar space, which no longer matches the mapped block's size."""
    import h5py

    if src_space.get_select_type() != h5py.h5s.SEL_ALL:
        return src_space
    lo, hi = vspace.get_select_bounds()
    shape = tuple(int(b) - int(a) + 1 for a, b in zip(lo, hi, strict=True))
    if int(np.prod(shape)) != vspace.get_select_npoints():
        shape = (int(vspace.get_select_npoints()),)
    return h5py.h5s.create_simple(shape)


def _copy_link(
    fout: Any, name: str, link: Any, say: Callable[[str], None], moved: Callable[[str], str]
) -> None:
    """Recreate a soft, external or further hard link (``link`` as :func:`_walk` gives it)."""
    import h5py

    if fout.get(name, getlink=True) is not None:
        return
    if isinstance(link, h5py.SoftLink):
        fout[name] = h5py.SoftLink(link.path)
    elif isinstance(link, h5py.ExternalLink):
        fout[name] = h5py.ExternalLink(moved(link.filename), link.path)
    elif link in fout:
        fout[name] = fout[link]
    else:
        say(f"/{name}: hard link to {link}, which was not copied; left out")
        return
    say(f"/{name}: link recreated")


def _all_fill(chunk: np.ndarray, fill: Any) -> bool:
    """Every element has the fill value's bytes (-0.0 is not a 0.0 fill; a NaN fill matches)."""
    f = np.full((), fill, dtype=chunk.dtype).tobytes()
    raw = np.ascontiguousarray(chunk).view(np.uint8).reshape(-1, len(f))
    return bool((raw == np.frombuffer(f, np.uint8)).all())


def _has_refs(dtype: np.dtype[Any]) -> bool:
    """HDF5 references anywhere in ``dtype`` (also inside compound fields and array types)."""
    import h5py

    if h5py.check_ref_dtype(dtype) is not None:
        return True
    if dtype.fields:
        return any(_has_refs(f[0]) for f in dtype.fields.values())
    return dtype.subdtype is not None and _has_refs(dtype.subdtype[0])


def _is_vlen(ds: Any) -> bool:
    """A variable-length (string or sequence) dataset without references."""
    import h5py

    if ds.shape is None or _has_refs(ds.dtype):
        return False
    return bool(ds.dtype.hasobject or h5py.check_vlen_dtype(ds.dtype) is not None)


def _copy_by_value(ds: Any, parent: Any, name: str) -> None:
    """Copy a variable-length dataset by reading and writing its values: HDF5's object copy
    (``Group.copy``) leaves the heap object of its fill value behind, and the output then fails
    to open (netCDF-4 string variables: "bad global heap collection signature")."""
    kw: dict[str, Any] = {}
    if ds.chunks:
        kw.update(chunks=ds.chunks, maxshape=ds.maxshape)
        if ds.compression in ("gzip", "lzf"):
            kw.update(compression=ds.compression, compression_opts=ds.compression_opts)
        kw.update(shuffle=bool(ds.shuffle), fletcher32=bool(ds.fletcher32))
    out = parent.create_dataset(
        name, shape=ds.shape, dtype=ds.dtype, track_order=_tracks_order(ds), **kw
    )
    if ds.size:  # read_direct: h5py returns equal-length sequences as a 2-D array otherwise
        buf = np.empty(ds.shape, dtype=ds.dtype)
        ds.read_direct(buf)
        out.write_direct(buf)


def _convertible(ds: Any, options: ConvertOptions) -> str:
    """'' if ``ds`` is converted, else why it is copied as is."""
    import h5py

    if ds.shape is None or ds.ndim == 0:
        return "scalar or NULL dataspace"
    if ds.size == 0:
        return "empty"
    if _has_refs(ds.dtype):
        return "reference dtype: its references are not rewritten and point nowhere in the output"
    if ds.dtype.hasobject or h5py.check_vlen_dtype(ds.dtype) is not None:
        return "variable-length dtype"
    if ds.dtype.fields is not None or ds.dtype.kind not in "biufc" or ds.dtype.subdtype:
        return f"{ds.dtype} is not a numeric dtype"
    if ds.ndim > B2ND_MAX_DIM:
        return f"{ds.ndim} dimensions: b2nd arrays have at most {B2ND_MAX_DIM}"
    if ds.is_virtual:
        return "virtual dataset"
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count() > 0:
        return "external raw data"
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CHUNKED:
        return ""
    if layout == h5py.h5d.CONTIGUOUS and options.contiguous:
        return ""
    return (
        "contiguous (pass --contiguous to convert)"
        if layout == h5py.h5d.CONTIGUOUS
        else ("compact")
    )


def _chunk_origins(ds: Any, chunks: tuple[int, ...], rechunked: bool) -> list[tuple[int, ...]]:
    if not rechunked:
        out: list[tuple[int, ...]] = []
        ds.id.chunk_iter(lambda info: out.append(tuple(int(o) for o in info.chunk_offset)))
        return out
    grids = [range(0, s, c) for s, c in zip(ds.shape, chunks, strict=True)]
    return [
        tuple(g[i] for g, i in zip(grids, idx, strict=True))
        for idx in np.ndindex(*[len(g) for g in grids])
    ]


def _read_full_chunk(
    ds: Any, origin: tuple[int, ...], chunks: tuple[int, ...], fill: Any
) -> np.ndarray[Any, Any]:
    sel = tuple(slice(o, min(o + c, s)) for o, c, s in zip(origin, chunks, ds.shape, strict=True))
    part = ds[sel]
    if part.shape == chunks:
        return np.ascontiguousarray(part)
    full = np.full(chunks, fill, dtype=ds.dtype)
    full[tuple(slice(0, n) for n in part.shape)] = part
    return full


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    options: ConvertOptions | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
) -> ConvertReport:
    """Rewrite ``src`` as ``dst`` with Blosc2 b2nd chunks (see the module docstring).

    Parameters
    ----------
    src, dst : path
        Input HDF5 file; output path (its folder must exist; an existing file is replaced only
        when the conversion succeeds).
    options : ConvertOptions
        Codec, tuning and chunking options.
    progress : bool
        Show a tqdm progress bar per dataset.
    log : callable, optional
        Receives one line per dataset (and the tuner's choice).
    on_chunk : callable, optional
        Called with ``(dataset path, chunk number)`` after each chunk is written (tests use it to
        interrupt a run).

    Raises
    ------
    FileNotFoundError
        If ``src`` or the destination folder does not exist.
    ConvertError
        Invalid options for a dataset, or ``src`` is not HDF5, or ``dst`` is ``src``.
    """
    import blosc2
    import h5py
    import hdf5plugin

    from b2store.hdf5.index import open_local_file

    options = options or ConvertOptions()
    src, dst = os.fspath(src), os.fspath(dst)
    if not os.path.isfile(src):
        raise FileNotFoundError(f"{src}: no such file")
    if not h5py.is_hdf5(src):
        raise ConvertError(f"{src} is not an HDF5 file (no HDF5 signature)")
    dst_dir = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(dst_dir):
        raise FileNotFoundError(f"{dst_dir}: the destination folder does not exist")
    if os.path.exists(dst) and os.path.samefile(src, dst):
        raise ConvertError(f"{dst} is the input file: choose another output path")

    say = log or (lambda _msg: None)
    blosc2.set_releasegil(True)
    ensure_blosc2_writable()
    t_start = time.perf_counter()
    fd, tmp = tempfile.mkstemp(
        dir=dst_dir, prefix="." + os.path.basename(dst) + ".", suffix=".part"
    )
    os.close(fd)
    reports: list[DatasetReport] = []
    try:
        with (
            _open_input(src, open_local_file) as fin,  # also while an SWMR writer appends
            h5py.File(tmp, "w", track_order=_tracks_order(fin["/"])) as fout,
            ThreadPoolExecutor(options.nthreads) as pool,
        ):
            _keep_attrs(fin, fout, set(), say)
            walked = _walk(fin)  # collect first; no writes inside h5py's traversal
            referenced = _referenced_exact(fin, walked) if _lossy(options.codec) else {}
            moved = _relocator(src, dst)
            scales: dict[str, str] = {}
            attachments: list[tuple[str, int, str]] = []
            for name, link in walked:
                if link is not None:  # links in place, so groups keep their order
                    _copy_link(fout, name, link, say, moved)
                    continue
                obj = fin.get(name, getlink=False)
                if isinstance(obj, h5py.Group):
                    g = fout.get(name) or fout.create_group(name, track_order=_tracks_order(obj))
                    _keep_attrs(obj, g, set(), say)
                    continue
                if isinstance(obj, h5py.Datatype):
                    _copy_named_type(fin, obj, fout, name)
                    continue
                if not isinstance(obj, h5py.Dataset):
                    continue
                if h5py.h5ds.is_scale(obj.id):
                    nm = obj.attrs.get("NAME", b"")
                    scales[obj.name] = nm.decode() if isinstance(nm, bytes) else str(nm)
                if obj.ndim:
                    for axis in range(obj.ndim):
                        attachments.extend(
                            (obj.name, axis, sc.name)
                            for sc in obj.dims[axis].values()
                            if sc.name != obj.name
                        )
                why = _convertible(obj, options)
                if why:
                    parent, _, base = ("/" + name).rpartition("/")
                    if _is_vlen(obj):
                        _copy_by_value(obj, fout[parent or "/"], base)
                    elif obj.is_virtual and _copy_virtual(obj, fout[parent or "/"], base, moved):
                        pass
                    else:
                        try:
                            fin.copy(obj, fout[parent or "/"], name=base, without_attrs=True)
                        except Exception as exc:
                            raise _naming(exc, obj.name) from exc
                    _keep_attrs(obj, fout[name], _skip_attrs(obj), say)
                    reports.append(
                        DatasetReport(
                            path=obj.name,
                            action="copied",
                            note=why,
                            nbytes=obj.nbytes if obj.shape else 0,
                        )
                    )
                    say(f"{obj.name}: copied ({why})")
                    continue
                try:
                    rep = _convert_dataset(
                        obj,
                        fout,
                        options,
                        pool,
                        hdf5plugin,
                        progress,
                        say,
                        on_chunk,
                        exact=(
                            _exact_reason(obj, referenced.get("/" + name))
                            if _lossy(options.codec)
                            else None
                        ),
                    )
                except Exception as exc:  # a corrupt chunk, a full disk: say which dataset
                    raise _naming(exc, obj.name) from exc
                _keep_attrs(obj, fout[name], _skip_attrs(obj), say)
                reports.append(rep)
            for path, nm in scales.items():
                fout[path].make_scale(nm)
            for path, axis, scale in attachments:
                if scale in fout and path in fout:
                    fout[path].dims[axis].attach_scale(fout[scale])
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, dst)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        room = out_of_room(
            exc,
            f"{dst} (in {dst_dir}). The partial output was removed",
            "free some space or write to another folder",
        )
        if room is not None:
            raise room from exc
        raise
    return ConvertReport(
        src=src, dst=dst, datasets=tuple(reports), seconds=time.perf_counter() - t_start
    )


@functools.cache
def ensure_blosc2_writable() -> None:
    """Make sure h5py can create Blosc2 datasets, re-registering hdf5plugin's own filter if not.

    With ``HDF5_PLUGIN_PATH`` set to ``hdf5plugin.PLUGIN_PATH`` (what netCDF-C needs to read the
    output), HDF5 loads the filter from that folder and hdf5plugin leaves it be; that copy reads
    chunks but fails to create a dataset ("error during user callback"). A Blosc2 filter that
    works, from wherever it came, is kept.

    The other filters HDF5 loads from hdf5plugin's own folder fail too (ZFP reads: "filter
    returned failure during read", so convert could not read its input): when
    ``HDF5_PLUGIN_PATH`` names that folder, all of hdf5plugin's filters are registered again
    from hdf5plugin itself (the same libraries, set up to call this process's HDF5).
    """
    import h5py
    import hdf5plugin

    own = os.path.realpath(hdf5plugin.PLUGIN_PATH)
    paths = os.environ.get("HDF5_PLUGIN_PATH", "").split(os.pathsep)
    if any(p and os.path.realpath(p) == own for p in paths):
        hdf5plugin.register(force=True)

    def probe() -> None:
        with h5py.File(
            f"b2store-probe-{os.getpid()}", "w", driver="core", backing_store=False
        ) as f:
            f.create_dataset("p", shape=(1,), dtype="u1", chunks=(1,), **hdf5plugin.Blosc2())

    try:
        probe()
    except Exception:
        hdf5plugin.register("blosc2", force=True)
        probe()  # still failing: let h5py's own error out


def _open_input(src: str, opener: Callable[[str], Any]) -> Any:
    """``opener(src)``, with an error naming ``src`` when HDF5 cannot open it (truncated,
    damaged)."""
    try:
        return opener(src)
    except OSError as exc:
        if src in str(exc):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = (
            f"{src} is not a readable HDF5 file ({first}); check that it is complete (not "
            "truncated) and really HDF5"
        )
        raise (OSError(exc.errno, msg) if exc.errno is not None else OSError(msg)) from exc


def _naming(exc: Exception, path: str) -> Exception:
    """``exc`` with ``path`` (the dataset being written) in front of its message, of the same
    type where it can be rebuilt from a message (an ``OSError`` keeps its errno)."""
    msg = str(exc)
    if msg.startswith(path):
        return exc
    msg = f"{path}: {msg or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.errno is not None:  # "[Errno N]" comes back in front
        text = f"{path}: {exc.strerror or type(exc).__name__}"
        if exc.filename is not None:
            text += f": {exc.filename!r}"
        return OSError(exc.errno, text)  # Python picks the subclass of the errno again
    try:
        new = type(exc)(msg)
    except Exception:
        return ConvertError(msg)
    return new if str(new) == msg else ConvertError(msg)


#: errno values of a write that failed for want of room: full disk, file size limit, quota.
_NO_ROOM = tuple(
    getattr(errno, name) for name in ("ENOSPC", "EFBIG", "EDQUOT") if hasattr(errno, name)
)


def out_of_room(exc: BaseException, writing: str, advice: str) -> OSError | None:
    """The error to raise instead of ``exc`` when it reports a write that failed for want of
    room (full disk, file size limit, quota): ``"<strerror> while writing <writing>: <advice>"``
    with that errno; None for other errors."""
    code = _out_of_space(exc)
    if code is None:
        return None
    return OSError(code, f"{os.strerror(code)} while writing {writing}: {advice}")


def _out_of_space(exc: BaseException) -> int | None:
    """The errno of :data:`_NO_ROOM` that ``exc`` (or an exception it was raised from) reports,
    else None. h5py raises ``RuntimeError`` for some failed writes, with ``errno = 28`` only in
    its message."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None and cur.errno in _NO_ROOM:
            return int(cur.errno)
        for code in _NO_ROOM:
            if f"errno = {code}," in str(cur):
                return code
        cur = cur.__cause__ or cur.__context__
    return None


#: attributes whose values mark missing data (CF, netCDF): readers compare items to them exactly
_MARKER_ATTRS = ("_FillValue", "missing_value")


@dataclass(frozen=True)
class _Markers:
    """The values :func:`convert` keeps exact when truncating an integer dataset."""

    keep: tuple[int, ...]  # in the dataset's dtype (as Python ints)
    kept: tuple[str, ...]  # "_FillValue attribute -1", ...
    skipped: tuple[str, ...]  # markers no item can equal: "missing_value attribute 70000"
    lossless: str | None  # why ``keep`` cannot keep them (then the dataset is stored lossless)


def _marker_values(ds: Any) -> list[tuple[str, Any]]:
    """``(what, value)`` for each missing-data marker of ``ds``: every value of its
    ``_FillValue`` and ``missing_value`` attributes, and its HDF5 fill value when it has no
    ``_FillValue`` attribute and that fill value is not 0 (netCDF-C writes its default fill,
    int16 -32767, as the HDF5 fill value, and netCDF4-python masks it without an attribute)."""
    found: list[tuple[str, Any]] = []
    has_fill_attr = False
    for name in _MARKER_ATTRS:
        if name not in ds.attrs:
            continue
        try:
            value = ds.attrs[name]
        except Exception:  # an attribute h5py cannot read: nothing to compare
            continue
        has_fill_attr |= name == "_FillValue"
        found.extend((f"{name} attribute", v) for v in np.asarray(value).ravel().tolist())
    fill = ds.fillvalue
    if not has_fill_attr and fill is not None and np.asarray(fill).item() != 0:
        found.append(("HDF5 fill value", np.asarray(fill).item()))
    return found


def _twin_dtype(ds: Any) -> np.dtype[Any] | None:
    """The dtype netCDF's ``_Unsigned`` attribute says the items really have (int16 items with
    ``_Unsigned="true"`` are uint16 values), or None."""
    flag = ds.attrs.get("_Unsigned") if "_Unsigned" in ds.attrs else None
    if isinstance(flag, np.ndarray):
        flag = flag.ravel()[0] if flag.size == 1 else None
    if isinstance(flag, bytes | np.bytes_):
        flag = flag.decode(errors="replace")
    if not isinstance(flag, str):
        return None
    kind = {"true": "u", "false": "i"}.get(flag.strip().lower())
    if kind is None or kind == ds.dtype.kind:
        return None
    return np.dtype(f"{ds.dtype.byteorder}{kind}{ds.dtype.itemsize}")


def _as_item(dtype: np.dtype[Any], twin: np.dtype[Any] | None, value: Any) -> int | None:
    """``value`` as an item of integer ``dtype`` (as a Python int), or of its ``_Unsigned``
    twin viewed as ``dtype``; None when neither can hold it (fractional, NaN, out of range, not
    a number)."""
    from b2store.codecs.itrunc import keep_values, parse_keep

    try:
        as_keep = parse_keep("convert", [value])  # numbers only; integral floats as ints
        if as_keep is None or not isinstance(as_keep[0], int):
            return None
        try:
            return int(keep_values(dtype, as_keep)[0])
        except ValueError:  # out of range: perhaps a value of the _Unsigned twin
            if twin is not None:
                return int(keep_values(twin, as_keep).view(dtype)[0])
    except (TypeError, ValueError):
        pass
    return None


def _valid_bounds(ds: Any) -> list[tuple[str, int, str]]:
    """``(what, item, side)`` for each bound of the CF valid range of integer dataset ``ds``
    (``valid_min``, ``valid_max``, ``valid_range``; side ``"min"`` or ``"max"``) that lies inside
    its dtype's range (one at the dtype's end cannot be crossed), as an item of the dtype (or of
    its ``_Unsigned`` twin viewed as the dtype). A fractional bound is rounded inwards, as
    readers compare items with it."""
    import math

    dtype = np.dtype(ds.dtype)
    twin = _twin_dtype(ds)
    found: list[tuple[str, Any, str]] = []
    for name in ("valid_min", "valid_max", "valid_range"):
        if name not in ds.attrs:
            continue
        try:
            values = np.asarray(ds.attrs[name]).ravel().tolist()
        except Exception:  # an attribute h5py cannot read: nothing to compare
            continue
        if name == "valid_range":
            if len(values) == 2:
                found += [
                    (f"{name} minimum", values[0], "min"),
                    (f"{name} maximum", values[1], "max"),
                ]
        elif len(values) == 1:
            found.append((name, values[0], name.removeprefix("valid_")))
    out: list[tuple[str, int, str]] = []
    for what, value, side in found:
        if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
            value = math.ceil(value) if side == "min" else math.floor(value)
        item = _as_item(dtype, twin, value)
        if item is None:
            continue
        dom = twin if twin is not None else dtype  # readers compare in the twin's values
        info = np.iinfo(dom)
        there = int(np.array(item, dtype=dtype).view(dom))
        if (side == "min" and there > info.min) or (side == "max" and there < info.max):
            out.append((f"{what} {value!r}", item, side))
    return out


def _missing_markers(
    ds: Any, extra: tuple[int | float, ...] | None = None, max_error: int | None = None
) -> _Markers:
    """The missing-data markers of integer dataset ``ds`` (:func:`_marker_values`, plus
    ``extra``) as values of its dtype, for the truncation's ``keep`` key.

    Truncating without them turns missing items into data, silently: a marker at the top of a
    range moves (netCDF-C's int16 fill -1 became -4 with --itrunc-max-error 3, uint16 65535
    became 65532), and values just above a marker fall onto it (1..3 became a _FillValue of 0).
    A marker the dtype cannot hold (fractional, NaN, out of range, a string) cannot equal any
    item and is left out; with ``_Unsigned`` the values of the unsigned (signed) twin count.

    With ``max_error`` (the truncation's), the bounds of a CF valid range
    (:func:`_valid_bounds`) are kept too: truncation floors each item to the bottom of its bin
    of ``2**k`` values, so the items of a bound's bin could cross it (valid_min 5, k 2: 6 and 7
    became 4, then masked; valid_max 5: 6 and 7, invalid, became 4). The bottom of that bin
    goes to ``keep``, so its items keep their exact values.
    """
    from b2store.codecs.itrunc import parse_keep, plan_truncation, truncate

    dtype = np.dtype(ds.dtype)
    twin = _twin_dtype(ds)
    found = _marker_values(ds) + [("itrunc_keep value", v) for v in extra or ()]
    keep: dict[int, str] = {}
    skipped: list[str] = []
    bins = 0
    for what, value in found:
        item = _as_item(dtype, twin, value)
        if item is None:
            skipped.append(f"{what} {value!r}")
        elif item not in keep:
            keep[item] = f"{what} {item}"
    if max_error is not None:
        plan = plan_truncation(dtype, max_abs_error=max_error)
        for what, item, _side in _valid_bounds(ds) if plan.zeroed else ():
            low = int(truncate(np.array(item, dtype=dtype), plan))
            if low not in keep:
                keep[low] = f"{what} (its truncation bin, from {low}, exact)"
                bins += 1
    values = sorted(keep)
    lossless = None
    try:
        parse_keep("convert", values)  # the codec's own limit on the number of values
    except ValueError as exc:
        lossless = (
            f"{len(values)} missing-data markers{' and valid-range bins' if bins else ''}, more "
            f"than the truncation keeps exactly ({str(exc).removeprefix('convert: keep: ')})"
        )
    return _Markers(
        keep=tuple(values),
        kept=tuple(keep[v] for v in values),
        skipped=tuple(skipped),
        lossless=lossless,
    )


def _j2k_markers(ds: Any) -> str | None:
    """Why lossy JPEG 2000 cannot code ``ds`` without changing which items are missing: it has
    missing-data markers (:func:`_marker_values`) its dtype can hold, or a CF valid range
    inside its dtype's range (JPEG 2000 moves any value, onto a marker or across a bound, and
    keeps none exact). None if it has neither."""
    if np.dtype(ds.dtype).kind not in "ui":
        return None
    marks = _missing_markers(ds)
    names = list(marks.kept) + [what for what, _, _ in _valid_bounds(ds)]
    if not names:
        return None
    return (
        f"{', '.join(names)}: JPEG 2000 can move real values onto missing-data markers or "
        "across the valid range and keeps no value exact"
    )


def _lossy(choice: CodecChoice) -> str:
    """The lossy part of ``choice`` (``"itrunc"``, ``"JPEG 2000"``), or ``""``."""
    if choice.itrunc_max_error is not None:
        return "itrunc"
    return "JPEG 2000" if choice.is_j2k else ""


#: CF standard names (any word of the attribute: modifiers follow the name) whose values are
#: categories: a lossy codec would turn one category into another
_CATEGORICAL_NAMES = frozenset(
    {"area_type", "land_cover", "land_cover_lccs", "realization", "region", "soil_type"}
)
#: attributes naming variables that hold coordinates, cell bounds, counts or indices (CF
#: coordinates/bounds/climatology, geometry node_count/part_node_count/interior_ring, UGRID
#: *_coordinates and *_connectivity): stored lossless, whichever variable names them
_NAMING_ATTRS = frozenset(
    {
        "coordinates",
        "bounds",
        "climatology",
        "node_count",
        "part_node_count",
        "interior_ring",
        "node_coordinates",
        "edge_coordinates",
        "face_coordinates",
        "volume_coordinates",
    }
)
#: attributes that make the variable holding them counts, indices or identifiers (CF ragged
#: arrays' sample_dimension/instance_dimension, compression by gathering, cf_role ids)
_SELF_ATTRS = ("sample_dimension", "instance_dimension", "compress", "cf_role")
#: CF flag attributes: the values are flags or bit masks, never quantities
_FLAG_ATTRS = ("flag_values", "flag_masks", "flag_meanings")


def _attr_text(obj: Any, name: str) -> str | None:
    """A text attribute of ``obj`` as ``str`` (bytes decoded, a one-item array unwrapped; a
    list of strings joined with spaces), or None."""
    try:
        value = obj.attrs[name]
    except Exception:
        return None
    items = np.asarray(value).ravel().tolist() if not isinstance(value, str | bytes) else [value]
    words = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in items]
    if not words or not all(isinstance(w, str) for w in words):
        return None
    return " ".join(words)


def _resolve(fin: Any, group: str, name: str) -> str | None:
    """The path of the dataset a CF attribute names from a variable of ``group``: an absolute
    path, a path relative to the group, or a bare name found in the group or, as netCDF-4 and
    CF search, in the nearest ancestor group holding it. None if no dataset has that name."""
    import h5py

    if name.startswith("/"):
        cands = [name]
    elif "/" in name:
        cands = [f"{group.rstrip('/')}/{name}"]
    else:
        parts = [p for p in group.split("/") if p]
        cands = ["/" + "/".join([*parts[:i], name]) for i in range(len(parts), -1, -1)]
    for c in cands:
        try:
            obj = fin.get(c, getlink=False)
        except Exception:
            continue
        if isinstance(obj, h5py.Dataset):
            return str(c)
    return None


def _referenced_exact(fin: Any, walked: list[tuple[str, Any]]) -> dict[str, str]:
    """``{dataset path: why}`` for the datasets other datasets name as coordinates, dimension
    scales, cell bounds, counts or indices (their ``DIMENSION_LIST``, :data:`_NAMING_ATTRS`,
    attributes ending in ``_connectivity``): lossy options store them lossless. A coordinate
    truncated gets repeated values (xarray: a non-unique index) and no longer matches its
    bounds; a truncated index points at other items."""
    import h5py

    out: dict[str, str] = {}
    for name, link in walked:
        if link is not None:
            continue
        try:
            obj = fin.get(name, getlink=False)
        except Exception:
            continue
        if not isinstance(obj, h5py.Dataset):
            continue
        path = "/" + name
        if "DIMENSION_LIST" in obj.attrs and obj.ndim:
            try:
                for axis in range(obj.ndim):
                    for sc in obj.dims[axis].values():
                        if sc.name and sc.name != path:
                            out.setdefault(sc.name, f"dimension scale of {path}")
            except Exception:  # references h5py cannot follow: nothing attached
                pass
        group = path.rpartition("/")[0] or "/"
        try:
            names = [a for a in obj.attrs if a in _NAMING_ATTRS or a.endswith("_connectivity")]
        except Exception:  # attribute names h5py cannot decode: none of these
            names = []
        for attr in names:
            text = _attr_text(obj, attr)
            for word in (text or "").split():
                target = _resolve(fin, group, word)
                if target is not None and target != path:
                    out.setdefault(target, f"named by the {attr} attribute of {path}")
    return out


def _exact_reason(ds: Any, referenced: str | None) -> str | None:
    """Why a lossy option must not touch ``ds`` (it would change what the values mean, not
    just their precision), or None: a dimension scale (coordinate variable), a variable other
    variables name as coordinates/bounds/counts/indices (``referenced``, from
    :func:`_referenced_exact`), an enumerated type, a CF flag variable, a CF count, index or
    identifier variable, or a categorical CF standard name."""
    import h5py

    if h5py.h5ds.is_scale(ds.id):
        return "dimension scale (a coordinate variable)"
    if referenced is not None:
        return referenced
    if h5py.check_enum_dtype(ds.dtype) is not None:
        return "enumerated type (categories)"
    for attr in (*_FLAG_ATTRS, *_SELF_ATTRS):
        if attr in ds.attrs:
            kind = "flag" if attr in _FLAG_ATTRS else "count, index or identifier"
            return f"CF {kind} variable ({attr} attribute)"
    words = (_attr_text(ds, "standard_name") or "").split()
    for w in words:
        if w.endswith("flag") or w.endswith("_binary_mask") or w in _CATEGORICAL_NAMES:
            return f"categorical CF standard_name {' '.join(words)!r}"
    return None


#: NeXus (and similar) integer fields whose values are categories, flags or bit masks, by
#: dataset name: ``image_key`` (NXdetector/NXtomo: 0 projection, 1 flat, 2 dark, 3 invalid),
#: ``pixel_mask``/``detector_mask`` and other ``*_mask`` (NXdetector bit masks), ``*_flag(s)``,
#: ``*_key`` and status scalars such as Diamond's ``scan_finished``
_CATEGORICAL_FIELDS = frozenset({"image_key", "mask", "flag", "flags", "scan_finished"})
_CATEGORICAL_SUFFIXES = ("_key", "_mask", "_flag", "_flags", "_finished")
#: datasets with fewer items than this (or than one ``--blocks`` block) are stored lossless
#: under lossy options: nothing to gain from truncation, everything to lose
TINY_ITEMS = 4096
#: integer datasets with at most this many distinct values, which a lossy option would merge
#: or move, are stored lossless (:func:`_few_values_reason`)
FEW_VALUES = 16
#: up to this many items, the distinct values are counted exactly; above, in a sample of chunks
_FEW_VALUES_EXACT = 4_000_000
_FEW_VALUES_SAMPLE = 16


def _name_reason(ds: Any) -> str | None:
    """Why ``ds``'s name says its values are categories (:data:`_CATEGORICAL_FIELDS`), or
    None."""
    leaf = str(ds.name).rpartition("/")[2].lower()
    if leaf in _CATEGORICAL_FIELDS or leaf.endswith(_CATEGORICAL_SUFFIXES):
        return f"categorical field by name ({leaf!r}: keys, masks, flags or status)"
    return None


def _tiny_reason(ds: Any, choice: CodecChoice) -> str | None:
    """Why ``ds`` is too small for a lossy option (fewer than :data:`TINY_ITEMS` items, or than
    one block of ``choice.blocks``), or None."""
    limit = TINY_ITEMS
    if choice.blocks is not None:
        limit = max(limit, int(np.prod(choice.blocks)))
    if int(ds.size) < limit:
        return f"{int(ds.size)} items, fewer than {limit} (nothing to gain)"
    return None


def _distinct_values(ds: Any, chunks: tuple[int, ...]) -> tuple[np.ndarray, bool] | None:
    """The distinct values of integer dataset ``ds`` read in ``chunks`` (all of them up to
    :data:`_FEW_VALUES_EXACT` items, else :data:`_FEW_VALUES_SAMPLE` chunks spread over the
    dataset) and whether that was a sample; None once more than :data:`FEW_VALUES` show up."""
    import itertools

    grid = [range(0, s, c) for s, c in zip(ds.shape, chunks, strict=True)]
    origins = list(itertools.product(*grid)) if ds.ndim else [()]
    sampled = int(ds.size) > _FEW_VALUES_EXACT and len(origins) > _FEW_VALUES_SAMPLE
    if sampled:
        step = len(origins) / _FEW_VALUES_SAMPLE
        origins = [origins[int(i * step)] for i in range(_FEW_VALUES_SAMPLE)]
    seen = np.empty(0, dtype=ds.dtype)
    for origin in origins:
        sel = tuple(slice(o, o + c) for o, c in zip(origin, chunks, strict=True))
        seen = np.union1d(seen, np.unique(ds[sel] if sel else ds[()]))
        if seen.size > FEW_VALUES:
            return None
    return seen, sampled


def _few_values_reason(ds: Any, choice: CodecChoice, chunks: tuple[int, ...]) -> str | None:
    """Why ``ds`` looks categorical to the lossy option of ``choice``: an integer dataset with
    at most :data:`FEW_VALUES` distinct values (exactly, or in a sample of chunks) that the
    truncation would merge (two values truncating to one, ``keep`` considered), or that JPEG
    2000, which keeps no value exact, would code. None otherwise."""
    from b2store.codecs.itrunc import keep_values, plan_truncation, truncate

    if np.dtype(ds.dtype).kind not in "ui" or not _lossy(choice):
        return None
    found = _distinct_values(ds, chunks)
    if found is None:
        return None
    values, sampled = found
    where = "in a sample of its chunks" if sampled else "in all"
    listed = ", ".join(str(v) for v in values.tolist())
    if choice.is_j2k:
        return f"only {values.size} distinct values {where} ({listed}): most likely categories"
    if choice.itrunc_max_error is None:
        return None
    plan = plan_truncation(values.dtype, max_abs_error=choice.itrunc_max_error)
    keep = keep_values(values.dtype, list(choice.itrunc_keep)) if choice.itrunc_keep else None
    if np.unique(truncate(values, plan, keep)).size < values.size:
        return (
            f"only {values.size} distinct values {where} ({listed}), which truncation would "
            "merge: most likely categories"
        )
    return None


def _convert_dataset(
    ds: Any,
    fout: Any,
    options: ConvertOptions,
    pool: ThreadPoolExecutor,
    hdf5plugin: Any,
    progress: bool,
    say: Callable[[str], None],
    on_chunk: Callable[[str, int], None] | None,
    exact: str | None = None,
) -> DatasetReport:
    path = ds.name
    src_chunks = tuple(int(c) for c in ds.chunks) if ds.chunks else None
    if options.chunks is not None and len(options.chunks) == ds.ndim:
        chunks = tuple(min(c, max(s, 1)) for c, s in zip(options.chunks, ds.shape, strict=True))
    elif src_chunks is not None:
        chunks = src_chunks
    else:
        chunks = _auto_chunks(tuple(ds.shape), ds.dtype.itemsize)
    rechunked = chunks != src_chunks
    choice = options.codec
    if choice.blocks is not None and len(choice.blocks) != ds.ndim:
        say(f"{path}: --blocks {choice.blocks} has another rank than {ds.shape}: blosc2 chooses")
        choice = replace(choice, blocks=None)
    if choice.itrunc_max_error is not None and ds.dtype.kind not in "ui":
        say(f"{path}: {ds.dtype} is not an integer type: stored lossless (itrunc not applied)")
        choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
    if exact is not None and _lossy(choice):
        say(f"{path}: {exact}: stored lossless ({_lossy(choice)} not applied)")
        choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
        choice = replace(choice, j2k_ratio=None, j2k_psnr=None)
    if exact is None and _lossy(choice):  # by name, by size, then by its values
        exact = _name_reason(ds) or _tiny_reason(ds, choice)
        if exact is not None:
            say(f"{path}: {exact}: stored lossless ({_lossy(choice)} not applied)")
            choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
            choice = replace(choice, j2k_ratio=None, j2k_psnr=None)
    if choice.itrunc_max_error is not None:
        markers = _missing_markers(ds, choice.itrunc_keep, choice.itrunc_max_error)
        few = (
            None
            if markers.lossless is not None
            else _few_values_reason(ds, replace(choice, itrunc_keep=markers.keep or None), chunks)
        )
        if few is not None:
            say(f"{path}: {few}: stored lossless (itrunc not applied)")
            choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
            markers = _Markers(keep=(), kept=(), skipped=(), lossless=None)
        if markers.skipped:
            say(
                f"{path}: {', '.join(markers.skipped)}: not a value of {ds.dtype}, so no item can "
                "equal it (not kept)"
            )
        if markers.lossless is not None:
            say(f"{path}: {markers.lossless}: stored lossless (itrunc not applied)")
            choice = replace(choice, itrunc_max_error=None, itrunc_keep=None)
        else:
            choice = replace(choice, itrunc_keep=markers.keep or None)
            if markers.keep:
                say(
                    f"{path}: itrunc stores the missing-data markers exactly: "
                    f"{', '.join(markers.kept)}"
                )
    if choice.is_j2k:
        _grok_for(choice, path)  # the settings and the plugin, named with the dataset
        why = (
            _j2k_unsuitable(choice, ds.dtype, chunks)
            or _j2k_markers(ds)
            or _few_values_reason(ds, choice, chunks)
        )
        if why is not None:
            say(f"{path}: {why}: stored lossless with b2nd (JPEG 2000 not applied)")
            choice = replace(choice, j2k_ratio=None, j2k_psnr=None)
    fill = ds.fillvalue
    origins = _chunk_origins(ds, chunks, rechunked)

    if options.auto and origins:
        samples = _tuning_samples(ds, origins, chunks, fill)
        res = tune(samples, tradeoff=options.tradeoff, base=choice)
        choice = res.choice
        say(
            f"{path}: --auto chose {choice.describe()} (sample ratio {res.ratio:.2f}, "
            f"tradeoff {options.tradeoff})"
        )

    cname = choice.cname if choice.cname in CNAMES else "zstd"
    kwargs: dict[str, Any] = dict(hdf5plugin.Blosc2(cname=cname, clevel=choice.clevel))
    dset = fout.create_dataset(
        path,
        shape=ds.shape,
        dtype=ds.dtype,
        chunks=chunks,
        maxshape=ds.maxshape if ds.chunks else None,
        fillvalue=fill,
        track_order=_tracks_order(ds),
        **kwargs,
    )
    stored = 0
    bar = _bar(len(origins), path, progress)
    inflight: deque[tuple[tuple[int, ...], Future[bytes | None]]] = deque()
    raw_decode = None if rechunked else _raw_decoder(ds, chunks)
    # python-blosc2's encoder holds the GIL, so pool threads overlap reading, decoding and
    # writing while Blosc2's own threads compress the blocks of each chunk in parallel
    bt = 1 if choice.is_j2k else options.nthreads
    fast = 0

    def drain(limit: int) -> None:
        nonlocal stored
        while len(inflight) > limit:
            origin, fut = inflight.popleft()
            frame = fut.result()
            if frame is None:  # the raw decode failed: read this chunk through HDF5 instead
                frame = encode_chunk(
                    _read_full_chunk(ds, origin, chunks, fill), choice, nthreads=bt
                )
            dset.id.write_direct_chunk(origin, frame)
            stored += len(frame)
            bar.update(1)
            if on_chunk is not None:
                on_chunk(path, bar.n)

    written = 0
    try:
        for origin in origins:
            if raw_decode is not None:
                # raw bytes on this thread (I/O only); decode + encode in the pool
                mask, raw = ds.id.read_direct_chunk(origin)
                fut = pool.submit(_transcode, raw_decode, bytes(raw), int(mask), choice, bt)
                inflight.append((origin, fut))
                fast += 1
            else:
                chunk = _read_full_chunk(ds, origin, chunks, fill)
                if rechunked and fill is not None and _all_fill(chunk, fill):
                    bar.update(1)
                    continue  # all fill value: leave unallocated
                inflight.append((origin, pool.submit(encode_chunk, chunk, choice, nthreads=bt)))
            written += 1
            drain(2 * options.nthreads)
        drain(0)
    finally:
        for _, fut in inflight:
            fut.cancel()
        bar.close()
    rep = DatasetReport(
        path=path,
        action="converted",
        codec=choice.describe(),
        chunks=chunks,
        nbytes=int(ds.nbytes),
        stored=stored,
        nchunks=written,
        note=("rechunked" if rechunked else "")
        + (f"{fast} chunks decoded from raw bytes by b2store" if fast else ""),
    )
    ratio = f"{rep.ratio:.2f}" if rep.ratio else "-"
    say(f"{path}: converted, {choice.describe()}, chunks {chunks}, {written} chunks, ratio {ratio}")
    return rep


def _raw_decoder(ds: Any, chunks: tuple[int, ...]) -> Callable[[bytes, int], Any] | None:
    """A thread-safe raw-chunk decoder from b2store's HDF5 filter planner, or None.

    None when the planner is not installed or cannot decode this dataset's pipeline (then every
    chunk is read through h5py + HDF5's filters on the calling thread).
    """
    if ds.dtype.kind not in "biufc" or ds.dtype.fields is not None:
        return None
    try:
        import numcodecs

        from b2store.hdf5.filters import frame_chunk, plan_codecs, read_pipeline
    except ImportError:
        return None
    masks: set[int] = set()
    ds.id.chunk_iter(lambda info: masks.add(int(info.filter_mask)))
    try:
        plan = plan_codecs(
            read_pipeline(ds.id.get_create_plist()), ds.dtype, chunks, masks=masks, where=ds.name
        )
        filters = [numcodecs.get_codec(dict(c)) for c in plan.v2_filters or ()]
        comp = numcodecs.get_codec(dict(plan.v2_compressor)) if plan.v2_compressor else None
    except Exception:
        return None
    dtype, nbytes = ds.dtype, int(np.prod(chunks)) * ds.dtype.itemsize

    def decode(raw: bytes, mask: int) -> np.ndarray[Any, Any]:
        buf: Any = frame_chunk(raw, mask) if plan.masked else raw
        if comp is not None:
            buf = comp.decode(buf)
        for f in reversed(filters):
            buf = f.decode(buf)
        flat = np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
        if flat.nbytes != nbytes:
            raise ValueError(f"decoded {flat.nbytes} bytes, expected {nbytes}")
        return flat.view(dtype).reshape(chunks)

    return decode


def _transcode(
    decode: Callable[[bytes, int], Any], raw: bytes, mask: int, choice: CodecChoice, nthreads: int
) -> bytes | None:
    """Raw HDF5 chunk -> b2nd frame; None if b2store cannot decode it (the caller falls back)."""
    try:
        chunk = decode(raw, mask)
    except Exception:
        return None
    return encode_chunk(chunk, choice, nthreads=nthreads)


def _tuning_samples(
    ds: Any, origins: list[tuple[int, ...]], chunks: tuple[int, ...], fill: Any, n: int = 3
) -> list[np.ndarray[Any, Any]]:
    """Up to ``n`` chunks spread over the dataset, skipping constant ones (zero edges of sparse
    data would make every codec look alike); a constant chunk only if nothing else is found."""
    order = [
        origins[i] for i in np.linspace(0, len(origins) - 1, min(len(origins), 24)).astype(int)
    ]
    mid = len(order) // 2
    order = order[mid:] + order[:mid]  # start in the middle, where the sample usually is
    picked: list[np.ndarray[Any, Any]] = []
    constant: np.ndarray[Any, Any] | None = None
    for o in dict.fromkeys(order):
        chunk = _read_full_chunk(ds, o, chunks, fill)
        if chunk.size and np.all(chunk.reshape(-1)[0] == chunk):
            constant = chunk if constant is None else constant
            continue
        picked.append(_sample(chunk))
        if len(picked) == n:
            break
    if not picked and constant is not None:
        picked.append(_sample(constant))
    return picked


def _sample(chunk: np.ndarray[Any, Any], max_bytes: int = 2 << 20) -> np.ndarray[Any, Any]:
    """A contiguous slab of at most ``max_bytes`` from the middle of a chunk (keeps its rank)."""
    if chunk.nbytes <= max_bytes or chunk.ndim == 0:
        return chunk
    axis = next((i for i, s in enumerate(chunk.shape) if s > 1), 0)
    n = max(1, int(chunk.shape[axis] * max_bytes / chunk.nbytes))
    start = (chunk.shape[axis] - n) // 2
    sel = [slice(None)] * chunk.ndim
    sel[axis] = slice(start, start + n)
    return np.ascontiguousarray(chunk[tuple(sel)])


class _NoBar:
    n = 0

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", leave=False)
