"""b2nd codec: one Zarr chunk is one Blosc2 contiguous frame holding exactly one chunk.

Contract
--------
* **Encode** an n-D array to a one-chunk b2nd cframe (``chunks`` = the array shape, ``blocks`` =
  the configured block shape or blosc2's own guess), readable by ``blosc2.ndarray_from_cframe``.
  Any fixed-size dtype: numbers, datetimes, fixed-length bytes and strings, structured records
  (items over 255 bytes too); Python objects and variable-length strings are refused.
* **Decode** every form users meet:

  (a) b2nd cframes, including hdf5plugin's / b2h5py's whose header dtype is ``'|V<n>'`` (the
      real dtype comes from the caller or the array metadata, never from such a frame);
  (b) plain (non-b2nd) Blosc2 cframes (hdf5plugin writes them for 1-D data);
  (c) a bare Blosc2 chunk in b2nd block order, as Caterva2's ``/api/chunk`` serves it: the chunk
      shape (``chunkshape``) and ``blocks`` are needed; ``blocks=None`` means one block
      covering the chunk (C order) and the byte count is checked;
  (d) special chunks (all-zero, NaN, constant, uninitialised) and frames whose chunk is a
      frame-level special offset (``blosc2.zeros``).

  :func:`decode_b2nd` is the reusable entry point; ``B2nd.decode`` wraps it.
* Decoding validates every header (:mod:`b2store.codecs._blosc2frame`) before the C decoder sees
  the bytes, then calls ``blosc2.decompress2`` on the raw chunk and reorders blocks in numpy.
  Chunks using ZFP, NDCELL or NDMEAN are decoded one by one inside a one-chunk python-blosc2
  NDArray built from the checked shapes (never from the frame's own header); chunks holding
  DELTA twice are decoded on one thread (C-Blosc2 gets them wrong on several).
  Importing this module calls ``blosc2.set_releasegil(True)``, which is **process-global**: it
  lets ``decompress2``/``compress2`` release the GIL so dask/zarr threads decode in parallel.
* Blosc2 frames carry no checksum: a flipped payload bit may decode to other values without
  error. Structurally invalid bytes raise :class:`~b2store.errors.CodecError` (a ``ValueError``)
  naming ``b2store_b2nd``.

Config (JSON)
-------------
``cname`` (``"zstd"``), ``clevel`` (5, 0..9), ``filters`` (default ``[{"id": "shuffle"}]``),
``blocks`` (``None`` = blosc2's guess from the chunk shape and typesize), ``nthreads`` (1,
Blosc2-internal threads per call), ``splitmode`` (``"auto"``, ``"always"``, ``"never"`` or
``"forward_compat"``; encode-only, left out of the config when ``"auto"``), ``chunkshape``
(decode-only, for bare chunks). Filter specs:
``{"id": "shuffle"}``, ``{"id": "bitshuffle"}``, ``{"id": "bytedelta"}``, ``{"id": "delta"}``,
``{"id": "itrunc", "max_abs_error": 15}`` (or ``"bits"``; floats: ``"max_rel_error"`` or
``"bits"``, see :mod:`b2store.codecs.itrunc`); ``"trunc_prec"`` is an alias of ``"itrunc"``.
A bare string ``"shuffle"`` is accepted and normalised to ``{"id": "shuffle"}``. Spellings of
neighbouring libraries are normalised: ``cname`` and filter ids in any case, ``blosc2.Codec`` /
``blosc2.Filter`` / ``blosc2.SplitMode`` members (stored by name), ``"INT_TRUNC"`` (stored as
``"itrunc"``), ``"NOFILTER"``/``"NOSHUFFLE"`` (an empty slot, dropped), numpy scalars (stored as
JSON numbers). Integers as codec or filter ids, ``NDCELL``/``NDMEAN`` and unknown names are
refused. A truncation filter may set ``keep`` (marker values stored exactly; it then runs in
numpy), and on float16 it runs in numpy (Blosc2's TRUNC_PREC takes float32/float64). Truncation
filters always run first (before shuffle), whatever their position in the list. At most 6
filters in a config, and at most 2 besides a truncation filter, delta at most once, when
encoding: C-Blosc2 gets other pipelines wrong (see :func:`encoding_pipeline`). Example:
``{"id": "b2store_b2nd", "filters": [{"id": "itrunc", "max_abs_error": 15}, {"id": "bitshuffle"}]}``
is the "itrunc + bitshuffle + zstd" recipe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import threading
from collections.abc import Iterator
from typing import Any

import blosc2
import numpy as np
from numcodecs.abc import Codec

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._common import (
    CNAMES,
    MAX_B2ND_DIMS,
    MAX_BLOSC2_FILTERS,
    SPLITMODES,
    as_bytes_view,
    codec_from_config,
    enum_name,
    parse_cname,
    parse_int_range,
    parse_optional_shape,
    parse_splitmode,
)
from b2store.codecs.itrunc import (
    TruncationPlan,
    keep_values,
    parse_keep,
    parse_truncation_config,
    plan_truncation,
    truncate,
)
from b2store.errors import CodecError

__all__ = [
    "B2nd",
    "NeedsArrayContext",
    "c_contiguous",
    "check_truncation_dtype",
    "decode_b2nd",
    "decompress_chunk",
    "default_blocks",
    "encode_b2nd",
    "encoding_pipeline",
    "needs_array_context",
    "normalize_filters",
    "reorder",
    "threads_safe",
    "to_block_order",
]

CODEC_ID = "b2store_b2nd"

blosc2.set_releasegil(True)  # process-global: decompress2/compress2 release the GIL

_SIMPLE_FILTERS = {"shuffle": 1, "bitshuffle": 2, "delta": 3, "bytedelta": 35}
_DELTA_FILTER = 3
_TRUNC_IDS = ("itrunc", "trunc_prec")
#: blosc2.Filter names accepted as filter ids: INT_TRUNC is stored as "itrunc" (older b2store
#: versions read that id); TRUNC_PREC is an id of its own.
_FILTER_ALIASES = {"int_trunc": "itrunc"}
#: "no filter" names (blosc2.Filter.NOFILTER, hdf5plugin's Blosc2.NOFILTER / Blosc.NOSHUFFLE):
#: an empty slot, left out of the normalised list.
_NO_FILTER = ("nofilter", "noshuffle")
#: Filter ids C-Blosc2 decodes without loading a plugin library.
_KNOWN_FILTERS = {0, 1, 2, 3, 4, 35, 36}
#: python-blosc2's n-dimensional filters: decompress2 alone cannot undo them.
_NDIM_FILTERS = {32: "NDCELL", 33: "NDMEAN"}
#: Built-in codecs that read the array's b2nd metadata (block shape) when decompressing: a bare
#: ``decompress2`` fails on them, an NDArray holding the chunk decodes them.
_NDIM_CODECS = {33: "ZFP_ACC", 34: "ZFP_PREC", 35: "ZFP_RATE"}
#: Built-in codec ids, and plugin codec ids with the Python package that loads their library.
_BUILTIN_CODECS = {0, 1, 2, 3, 4, 5, 32, 33, 34, 35}
_PLUGIN_CODECS = {37: ("blosc2_grok", "blosc2_j2k"), 39: ("blosc2_j2k",), 40: ("blosc2_htj2k",)}
#: Largest chunk C-Blosc2 compresses (BLOSC2_MAX_BUFFERSIZE: INT32_MAX - BLOSC2_MAX_OVERHEAD).
_MAX_CHUNK_BYTES = 2**31 - 1 - 32
#: Largest typesize Blosc2 records; writers record larger items with typesize 1.
_MAX_TYPESIZE = 255


def normalize_filters(filters: Any, *, codec: str = CODEC_ID) -> list[dict[str, Any]]:
    """Validate a filter list and return it in canonical JSON form (a list of dicts)."""
    if filters is None:
        return [{"id": "shuffle"}]
    if isinstance(filters, str | bytes | dict) or not isinstance(filters, list | tuple):
        raise TypeError(
            f"{codec}: filters: Expected a list of filter specs. Got {filters!r} instead."
        )
    out: list[dict[str, Any]] = []
    for given in filters:
        spec = enum_name(given)  # a blosc2.Filter member: its name
        if isinstance(spec, str):
            spec = {"id": spec}
        if isinstance(spec, dict) and "id" in spec:
            spec = {**spec, "id": enum_name(spec["id"])}
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
            raise TypeError(
                f"{codec}: filters: Expected a filter spec like {{'id': 'shuffle'}}. Got "
                f"{given!r} instead."
            )
        fid = _FILTER_ALIASES.get(spec["id"].lower(), spec["id"].lower())
        params = {k: v for k, v in spec.items() if k != "id"}
        if params and (fid in _NO_FILTER or fid in _SIMPLE_FILTERS):
            raise CodecError(
                f"{codec}: filter {fid!r} takes no parameters: Expected {{'id': {fid!r}}}. "
                f"Got {given!r} instead."
            )
        if fid in _NO_FILTER:  # blosc2's NOFILTER, hdf5plugin's NOSHUFFLE: an empty slot
            continue
        if fid in _SIMPLE_FILTERS:
            out.append({"id": fid})
        elif fid in _TRUNC_IDS:
            known = ["bits", "keep", "max_abs_error", "max_rel_error"]
            unknown = sorted(set(params) - set(known))
            if unknown:
                raise CodecError(
                    f"{codec}: filter {fid!r}: Expected keys among {known}. Got unknown key(s) "
                    f"{unknown} instead."
                )
            keep = parse_keep(f"{codec}: filter {fid!r}", params.pop("keep", None))
            mae, bits, mre = parse_truncation_config(f"{codec}: filter {fid!r}", **params)
            norm: dict[str, Any] = {"id": fid}
            for key, val in (
                ("max_abs_error", mae),
                ("bits", bits),
                ("max_rel_error", mre),
                ("keep", keep),
            ):
                if val is not None:
                    norm[key] = val
            out.append(norm)
        else:
            raise CodecError(
                f"{codec}: filters: unknown filter. Expected one of "
                f"{sorted([*_SIMPLE_FILTERS, *_TRUNC_IDS, *_FILTER_ALIASES, *_NO_FILTER])} "
                f"(any case, or a blosc2.Filter member). Got {spec['id']!r} instead."
            )
    if len(out) > 6:
        raise CodecError(
            f"{codec}: filters: Expected at most 6 filters (Blosc2's filter slots). Got "
            f"{len(out)} instead."
        )
    return out


def _check_one_truncation(specs: list[dict[str, Any]], codec: str = CODEC_ID) -> None:
    """Refuse to *encode* with two truncation filters: both would run and the coarser one
    silently breaks the bound the other states. Checked when encoding only: configs are also
    parsed when arrays written by older versions are opened, which must keep working."""
    ntrunc = sum(f["id"] in _TRUNC_IDS for f in specs)
    if ntrunc > 1:
        raise CodecError(
            f"{codec}: filters: Expected at most one truncation filter (itrunc or trunc_prec; "
            f"one filter may set both max_abs_error and max_rel_error). Got {ntrunc} instead."
        )


def _truncation_plan(spec: dict[str, Any], dtype: np.dtype) -> TruncationPlan:
    """The truncation an ``itrunc``/``trunc_prec`` filter spec asks for, on *dtype*."""
    return plan_truncation(
        dtype,
        max_abs_error=spec.get("max_abs_error"),
        bits=spec.get("bits"),
        max_rel_error=spec.get("max_rel_error"),
        codec=CODEC_ID,
    )


def check_truncation_dtype(specs: list[dict[str, Any]], dtype: np.dtype) -> None:
    """Raise :class:`CodecError` if a truncation filter in canonical *specs* cannot apply to
    *dtype* (booleans, strings; ``max_rel_error`` alone on integers, ...)."""
    for spec in specs:
        if spec["id"] in _TRUNC_IDS:
            _truncation_plan(spec, dtype)
            keep_values(dtype, spec.get("keep"), codec=CODEC_ID)


def _blosc2_filters(filters: list[dict[str, Any]], dtype: np.dtype) -> tuple[list[int], list[int]]:
    """Map canonical filter specs to Blosc2 ``filters``/``filters_meta`` for *dtype*."""
    trunc: list[tuple[int, int]] = []
    rest: list[tuple[int, int]] = []
    for spec in filters:
        fid = spec["id"]
        if fid in _TRUNC_IDS:
            plan = _truncation_plan(spec, dtype)
            if plan.kind == "float" and dtype.itemsize not in (4, 8) and plan.zeroed:
                raise CodecError(
                    f"{CODEC_ID}: Blosc2's float truncation needs float32 or float64, not {dtype}."
                )
            f = plan.blosc2_filter(dtype.itemsize)
            if f is not None:
                trunc.append(f)
        else:
            rest.append((_SIMPLE_FILTERS[fid], 0))
    pipeline = trunc + rest
    return [f for f, _ in pipeline], [m for _, m in pipeline]


def encoding_pipeline(
    specs: list[dict[str, Any]], dtype: np.dtype
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split canonical filter specs into the truncations to run in numpy before encoding and
    the specs C-Blosc2 runs, or raise :class:`CodecError` for a pipeline Blosc2 gets wrong.

    Truncation runs in numpy (same bound, same values) when Blosc2 cannot run it right: on
    big-endian data (its INT_TRUNC/TRUNC_PREC act on little-endian words), on float16 (its
    TRUNC_PREC takes float32/float64 only), with ``keep`` (marker values stored exactly), and
    when it would be a third filter. C-Blosc2's compressor (python-blosc2 4.x) writes wrong
    data with three or more filters in its pipeline, and overwrites the buffer being compressed
    with the third filter's output: every combination of shuffle, bitshuffle, delta and
    bytedelta tried did.
    """
    trunc = [f for f in specs if f["id"] in _TRUNC_IDS]
    rest = [f for f in specs if f["id"] not in _TRUNC_IDS]
    check_truncation_dtype(trunc, dtype)
    if trunc and (
        dtype.byteorder == ">"
        or (dtype.kind == "f" and dtype.itemsize not in (4, 8))  # TRUNC_PREC: f4/f8 only
        or any(f.get("keep") for f in trunc)  # markers kept exactly: Blosc2 cannot
        or len(_blosc2_filters(specs, dtype)[0]) > MAX_BLOSC2_FILTERS
    ):
        specs, in_numpy = rest, trunc
    else:
        in_numpy = []
    if sum(f["id"] == "delta" for f in specs) > 1:
        raise CodecError(
            f"{CODEC_ID}: filters: Expected at most one delta filter (C-Blosc2 "
            f"{blosc2.blosclib_version.split()[0]} decodes two deltas wrongly on several "
            f"threads, as python-blosc2 reads by default). Got {[f['id'] for f in specs]} instead."
        )
    if len(_blosc2_filters(specs, dtype)[0]) > MAX_BLOSC2_FILTERS:
        raise CodecError(
            f"{CODEC_ID}: filters: Expected at most {MAX_BLOSC2_FILTERS} filters besides a "
            f"truncation filter (C-Blosc2 {blosc2.blosclib_version.split()[0]} writes wrong "
            "data, and overwrites the array being encoded, with 3 or more filters in its "
            "pipeline). "
            f"Got {[f['id'] for f in rest]} instead."
        )
    return in_numpy, specs


def default_blocks(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    """Blosc2's own block-shape guess for a chunk of *shape* (``compute_chunks_blocks``)."""
    if not shape or 0 in shape:
        return tuple(max(s, 1) for s in shape)
    _, blocks = blosc2.compute_chunks_blocks(shape, shape, None, dtype)
    return tuple(int(b) for b in blocks)


def block_order_is_c_order(chunks: Any, blocks: Any) -> bool:
    """True when a padded, block-ordered chunk is already C-ordered (then no copy is needed).

    That holds when the blocks are 1 along every dimension before the last one they split (``m``),
    span every dimension after it, and either split ``m`` evenly or the chunk is 1 along every
    dimension before ``m`` (then the padding only trails), e.g. chunk (8, 512, 512) with blocks
    (1, 128, 512), which is blosc2's own choice for stacks of images.
    """
    return _block_order_is_c_order(tuple(map(int, chunks)), tuple(map(int, blocks)))


@functools.lru_cache(maxsize=1024)
def _block_order_is_c_order(chunks: tuple[int, ...], blocks: tuple[int, ...]) -> bool:
    split = [i for i, (c, b) in enumerate(zip(chunks, blocks, strict=True)) if b != c]
    if not split:
        return True
    m = split[-1]
    if any(b != 1 for b in blocks[:m]):
        return False
    return chunks[m] % blocks[m] == 0 or all(c == 1 for c in chunks[:m])


def reorder(
    flat: Any, chunks: tuple[int, ...], blocks: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """Turn a decompressed b2nd chunk (padded, block order) into a C-ordered ``chunks`` array.

    No copy when the blocks span the full trailing dimensions (block order == C order).
    """
    nd = len(chunks)
    grid = [-(-c // b) for c, b in zip(chunks, blocks, strict=True)]
    a = np.frombuffer(flat, dtype=dtype) if not isinstance(flat, np.ndarray) else flat.view(dtype)
    if nd == 0:
        return a[:1].reshape(())
    if block_order_is_c_order(chunks, blocks):
        n = math.prod(chunks)
        return a[:n].reshape(chunks)
    a = a.reshape(*grid, *blocks)
    a = a.transpose([x for i in range(nd) for x in (i, nd + i)]).reshape(
        [g * b for g, b in zip(grid, blocks, strict=True)]
    )
    return a[tuple(slice(0, c) for c in chunks)]


def to_block_order(arr: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`reorder`: a C-ordered chunk as Blosc2 stores it (padded, block by
    block, each block in C order), as a contiguous array. No copy when the orders agree."""
    chunks = arr.shape
    grid = [-(-c // b) for c, b in zip(chunks, blocks, strict=True)]
    full = [g * b for g, b in zip(grid, blocks, strict=True)]
    exact = list(chunks) == full
    if exact and block_order_is_c_order(chunks, blocks):
        return np.ascontiguousarray(arr)
    padded = arr
    if not exact:
        padded = np.zeros(full, dtype=arr.dtype)
        padded[tuple(slice(0, c) for c in chunks)] = arr
    nd = len(chunks)
    split = padded.reshape([x for g, b in zip(grid, blocks, strict=True) for x in (g, b)])
    return np.ascontiguousarray(split.transpose([*range(0, 2 * nd, 2), *range(1, 2 * nd, 2)]))


def c_contiguous(arr: np.ndarray) -> np.ndarray:
    """*arr* itself when C-contiguous, else a C-ordered copy; unlike ``np.ascontiguousarray``,
    a 0-d array stays 0-d."""
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _trim_to_shape(arr: np.ndarray, meta: bf.B2ndMeta, what: str) -> np.ndarray:
    """The frame's array from its (padded) chunk: checked, trimmed to the shape, C-ordered."""
    if meta.shape != meta.chunks:
        if any(s > c for s, c in zip(meta.shape, meta.chunks, strict=True)):
            raise CodecError(
                f"{what}: one-chunk frame with shape {meta.shape} larger than its chunk "
                f"{meta.chunks}"
            )
        arr = arr[tuple(slice(0, s) for s in meta.shape)]
    return c_contiguous(arr)


def _reorder_copy(
    flat: np.ndarray, chunks: tuple[int, ...], blocks: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """:func:`reorder`, never returning a view of *flat* (a scratch buffer)."""
    arr = reorder(flat, chunks, blocks, dtype)
    return arr.copy() if np.may_share_memory(arr, flat) else arr


class NeedsArrayContext(CodecError):
    """A chunk whose codec (ZFP) or filters (NDCELL, NDMEAN) read the array's b2nd metadata
    when decompressing: :func:`decode_b2nd` decodes it inside a python-blosc2 NDArray when it
    knows the chunk and block shapes, and raises this otherwise."""


def needs_array_context(hdr: bf.ChunkHeader) -> bool:
    """Whether C-Blosc2 needs the array's b2nd metadata to decompress this chunk."""
    ndim_codec = (hdr.flags >> 5 == bf.UDCODEC_FORMAT or hdr.udcodec >= 32) and (
        hdr.udcodec in _NDIM_CODECS
    )
    return ndim_codec or any(f in _NDIM_FILTERS for f in hdr.filters)


def threads_safe(filters: tuple[int, ...]) -> bool:
    """Whether C-Blosc2 decompresses a chunk with this filter pipeline right on several threads.

    C-Blosc2 3.3 (python-blosc2 4.x) decodes a pipeline holding DELTA twice wrongly with 2 or
    more threads (one thread is right; every other pipeline of up to 3 of shuffle, bitshuffle,
    delta and bytedelta tried decodes the same on 1 and 2 threads): such chunks are decoded on
    one thread. python-blosc2's own reader uses every core by default and gets them wrong.
    """
    return list(filters).count(_DELTA_FILTER) <= 1


def _check_codecs(hdr: bf.ChunkHeader, what: str) -> None:
    """Refuse chunks whose codec/filters C-Blosc2 could only handle by loading a plugin, or
    only inside an NDArray (:class:`NeedsArrayContext`)."""
    fmt = hdr.flags >> 5
    if needs_array_context(hdr):
        used = [_NDIM_CODECS[hdr.udcodec]] if hdr.udcodec in _NDIM_CODECS else []
        used += [_NDIM_FILTERS[f] for f in hdr.filters if f in _NDIM_FILTERS]
        raise NeedsArrayContext(
            f"{what}: the chunk uses Blosc2's n-dimensional {' and '.join(used)}, which needs "
            "the array's chunk and block shapes at decode time: decode it as a b2nd frame, or "
            "pass chunkshape and blocks for a bare chunk (or read it with python-blosc2)"
        )
    if fmt == bf.UDCODEC_FORMAT or hdr.udcodec >= 32:
        cid = hdr.udcodec
        if cid in _PLUGIN_CODECS:
            import importlib

            for mod in _PLUGIN_CODECS[cid]:
                try:
                    importlib.import_module(mod)
                    break
                except ImportError:
                    continue
            else:
                raise CodecError(
                    f"{what}: the chunk uses Blosc2 plugin codec {cid}; install "
                    f"{' or '.join(_PLUGIN_CODECS[cid])} to decode it"
                )
        elif cid not in _BUILTIN_CODECS and fmt == bf.UDCODEC_FORMAT:
            raise CodecError(f"{what}: unknown Blosc2 codec id {cid} in the chunk header")
    bad = [f for f in hdr.filters if f not in _KNOWN_FILTERS]
    if bad:
        raise CodecError(f"{what}: unknown Blosc2 filter ids {bad} in the chunk header")


def _special_array(kind: int, nitems: int, dtype: np.dtype, value: bytes, what: str) -> np.ndarray:
    if kind in (bf.SPECIAL_ZERO, bf.SPECIAL_UNINIT):
        return np.zeros(nitems, dtype=dtype)
    if kind == bf.SPECIAL_NAN:
        if dtype.kind != "f":
            raise CodecError(f"{what}: NaN special chunk for non-float dtype {dtype}")
        return np.full(nitems, np.nan, dtype=dtype)
    if kind == bf.SPECIAL_VALUE:
        return np.repeat(np.frombuffer(value, dtype=dtype), nitems)
    raise CodecError(f"{what}: unknown special chunk kind {kind}")  # pragma: no cover


class _ScratchPool:
    """A few reusable ``uint8`` buffers for block-ordered chunks, shared by all threads.

    Block-ordered chunks are decompressed into a borrowed buffer and then reordered into fresh
    memory, so the decompressed bytes land in memory that is already mapped instead of a new
    allocation the kernel must fault in and zero: that cuts an xarray + dask read of a
    tomography stack by about a tenth (``benchmarks/hdf5_read.py``). At most ``keep`` buffers of
    at most ``max_bytes`` each stay allocated between calls; larger requests, or more borrowers
    at once, get fresh memory that is freed as usual.
    """

    def __init__(self, *, keep: int, max_bytes: int) -> None:
        self.keep = keep
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self, nbytes: int) -> Iterator[np.ndarray]:
        """A ``uint8`` buffer of exactly *nbytes*, valid inside the ``with`` block only."""
        buf = None
        if nbytes <= self.max_bytes:
            with self._lock:
                if self._free:
                    buf = self._free.pop()
        if buf is None or buf.nbytes < nbytes:
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        try:
            yield buf[:nbytes]
        finally:
            if buf.nbytes <= self.max_bytes:
                with self._lock:
                    if len(self._free) < self.keep:
                        self._free.append(buf)


#: Scratch buffers for block-ordered chunks: one per core (at most 8), chunks up to 16 MiB.
SCRATCH = _ScratchPool(keep=min(os.cpu_count() or 1, 8), max_bytes=16 * 2**20)


def decompress_chunk(
    chunk: Any,
    *,
    dtype: np.dtype,
    nbytes: int | None,
    nthreads: int = 1,
    what: str = CODEC_ID,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """Validate and decompress one raw Blosc2 chunk into a flat array of *dtype* (GIL released).

    Special chunks are synthesised in numpy without calling C. *into*, a ``uint8`` buffer of the
    chunk's byte count, receives the decompressed bytes instead of fresh memory (the result is
    then a view of it).
    """
    mv = as_bytes_view(chunk)
    hdr = bf.validate_chunk(mv, what=what, nbytes=nbytes)
    if hdr.nbytes % dtype.itemsize:
        raise CodecError(
            f"{what}: chunk holds {hdr.nbytes} bytes, not a multiple of itemsize {dtype.itemsize}"
            f" of {dtype}"
        )
    nitems = hdr.nbytes // dtype.itemsize
    if hdr.special != bf.SPECIAL_NONE:
        if hdr.special == bf.SPECIAL_VALUE and hdr.typesize != dtype.itemsize:
            raise CodecError(
                f"{what}: special-value chunk typesize {hdr.typesize} != itemsize of {dtype}"
            )
        value = bytes(mv[bf.CHUNK_HEADER_SIZE : bf.CHUNK_HEADER_SIZE + hdr.typesize])
        return _special_array(hdr.special, nitems, dtype, value, what)
    if hdr.memcpyed:
        return np.frombuffer(  # a bytearray: writable, like every other decoded chunk
            bytearray(mv[bf.CHUNK_HEADER_SIZE : bf.CHUNK_HEADER_SIZE + hdr.nbytes]), dtype=dtype
        )
    _check_codecs(hdr, what)
    if into is not None and into.nbytes != hdr.nbytes:
        raise ValueError(f"{what}: scratch buffer of {into.nbytes} bytes for {hdr.nbytes}")
    out = into.view(dtype) if into is not None else np.empty(nitems, dtype=dtype)
    if nitems == 0:
        return out
    if nthreads > 1 and not threads_safe(hdr.filters):
        nthreads = 1
    src = mv[: hdr.cbytes]
    try:
        n = blosc2.decompress2(src, dst=out.view(np.uint8), nthreads=nthreads)
    except Exception as exc:  # C-Blosc2 reports corrupt streams as RuntimeError/ValueError
        raise CodecError(f"{what}: corrupt Blosc2 chunk ({exc})") from exc
    if n is not None and n != hdr.nbytes:
        raise CodecError(f"{what}: corrupt Blosc2 chunk (decompressed {n} of {hdr.nbytes} bytes)")
    del src
    return out


def _bare_blocks(
    hdr: bf.ChunkHeader,
    shape: tuple[int, ...],
    blocks: tuple[int, ...] | None,
    dtype: np.dtype,
    what: str,
) -> tuple[int, ...]:
    """Check (or, for ``blocks=None``, infer) the block shape of a bare chunk from its header."""
    if hdr.special != bf.SPECIAL_NONE or hdr.nbytes == 0 or hdr.blocksize % dtype.itemsize:
        return blocks or shape  # nothing to reorder, or the byte-count check will refuse it
    items = hdr.blocksize // dtype.itemsize
    if blocks is not None:
        if hdr.blocksize != math.prod(blocks) * dtype.itemsize:
            if hdr.nblocks > 1:
                raise CodecError(
                    f"{what}: chunk blocks hold {items} items of {dtype}, but blocks "
                    f"{list(blocks)} hold {math.prod(blocks)}: pass the array's real block shape"
                )
            if hdr.nbytes == math.prod(shape) * dtype.itemsize:
                # one block holding the whole chunk (e.g. plain compress2): C order, whatever
                # *blocks* says; reordering it by *blocks* would scramble the values
                return shape
        return blocks
    # blocks unknown: accept only layouts where block order is C order (blocks span the
    # trailing dimensions), which is also the case of one block covering the chunk
    if len(shape) == 1 and hdr.nbytes == shape[0] * dtype.itemsize:
        return shape  # 1-D, unpadded (a plain SChunk chunk, whose last block may be short)
    rest = math.prod(shape[1:])
    if hdr.nblocks <= 1 or (rest and items % rest == 0 and items // rest <= shape[0]):
        b0 = shape[0] if hdr.nblocks <= 1 else items // rest
        return (b0, *shape[1:])
    raise CodecError(
        f"{what}: chunk blocks hold {items} items of {dtype}, which is not a C-ordered slab of "
        f"the chunk shape {list(shape)}: set blocks (the array's b2nd block shape)"
    )


@functools.lru_cache(maxsize=256)
def _frame_dtype(dtype_str: str, typesize: int) -> np.dtype:
    """The dtype a frame's b2nd metalayer names, or ``V<typesize>`` when it names none usable."""
    try:
        dt = np.dtype(dtype_str)
    except Exception:  # numpy raises TypeError/ValueError/SyntaxError on garbage
        return np.dtype(f"V{typesize}")
    if dt.itemsize != typesize or dt.hasobject:
        return np.dtype(f"V{typesize}")
    return dt


def decode_b2nd(
    buf: Any,
    *,
    dtype: Any = None,
    chunkshape: Any = None,
    blocks: Any = None,
    nthreads: int = 1,
    what: str = CODEC_ID,
) -> np.ndarray:
    """Decode a b2nd/plain Blosc2 frame or a bare Blosc2 chunk into a C-ordered numpy array.

    Parameters
    ----------
    buf : buffer-like
        A one-chunk Blosc2 cframe (b2nd or plain) or a bare Blosc2 chunk.
    dtype : numpy dtype, optional
        The real element type; required for bare chunks. If omitted for a frame, the frame's
        dtype string is used (``'|V<n>'`` for hdf5plugin frames: ``.view()`` the result).
    chunkshape : tuple of int, optional
        Shape of a bare chunk (ignored for frames, which record their shape). Without it a bare
        chunk is returned flat.
    blocks : tuple of int, optional
        Block shape of a bare chunk; ``None`` = one block covering the chunk (C order).
    nthreads : int
        Blosc2 threads for this call.
    what : str
        Name for error messages.

    Returns
    -------
    numpy.ndarray
        Shaped like the frame's b2nd shape (or *chunkshape*), flat for plain frames.

    Raises
    ------
    CodecError
        Empty, truncated, corrupt input, or sizes that disagree with *dtype*/*chunkshape*.
    """
    mv = as_bytes_view(buf)  # keeps *buf* alive for the whole call
    if len(mv) == 0:
        raise CodecError(f"{what}: empty buffer, expected a Blosc2 frame or chunk")
    dt = np.dtype(dtype) if dtype is not None else None
    if bf.is_frame(mv):
        info = bf.parse_frame(mv, what=what)
        meta = info.b2nd
        if dt is None:
            if meta is not None:
                dt = _frame_dtype(meta.dtype_str, info.typesize)
            else:
                dt = np.dtype(f"V{info.typesize}")
        # items over Blosc2's 255-byte typesize are recorded with typesize 1; parse_frame
        # corrects that from the b2nd shapes, a plain frame (hdf5plugin, 1-D) has none
        big_items = meta is None and info.typesize == 1 and dt.itemsize > _MAX_TYPESIZE
        if dt.itemsize != info.typesize and not big_items:
            raise CodecError(
                f"{what}: frame typesize {info.typesize} does not match itemsize "
                f"{dt.itemsize} of {dt}"
            )
        return _decode_frame(mv, info, dt, nthreads, what)
    # (c) bare chunk
    if dt is None:
        raise CodecError(f"{what}: decoding a bare Blosc2 chunk needs the dtype")
    shape = parse_optional_shape(what, "chunkshape", chunkshape)
    if chunkshape is not None and shape is None:  # pragma: no cover - parse returns a tuple
        shape = ()
    if shape is None:
        return decompress_chunk(mv, dtype=dt, nbytes=None, nthreads=nthreads, what=what)
    blk = parse_optional_shape(what, "blocks", blocks, ndim=len(shape))
    hdr = bf.chunk_header(mv, what=what)
    blk = _bare_blocks(hdr, shape, blk, dt, what)
    if any(b > c for b, c in zip(blk, shape, strict=True)):
        raise CodecError(f"{what}: blocks {list(blk)} exceed the chunk shape {list(shape)}")
    padded = math.prod(-(-c // b) * b for c, b in zip(shape, blk, strict=True))
    nbytes = padded * dt.itemsize
    if hdr.special == bf.SPECIAL_NONE and needs_array_context(hdr):
        bf.validate_chunk(mv, what=what, nbytes=nbytes)
        return _decode_in_ndarray(mv[: hdr.cbytes], hdr, shape, blk, dt, what)
    if block_order_is_c_order(shape, blk) or hdr.special != bf.SPECIAL_NONE:
        flat = decompress_chunk(mv, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what)
        return c_contiguous(reorder(flat, shape, blk, dt))
    with SCRATCH.borrow(hdr.nbytes) as buf:
        flat = decompress_chunk(mv, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what, into=buf)
        return c_contiguous(_reorder_copy(flat, shape, blk, dt))


def _decode_frame(
    mv: memoryview, info: bf.FrameInfo, dt: np.dtype, nthreads: int, what: str
) -> np.ndarray:
    """The array a parsed frame holds (see :func:`decode_b2nd`)."""
    meta = info.b2nd
    if info.nchunks != 1:
        return _decode_frame_chunks(mv, info, dt, nthreads, what)
    chunk, special = bf.frame_chunk(mv, info, 0, what=what)
    # b2nd chunks are padded to whole blocks; a plain frame's only chunk may be short
    nbytes = info.chunksize if meta is not None else info.nbytes
    if chunk is None:
        flat = _special_array(special, nbytes // dt.itemsize, dt, b"", what)
    elif meta is not None and needs_array_context(bf.chunk_header(chunk, what=what)):
        if any(s > c for s, c in zip(meta.shape, meta.chunks, strict=True)):
            raise CodecError(
                f"{what}: corrupt b2nd frame: one chunk {list(meta.chunks)} for shape "
                f"{list(meta.shape)}"
            )
        return _trim_to_shape(_ndarray_chunk(chunk, meta, nbytes, dt, what), meta, what)
    elif meta is not None and not block_order_is_c_order(meta.chunks, meta.blocks):
        with SCRATCH.borrow(nbytes) as buf:
            flat = decompress_chunk(
                chunk, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what, into=buf
            )
            arr = _reorder_copy(flat, meta.chunks, meta.blocks, dt)
        return _trim_to_shape(arr, meta, what)
    else:
        flat = decompress_chunk(chunk, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what)
    if meta is None:
        return flat[: info.nbytes // dt.itemsize]
    return _trim_to_shape(reorder(flat, meta.chunks, meta.blocks, dt), meta, what)


def _ndarray_chunk(
    chunk: memoryview, meta: bf.B2ndMeta, nbytes: int, dt: np.dtype, what: str
) -> np.ndarray:
    """A frame's chunk whose codec or filters need the array's shapes: validated against
    *nbytes*, then decoded in an NDArray (:func:`_decode_in_ndarray`), shaped like a chunk."""
    hdr = bf.validate_chunk(chunk, what=what, nbytes=nbytes)
    return _decode_in_ndarray(chunk, hdr, meta.chunks, meta.blocks, dt, what)


def _decode_in_ndarray(
    chunk: memoryview,
    hdr: bf.ChunkHeader,
    chunks: tuple[int, ...],
    blocks: tuple[int, ...],
    dt: np.dtype,
    what: str,
) -> np.ndarray:
    """Decode one validated chunk of shape *chunks* whose codec or filters need the array's
    metadata (ZFP, NDCELL, NDMEAN) inside a one-chunk python-blosc2 NDArray built from the
    shapes and *dt* (never from a frame's own header and trailer: C-Blosc2 sees only the
    validated chunk). The NDArray holds the GIL. Returns a C-ordered *chunks* array."""
    if hdr.typesize != dt.itemsize and not (hdr.typesize == 1 and dt.itemsize > _MAX_TYPESIZE):
        # these codecs decode by item size (ZFP: 4 = float32, 8 = float64): another dtype
        # would give other values, not the same bytes
        raise CodecError(
            f"{what}: the chunk's items are {hdr.typesize} bytes, not the {dt.itemsize} of "
            f"{dt}: its codec/filters decode by item size, so pass the array's real dtype"
        )
    native = dt if dt.kind in "biufcmM" and not dt.fields else np.dtype(f"V{dt.itemsize}")
    try:
        nd = blosc2.uninit(chunks, dtype=native, chunks=chunks, blocks=blocks)
        nd.schunk.update_chunk(0, bytes(chunk))
        if not threads_safe(hdr.filters):  # python-blosc2 decodes on every core by default
            nd.schunk.dparams = blosc2.DParams(nthreads=1)
        arr = np.asarray(nd[...])
    except Exception as exc:  # C-Blosc2 reports corrupt streams as RuntimeError/ValueError
        raise CodecError(f"{what}: corrupt Blosc2 chunk ({exc})") from exc
    if arr.shape != tuple(chunks) or arr.dtype.itemsize != dt.itemsize:
        raise CodecError(  # pragma: no cover - python-blosc2 returns the NDArray's shape
            f"{what}: decoded {arr.shape} {arr.dtype}, expected {tuple(chunks)} {dt}"
        )
    return c_contiguous(arr.view(dt))


#: Largest frame of several chunks decoded as one Zarr/HDF5 chunk (HDF5 chunks stay below 4 GiB),
#: and most chunks in it (python-blosc2 reads larger ones).
_MAX_FRAME_BYTES = 2**32
_MAX_FRAME_CHUNKS = 2**20


def _decode_frame_chunks(
    mv: memoryview, info: bf.FrameInfo, dt: np.dtype, nthreads: int, what: str
) -> np.ndarray:
    """A frame of several chunks (a whole python-blosc2 array, or a chunk an HDF5 writer stored
    as a b2nd frame of several chunks, which hdf5plugin reads): every inner chunk decoded into
    place. b2nd frames give an array of the frame's shape, plain frames a flat array of items.

    The frame's sizes are checked against each other, and every chunk's header against them,
    before the output is allocated; the offsets index is read once.
    """
    meta, n, size = info.b2nd, info.nchunks, info.chunksize
    if n == 0 and info.nbytes == 0 and (meta is None or math.prod(meta.shape) == 0):
        return np.empty(meta.shape if meta is not None else (0,), dtype=dt)
    if size <= 0 or size % dt.itemsize or n * size > _MAX_FRAME_BYTES or n > _MAX_FRAME_CHUNKS:
        raise CodecError(
            f"{what}: a Blosc2 frame of {n} chunks of {size} bytes is corrupt, or larger than "
            f"one Zarr/HDF5 chunk can be ({_MAX_FRAME_BYTES} bytes, {_MAX_FRAME_CHUNKS} chunks): "
            "read it with python-blosc2"
        )
    if meta is None:  # plain SChunk: chunks of chunksize bytes, the last one may be short
        if info.nbytes % dt.itemsize or n != -(-info.nbytes // size):
            raise CodecError(
                f"{what}: corrupt Blosc2 frame: {n} chunks of {size} bytes for {info.nbytes} "
                f"bytes of {dt}"
            )
        shape: tuple[int, ...] = (info.nbytes // dt.itemsize,)
        grid: tuple[int, ...] = (n,)
        last = info.nbytes - size * (n - 1)
    else:
        grid = tuple(-(-s // c) for s, c in zip(meta.shape, meta.chunks, strict=True))
        padded = math.prod(-(-c // b) * b for c, b in zip(meta.chunks, meta.blocks, strict=True))
        if math.prod(grid) != n or padded * dt.itemsize != size:
            raise CodecError(
                f"{what}: corrupt b2nd frame: {n} chunks of {size} bytes for shape "
                f"{list(meta.shape)} in chunks {list(meta.chunks)}"
            )
        shape, last = meta.shape, size
    chunks = list(bf.frame_chunks(mv, info, what=what))  # offsets and chunk headers checked
    for i, (chunk, _) in enumerate(chunks):
        nbytes = last if i == n - 1 else size
        if chunk is not None and bf.chunk_header(chunk, what=what).nbytes != nbytes:
            raise CodecError(f"{what}: corrupt Blosc2 frame: chunk {i} is not {nbytes} bytes")
    out = np.empty(shape, dtype=dt)
    flat_out = out.reshape(-1)
    step = size // dt.itemsize
    for i, (chunk, special) in enumerate(chunks):
        nbytes = last if i == n - 1 else size
        part = None
        if chunk is None:
            flat = _special_array(special, nbytes // dt.itemsize, dt, b"", what)
        elif meta is not None and needs_array_context(bf.chunk_header(chunk, what=what)):
            part = _ndarray_chunk(chunk, meta, nbytes, dt, what)
        else:
            flat = decompress_chunk(chunk, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what)
        if meta is None:
            flat_out[i * step : i * step + flat.size] = flat
            continue
        idx = np.unravel_index(i, grid)
        if part is None:
            part = reorder(flat, meta.chunks, meta.blocks, dt)
        sel = tuple(
            slice(int(j) * c, min((int(j) + 1) * c, s))
            for j, c, s in zip(idx, meta.chunks, meta.shape, strict=True)
        )
        out[sel] = part[tuple(slice(0, x.stop - x.start) for x in sel)]
    return out


def encode_b2nd(
    arr: np.ndarray,
    *,
    cname: str = "zstd",
    clevel: int = 5,
    filters: list[dict[str, Any]] | None = None,
    blocks: tuple[int, ...] | None = None,
    nthreads: int = 1,
    splitmode: str = "auto",
) -> bytes:
    """Encode *arr* as a one-chunk b2nd cframe (config as for :class:`B2nd`)."""
    arr = c_contiguous(np.asarray(arr))
    if arr.dtype.hasobject or arr.dtype.kind not in "biufcmMSUV":
        # fixed-size items only: numbers, datetimes, fixed-length bytes/str, structured, void
        raise CodecError(
            f"{CODEC_ID}: cannot encode dtype {arr.dtype}; expected fixed-size items (numbers, "
            "fixed-length bytes or strings, structured records), not Python objects or "
            "variable-length strings"
        )
    if arr.ndim == 0:
        arr = arr.reshape(1)
        blocks = None if blocks is not None and len(blocks) == 0 else blocks
    if arr.size == 0:
        raise CodecError(f"{CODEC_ID}: cannot encode an empty array (shape {arr.shape})")
    if arr.nbytes > _MAX_CHUNK_BYTES:
        raise CodecError(
            f"{CODEC_ID}: a chunk of {arr.nbytes} bytes ({arr.shape} {arr.dtype}) exceeds "
            f"Blosc2's limit of {_MAX_CHUNK_BYTES} bytes per chunk: use smaller chunks"
        )
    if arr.ndim > MAX_B2ND_DIMS:
        raise CodecError(
            f"{CODEC_ID}: b2nd supports at most {MAX_B2ND_DIMS} dimensions, got {arr.ndim}"
        )
    specs = normalize_filters(filters)
    _check_one_truncation(specs)
    in_numpy, specs = encoding_pipeline(specs, arr.dtype)
    for f in in_numpy:  # a new array: the caller's is never modified
        keep = keep_values(arr.dtype, f.get("keep"), codec=CODEC_ID)
        arr = truncate(arr, _truncation_plan(f, arr.dtype), keep)
    filt, meta = _blosc2_filters(specs, arr.dtype)
    blk = tuple(blocks) if blocks is not None else default_blocks(arr.shape, arr.dtype)
    if len(blk) != arr.ndim:
        raise CodecError(
            f"{CODEC_ID}: blocks {list(blk)} has {len(blk)} dimensions, the chunk {arr.shape} "
            f"has {arr.ndim}"
        )
    blk = tuple(min(b, s) for b, s in zip(blk, arr.shape, strict=True))
    cparams = blosc2.CParams(
        codec=blosc2.Codec(CNAMES[cname]),
        clevel=clevel,
        typesize=arr.dtype.itemsize,
        nthreads=nthreads,
        filters=[blosc2.Filter(f) for f in filt] or [blosc2.Filter.NOFILTER],
        filters_meta=meta or [0],
        splitmode=blosc2.SplitMode(SPLITMODES[splitmode]),
    )
    try:
        # compress2 (GIL released) on the block-ordered chunk, then a frame around it: the same
        # bytes blosc2.asarray(...).to_cframe() writes, but encoders on several threads scale
        blocked = to_block_order(arr, blk)
        chunk = blosc2.compress2(
            blocked,
            cparams=dataclasses.replace(cparams, blocksize=math.prod(blk) * arr.dtype.itemsize),
        )
        nd = blosc2.empty(arr.shape, dtype=arr.dtype, chunks=arr.shape, blocks=blk, cparams=cparams)
        nd.schunk.update_chunk(0, chunk)
        return bytes(nd.to_cframe())
    except Exception as exc:
        raise CodecError(
            f"{CODEC_ID}: Blosc2 could not encode {arr.shape} {arr.dtype}: {exc}"
        ) from exc


def _bare_item_dtype(
    hdr: bf.ChunkHeader, chunkshape: list[int], blocks: list[int] | None
) -> np.dtype:
    """``V<itemsize>`` for a bare chunk decoded without a dtype (numcodecs ``decode``).

    The chunk header's typesize is the item size when the chunk's byte count agrees with it
    (padding included); otherwise (items over 255 bytes are recorded as typesize 1) the item
    size is the byte count over the chunk's item count. Guessing from the byte count first
    read a padded chunk of 5-byte items, (10,) in blocks of 3 (60 bytes), as 10 items of 6.
    """

    def fits(size: int) -> bool:
        if size < 1 or hdr.nbytes % size:
            return False
        if blocks is not None:
            padded = math.prod(-(-c // b) * b for c, b in zip(chunkshape, blocks, strict=True))
            return padded * size == hdr.nbytes
        if hdr.nblocks <= 1 or not chunkshape:
            return math.prod(chunkshape) * size == hdr.nbytes
        # several blocks of unknown shape: decode_b2nd infers them from the item size (a
        # C-ordered slab of whole trailing rows) or says to set blocks
        return hdr.blocksize % size == 0

    if fits(hdr.typesize):
        return np.dtype(f"V{hdr.typesize}")
    n = math.prod(-(-c // b) * b for c, b in zip(chunkshape, blocks or chunkshape, strict=True))
    if hdr.nblocks <= 1 and hdr.blocksize >= hdr.nbytes:
        n = math.prod(chunkshape)  # one block holds the chunk: C order, unpadded
    if n == 0 or hdr.nbytes % n:
        raise CodecError(
            f"{CODEC_ID}: bare chunk of {hdr.nbytes} bytes does not fit chunkshape "
            f"{chunkshape} / blocks {blocks}"
        )
    return np.dtype(f"V{hdr.nbytes // n}")


class B2nd(Codec):
    """Blosc2 NDim codec (numcodecs id ``b2store_b2nd``); see the module docstring.

    As numcodecs compressors do, ``encode`` keeps the buffer's bytes as they lie: a
    Fortran-ordered array is stored as its C-ordered transpose (``decode`` returns that
    transpose: the same bytes, which zarr v2 ``order="F"`` reads back in F order).

    Parameters
    ----------
    cname : str
        ``zstd`` (default), ``lz4``, ``lz4hc``, ``blosclz`` or ``zlib``.
    clevel : int
        0..9 (default 5).
    filters : list of dict, optional
        Filter specs (default ``[{"id": "shuffle"}]``).
    blocks : list of int, optional
        Block shape; ``None`` = blosc2's guess for encoding and "one block" for bare chunks.
    nthreads : int
        Blosc2-internal threads per encode/decode call (default 1; dask already runs chunks
        in parallel).
    splitmode : str
        Blosc2's split mode for encoding: ``auto`` (default: C-Blosc2 splits blocks into one
        stream per byte for shuffle with fast codecs, not for bitshuffle), ``always``, ``never``
        or ``forward_compat``. ``always`` with ``bitshuffle`` + ``zstd`` decodes tomography
        stacks about a fifth faster (``benchmarks/codecs.py``); decoding reads the mode from
        each chunk, so it never needs this key. Left out of ``get_config`` when ``auto``, so
        default configs stay readable by older b2store versions.
    chunkshape : list of int, optional
        Shape of bare chunks (Caterva2 ``/api/chunk``); unused for frames.

    See Also
    --------
    b2store.codecs.itrunc.ITrunc : the standalone truncation filter.
    """

    codec_id = CODEC_ID
    #: default for instances pickled before the key existed (their ``__dict__`` lacks it)
    splitmode = "auto"

    def __init__(
        self,
        *,
        cname: str = "zstd",
        clevel: int = 5,
        filters: list[Any] | None = None,
        blocks: list[int] | tuple[int, ...] | None = None,
        nthreads: int = 1,
        chunkshape: list[int] | tuple[int, ...] | None = None,
        splitmode: str = "auto",
    ) -> None:
        self.cname = parse_cname(CODEC_ID, cname)
        self.clevel = parse_int_range(CODEC_ID, "clevel", clevel, 0, 9)
        self.filters = normalize_filters(filters)
        b = parse_optional_shape(CODEC_ID, "blocks", blocks)
        self.blocks = list(b) if b is not None else None
        self.nthreads = parse_int_range(CODEC_ID, "nthreads", nthreads, 1, 256)
        cs = parse_optional_shape(CODEC_ID, "chunkshape", chunkshape)
        self.chunkshape = list(cs) if cs is not None else None
        if self.blocks is not None and self.chunkshape is not None:
            parse_optional_shape(CODEC_ID, "blocks", self.blocks, ndim=len(self.chunkshape))
        self.splitmode = parse_splitmode(CODEC_ID, splitmode)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> B2nd:
        """Build from a numcodecs config; unknown keys raise a ``TypeError`` naming them."""
        codec: B2nd = codec_from_config(cls, CODEC_ID, config)
        return codec

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if config.get("splitmode") == "auto":
            del config["splitmode"]  # the default: configs stay as older versions wrote them
        return config

    def encode(self, buf: Any) -> bytes:
        arr = buf if isinstance(buf, np.ndarray) else np.frombuffer(as_bytes_view(buf), np.uint8)
        blocks = tuple(self.blocks) if self.blocks is not None else None
        if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
            # a numcodecs compressor keeps the buffer's bytes as they lie (zarr v2 order="F"
            # reads them back in F order): store the C-ordered transpose, blocks reversed
            arr = arr.T
            blocks = blocks[::-1] if blocks is not None else None
        if blocks is not None and len(blocks) not in (arr.ndim, max(arr.ndim, 1)):
            raise CodecError(
                f"{CODEC_ID}: blocks {self.blocks} do not match the {arr.ndim}-D chunk {arr.shape}"
            )
        return encode_b2nd(
            arr,
            cname=self.cname,
            clevel=self.clevel,
            filters=self.filters,
            blocks=blocks,
            nthreads=self.nthreads,
            splitmode=self.splitmode,
        )

    def decode(self, buf: Any, out: Any = None) -> Any:
        dtype = None
        if not bf.is_frame(as_bytes_view(buf)):
            dtype = np.dtype("u1")
            if self.chunkshape is not None:
                dtype = _bare_item_dtype(
                    bf.chunk_header(buf, what=CODEC_ID), self.chunkshape, self.blocks
                )
        arr = decode_b2nd(
            buf,
            dtype=dtype,
            chunkshape=self.chunkshape,
            blocks=self.blocks,
            nthreads=self.nthreads,
        )
        if out is not None:
            # numcodecs semantics: the decoded bytes, in out's memory order and dtype
            from numcodecs.compat import ensure_ndarray_like

            dst = ensure_ndarray_like(out)
            if dst.nbytes != arr.nbytes or not (dst.flags.c_contiguous or dst.flags.f_contiguous):
                raise CodecError(
                    f"{CODEC_ID}: expected out to be a contiguous buffer of {arr.nbytes} bytes, "
                    f"got {dst.nbytes} bytes (shape {dst.shape}) instead"
                )
            flat = c_contiguous(arr).reshape(-1).view(np.uint8)
            np.copyto(dst.reshape(-1, order="A").view(np.uint8), flat)
            return out
        return arr
