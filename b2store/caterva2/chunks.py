"""Checks and conversions of the bytes a Caterva2 server sends for one Zarr chunk.

Contract
--------
* :func:`check_chunk` validates a bare Blosc2 chunk from ``/api/chunk`` *before* any C decoder
  sees it: at least a 32-byte header, format version 1 to 5, ``cbytes`` equal to the body length and
  ``nbytes`` equal to the decompressed size the dataset's info promises. :func:`check_frame` does
  the same for the b2nd cframes of ``/api/fetch?slice_=`` (magic, ``frame_size`` = body length).
  Both raise :class:`Caterva2DataError` (an ``OSError``, so zarr does not mistake it for a
  missing chunk) naming the dataset and chunk.
* :func:`to_zarr_chunk` turns checked bytes into the value of the Zarr chunk key for the dataset's
  mode (see :mod:`b2store.caterva2.metadata`): bare chunks pass through (a short last ``.b2frame``
  chunk is re-encoded padded), transcoded chunks become little-endian C-order bytes, slices
  become little-endian C-order bytes padded to the full chunk shape.
* Decoding goes through :mod:`b2store.codecs.b2nd`'s validating decoders (chunk headers, block
  offsets and codecs checked before C-Blosc2 sees server bytes; slices' frames parsed by
  b2store, never by python-blosc2's C frame parser), one thread per call (C-Blosc2 3.3 decodes
  chunks holding DELTA after another filter wrongly on several threads, and dask runs many
  calls at once anyway); they release the GIL (``blosc2.set_releasegil(True)``, set when b2nd
  is imported).
"""

from __future__ import annotations

import math

import blosc2
import numpy as np

from b2store.caterva2.metadata import (
    CHUNK,
    SLICE,
    TRANSCODE,
    Dataset,
    UnsupportedCaterva2DatasetError,
    little_endian,
    parse_dtype,
)
from b2store.codecs import _blosc2frame as bf
from b2store.codecs._b2nd_chunk import _special_array
from b2store.codecs.b2nd import decode_b2nd, decompress_chunk, reorder
from b2store.errors import Caterva2HTTPError, CodecError

__all__ = [
    "Caterva2DataError",
    "check_chunk",
    "check_frame",
    "passes_through",
    "special_header",
    "to_zarr_chunk",
]


_FRAME_MAGIC = b"\xa8b2frame\x00"


class Caterva2DataError(Caterva2HTTPError):
    """Data of a dataset that cannot be trusted: a 200 answer whose bytes are not what the
    dataset's info promises, or a dataset changed or deleted on the server while open."""

    def __init__(self, url: str, status: int, detail: str = "") -> None:
        super().__init__(url, status, detail)
        # not "Caterva2 server error 200": the server did not fail, its data does not fit
        self.args = (f"Caterva2 data error for {url} (HTTP {status}): {detail}",)


def expected_nbytes(ds: Dataset, nchunk: int) -> int:
    """Decompressed bytes of server chunk ``nchunk`` (the last ``.b2frame`` chunk is short)."""
    if ds.kind == "b2frame" and nchunk == ds.nchunks - 1:
        total = ds.shape[0] * ds.dtype.itemsize
        return total - nchunk * ds.chunk_nbytes
    return ds.chunk_nbytes


def check_chunk(url: str, ds: Dataset, nchunk: int, raw: bytes) -> None:
    """Raise :class:`Caterva2DataError` unless ``raw`` is a sound Blosc2 chunk of the right size."""
    where = f"chunk {nchunk} of Caterva2 dataset {ds.path}"
    if len(raw) < 32:
        raise Caterva2DataError(url, 200, f"{where}: {len(raw)} bytes, shorter than a chunk header")
    if not 1 <= raw[0] <= 5:
        raise Caterva2DataError(url, 200, f"{where}: unknown Blosc format version {raw[0]}")
    nbytes, cbytes, _blocksize = blosc2.get_cbuffer_sizes(raw)
    if cbytes != len(raw):
        raise Caterva2DataError(
            url, 200, f"{where}: header says {cbytes} compressed bytes, body has {len(raw)}"
        )
    want = expected_nbytes(ds, nchunk)
    if nbytes != want:
        raise Caterva2DataError(
            url,
            200,
            f"{where}: decompresses to {nbytes} bytes, the dataset info promises {want}; "
            "the dataset may have changed on the server (reopen it)",
        )


def check_frame(url: str, ds: Dataset, raw: bytes) -> None:
    """Raise :class:`Caterva2DataError` unless ``raw`` looks like a complete Blosc2 cframe."""
    where = f"slice of Caterva2 dataset {ds.path}"
    if len(raw) < 64 or raw[1:10] != _FRAME_MAGIC:
        raise Caterva2DataError(url, 200, f"{where}: not a Blosc2 frame ({len(raw)} bytes)")
    frame_size = int.from_bytes(raw[16:24], "big")
    if frame_size != len(raw):
        raise Caterva2DataError(
            url, 200, f"{where}: frame header says {frame_size} bytes, body has {len(raw)}"
        )


def _decompress(ds: Dataset, nchunk: int, raw: bytes, special: bf.ChunkHeader | None) -> np.ndarray:
    """The decompressed bytes (a ``uint8`` array, no further copy) of checked server chunk
    ``raw``. A special chunk is made in numpy from ``special``, its header as
    :func:`special_header` parsed it (once); any other chunk goes through b2store's validating
    decoder (:func:`b2store.codecs.b2nd.decompress_chunk`: block offsets and codecs are checked
    before C-Blosc2 sees the bytes)."""
    where = f"chunk {nchunk} of Caterva2 dataset {ds.path}"
    nbytes = expected_nbytes(ds, nchunk)
    try:
        if special is None:
            flat = decompress_chunk(raw, dtype=ds.dtype, nbytes=nbytes, what=where)
        else:
            flat = _expand_special(ds, raw, special, nbytes, where)
    except CodecError as exc:
        raise Caterva2DataError(ds.path, 200, str(exc)) from exc
    return flat.view(np.uint8)


def _expand_special(
    ds: Dataset, raw: bytes, hdr: bf.ChunkHeader, nbytes: int, where: str
) -> np.ndarray:
    """The items of special chunk ``raw`` (header ``hdr``), as the validating decoder makes
    them; Blosc2 writes the special values in the chunk's typesize, which for a ``.b2frame``
    without a dtype (served as ``uint8``) is wider than the served items. A NaN chunk of
    floats of the served width is NaN in the served dtype (big-endian too); any other NaN chunk
    is C-Blosc2's little-endian float NaN of the chunk's typesize read as the served items, as
    python-blosc2 reads it (``2143289344`` for ``int32``; was: "NaN special chunk for non-float
    dtype int32")."""
    dtype = ds.dtype
    nan = hdr.special == bf.SPECIAL_NAN and hdr.typesize in (2, 4, 8)
    if nan and not (dtype.kind == "f" and dtype.itemsize == hdr.typesize):
        dtype = np.dtype(f"<f{hdr.typesize}")
    elif hdr.typesize not in (0, dtype.itemsize):
        dtype = np.dtype(f"V{hdr.typesize}")
    if hdr.nbytes != nbytes or hdr.nbytes % dtype.itemsize:
        raise CodecError(
            f"{where}: special chunk of {hdr.nbytes} bytes, expected {nbytes} bytes of "
            f"{dtype} items"
        )
    value = bytes(raw[bf.CHUNK_HEADER_SIZE : bf.CHUNK_HEADER_SIZE + hdr.typesize])
    return _special_array(hdr.special, hdr.nbytes // dtype.itemsize, dtype, value, where)


def _decode_slice(ds: Dataset, coords: tuple[int, ...], raw: bytes) -> np.ndarray:
    """The array of a checked ``/api/fetch?slice_=`` frame, in the dtype the frame records
    (a padded compound may spell its gaps as fields), decoded by b2store's validating frame
    decoder (never python-blosc2's C frame parser on server bytes)."""
    where = f"slice {coords} of Caterva2 dataset {ds.path}"
    try:
        info = bf.parse_frame(raw, what=where)
        if info.b2nd is None:
            raise CodecError(f"{where}: a Blosc2 frame without the b2nd metalayer")
        dtype = parse_dtype(info.b2nd.dtype_str, ds.path)
        return decode_b2nd(raw, dtype=dtype, what=where)
    except (CodecError, UnsupportedCaterva2DatasetError) as exc:
        raise Caterva2DataError(ds.path, 200, str(exc)) from exc


def special_header(ds: Dataset, raw: bytes) -> bf.ChunkHeader | None:
    """The header of checked server chunk ``raw`` when it is a special chunk (all zeros, NaN,
    one value or uninitialised), parsed once for :func:`passes_through` and
    :func:`to_zarr_chunk`; ``None`` for other chunks, slices, and special chunks whose header
    does not parse (the decoder reports those, naming the chunk)."""
    if ds.mode == SLICE or len(raw) < 32 or not (raw[31] >> 4) & 0x7:  # bits 4-6: special
        return None
    try:
        return bf.chunk_header(raw, what=f"chunk of Caterva2 dataset {ds.path}")
    except CodecError:
        return None


def _to_expand(ds: Dataset, special: bf.ChunkHeader | None) -> bool:
    """Whether a special chunk is one the Zarr codec cannot expand itself: "all NaN" (the v2
    view's codec knows the item size, not that the items are floats), or any special value of
    items wider than the served dtype (a ``.b2frame`` without a dtype in its vlmeta is served
    as uint8 bytes)."""
    return special is not None and (
        special.special == bf.SPECIAL_NAN or special.typesize not in (0, ds.dtype.itemsize)
    )


def passes_through(ds: Dataset, nchunk: int, special: bf.ChunkHeader | None) -> bool:
    """Whether checked server bytes are the Zarr chunk as they are (mode CHUNK, and neither
    the short last chunk of a ``.b2frame`` nor a special chunk the codec cannot expand;
    ``special`` is :func:`special_header` of the bytes)."""
    return (
        ds.mode == CHUNK
        and not (ds.kind == "b2frame" and nchunk == ds.nchunks - 1)
        and not _to_expand(ds, special)
    )


def _padded(flat: np.ndarray, nbytes: int) -> np.ndarray:
    """``flat`` (``uint8``) zero-padded to ``nbytes`` (itself when long enough)."""
    if flat.nbytes >= nbytes:
        return flat
    out = np.zeros(nbytes, dtype=np.uint8)
    out[: flat.nbytes] = flat
    return out


def _copy_fields(ds: Dataset, coords: tuple[int, ...], target: np.ndarray, got: np.ndarray) -> None:
    """Copy ``got`` into ``target`` field by field (nested compounds too): numpy will not cast
    between structured dtypes whose fields differ in offsets or padding."""
    if not target.dtype.names:
        target[...] = got
        return
    missing = [name for name in target.dtype.names if name not in (got.dtype.names or ())]
    if missing:
        raise Caterva2DataError(
            ds.path,
            200,
            f"slice {coords} of Caterva2 dataset {ds.path} came back without the "
            f"fields {missing} (dtype {got.dtype}, expected {ds.dtype})",
        )
    for name in target.dtype.names:
        _copy_fields(ds, coords, target[name], got[name])


def to_zarr_chunk(
    ds: Dataset,
    nchunk: int,
    coords: tuple[int, ...],
    raw: bytes,
    special: bf.ChunkHeader | None = None,
) -> bytes:
    """The value of the Zarr chunk key ``coords`` from checked server bytes ``raw``
    (``special``: :func:`special_header` of them, when the caller has it)."""
    if ds.mode != SLICE and special is None:
        special = special_header(ds, raw)
    if ds.mode == CHUNK:
        last = ds.kind == "b2frame" and nchunk == ds.nchunks - 1
        if not (last or _to_expand(ds, special)):
            return raw
        # a special chunk the codec cannot expand, or the last chunk of a .b2frame (short on
        # the server): expanded here, padded to the full chunk and stored plainly
        flat = _decompress(ds, nchunk, raw, special)
        want = ds.chunks[0] * ds.dtype.itemsize if ds.kind == "b2frame" else flat.nbytes
        if not _to_expand(ds, special) and flat.nbytes >= want:
            return raw  # a full last chunk
        return bytes(blosc2.compress2(_padded(flat, want), typesize=ds.typesize, clevel=1))
    if ds.mode == TRANSCODE:
        flat = _decompress(ds, nchunk, raw, special)
        if ds.kind == "b2frame":  # the short last chunk of a .b2frame
            flat = _padded(flat, math.prod(ds.chunks) * ds.dtype.itemsize)
        arr = reorder(flat, ds.chunks, ds.blocks, ds.dtype)
        # one copy: tobytes writes C order from the (possibly transposed) view of flat
        return arr.astype(little_endian(ds.dtype), copy=False).tobytes()
    if ds.mode == SLICE:
        region = ds.chunk_region(coords)
        shape = tuple(s.stop - s.start for s in region)
        got = _decode_slice(ds, coords, raw)
        if tuple(got.shape) != shape:
            raise Caterva2DataError(
                ds.path,
                200,
                f"slice {coords} of Caterva2 dataset {ds.path} came back with shape "
                f"{tuple(got.shape)}, expected {shape}",
            )
        out = np.zeros(ds.chunks, dtype=little_endian(ds.dtype))
        target = out[tuple(slice(0, n) for n in shape)] if shape else out  # 0-d: out[()] copies
        if out.dtype.names and got.dtype != out.dtype:
            stored = ds.stored_dtype
            if stored is not None and got.dtype.kind == "V" and got.itemsize == stored.itemsize:
                # the frame holds the HDF5 items as they are, described however blosc2 could:
                # gaps spelled as fields ("f1": V6), or raw "V30" for fields out of offset
                # order; the stored dtype (offsets included) names the fields of those bytes
                got = np.ascontiguousarray(got).view(stored)
            _copy_fields(ds, coords, target, got)
        else:
            target[...] = got
        return out.tobytes()
    raise AssertionError(ds.mode)
