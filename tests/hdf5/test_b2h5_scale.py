"""Scale hunt (session 15): big trees, deep nesting, many chunks. Moderate sizes; every
assertion is on results, sizes or call counts, never on timings."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest
import zarr

from b2store import _zarrmeta
from b2store._zarrmeta import ArrayMeta, GroupMeta, render_v2, render_v3
from b2store.hdf5._chunk_rows import ChunkCollector, chunk_rows

DEPTH = 30
NAME = '\U0001f600"q\\'  # escaped in JSON as 12 + 2 + 2 characters
ATTR = "x" * 20_000


def _deep(path: Path) -> Path:
    """A chain of DEPTH nested groups, the innermost dataset with a 20 kB attribute."""
    with h5py.File(path, "w") as f:
        g: h5py.Group = f
        for k in range(DEPTH):
            g = g.create_group(f"l{k}é")
            g.attrs["level"] = k
        d = g.create_dataset("d", data=np.arange(4, dtype="i4"))
        d.attrs["big"] = ATTR
    return path


def _chain(k: int) -> str:
    return "/".join(f"l{i}é" for i in range(k))


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_deep_tree_metadata_is_linear(tmp_path: Path, zarr_format: int) -> None:
    """Every group's consolidated document held its whole subtree: a node's metadata once per
    enclosing group (a 100-level tree of 600 small datasets made 15 MB at open, 48 000
    datasets in 50-level chains 565 MB). Each node's document is now stored once (sidecar
    size) and groups' documents are assembled on request, the same as before."""
    path = _deep(tmp_path / "deep.h5")
    side = tmp_path / "side"
    fs = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format, index_cache=str(side))
    (sidecar,) = side.iterdir()
    assert sidecar.stat().st_size < 4 * len(ATTR)  # was > DEPTH * len(ATTR)
    name = "zarr.json" if zarr_format == 3 else ".zmetadata"
    for k in (0, 1, DEPTH // 2, DEPTH):
        key = f"{_chain(k)}/{name}" if k else name
        doc = fs.cat_file(key)
        assert fs.info(key)["size"] == len(doc)
        below = json.loads(doc)["metadata" if zarr_format == 2 else "consolidated_metadata"]
        if zarr_format == 3:
            below = below["metadata"]
        rel = "/".join(f"l{i}é" for i in range(k, DEPTH)) + "/d"
        if zarr_format == 3:
            assert below[rel.lstrip("/")]["attributes"]["big"] == ATTR
        else:
            assert json.loads(json.dumps(below[rel.lstrip("/") + "/.zattrs"]))["big"] == ATTR
    again = fsspec.filesystem("b2h5", fo=str(path), zarr_format=zarr_format, index_cache=str(side))
    from b2store.hdf5 import cache

    cache_key = next(iter(side.iterdir()))
    assert cache_key == sidecar
    assert dict(again.index.meta) == dict(fs.index.meta)
    assert dict(pickle.loads(pickle.dumps(fs.index.meta))) == dict(fs.index.meta)
    assert cache.FORMAT.endswith("21") or int(cache.FORMAT.rsplit("-", 1)[1]) > 21
    g = zarr.open_group(
        f"b2h5::{path}",
        mode="r",
        path=_chain(DEPTH // 2),
        storage_options={"zarr_format": zarr_format},
        use_consolidated=True,
    )
    d = g[_chain(DEPTH)[len(_chain(DEPTH // 2)) + 1 :] + "/d"]
    assert d.attrs["big"] == ATTR
    np.testing.assert_array_equal(d[:], [0, 1, 2, 3])


def test_rendered_keys_match_a_full_render() -> None:
    """The assembled documents equal the full subtree, with escapes in names, and their sizes
    (from prefix sums) equal their lengths."""
    a = ArrayMeta(shape=(3,), chunks=(3,), dtype=np.dtype("f8"), attributes={"u": "\U0001f600"})
    nodes = {
        "": GroupMeta(attributes={"t": "é"}),
        "g": GroupMeta(),
        "g/a": a,
        "g/é x": GroupMeta(attributes={"a": [1, 2]}),
        f"g/é x/{NAME}": a,
        "g/é x/b": a,
        "g-b": GroupMeta(),
        "g-b/z": a,
        "h": a,
    }
    for render in (render_v3, render_v2):
        meta = render(nodes)
        for key in meta:
            assert meta.size(key) == len(meta[key]), key
            json.loads(meta[key])
        if render is render_v3:
            inner = json.loads(meta["g/é x/zarr.json"])["consolidated_metadata"]["metadata"]
            assert sorted(inner) == ["b", '\U0001f600"q\\']
            root = json.loads(meta["zarr.json"])["consolidated_metadata"]["metadata"]
            assert sorted(root) == sorted(p for p in nodes if p)
        else:
            inner = json.loads(meta["g/é x/.zmetadata"])["metadata"]
            assert sorted(inner) == sorted(
                [
                    ".zattrs",
                    ".zgroup",
                    "b/.zarray",
                    "b/.zattrs",
                    *(f"{NAME}/.z{x}" for x in ("array", "attrs")),
                ]
            )


def test_zarr_dtype_looked_up_once_per_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    """zarr's data type lookup (about 0.3 ms, it tries every registered type) ran twice per
    array: a third of the open of a file with thousands of small datasets."""
    import zarr.core.dtype as zdt

    calls = []
    real = zdt.get_data_type_from_native_dtype

    def counting(dtype: object) -> object:
        calls.append(dtype)
        return real(dtype)  # type: ignore[arg-type]

    monkeypatch.setattr(zdt, "get_data_type_from_native_dtype", counting)
    for cache in ("_ZDTYPES", "_SCALARS", "_DTYPE_JSON"):  # filled by earlier tests
        monkeypatch.setattr(_zarrmeta, cache, {})
    nodes = {
        f"a{i}": ArrayMeta(shape=(2,), chunks=(2,), dtype=np.dtype("<i2" if i % 2 else ">f8"))
        for i in range(200)
    }
    for render in (render_v3, render_v2):
        meta = render(nodes)
        assert json.loads(meta["a1/zarr.json" if render is render_v3 else "a1/.zarray"])
    assert len(calls) == 2


def _grid_file(path: Path) -> tuple[Path, set[str]]:
    """A sparse 3-D chunk grid (chunks (1, 1, 1)) and the v3 chunk keys HDF5 allocated."""
    rng = np.random.default_rng(5)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", shape=(40, 30, 20), chunks=(1, 1, 1), dtype="u1")
        pts = rng.integers(0, (40, 30, 20), size=(3000, 3))
        for p in pts:
            d[tuple(p)] = 1
        infos: list[object] = []
        d.id.chunk_iter(infos.append)
    keys = {"d/c/{}/{}/{}".format(*i.chunk_offset) for i in infos}  # type: ignore[attr-defined]
    return path, keys


def test_chunk_directories_list_by_bisection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ls of an array's chunk directory scanned every chunk for each child (info() of each):
    a minute for ``c/`` of a 500 x 500 chunk grid, and ``find`` of it never ended. The
    listing is exact and the chunk grid's sorted indices are computed once."""
    path, keys = _grid_file(tmp_path / "grid.h5")
    calls = []
    real = np.unravel_index

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[call-overload]

    fs = fsspec.filesystem("b2h5", fo=str(path))
    monkeypatch.setattr(np, "unravel_index", counting)
    found = set(fs.find("d/c"))
    top = fs.ls("d/c", detail=True)
    assert found == keys
    assert len(calls) <= 1  # was one per directory (hundreds)
    assert {e["name"] for e in top} == {k.rsplit("/", 2)[0] for k in keys}
    assert all(e["type"] == "directory" for e in top)
    some = sorted(keys)[0]
    row, col = some.split("/")[2:4]
    assert fs.ls(f"d/c/{row}/{col}", detail=False) == sorted(
        k for k in keys if k.startswith(f"d/c/{row}/{col}/")
    )
    assert fs.isdir(f"d/c/{row}") and not fs.exists("d/c/40") and not fs.exists("d/c/x")
    rows = {k.split("/")[2] for k in keys}
    assert fs.ls("d/c", detail=False) == sorted(f"d/c/{r}" for r in rows)


def test_chunk_collector_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chunk_iter's records are kept as arrays every BATCH records (a list of them held about
    300 bytes per chunk at open: 300 MB for 10^6 chunks); the rows are those HDF5 lists."""
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", shape=(9, 50), chunks=(2, 3), dtype="i4", compression="gzip")
        d[::2, 5:40] = np.arange(35)
        infos: list[object] = []
        d.id.chunk_iter(infos.append)
    want = chunk_rows(infos, (2, 3), (5, 17))
    monkeypatch.setattr(ChunkCollector, "BATCH", 7)
    c = ChunkCollector()
    for info in infos:
        c(info)
        assert len(c._batch) < 7
    assert len(c) == len(infos) > 7
    for got, exp in zip(c.rows((2, 3), (5, 17)), want, strict=True):
        np.testing.assert_array_equal(got, exp)
    with h5py.File(path) as f:
        expected = f["d"][...]
    g = zarr.open_group(f"b2h5::{path}", mode="r")
    np.testing.assert_array_equal(g["d"][...], expected)
    empty = ChunkCollector().rows((2, 3), (5, 17))
    assert [a.size for a in empty] == [0, 0, 0, 0]
