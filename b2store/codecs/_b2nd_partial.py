"""Partial decoding of ``b2store.b2nd`` chunks (Zarr v3): which bytes a selection needs.

Contract
--------
A selection inside one stored chunk (a one-chunk b2nd frame or a bare Blosc2 chunk) is read in
byte ranges: the first ``_HEAD`` bytes (frame header, chunk header and, usually, the block-start
table), then only the blocks the selection touches, ranges closer than ``_MERGE_GAP`` merged
(:func:`_merge`) and fetched in one ``get_partial_values`` call where the store has one
(:func:`_fetch_many`). :class:`_PartialPlan` says where the chunk and its blocks lie, or is
``None`` (:meth:`_PartialPlan.make`) when a partial read cannot help or cannot be trusted: small
objects, 0-d chunks, plain or multi-chunk frames, special or padded-differently chunks, another
array's layout, DELTA (every block is a delta against the first), ZFP/NDCELL/NDMEAN; the caller
then decodes the whole chunk, whose decoder says what is wrong. Only the touched blocks are
decompressed, as one synthetic Blosc2 chunk, and assembled into ``chunk[selection]`` without a
chunk-sized buffer for basic selections. Missing bytes raise :class:`~b2store.errors.CodecError`.
No blosc2 import at module import time (the decoder is imported when a plan decodes).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.store import RangeByteRequest

from b2store.codecs import _blosc2frame as bf
from b2store.codecs._b2nd_threads import _decode_threads
from b2store.errors import CodecError

if TYPE_CHECKING:
    from zarr.abc.store import ByteGetter
    from zarr.core.array_spec import ArraySpec

__all__: list[str] = []

_HEAD = 4096  # first ranged read: frame header + (usually) the chunk header and block starts
_MERGE_GAP = 4096  # coalesce block ranges closer than this
_GLUE_MAX = 64 * 1024  # a range starting inside the first read: glue tails up to this size


async def _fetch_many(
    getter: ByteGetter, proto: Any, ranges: list[tuple[int, int]], head: bytes
) -> list[memoryview]:
    """Byte ranges of one stored chunk: one ``get_partial_values`` call for several ranges.

    Blocks scattered through a chunk (a plane across the block grid) are then one store call
    instead of one per range; stores without that path (or one range) use ranged ``get``.
    """
    store, path = getattr(getter, "store", None), getattr(getter, "path", None)
    todo = [(s, e) for s, e in ranges if e > len(head)]
    if len(todo) < 2 or store is None or not isinstance(path, str):
        return [await _PartialPlan.fetch(getter, proto, s, e, head) for s, e in ranges]
    bufs = await store.get_partial_values(proto, [(path, RangeByteRequest(s, e)) for s, e in todo])
    got: dict[tuple[int, int], memoryview] = {}
    for (s, e), buf in zip(todo, bufs, strict=True):
        if buf is None or len(buf) != e - s:
            raise CodecError(f"b2store.b2nd: truncated chunk (bytes {s}..{e} unavailable)")
        got[(s, e)] = bf.as_bytes_view(buf.as_numpy_array())
    return [got[(s, e)] if (s, e) in got else memoryview(head)[s:e] for s, e in ranges]


def _is_total(selection: Any, shape: tuple[int, ...]) -> bool:
    if not isinstance(selection, tuple) or len(selection) != len(shape):
        return False
    for sel, n in zip(selection, shape, strict=True):
        if not isinstance(sel, slice):
            return False
        start, stop, step = sel.indices(n)
        if (start, stop, step) != (0, n, 1):
            return False
    return True


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in ranges:
        if out and s <= out[-1][1] + _MERGE_GAP:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _touched(sel: Any, n: int, block: int) -> list[int]:
    """Block indices along one dimension touched by a selector, ascending and unique."""
    if isinstance(sel, slice):
        start, stop, step = sel.indices(n)
        if abs(step) == 1:
            first, last = (start, stop - 1) if step == 1 else (stop + 1, start)
            if last < first:
                return []
            return list(range(first // block, last // block + 1))
        idx = np.arange(start, stop, step)
    elif isinstance(sel, int | np.integer):
        return [(int(sel) + (n if sel < 0 else 0)) // block]
    else:
        idx = np.asarray(sel)
        if idx.dtype == bool:
            idx = np.nonzero(idx)[0]
        idx = np.where(idx < 0, idx + n, idx).ravel()
    return [int(x) for x in np.unique(idx // block)]


@dataclass(frozen=True)
class _PartialPlan:
    """Where the chunk and its blocks live inside the stored bytes."""

    base: int  # offset of the Blosc2 chunk (header_size for frames, 0 for bare chunks)
    header: bf.ChunkHeader
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def table_end(self) -> int:
        if self.header.memcpyed:  # raw padded chunk right after the header: no block starts
            return self.base + bf.CHUNK_HEADER_SIZE
        return self.base + bf.CHUNK_HEADER_SIZE + 4 * self.header.nblocks

    @classmethod
    def make(
        cls, head: bytes, shape: tuple[int, ...], blocks: tuple[int, ...] | None, spec: ArraySpec
    ) -> _PartialPlan | None:
        what = "b2store.b2nd"
        if len(head) < _HEAD or not shape:
            return None  # the whole object is already here, or 0-d
        dtype = spec.dtype.to_native_dtype()
        if bf.is_frame(head):
            info = bf.parse_frame(head, what=what, complete=False)
            if info.b2nd is None or info.nchunks != 1 or info.cbytes == 0:
                return None
            meta = info.b2nd
            if meta.chunks != shape or meta.shape != shape or info.typesize != dtype.itemsize:
                return None  # not this chunk's layout: the whole-chunk decode says why
            base, chunks, blk = info.header_size, info.b2nd.chunks, info.b2nd.blocks
            frame_cbytes: int | None = info.cbytes
        else:
            base, chunks, blk = 0, shape, blocks or shape
            frame_cbytes = None
        if len(head) < base + bf.CHUNK_HEADER_SIZE or len(blk) != len(chunks):
            return None
        hdr = bf.chunk_header(head[base:], what=what, check_size=False)
        if frame_cbytes is not None and hdr.cbytes != frame_cbytes:
            return None  # the frame's sizes disagree: the whole-chunk decode says why
        padded = math.prod(-(-c // b) * b for c, b in zip(chunks, blk, strict=True))
        if hdr.special or hdr.nbytes != padded * dtype.itemsize:
            return None
        if hdr.blocksize != math.prod(blk) * dtype.itemsize or hdr.blosc2_flags & 0x09:
            return None
        if bf.FILTER_DELTA in hdr.filters:  # blocks are deltas against block 0: decode it all
            return None
        from b2store.codecs.b2nd import needs_array_context

        if needs_array_context(hdr):  # ZFP, NDCELL, NDMEAN: decoded whole, inside an NDArray
            return None
        return cls(base, hdr, tuple(chunks), tuple(blk), dtype)

    @staticmethod
    async def fetch(
        getter: ByteGetter, proto: Any, start: int, end: int, head: bytes
    ) -> memoryview:
        """Bytes ``[start, end)`` of the stored chunk, from *head* or one ranged read (no copy).

        A range that begins inside *head* reads only its missing tail when that is small (a
        long block-start table); a large one is read whole again: re-reading a few KiB is
        cheaper than gluing megabytes.
        """
        if end <= len(head):
            return memoryview(head)[start:end]
        lo = start if start >= len(head) or end - len(head) > _GLUE_MAX else len(head)
        buf = await getter.get(prototype=proto, byte_range=RangeByteRequest(lo, end))
        if buf is None or len(buf) != end - lo:
            raise CodecError(f"b2store.b2nd: truncated chunk (bytes {lo}..{end} unavailable)")
        if lo > start:
            return memoryview(head[start:] + buf.to_bytes())
        return bf.as_bytes_view(buf.as_numpy_array())

    def touched_blocks(self, selection: Any) -> list[int]:
        grid = [-(-c // b) for c, b in zip(self.chunks, self.blocks, strict=True)]
        per_dim = [
            _touched(s, c, b) for s, c, b in zip(selection, self.chunks, self.blocks, strict=True)
        ]
        if any(len(p) == 0 for p in per_dim):
            return []
        # C-order product of ascending per-dimension lists: linear indices come out ascending
        lin = [0]
        for p, g in zip(per_dim, grid, strict=True):
            lin = [x * g + i for x in lin for i in p]
        return lin

    def block_ranges(self, table: Any, needed: list[int]) -> dict[int, tuple[int, int]]:
        hdr = self.header
        if hdr.memcpyed:
            bs, first = hdr.blocksize, self.base + bf.CHUNK_HEADER_SIZE
            return {b: (first + b * bs, first + (b + 1) * bs) for b in needed}
        table_starts = bf.block_starts(table, hdr, what="b2store.b2nd")
        starts: list[int] = table_starts.tolist()
        base = self.base
        if bool((table_starts[1:] > table_starts[:-1]).all()):  # the usual layout: in order
            last = len(starts) - 1
            return {
                b: (base + starts[b], base + (starts[b + 1] if b < last else hdr.cbytes))
                for b in needed
            }
        # blocks out of order or sharing bytes: a block ends at the next larger start
        bounds = sorted({*starts, hdr.cbytes})
        return {
            b: (base + starts[b], base + bounds[bisect.bisect_right(bounds, starts[b])])
            for b in needed
        }

    def decode_all(
        self, chunk: Any, needed: list[int], nthreads: int, selection: Any
    ) -> np.ndarray:
        """``chunk[selection]`` from the complete stored chunk when *needed* is every block."""
        from b2store.codecs.b2nd import decompress_chunk

        nbytes = self.header.nbytes
        with _decode_threads(nthreads, nbytes) as nthr:
            flat = decompress_chunk(
                chunk, dtype=self.dtype, nbytes=nbytes, nthreads=nthr, what="b2store.b2nd"
            )
        return self._assemble(needed, list(flat.reshape(len(needed), -1)), selection)

    def decode_blocks(
        self,
        table: Any,
        needed: list[int],
        pieces: dict[int, Any],
        nthreads: int,
        selection: Any = None,
    ) -> np.ndarray:
        """Decompress only *needed* blocks (as one synthetic chunk).

        Without *selection*: the chunk array, zeros outside the needed blocks. With it:
        ``chunk[selection]``, assembled in the bounding box of the needed blocks only (no
        chunk-sized buffer), as a view when the selection is basic.
        """
        from b2store.codecs.b2nd import decompress_chunk

        blocks: list[np.ndarray]
        if needed and self.header.memcpyed:
            blocks = [np.frombuffer(pieces[b], dtype=self.dtype) for b in needed]
        elif needed:
            k = len(needed)
            hdr = bytearray(table[: bf.CHUNK_HEADER_SIZE])
            bs = self.header.blocksize
            offs, pos = [], bf.CHUNK_HEADER_SIZE + 4 * k
            for b in needed:
                offs.append(pos)
                pos += len(pieces[b])
            hdr[4:8] = (k * bs).to_bytes(4, "little")
            hdr[12:16] = pos.to_bytes(4, "little")
            mini = b"".join(
                [bytes(hdr), np.asarray(offs, dtype="<i4").tobytes(), *(pieces[b] for b in needed)]
            )
            with _decode_threads(nthreads, k * bs) as nthr:
                flat = decompress_chunk(
                    mini, dtype=self.dtype, nbytes=k * bs, nthreads=nthr, what="b2store.b2nd"
                )
            blocks = list(flat.reshape(k, -1))
        else:
            blocks = []
        return self._assemble(needed, blocks, selection)

    def _assemble(self, needed: list[int], blocks: list[np.ndarray], selection: Any) -> np.ndarray:
        """Place decoded *blocks* (flat, one per entry of *needed*) and apply *selection*."""
        grid = [-(-c // b) for c, b in zip(self.chunks, self.blocks, strict=True)]
        coords = np.array(np.unravel_index(np.asarray(needed, dtype=np.intp), grid)).reshape(
            len(grid), len(needed)
        )
        if selection is not None and needed:
            direct = self.gather(coords, blocks, selection)
            if direct is not None:
                return direct
        if selection is None or not needed:
            lo = [0] * len(grid)
            box = np.zeros([g * b for g, b in zip(grid, self.blocks, strict=True)], self.dtype)
        else:
            lo = [int(c.min()) for c in coords]
            hi = [int(c.max()) + 1 for c in coords]
            box = np.empty(
                [(h - lo_) * b for lo_, h, b in zip(lo, hi, self.blocks, strict=True)],
                self.dtype,
            )
        for i, blk in enumerate(blocks):
            dst = tuple(
                slice((int(c[i]) - o) * s, (int(c[i]) - o + 1) * s)
                for c, o, s in zip(coords, lo, self.blocks, strict=True)
            )
            box[dst] = blk.reshape(self.blocks)
        if selection is None:
            return box[tuple(slice(0, c) for c in self.chunks)]
        offsets = [o * b for o, b in zip(lo, self.blocks, strict=True)]
        return box[_shift_selection(selection, self.chunks, offsets)]

    def gather(
        self, coords: np.ndarray, blocks: list[np.ndarray], selection: tuple[Any, ...]
    ) -> np.ndarray | None:
        """``chunk[selection]`` copied block by block straight into the result.

        Only for basic selections (ints and slices with a positive step); returns None
        otherwise. Each selected element lies in exactly one needed block, so every element of
        the result is written once and nothing chunk-sized is allocated.
        """
        per_dim: list[tuple[int, int, int, int] | int] = []  # (start, stop, step, n) or int
        for sel, n in zip(selection, self.chunks, strict=True):
            if isinstance(sel, slice):
                start, stop, step = sel.indices(n)
                if step < 1:
                    return None
                per_dim.append((start, stop, step, len(range(start, stop, step))))
            elif isinstance(sel, int | np.integer):
                per_dim.append(int(sel) + (n if sel < 0 else 0))
            else:
                return None
        out_shape = [d[3] for d in per_dim if isinstance(d, tuple)]
        out = np.empty(out_shape, self.dtype)
        for i, blk in enumerate(blocks):
            block = blk.reshape(self.blocks)
            src: list[Any] = []
            dst: list[slice] = []
            for d, b, c in zip(per_dim, self.blocks, coords, strict=True):
                base = int(c[i]) * b
                if isinstance(d, int):
                    src.append(d - base)
                    continue
                start, stop, step, _ = d
                lo_i, hi_i = max(start, base), min(stop, base + b)  # selected i in [lo_i, hi_i)
                k0 = -(-(lo_i - start) // step)
                k1 = -(-(hi_i - start) // step)  # exclusive
                if k1 <= k0:
                    break  # no selected element in this block along d (cannot happen)
                first = start + k0 * step
                src.append(slice(first - base, first - base + (k1 - k0 - 1) * step + 1, step))
                dst.append(slice(k0, k1))
            else:
                out[tuple(dst)] = block[tuple(src)]
        return out


def _shift_selection(selection: Any, shape: tuple[int, ...], offsets: list[int]) -> tuple[Any, ...]:
    """Translate a chunk selection into the coordinates of a box starting at *offsets*."""
    out: list[Any] = []
    for sel, n, off in zip(selection, shape, offsets, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            if not range(start, stop, step):  # normalised empty starts (-1) would wrap
                out.append(slice(0, 0))
            elif step > 0:
                out.append(slice(start - off, stop - off, step))
            else:  # a shifted stop below 0 means "down to index 0": None (-1 would wrap).
                # Still a slice: index arrays would broadcast with the other arrays of the
                # selection (coordinate semantics) and move axes, not select orthogonally
                out.append(slice(start - off, stop - off if stop - off >= 0 else None, step))
        elif isinstance(sel, int | np.integer):
            out.append(int(sel) + (n if sel < 0 else 0) - off)
        else:
            idx = np.asarray(sel)
            if idx.dtype == bool:
                idx = np.nonzero(idx)[0]
            out.append(np.where(idx < 0, idx + n, idx) - off)
    return tuple(out)
