"""The sampling tuner behind ``convert(auto=True)``: :func:`tune` and its samples.

Contract: :func:`tune` compresses a few sample chunks with every candidate of a grid
(:data:`TUNE_GRID`, lossless codecs, levels and filters; the block shape and itrunc settings of
``base`` added to each) and picks the one minimising
``(size/min_size)**t * (time/min_time)**(1-t)``, ``t`` being the ratio/speed trade-off (1 = best
ratio). :func:`_tuning_samples` picks up to three non-constant chunks spread over a dataset, each
cut to at most 2 MiB (:func:`_sample`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from b2store.convert._chunks import _read_full_chunk, encode_chunk
from b2store.convert._options import CodecChoice, ConvertError

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
