"""One dataset's chunks: where they are, reading them, and encoding them as b2nd frames.

Contract: :func:`encode_chunk` turns one full chunk into a one-chunk Blosc2 cframe holding a b2nd
array of that shape, written by b2store's own codecs (``b2store_b2nd``, or ``b2store_grok`` for
JPEG 2000). :func:`_raw_decoder` decodes raw HDF5 chunks with b2store's filter planner on any
thread (None when it cannot); the other readers go through h5py, on the calling thread. Edge
chunks are padded with the fill value. blosc2, numcodecs and h5py are imported where used.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from b2store.convert._options import CodecChoice, ConvertError


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


def _j2k_unsuitable(codec: Any, dtype: np.dtype[Any], chunks: tuple[int, ...]) -> str | None:
    """Why ``codec`` (a ``b2store_grok`` codec, from :func:`_grok_for`) cannot code chunks of
    this shape and dtype (its own checks: little-endian uint8/uint16 images of at least
    :data:`~b2store.codecs.grok.MIN_IMAGE_SIDE` pixels a side, 2-D or stacked), or ``None`` if
    it can."""
    from b2store.codecs.grok import Grok

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


def _auto_chunks(shape: tuple[int, ...], itemsize: int, target: int = 4 << 20) -> tuple[int, ...]:
    chunks = list(shape)
    while int(np.prod(chunks)) * itemsize > target:
        i = int(np.argmax(chunks))
        chunks[i] = max(1, (chunks[i] + 1) // 2)
    return tuple(chunks)


def _all_fill(chunk: np.ndarray, fill: Any) -> bool:
    """Every element has the fill value's bytes (-0.0 is not a 0.0 fill; a NaN fill matches)."""
    f = np.full((), fill, dtype=chunk.dtype).tobytes()
    raw = np.ascontiguousarray(chunk).view(np.uint8).reshape(-1, len(f))
    return bool((raw == np.frombuffer(f, np.uint8)).all())


def _chunk_grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The origin of every chunk of a ``chunks`` grid over ``shape``, in C order (``[()]`` for
    a scalar)."""
    return list(itertools.product(*[range(0, s, c) for s, c in zip(shape, chunks, strict=True)]))


#: Most bytes of decoded input chunks HDF5 may keep per dataset while it is rechunked.
RECHUNK_CACHE_BYTES = 256 * 2**20

#: most hash slots of that cache: HDF5 allocates a pointer per slot up front and keeps at most
#: one chunk per slot, so this also bounds its per-chunk bookkeeping for tiny chunks (one
#: slot per input chunk of 1 KiB fills :data:`RECHUNK_CACHE_BYTES`)
RECHUNK_CACHE_SLOTS = 2**18


def _rechunk_cache_bytes(
    shape: tuple[int, ...], src: tuple[int, ...], out: tuple[int, ...], itemsize: int
) -> int:
    """Bytes of chunk cache that let HDF5 decode each input chunk about once while the chunks of
    the ``out`` grid are read in C order: the input chunks under the largest region that fits
    :data:`RECHUNK_CACHE_BYTES`, trying the whole dataset first, then one slab of output chunks
    along axis 0 (the rest of the dataset whole), one row, ..., one output chunk (at least one
    input chunk)."""
    grid = [-(-s // c) if s else 1 for s, c in zip(shape, src, strict=True)]
    # most input chunks one output chunk overlaps along each axis: its start lies at an offset
    # from an input chunk's start that is a multiple of gcd(o, c), at most c - gcd(o, c)
    spans = [
        min((c - math.gcd(o, c) + o - 1) // c + 1, g)
        for o, c, g in zip(out, src, grid, strict=True)
    ]
    chunk_bytes = int(np.prod(src, dtype=np.int64)) * itemsize
    need = chunk_bytes
    for level in range(len(shape) + 1):
        count = int(np.prod(spans[:level] + grid[level:], dtype=np.int64))
        need = count * chunk_bytes
        if need <= RECHUNK_CACHE_BYTES:
            break
    return max(chunk_bytes, min(need, RECHUNK_CACHE_BYTES))


def _rechunk_cache_slots(
    shape: tuple[int, ...], src: tuple[int, ...], nbytes: int, itemsize: int
) -> int:
    """Hash slots for a chunk cache of ``nbytes`` over input chunks ``src``: HDF5's advice of
    100 per chunk the cache holds, but no more than the dataset has chunks (HDF5 hashes a
    chunk's index in the grid modulo the slot count: one slot each means no collisions) nor
    :data:`RECHUNK_CACHE_SLOTS` (input chunks of one u2 element asked for 13 billion slots,
    5.4 GB of memory before a byte was read). One more, as HDF5 prefers an odd count."""
    chunk_bytes = max(math.prod(src) * itemsize, 1)
    grid = math.prod(-(-s // c) if s else 1 for s, c in zip(shape, src, strict=True))
    held = max(nbytes // chunk_bytes, 1)
    return min(held * 100, grid, RECHUNK_CACHE_SLOTS) + 1


def _with_rechunk_cache(ds: Any, chunks: tuple[int, ...]) -> Any:
    """``ds`` opened again with a chunk cache sized for reading it in ``chunks`` (``ds`` itself
    is closed).

    HDF5's default cache holds 1 MiB: an input chunk larger than that was decoded again for
    every output chunk it overlaps (``--chunks 1,7,9`` on the corpus's Eiger frame, one
    (1, 2167, 2070) bitshuffle chunk: 15 ms per output chunk, 71,300 of them, instead of 0.7).
    """
    import h5py

    if ds.chunks is None:
        return ds
    nbytes = _rechunk_cache_bytes(tuple(ds.shape), tuple(ds.chunks), chunks, ds.dtype.itemsize)
    if nbytes <= 2**20:
        return ds
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    nslots = _rechunk_cache_slots(tuple(ds.shape), tuple(ds.chunks), nbytes, ds.dtype.itemsize)
    dapl.set_chunk_cache(nslots, int(nbytes), 0.75)
    fid, name = ds.file.id, ds.name.encode()
    # HDF5 shares one open dataset between its handles, with the cache of the first open: close
    # this handle so that the new one gets its own (another handle still open keeps the old
    # cache: slower, never wrong)
    ds.id.close()
    return h5py.Dataset(h5py.h5d.open(fid, name, dapl=dapl))


def _chunk_origins(ds: Any, chunks: tuple[int, ...], rechunked: bool) -> list[tuple[int, ...]]:
    """The chunks to write: the allocated ones of ``ds`` (unallocated chunks stay unallocated),
    or every chunk of the new grid when it is ``rechunked``."""
    if not rechunked:
        out: list[tuple[int, ...]] = []
        ds.id.chunk_iter(lambda info: out.append(tuple(int(o) for o in info.chunk_offset)))
        return out
    return _chunk_grid(tuple(ds.shape), chunks)


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
