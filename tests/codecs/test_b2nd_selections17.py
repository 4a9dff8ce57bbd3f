"""Zarr selections of every kind through ``b2store.b2nd`` partial decoding, against numpy.

A differential: random arrays (dtypes, 0-D..4-D shapes with 1- and 0-sized dimensions, chunks and
blocks that do and do not divide), filters (shuffle, bitshuffle, bytedelta, itrunc inside b2nd,
delta, where partial decoding is refused), and selections of every kind zarr hands the codec
(basic with steps and negative indices, integers, Ellipsis, orthogonal with int and bool arrays,
coordinate, mask, block), in plain arrays and inside shards, over MemoryStore, LocalStore, an
fsspec store, ZipStore and hdf5plugin's Blosc2 chunks through ``b2h5::``. Real stores only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import blosc2
import codec_checks  # tests/codecs is on sys.path (see codec_checks)
import numpy as np
import pytest
import zarr
import zarr.storage
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.core.array_spec import ArrayConfig, ArraySpec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.dtype import parse_dtype
from zarr.core.sync import sync
from zarr.storage import StorePath

from b2store.codecs import _b2nd_partial
from b2store.codecs.b2nd import B2nd
from b2store.codecs.zarr3 import B2ndCodec

_PROTO = default_buffer_prototype()


def _data(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Compressible data (so chunks are compressed, not stored memcpy'd) with some noise."""
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    dt = np.dtype(dtype)
    base = (np.arange(n) % 251 + rng.integers(0, 3, n)).reshape(shape)
    if dt.kind == "b":
        return base % 3 == 0
    if dt.kind == "S":
        return (base % 26 + 65).astype("u1").repeat(dt.itemsize).view(dt).reshape(shape)
    if dt.kind == "U":
        return (base % 26 + 0x3B1).astype("<u4").repeat(dt.itemsize // 4).view(dt).reshape(shape)
    if dt.kind == "c":
        return (base + 1j * base[::-1]).astype(dt) if n else np.zeros(shape, dt)
    if dt.kind in "mM":
        return base.astype("i8").astype(dt)
    if dt.kind == "V":
        out = np.zeros(shape, dt)
        out["a"], out["b"] = base, base * 0.5
        return out
    return base.astype(dt) - (base.astype(dt) // 2 if dt.kind == "i" else 0)


def _array(store: Any, src: np.ndarray, chunks: Any, shards: Any = None, **codec: Any) -> Any:
    fill = None if src.dtype.kind in "SUV" else 0
    z = zarr.create_array(
        store,
        shape=src.shape,
        chunks=chunks,
        shards=shards,
        dtype=src.dtype,
        serializer=B2ndCodec(**codec),
        compressors=None,
        fill_value=fill,
    )
    z[...] = src
    return z


def _same(got: Any, expected: np.ndarray) -> None:
    got = np.asarray(got, dtype=expected.dtype) if np.ndim(got) == 0 else np.asarray(got)
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got.shape, expected.shape)
    assert got.tobytes() == expected.tobytes()


def _orthogonal(src: np.ndarray, sel: tuple[Any, ...]) -> np.ndarray:
    """numpy's result of ``z.oindex[sel]`` (one axis at a time, last axis first)."""
    out = src
    for ax in reversed(range(len(sel))):
        s = sel[ax]
        if isinstance(s, int | slice):
            out = out[(slice(None),) * ax + (s,)]
        else:
            s = np.asarray(s)
            out = np.take(out, np.nonzero(s)[0] if s.dtype == bool else s, axis=ax)
    return out


def _block_reference(src: np.ndarray, grid_chunks: tuple[int, ...], sel: tuple[Any, ...]) -> Any:
    box = []
    for s, c, n in zip(sel, grid_chunks, src.shape, strict=True):
        if isinstance(s, int):
            s = s + -(-n // c) if s < 0 else s
            box.append(slice(s * c, (s + 1) * c))
        else:
            box.append(slice(s.start * c, s.stop * c))
    return src[tuple(box)]


def _check_every_kind(z: Any, src: np.ndarray, grid_chunks: tuple[int, ...]) -> None:
    """One selection of each kind, chosen from the shape (deterministic)."""
    shape = src.shape
    basic = tuple(slice(1, None, 2) if n > 2 else slice(None) for n in shape)
    _same(z[basic], src[basic])
    ints = tuple(-1 if i == 0 else slice(None, -1) for i in range(len(shape)))
    _same(z[ints], src[ints])
    _same(z[..., 0], src[..., 0])
    ortho = tuple(
        np.array([n - 1, 0, n // 2]) if i % 2 else (np.arange(n) % 3 == 1)
        for i, n in enumerate(shape)
    )
    _same(z.oindex[ortho], _orthogonal(src, ortho))
    _same(z.get_orthogonal_selection(ortho), _orthogonal(src, ortho))
    coords = tuple(np.array([0, n - 1, n // 2, -1]) for n in shape)
    _same(z.vindex[coords], src[coords])
    mask = (np.arange(src.size) % 7 == 3).reshape(shape)
    _same(z.get_mask_selection(mask), src[mask])
    blocks = tuple(slice(0, 1) if i % 2 else -1 for i in range(len(shape)))
    _same(z.blocks[blocks], _block_reference(src, grid_chunks, blocks))


# ----------------------------------------------------------------- C-Blosc2 DELTA and threads


@pytest.mark.parametrize("first", ["shuffle", "bitshuffle", "bytedelta"])
def test_delta_after_another_filter_decodes_on_one_thread(first: str) -> None:
    """C-Blosc2 3.3 undoes DELTA against the first block of its output; on 2+ threads it read
    that block while another thread was still writing it when a filter runs before DELTA: a
    ``["shuffle", "delta"]`` chunk decoded wrong about 1 time in 10 with ``nthreads=2`` (and
    with the default ``nthreads=1`` on a lone read of >= 1 MiB, which uses every core),
    silently. Only ``["delta", "delta"]`` was decoded on one thread; now any DELTA is."""
    x = np.arange(64)[None, None, :] + np.arange(35)[None, :, None] + np.zeros((64, 1, 1))
    x = x.astype("u2")
    # b2store refuses to encode a delta after another filter (tests/codecs/test_b2nd.py): such
    # chunks come from other writers, here python-blosc2 itself
    filters = [getattr(blosc2.Filter, first.upper()), blosc2.Filter.DELTA]
    frame = blosc2.asarray(
        x,
        chunks=x.shape,
        blocks=(16, 35, 37),
        cparams={"codec": blosc2.Codec.LZ4, "filters": filters, "filters_meta": [0, 0]},
    ).to_cframe()
    two = B2nd(nthreads=2)
    for _ in range(40):  # failed in >95% of runs of this loop before the fix
        _same(np.asarray(two.decode(frame)).reshape(x.shape), x)
    store = zarr.storage.MemoryStore()
    z = _array(store, x, x.shape, cname="lz4", filters=["delta"], blocks=[16, 35, 37], nthreads=2)
    sync(store.set("c/0/0/0", default_buffer_prototype().buffer.from_bytes(frame)))
    for _ in range(20):
        _same(zarr.open_array(store, mode="r")[...], x)
    _same(z[3:60, 1:30, ::3], x[3:60, 1:30, ::3])  # DELTA: partial decoding decodes it all


# ------------------------------------------------------ selections the codec gets directly


def _direct(shape: tuple[int, ...], blocks: list[int]) -> tuple[np.ndarray, Any, Any, Any]:
    src = np.random.default_rng(9).integers(-999, 999, shape, dtype="i2")  # > 4 KiB stored
    store = zarr.storage.MemoryStore()
    z = _array(store, src, shape, blocks=blocks, cname="lz4")
    codec = z.metadata.codecs[0]
    spec = ArraySpec(  # (ArrayV3Metadata.get_chunk_spec is gone in zarr 3.4)
        shape=shape,
        dtype=parse_dtype(src.dtype, zarr_format=3),
        fill_value=0,
        config=ArrayConfig.from_dict({}),
        prototype=_PROTO,
    )
    return src, codec, spec, StorePath(store, "c/" + "/".join("0" * len(shape)))


@pytest.mark.parametrize(
    "sel",
    [
        (slice(None, None, -1), slice(2, 30, 3), slice(None)),
        (slice(None, None, -1), np.array([3, 0, 17, -1]), slice(None)),  # was broadcast: error
        (-10, slice(33, 19, 1), slice(None, None, -1)),  # was (15, 0), not (0, 15)
        (np.array([1, -8, 5]), 4, slice(7, None, -7)),  # was (3,) (coordinates), not (3, 2)
        (slice(-1, 4, -7), slice(None), slice(None)),  # empty: a normalised -1 start wrapped
        (slice(20, 2, -5), np.arange(36) % 5 == 0, 3),
        (slice(4, 0, -2), slice(30, 1, -7), slice(17, 2, -3)),
    ],
)
def test_partial_decode_of_negative_steps_with_other_indices(sel: tuple[Any, ...]) -> None:
    """zarr itself never passes negative steps, but the codec's partial decode takes any numpy
    selection: a negative-step slice became an index array, which then broadcast with the
    selection's other arrays (coordinate semantics: errors, moved axes, wrong shapes)."""
    src, codec, spec, getter = _direct((24, 36, 18), [5, 7, 4])
    got = sync(codec._decode_partial_single(getter, sel, spec)).as_numpy_array()
    _same(got, src[sel])


def _numpy_selection(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """A random numpy selection: slices with steps of either sign, ints, one index array."""
    sel: list[Any] = []
    for n in shape:
        kind = rng.choice(["int", "slice", "slice", "array"])
        if kind == "int":
            sel.append(int(rng.integers(-n, n)))
        elif kind == "slice" or any(isinstance(s, np.ndarray) for s in sel):
            lo, hi = (
                int(v) if rng.random() < 0.8 else None for v in rng.integers(-n - 2, n + 3, 2)
            )
            sel.append(slice(lo, hi, int(rng.choice([-7, -3, -2, -1, 1, 2, 5]))))
        elif rng.random() < 0.5:
            sel.append(rng.integers(-n, n, int(rng.integers(0, 6))))
        else:
            sel.append(rng.random(n) < 0.3)
    return tuple(sel)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(blocks=st.tuples(*(st.integers(1, n) for n in (24, 36, 18))), seed=st.integers(0, 2**32))
def test_hypothesis_direct_partial_decode(blocks: tuple[int, ...], seed: int) -> None:
    """Random numpy selections on one chunk, through the codec's partial decode."""
    src, codec, spec, getter = _direct((24, 36, 18), list(blocks))
    rng = np.random.default_rng(seed)
    for _ in range(10):
        sel = _numpy_selection(rng, src.shape)
        got = sync(codec._decode_partial_single(getter, sel, spec)).as_numpy_array()
        _same(got, src[sel])


# ----------------------------------------------------------------- the zarr differential

_DTYPES = ["u1", "i2", "u4", "i8", "f2", "f4", "f8", "bool", "c8", "S5", "U3", "M8[s]"]
_FILTERS: list[list[Any]] = [
    ["shuffle"],
    ["bitshuffle"],
    ["shuffle", "bytedelta"],
    [],
    ["delta"],
    ["delta", "shuffle"],
]


@st.composite
def _layouts(draw: Any) -> tuple[np.ndarray, tuple[int, ...], list[int] | None, list[Any]]:
    dtype = draw(st.sampled_from(_DTYPES))
    ndim = draw(st.integers(1, 4))
    side = {1: 6000, 2: 80, 3: 20, 4: 9}[ndim]
    shape = tuple(
        draw(st.one_of(st.integers(side // 2, side), st.sampled_from([1, 0]))) for _ in range(ndim)
    )
    chunks = tuple(draw(st.integers(max(n // 4, 1), max(n, 1))) for n in shape)  # <= 4**ndim
    blocks = None if draw(st.booleans()) else [draw(st.integers(1, c)) for c in chunks]
    filters = draw(st.sampled_from(_FILTERS))
    return _data(dtype, shape, draw(st.integers(0, 3))), chunks, blocks, filters


def _selection(draw: Any, shape: tuple[int, ...], grid: tuple[int, ...]) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["basic", "oindex", "vindex", "mask", "blocks"]))
    if 0 in shape and kind in ("vindex", "blocks"):
        kind = "basic"
    if kind == "basic":
        parts: list[Any] = []
        for n in shape:
            step = st.one_of(st.none(), st.integers(1, 7))
            bound = st.one_of(st.none(), st.integers(-n, n))
            one = st.builds(slice, bound, bound, step)
            parts.append(draw(st.integers(-n, n - 1) | one if n else one))
        cut = draw(st.integers(0, len(parts)))
        return kind, (*parts[:cut], Ellipsis) if cut < len(parts) else tuple(parts)
    if kind == "oindex":
        ortho: list[Any] = []
        for n in shape:
            # (zarr 3.1.6 itself raises IndexError for a bool array over an empty dimension)
            pick = draw(st.sampled_from(["slice"] + (["bool", "int", "ints"] if n else [])))
            if pick == "slice":
                ortho.append(slice(draw(st.integers(0, n)), None, draw(st.integers(1, 4))))
            elif pick == "bool":
                ortho.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool))
            elif pick == "int":
                ortho.append(draw(st.integers(-n, n - 1)))
            else:
                ints = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5))
                ortho.append(np.array(ints, int))
        return kind, tuple(ortho)
    if kind == "vindex":
        k = draw(st.integers(0, 6))
        return kind, tuple(
            np.array(draw(st.lists(st.integers(-n, n - 1), min_size=k, max_size=k)), int)
            for n in shape
        )
    if kind == "mask":
        seed = draw(st.integers(0, 2**16))
        return kind, np.random.default_rng(seed).random(shape) < 0.2
    return kind, tuple(
        draw(st.integers(-g, g - 1)) if draw(st.booleans()) else slice(0, draw(st.integers(1, g)))
        for g in grid
    )


def _reference(src: np.ndarray, grid_chunks: tuple[int, ...], kind: str, sel: Any) -> np.ndarray:
    if kind == "oindex":
        return _orthogonal(src, sel)
    if kind == "blocks":
        return np.asarray(_block_reference(src, grid_chunks, sel))
    return np.asarray(src[sel], dtype=src.dtype)


def _read(z: Any, kind: str, sel: Any) -> Any:
    return {
        "basic": z.get_basic_selection,
        "oindex": z.get_orthogonal_selection,
        "vindex": z.get_coordinate_selection,
        "mask": z.get_mask_selection,
        "blocks": z.get_block_selection,
    }[kind](sel)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(layout=_layouts(), sharded=st.booleans(), data=st.data())
def test_hypothesis_selections_match_numpy(layout: Any, sharded: bool, data: Any) -> None:
    src, chunks, blocks, filters = layout
    shards = None
    if sharded and 0 not in src.shape and src.dtype.kind != "V":
        shards = tuple(c * data.draw(st.integers(1, 2)) for c in chunks)
    z = _array(
        zarr.storage.MemoryStore(),
        src,
        chunks,
        shards,
        blocks=blocks,
        filters=filters,
        cname=data.draw(st.sampled_from(["lz4", "zstd"])),
    )
    grid_chunks = shards or chunks  # zarr's blocks are shards when sharded
    grid = tuple(max(1, -(-n // c)) for n, c in zip(src.shape, grid_chunks, strict=True))
    for _ in range(4):
        kind, sel = _selection(data.draw, src.shape, grid)
        _same(_read(z, kind, sel), _reference(src, grid_chunks, kind, sel))


def _stores(tmp_path: Path) -> dict[str, Any]:
    return {
        "local": zarr.storage.LocalStore(tmp_path / "local"),
        "fsspec-memory": zarr.storage.FsspecStore.from_url(f"memory://{tmp_path.name}/m"),
        "fsspec-file": zarr.storage.FsspecStore.from_url(
            (tmp_path / "f").as_uri(), storage_options={"auto_mkdir": True}
        ),
        "zip": zarr.storage.ZipStore(tmp_path / "a.zip", mode="w"),
    }


@pytest.mark.parametrize("store_kind", ["local", "fsspec-memory", "fsspec-file", "zip"])
@pytest.mark.parametrize("shards", [None, (24, 30, 40)])
def test_every_selection_kind_on_real_stores(
    store_kind: str, shards: tuple[int, ...] | None, tmp_path: Path
) -> None:
    """Ranged reads (get, get_partial_values) of each store; blocks that do not divide."""
    src = _data("f4", (47, 59, 40), seed=5)
    store = _stores(tmp_path)[store_kind]
    _array(store, src, (12, 30, 20), shards, blocks=[5, 7, 20], filters=["bitshuffle"])
    if store_kind == "zip":
        store.close()
        store = zarr.storage.ZipStore(tmp_path / "a.zip", mode="r")
    z = zarr.open_array(store, mode="r")
    _check_every_kind(z, src, shards or (12, 30, 20))


@pytest.mark.parametrize(
    "config", [{"async.concurrency": 1, "threading.max_workers": 1}, {"async.concurrency": 512}]
)
def test_selections_with_zarr_concurrency_settings(config: dict[str, int]) -> None:
    src = _data("i4", (40, 64, 30), seed=2)
    with zarr.config.set(config):
        z = _array(
            zarr.storage.MemoryStore(),
            src,
            (20, 32, 30),
            (40, 64, 30),
            blocks=[4, 9, 30],
            nthreads=2,
        )
        _check_every_kind(z, src, (40, 64, 30))


@pytest.mark.parametrize("spec", [{"max_abs_error": 7}, {"max_rel_error": 1e-3}])
def test_itrunc_inside_b2nd_partial_reads_equal_whole_reads(spec: dict[str, Any]) -> None:
    src = _data("f4" if "max_rel_error" in spec else "i4", (30, 70, 33), seed=4) * 37
    z = _array(
        zarr.storage.MemoryStore(),
        src,
        (30, 70, 33),
        blocks=[7, 16, 33],
        filters=[{"id": "itrunc", **spec}, "shuffle"],
    )
    whole = z[...]
    err = np.abs(whole.astype("f8") - src.astype("f8"))
    bound = spec.get("max_abs_error", 0) + spec.get("max_rel_error", 0) * np.abs(src)
    assert (err <= bound).all()
    _check_every_kind(z, whole, (30, 70, 33))


@codec_checks.requires_hdf5plugin
@pytest.mark.parametrize(
    ("dtype", "shape", "chunks"),
    [
        ("u2", (40, 70, 33), (17, 70, 20)),
        ("f8", (90, 100), (64, 45)),
        ("i1", (9, 9, 9, 40), (4, 9, 5, 40)),
    ],
)
def test_hdf5plugin_blosc2_chunks_through_b2h5(
    dtype: str, shape: tuple[int, ...], chunks: tuple[int, ...], tmp_path: Path
) -> None:
    """hdf5plugin's b2nd frames (full-size edge chunks, its own blocks), read as h5py reads."""
    import h5py
    import hdf5plugin

    src = _data(dtype, shape, seed=3)
    path = tmp_path / "b.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=src, chunks=chunks, **hdf5plugin.Blosc2(cname="zstd"))
    with h5py.File(path) as f:
        ref = f["d"][...]
    group = zarr.open_group(
        f"b2h5::{path}", mode="r", storage_options={"skip_instance_cache": True}
    )
    _check_every_kind(group["d"], ref, chunks)


def test_partial_plan_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases above do go through block-level partial decoding (not only whole chunks)."""
    src = _data("u2", (64, 256), seed=1)
    z = _array(zarr.storage.MemoryStore(), src, (64, 256), blocks=[8, 64])
    calls = []
    real = _b2nd_partial._PartialPlan.decode_blocks

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_b2nd_partial._PartialPlan, "decode_blocks", spy)
    _same(z.oindex[[3, 60], [0, 255]], src[np.ix_([3, 60], [0, 255])])
    assert calls == [[0, 3, 28, 31]]
