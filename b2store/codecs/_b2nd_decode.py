"""Decoding of ``b2store_b2nd`` data in every form users meet, into C-ordered numpy arrays.

Contract
--------
:func:`decode_b2nd` takes

(a) b2nd cframes, including hdf5plugin's / b2h5py's whose header dtype is ``'|V<n>'`` (the real
    dtype comes from the caller or the array metadata, never from such a frame);
(b) plain (non-b2nd) Blosc2 cframes (hdf5plugin writes them for 1-D data);
(c) a bare Blosc2 chunk in b2nd block order, as Caterva2's ``/api/chunk`` serves it: the chunk
    shape and block shape are needed (``blocks=None``: one block covering the chunk, C order,
    or a C-ordered slab inferred from the header), and the byte count is checked;
(d) special chunks (all-zero, NaN, constant, uninitialised) and frames whose chunk is a
    frame-level special offset (``blosc2.zeros``).

Frames of several chunks (a whole python-blosc2 array, an HDF5 chunk stored as such a frame) are
decoded chunk by chunk into place, up to 4 GiB and 2**20 chunks. Every header is checked before a
C decoder sees the bytes; chunks using ZFP, NDCELL or NDMEAN are decoded inside a one-chunk
python-blosc2 NDArray built from the checked shapes and dtype (never from the frame's own
header). Bad bytes raise :class:`~b2store.errors.CodecError` naming *what*.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import blosc2
import numpy as np

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._b2nd_blocks import (
    _reorder_copy,
    block_order_is_c_order,
    c_contiguous,
    reorder,
)
from b2store.codecs._b2nd_chunk import (
    _special_array,
    decompress_chunk,
    decompress_parsed,
    needs_array_context,
    threads_safe,
)
from b2store.codecs._common import B2ND_ID, as_bytes_view, parse_optional_shape
from b2store.codecs._scratch import SCRATCH
from b2store.errors import CodecError

__all__ = ["decode_b2nd", "decode_frame_view"]

#: Largest typesize Blosc2 records; writers record larger items with typesize 1.
_MAX_TYPESIZE = 255


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
def _padded_items(shape: tuple[int, ...], blocks: tuple[int, ...]) -> int | None:
    """Items in a bare chunk of *shape* padded to whole *blocks*, or None when the blocks
    exceed the shape (cached: chunks share it)."""
    if any(b > c for b, c in zip(blocks, shape, strict=True)):
        return None
    return math.prod(-(-c // b) * b for c, b in zip(shape, blocks, strict=True))


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
    what: str = B2ND_ID,
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
        return decode_frame_view(mv, dt, nthreads, what)
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
    padded = _padded_items(shape, blk)
    if padded is None:
        raise CodecError(f"{what}: blocks {list(blk)} exceed the chunk shape {list(shape)}")
    nbytes = padded * dt.itemsize
    if hdr.special == bf.SPECIAL_NONE and needs_array_context(hdr):
        bf.check_parsed_chunk(mv, hdr, what=what, nbytes=nbytes)
        return _decode_in_ndarray(mv[: hdr.cbytes], hdr, shape, blk, dt, what)
    if block_order_is_c_order(shape, blk) or hdr.special != bf.SPECIAL_NONE:
        flat = decompress_parsed(mv, hdr, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what)
        return c_contiguous(reorder(flat, shape, blk, dt))
    with SCRATCH.borrow(hdr.nbytes) as buf:
        flat = decompress_parsed(
            mv, hdr, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what, into=buf
        )
        return c_contiguous(_reorder_copy(flat, shape, blk, dt))


def decode_frame_view(
    mv: memoryview, dt: np.dtype | None, nthreads: int, what: str = B2ND_ID
) -> np.ndarray:
    """:func:`decode_b2nd` of a Blosc2 frame given as a flat view (``as_bytes_view``), *dt* a
    numpy dtype or ``None`` (the frame's own)."""
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
            f"{what}: frame typesize {info.typesize} does not match itemsize {dt.itemsize} of {dt}"
        )
    return _decode_frame(mv, info, dt, nthreads, what)


def _decode_frame(
    mv: memoryview, info: bf.FrameInfo, dt: np.dtype, nthreads: int, what: str
) -> np.ndarray:
    """The array a parsed frame holds (see :func:`decode_b2nd`)."""
    meta = info.b2nd
    if info.nchunks != 1:
        return _decode_frame_chunks(mv, info, dt, nthreads, what)
    chunk, special, hdr = bf.locate_chunk(mv, info, 0, what=what)
    # b2nd chunks are padded to whole blocks; a plain frame's only chunk may be short
    nbytes = info.chunksize if meta is not None else info.nbytes
    if chunk is None or hdr is None:
        flat = _special_array(special, nbytes // dt.itemsize, dt, b"", what)
    elif meta is None:
        flat = decompress_parsed(chunk, hdr, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what)
        return flat[: info.nbytes // dt.itemsize]
    elif needs_array_context(hdr):
        if any(s > c for s, c in zip(meta.shape, meta.chunks, strict=True)):
            raise CodecError(
                f"{what}: corrupt b2nd frame: one chunk {list(meta.chunks)} for shape "
                f"{list(meta.shape)}"
            )
        return _trim_to_shape(_ndarray_chunk(chunk, hdr, meta, nbytes, dt, what), meta, what)
    elif not block_order_is_c_order(meta.chunks, meta.blocks):
        with SCRATCH.borrow(nbytes) as buf:
            flat = decompress_parsed(
                chunk, hdr, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what, into=buf
            )
            arr = _reorder_copy(flat, meta.chunks, meta.blocks, dt)
        return _trim_to_shape(arr, meta, what)
    else:  # block order is C order: reorder() below only reshapes the padded chunk
        flat = decompress_parsed(chunk, hdr, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what)
    if meta is None:
        return flat[: info.nbytes // dt.itemsize]
    return _trim_to_shape(reorder(flat, meta.chunks, meta.blocks, dt), meta, what)


def _ndarray_chunk(
    chunk: memoryview,
    hdr: bf.ChunkHeader,
    meta: bf.B2ndMeta,
    nbytes: int,
    dt: np.dtype,
    what: str,
) -> np.ndarray:
    """A frame's chunk (its header parsed: *hdr*) whose codec or filters need the array's shapes:
    validated against *nbytes*, then decoded in an NDArray (:func:`_decode_in_ndarray`), shaped
    like a chunk."""
    bf.check_parsed_chunk(chunk, hdr, what=what, nbytes=nbytes)
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
    chunks = list(bf.locate_chunks(mv, info, what=what))  # offsets and chunk headers checked
    for i, (_, _, hdr) in enumerate(chunks):
        nbytes = last if i == n - 1 else size
        if hdr is not None and hdr.nbytes != nbytes:
            raise CodecError(f"{what}: corrupt Blosc2 frame: chunk {i} is not {nbytes} bytes")
    out = np.empty(shape, dtype=dt)
    flat_out = out.reshape(-1)
    step = size // dt.itemsize
    for i, (chunk, special, hdr) in enumerate(chunks):
        nbytes = last if i == n - 1 else size
        part = None
        if chunk is None or hdr is None:
            flat = _special_array(special, nbytes // dt.itemsize, dt, b"", what)
        elif meta is not None and needs_array_context(hdr):
            part = _ndarray_chunk(chunk, hdr, meta, nbytes, dt, what)
        else:
            flat = decompress_parsed(
                chunk, hdr, dtype=dt, nbytes=nbytes, nthreads=nthreads, what=what
            )
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
        # C-ordered slab of whole trailing rows) or says to set blocks. Padding only adds
        # items, so the chunk's own items must fit (a .b2frame of 8-byte typesize served as
        # bytes: chunkshape counts bytes, and typesize 8 would promise 8x the data)
        return hdr.blocksize % size == 0 and math.prod(chunkshape) * size <= hdr.nbytes

    if fits(hdr.typesize):
        return np.dtype(f"V{hdr.typesize}")
    n = math.prod(-(-c // b) * b for c, b in zip(chunkshape, blocks or chunkshape, strict=True))
    if hdr.nblocks <= 1 and hdr.blocksize >= hdr.nbytes:
        n = math.prod(chunkshape)  # one block holds the chunk: C order, unpadded
    if n == 0 or hdr.nbytes % n or hdr.nbytes == 0:
        raise CodecError(
            f"{B2ND_ID}: bare chunk of {hdr.nbytes} bytes does not fit chunkshape "
            f"{chunkshape} / blocks {blocks}"
        )
    return np.dtype(f"V{hdr.nbytes // n}")
