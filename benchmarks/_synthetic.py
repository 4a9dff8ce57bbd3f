"""Synthetic tomography data: a noisy disc on a background, uint16, with sparse sharp edges.

Contract: every function here is deterministic for a given ``seed`` (and, for the chunk-wise
generator, independent of how the stack is cut into chunks: projection ``i`` is always the same
image), uses only numpy, and returns C-contiguous ``uint16`` arrays. The images imitate
flat-field-corrected detector projections of a cylindrical sample: a smooth background (beam
profile), a disc whose grey level follows the path length through a cylinder and drifts slowly with
the angle, a few thin bright edges (sparse high-frequency content) and Gaussian detector noise
(sigma 40 counts). Values stay within 12-16-bit detector ranges (roughly 800-36000).

Used by the codec, HDF5 and Caterva2 benchmarks and by the demo, so keep the signature stable.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["NOISE_SIGMA", "iter_tomo_chunks", "tomo_projection", "tomo_stack"]

#: Standard deviation of the Gaussian detector noise, in counts.
NOISE_SIGMA = 40.0


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"Expected an integer for {name}. Got {type(value).__name__} instead.")
    if value < 1:
        raise ValueError(f"Expected a positive integer for {name}. Got {value} instead.")
    return int(value)


def tomo_projection(
    angle_index: int, n_angles: int, height: int, width: int, *, seed: int = 0
) -> np.ndarray:
    """One projection image of the synthetic stack.

    Parameters
    ----------
    angle_index : int
        Index of the projection, ``0 <= angle_index < n_angles``.
    n_angles : int
        Number of projections in the whole stack (sets the angular step).
    height, width : int
        Image shape in pixels.
    seed : int, optional
        Seed of the noise; projection ``angle_index`` gets its own stream derived from it.

    Returns
    -------
    numpy.ndarray
        ``uint16`` array of shape ``(height, width)``.
    """
    n_angles = _check_positive("n_angles", n_angles)
    height = _check_positive("height", height)
    width = _check_positive("width", width)
    if not 0 <= angle_index < n_angles:
        raise ValueError(
            f"Expected an integer from the inclusive range (0, {n_angles - 1}) for angle_index. "
            f"Got {angle_index} instead."
        )
    theta = np.pi * angle_index / n_angles
    y = (np.arange(height, dtype=np.float64) - height / 2) / max(height, width)
    x = (np.arange(width, dtype=np.float64) - width / 2) / max(height, width)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    # Beam profile: smooth, brighter in the middle.
    img = 30000.0 - 8000.0 * (yy**2 + xx**2)
    # Cylinder seen from the side at this angle: the disc centre wobbles with the angle.
    cx = 0.08 * np.cos(theta)
    cy = 0.03 * np.sin(theta)
    r = 0.3
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2
    inside = d2 < r * r
    path = np.sqrt(np.clip(r * r - d2, 0.0, None)) / r
    img -= inside * (18000.0 * path + 2000.0)
    # Sparse sharp edges: two thin bright rings and one bright vertical wire.
    ring = np.abs(np.sqrt(d2) - r) < 1.0 / max(height, width)
    img += ring * 4000.0
    wire = np.abs(xx - 0.35 * np.cos(2 * theta)) < 0.75 / max(height, width)
    img += wire * 3000.0
    rng = np.random.default_rng([seed, angle_index])
    img += rng.normal(0.0, NOISE_SIGMA, size=img.shape)
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 65535).astype(np.uint16))


def tomo_stack(n_angles: int, height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """The whole synthetic stack in memory.

    Parameters
    ----------
    n_angles, height, width : int
        Stack shape ``(n_angles, height, width)``.
    seed : int, optional
        Noise seed.

    Returns
    -------
    numpy.ndarray
        ``uint16`` array of shape ``(n_angles, height, width)``.

    See Also
    --------
    iter_tomo_chunks : the same data, chunk by chunk, for stacks that do not fit in memory.
    """
    n_angles = _check_positive("n_angles", n_angles)
    out = np.empty((n_angles, height, width), dtype=np.uint16)
    for i in range(n_angles):
        out[i] = tomo_projection(i, n_angles, height, width, seed=seed)
    return out


def iter_tomo_chunks(
    n_angles: int, height: int, width: int, *, chunk_angles: int = 16, seed: int = 0
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield the stack in slabs along the angle axis.

    Parameters
    ----------
    n_angles, height, width : int
        Stack shape.
    chunk_angles : int, optional
        Number of projections per slab (the last slab may be shorter).
    seed : int, optional
        Noise seed; the concatenated slabs equal ``tomo_stack(..., seed=seed)``.

    Yields
    ------
    tuple of (slice, numpy.ndarray)
        The slice of the angle axis and the ``uint16`` slab of shape ``(n, height, width)``.
    """
    n_angles = _check_positive("n_angles", n_angles)
    chunk_angles = _check_positive("chunk_angles", chunk_angles)
    for start in range(0, n_angles, chunk_angles):
        stop = min(start + chunk_angles, n_angles)
        slab = np.empty((stop - start, height, width), dtype=np.uint16)
        for i in range(start, stop):
            slab[i - start] = tomo_projection(i, n_angles, height, width, seed=seed)
        yield slice(start, stop), slab
