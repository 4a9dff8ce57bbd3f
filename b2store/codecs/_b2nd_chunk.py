"""One raw Blosc2 chunk of ``b2store_b2nd``: which chunks C-Blosc2 can decode, and decoding one.

Contract
--------
:func:`decompress_chunk` validates a chunk's header (:mod:`b2store.codecs._blosc2frame`), then
synthesises special chunks (zeros, NaN, constant) in numpy, copies memcpy'd ones, and hands
everything else to ``blosc2.decompress2`` (GIL released: importing this module calls the
process-global ``blosc2.set_releasegil(True)``), on one thread for pipelines C-Blosc2 gets wrong
on several (:func:`threads_safe`). Chunks whose codec or filters need a plugin are decoded once the
plugin package is imported, or refused naming it; chunks that need the array's b2nd metadata
(ZFP, NDCELL, NDMEAN: :func:`needs_array_context`) raise :class:`NeedsArrayContext` here (the
frame decoder, :mod:`b2store.codecs._b2nd_decode`, decodes them inside an NDArray). Bad bytes
raise :class:`~b2store.errors.CodecError` naming *what*. The result is flat, in block order.
:func:`decompress_parsed` is the same for a chunk whose header the caller already parsed (the
frame decoder parses each header once per chunk).
"""

from __future__ import annotations

from typing import Any

import blosc2
import numpy as np

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._common import B2ND_ID, as_bytes_view
from b2store.errors import CodecError

__all__ = [
    "NeedsArrayContext",
    "decompress_chunk",
    "decompress_parsed",
    "needs_array_context",
    "threads_safe",
]

blosc2.set_releasegil(True)  # process-global: decompress2 releases the GIL

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


class NeedsArrayContext(CodecError):
    """A chunk whose codec (ZFP) or filters (NDCELL, NDMEAN) read the array's b2nd metadata
    when decompressing: :func:`decode_b2nd` decodes it inside a python-blosc2 NDArray when it
    knows the chunk and block shapes, and raises this otherwise."""


def needs_array_context(hdr: bf.ChunkHeader) -> bool:
    """Whether C-Blosc2 needs the array's b2nd metadata to decompress this chunk."""
    ndim_codec = (hdr.plugin_codec or hdr.udcodec >= 32) and (hdr.udcodec in _NDIM_CODECS)
    return ndim_codec or not _NDIM_FILTERS.keys().isdisjoint(hdr.filters)


def threads_safe(filters: tuple[int, ...]) -> bool:
    """Whether C-Blosc2 decompresses a chunk with this filter pipeline right on several threads.

    C-Blosc2 3.3 (python-blosc2 4.x) undoes DELTA against the first block of the *output*, and
    on 2 or more threads it reads that block while another thread is still writing it whenever
    a filter runs before DELTA (``["shuffle", "delta"]``, ``["bitshuffle", "delta"]``,
    ``["bytedelta", "delta"]``, ``["delta", "delta"]``): compressible chunks then decode to
    wrong values now and then, silently. Chunks holding DELTA anywhere are decoded on one
    thread (the filter order that is safe is C-Blosc2's business, not a contract).
    python-blosc2's own reader uses every core by default and gets them wrong.
    """
    return bf.FILTER_DELTA not in filters


def _check_codecs(hdr: bf.ChunkHeader, what: str) -> None:
    """Refuse chunks whose codec/filters C-Blosc2 could only handle by loading a plugin, or
    only inside an NDArray (:class:`NeedsArrayContext`)."""
    if hdr.udcodec < 32 and not hdr.plugin_codec and _KNOWN_FILTERS.issuperset(hdr.filters):
        return  # the usual chunk: a built-in codec and filters (none of them n-dimensional)
    if needs_array_context(hdr):
        used = [_NDIM_CODECS[hdr.udcodec]] if hdr.udcodec in _NDIM_CODECS else []
        used += [_NDIM_FILTERS[f] for f in hdr.filters if f in _NDIM_FILTERS]
        raise NeedsArrayContext(
            f"{what}: the chunk uses Blosc2's n-dimensional {' and '.join(used)}, which needs "
            "the array's chunk and block shapes at decode time: decode it as a b2nd frame, or "
            "pass chunkshape and blocks for a bare chunk (or read it with python-blosc2)"
        )
    if hdr.plugin_codec or hdr.udcodec >= 32:
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
        elif cid not in _BUILTIN_CODECS and hdr.plugin_codec:
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


def decompress_chunk(
    chunk: Any,
    *,
    dtype: np.dtype,
    nbytes: int | None,
    nthreads: int = 1,
    what: str = B2ND_ID,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """Validate and decompress one raw Blosc2 chunk into a flat array of *dtype* (GIL released).

    Special chunks are synthesised in numpy without calling C. *into*, a ``uint8`` buffer of the
    chunk's byte count, receives the decompressed bytes instead of fresh memory (the result is
    then a view of it).
    """
    mv = as_bytes_view(chunk)
    hdr = bf.chunk_header(mv, what=what)
    return decompress_parsed(
        mv, hdr, dtype=dtype, nbytes=nbytes, nthreads=nthreads, what=what, into=into
    )


def decompress_parsed(
    mv: memoryview,
    hdr: bf.ChunkHeader,
    *,
    dtype: np.dtype,
    nbytes: int | None,
    nthreads: int = 1,
    what: str = B2ND_ID,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`decompress_chunk` of a chunk whose header *hdr* was already parsed from the flat
    view *mv* (:func:`~b2store.codecs._blosc2frame.chunk_header` or ``locate_chunk``): the rest
    of the validation runs here, the header is not parsed again."""
    bf.check_parsed_chunk(mv, hdr, what=what, nbytes=nbytes)
    if dtype.itemsize == 0:
        raise CodecError(f"{what}: cannot decode into {dtype}, a dtype of zero-byte items")
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
