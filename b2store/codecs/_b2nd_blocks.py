"""Block order of b2nd chunks: Blosc2 stores an n-D chunk padded to whole blocks, block by
block, each block in C order.

Contract
--------
:func:`reorder` turns a decompressed (padded, block-ordered) chunk into a C-ordered array of the
chunk shape, :func:`to_block_order` is its inverse (what the encoder compresses). Both skip the
copy when the orders agree (:func:`block_order_is_c_order`: blosc2's own block choice for stacks of
images, chunk ``(8, 512, 512)`` in blocks ``(1, 128, 512)``, is one). Pure numpy; shapes are
trusted (callers check them against the chunk header first).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = ["block_order_is_c_order", "c_contiguous", "reorder", "to_block_order"]


def block_order_is_c_order(chunks: Any, blocks: Any) -> bool:
    """True when a padded, block-ordered chunk is already C-ordered (then no copy is needed).

    That holds when the blocks are 1 along every dimension before the last one they split (``m``),
    span every dimension after it, and either split ``m`` evenly or the chunk is 1 along every
    dimension before ``m`` (then the padding only trails), e.g. chunk (8, 512, 512) with blocks
    (1, 128, 512), which is blosc2's own choice for stacks of images.
    """
    if type(chunks) is not tuple or type(blocks) is not tuple:
        chunks, blocks = tuple(map(int, chunks)), tuple(map(int, blocks))  # hashable cache keys
    return _block_order_is_c_order(chunks, blocks)


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
    if not isinstance(flat, np.ndarray):
        a = np.frombuffer(flat, dtype=dtype)
    else:
        a = flat if flat.dtype == dtype else flat.view(dtype)
    if nd == 0:
        return a[:1].reshape(())
    if block_order_is_c_order(chunks, blocks):
        n = math.prod(chunks)
        return (a if a.size == n else a[:n]).reshape(chunks)
    grid = [-(-c // b) for c, b in zip(chunks, blocks, strict=True)]
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


def _reorder_copy(
    flat: np.ndarray, chunks: tuple[int, ...], blocks: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """:func:`reorder`, never returning a view of *flat* (a scratch buffer)."""
    arr = reorder(flat, chunks, blocks, dtype)
    return arr.copy() if np.may_share_memory(arr, flat) else arr
