"""Encoding for ``b2store_b2nd``: one n-D array -> one one-chunk b2nd cframe.

Contract
--------
:func:`encode_b2nd` checks the array (fixed-size items, not empty, at most 8 dimensions, at most
Blosc2's 2 GiB per chunk), plans the filter pipeline once (:func:`encoding_pipeline`: which
truncations run in numpy before Blosc2, which filters C-Blosc2 runs, refusing pipelines it gets
wrong), then compresses the block-ordered chunk with ``blosc2.compress2`` (GIL released: importing
this module calls the process-global ``blosc2.set_releasegil(True)``) and wraps it in a frame:
the same bytes ``blosc2.asarray(...).to_cframe()`` writes. The caller's array is never modified.
Errors are :class:`~b2store.errors.CodecError` naming ``b2store_b2nd``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import blosc2
import numpy as np

from b2store.codecs._b2nd_blocks import c_contiguous, to_block_order
from b2store.codecs._b2nd_filters import (
    _SIMPLE_FILTERS,
    _TRUNC_IDS,
    _check_one_truncation,
    _truncation_plan,
    normalize_filters,
)
from b2store.codecs._common import (
    B2ND_ID,
    CNAMES,
    MAX_B2ND_DIMS,
    MAX_BLOSC2_FILTERS,
    MAX_CHUNK_BYTES,
    SPLITMODES,
)
from b2store.codecs.itrunc import TruncationPlan, keep_values, truncate
from b2store.errors import CodecError

__all__ = ["default_blocks", "encode_b2nd", "encoding_pipeline"]

blosc2.set_releasegil(True)  # process-global: compress2 releases the GIL

#: Largest item size C-Blosc2 records (BLOSC_MAX_TYPESIZE); larger items are compressed as bytes.
_MAX_TYPESIZE = 255
#: Largest chunk C-Blosc2 compresses (BLOSC2_MAX_BUFFERSIZE: INT32_MAX - BLOSC2_MAX_OVERHEAD).
_MAX_CHUNK_BYTES = MAX_CHUNK_BYTES


@dataclasses.dataclass(frozen=True)
class _Pipeline:
    """How chunks of one dtype are encoded, every truncation planned once.

    ``in_numpy`` are the truncation specs run in numpy before Blosc2 (``truncations``: their
    plans and ``keep`` values, in order), ``specs`` the specs Blosc2 runs, as ``filters`` and
    ``filters_meta``.
    """

    in_numpy: list[dict[str, Any]]
    truncations: list[tuple[TruncationPlan, np.ndarray]]
    specs: list[dict[str, Any]]
    filters: list[int]
    filters_meta: list[int]


def _filter_meta(fid: str, dtype: np.dtype) -> int:
    """The ``filters_meta`` slot of a simple filter: 0, except for bytedelta, whose meta is the
    item size C-Blosc2 works with (items over 255 bytes are compressed with typesize 1).
    python-blosc2 fills a 0 meta with the typesize itself but stores it through an ``int8_t``,
    which overflows from 128 bytes on (``OverflowError``: S128 could not be encoded); a negative
    value passes through that cast unchanged as the same byte, so sizes 128..255 are given as
    ``size - 256``."""
    if fid != "bytedelta":
        return 0
    size = dtype.itemsize if dtype.itemsize <= _MAX_TYPESIZE else 1
    return size - 256 if size > 127 else size


def _plan_pipeline(specs: list[dict[str, Any]], dtype: np.dtype) -> _Pipeline:
    """The pipeline :func:`encoding_pipeline` describes, with the Blosc2 filters it needs."""
    trunc = [f for f in specs if f["id"] in _TRUNC_IDS]
    rest = [f for f in specs if f["id"] not in _TRUNC_IDS]
    # raises for a dtype a truncation cannot apply to, as check_truncation_dtype does
    planned = [
        (_truncation_plan(f, dtype), keep_values(dtype, f.get("keep"), codec=B2ND_ID))
        for f in trunc
    ]
    trunc_filters = [
        f for plan, _ in planned if (f := plan.blosc2_filter(dtype.itemsize)) is not None
    ]
    rest_filters = [(_SIMPLE_FILTERS[f["id"]], _filter_meta(f["id"], dtype)) for f in rest]
    if trunc and (
        dtype.byteorder == ">"
        or (dtype.kind == "f" and dtype.itemsize not in (4, 8))  # TRUNC_PREC: f4/f8 only
        or any(f.get("keep") for f in trunc)  # markers kept exactly: Blosc2 cannot
        or len(trunc_filters) + len(rest_filters) > MAX_BLOSC2_FILTERS
    ):
        in_numpy, truncations, blosc2_specs, pipeline = trunc, planned, rest, rest_filters
    else:
        in_numpy, truncations, blosc2_specs, pipeline = [], [], specs, trunc_filters + rest_filters
    if sum(f["id"] == "delta" for f in blosc2_specs) > 1:
        raise CodecError(
            f"{B2ND_ID}: filters: Expected at most one delta filter (C-Blosc2 "
            f"{blosc2.blosclib_version.split()[0]} decodes two deltas wrongly on several "
            "threads, as python-blosc2 reads by default). "
            f"Got {[f['id'] for f in specs]} instead."
        )
    if len(pipeline) > MAX_BLOSC2_FILTERS:
        raise CodecError(
            f"{B2ND_ID}: filters: Expected at most {MAX_BLOSC2_FILTERS} filters besides a "
            f"truncation filter (C-Blosc2 {blosc2.blosclib_version.split()[0]} writes wrong "
            "data, and overwrites the array being encoded, with 3 or more filters in its "
            "pipeline). "
            f"Got {[f['id'] for f in rest]} instead."
        )
    reorders = [f["id"] for f in blosc2_specs if f["id"] not in _TRUNC_IDS]
    if "delta" in reorders[1:]:
        raise CodecError(
            f"{B2ND_ID}: filters: Expected delta before {reorders[0]} (C-Blosc2 "
            f"{blosc2.blosclib_version.split()[0]} decodes a delta that follows another "
            "filter wrongly on several threads, as python-blosc2 reads by default; b2store "
            "decodes such chunks on one thread, other readers get other values). "
            f"Got {[f['id'] for f in specs]} instead: put delta first, e.g. "
            f"{['delta', *(i for i in reorders if i != 'delta')]}."
        )
    return _Pipeline(
        in_numpy=in_numpy,
        truncations=truncations,
        specs=blosc2_specs,
        filters=[f for f, _ in pipeline],
        filters_meta=[m for _, m in pipeline],
    )


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
    pipeline = _plan_pipeline(specs, dtype)
    return pipeline.in_numpy, pipeline.specs


def default_blocks(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    """Blosc2's own block-shape guess for a chunk of *shape* (``compute_chunks_blocks``)."""
    if not shape or 0 in shape:
        return tuple(max(s, 1) for s in shape)
    _, blocks = blosc2.compute_chunks_blocks(shape, shape, None, dtype)
    return tuple(int(b) for b in blocks)


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
            f"{B2ND_ID}: cannot encode dtype {arr.dtype}; expected fixed-size items (numbers, "
            "fixed-length bytes or strings, structured records), not Python objects or "
            "variable-length strings"
        )
    if arr.ndim == 0:
        arr = arr.reshape(1)
        blocks = None if blocks is not None and len(blocks) == 0 else blocks
    if arr.nbytes > _MAX_CHUNK_BYTES:
        raise CodecError(
            f"{B2ND_ID}: a chunk of {arr.nbytes} bytes ({arr.shape} {arr.dtype}) exceeds "
            f"Blosc2's limit of {_MAX_CHUNK_BYTES} bytes per chunk: use smaller chunks"
        )
    if arr.ndim > MAX_B2ND_DIMS:
        raise CodecError(
            f"{B2ND_ID}: Expected at most {MAX_B2ND_DIMS} dimensions (b2nd's limit). Got "
            f"{arr.ndim} instead."
        )
    specs = normalize_filters(filters)
    _check_one_truncation(specs)
    pipeline = _plan_pipeline(specs, arr.dtype)
    for plan, keep in pipeline.truncations:  # a new array: the caller's is never modified
        arr = truncate(arr, plan, keep)
    filt, meta = pipeline.filters, pipeline.filters_meta
    blk = tuple(blocks) if blocks is not None else default_blocks(arr.shape, arr.dtype)
    if len(blk) != arr.ndim:
        raise CodecError(
            f"{B2ND_ID}: blocks {list(blk)} has {len(blk)} dimensions, the chunk {arr.shape} "
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
    if arr.size == 0:
        # a frame of no chunks, as python-blosc2 writes for empty arrays (its shape and dtype
        # in the metalayers); numcodecs' own compressors encode empty buffers too
        try:
            empty = blosc2.empty(
                arr.shape, dtype=arr.dtype, chunks=arr.shape, blocks=arr.shape, cparams=cparams
            )
            return bytes(empty.to_cframe())
        except Exception as exc:
            raise CodecError(
                f"{B2ND_ID}: Blosc2 could not encode {arr.shape} {arr.dtype}: {exc}"
            ) from exc
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
            f"{B2ND_ID}: Blosc2 could not encode {arr.shape} {arr.dtype}: {exc}"
        ) from exc
