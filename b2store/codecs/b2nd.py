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
  DELTA are decoded on one thread (C-Blosc2 gets them wrong on several when another filter
  runs before DELTA, e.g. ``["shuffle", "delta"]``, and with DELTA twice).
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
filters in a config, and at most 2 besides a truncation filter, delta at most once and before
the other filters, when encoding: C-Blosc2 gets other pipelines wrong (see
:func:`encoding_pipeline`). Example:
``{"id": "b2store_b2nd", "filters": [{"id": "itrunc", "max_abs_error": 15}, {"id": "bitshuffle"}]}``
is the "itrunc + bitshuffle + zstd" recipe.

Layout
------
This module holds the numcodecs codec :class:`B2nd` and re-exports the public functions; the
work is done in private siblings, one concern each: :mod:`~b2store.codecs._b2nd_filters`
(filter specs), :mod:`~b2store.codecs._b2nd_encode` (the encode pipeline),
:mod:`~b2store.codecs._b2nd_decode` (the four input forms), :mod:`~b2store.codecs._b2nd_chunk`
(one raw Blosc2 chunk), :mod:`~b2store.codecs._b2nd_blocks` (block order) and
:mod:`~b2store.codecs._scratch` (a scratch-buffer pool). Import from here, not from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec

from b2store._chunk_origins import add_origin
from b2store.codecs import _blosc2frame as bf
from b2store.codecs._b2nd_blocks import c_contiguous, reorder, to_block_order
from b2store.codecs._b2nd_chunk import (
    NeedsArrayContext,
    decompress_chunk,
    needs_array_context,
    threads_safe,
)
from b2store.codecs._b2nd_decode import _bare_item_dtype, decode_b2nd, decode_frame_view
from b2store.codecs._b2nd_encode import default_blocks, encode_b2nd, encoding_pipeline
from b2store.codecs._b2nd_filters import check_truncation_dtype, normalize_filters
from b2store.codecs._common import (
    B2ND_ID,
    as_bytes_view,
    codec_from_config,
    parse_cname,
    parse_int_range,
    parse_optional_shape,
    parse_splitmode,
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

CODEC_ID = B2ND_ID
# Importing this module calls blosc2.set_releasegil(True), process-global: _b2nd_chunk and
# _b2nd_encode call it, so that decompress2/compress2 release the GIL.


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
            hint = (
                " (a filter before it, such as numcodecs' Delta or FixedScaleOffset, flattens "
                "chunks: give 1-D blocks or none)"
                if arr.ndim == 1
                else ""
            )
            raise CodecError(
                f"{CODEC_ID}: blocks: Expected {arr.ndim} dimensions, as many as the chunk "
                f"{arr.shape}. Got {self.blocks} instead{hint}."
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
        try:
            arr = self._decode(buf)
        except CodecError as err:  # zarr's v2 view gives no key: name the chunk if known
            add_origin(err, buf)
            raise
        if out is not None:
            # numcodecs semantics: the decoded bytes, in out's memory order and dtype
            from numcodecs.compat import ensure_ndarray_like

            dst = ensure_ndarray_like(out)
            if dst.nbytes != arr.nbytes or not (dst.flags.c_contiguous or dst.flags.f_contiguous):
                raise CodecError(
                    f"{CODEC_ID}: Expected out to be a contiguous buffer of {arr.nbytes} bytes. "
                    f"Got {dst.nbytes} bytes (shape {dst.shape}) instead."
                )
            flat = c_contiguous(arr).reshape(-1).view(np.uint8)
            np.copyto(dst.reshape(-1, order="A").view(np.uint8), flat)
            return out
        return arr

    def _decode(self, buf: Any) -> Any:
        mv = as_bytes_view(buf)
        if bf.is_frame(mv):
            return decode_frame_view(mv, None, self.nthreads)  # the frame's own dtype
        dtype = np.dtype("u1")
        if self.chunkshape is not None:
            header = bf.chunk_header(mv, what=CODEC_ID)
            dtype = _bare_item_dtype(header, self.chunkshape, self.blocks)
        return decode_b2nd(
            mv, dtype=dtype, chunkshape=self.chunkshape, blocks=self.blocks, nthreads=self.nthreads
        )
