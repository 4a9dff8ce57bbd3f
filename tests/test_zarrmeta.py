"""The shared metadata model renders Zarr v2 and v3 hierarchies that zarr and xarray open as-is."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from b2store._zarrmeta import ArrayMeta, GroupMeta, bytes_codec, render_v2, render_v3

NODES = {
    "": GroupMeta(attributes={"title": "t", "nan": float("nan"), "arr": np.arange(2)}),
    "g": GroupMeta(),
    "g/a": ArrayMeta(
        shape=(5, 4),
        chunks=(2, 4),
        dtype=np.dtype(">i4"),
        fill_value=-1,
        v2_fill_value=-1,
        attributes={"units": "m", "scale": np.float32(0.5)},
        dimension_names=("y", "x"),
    ),
    "s": ArrayMeta(shape=(3,), chunks=(3,), dtype=np.dtype("|S6"), fill_value=b""),
    "c": ArrayMeta(shape=(2,), chunks=(2,), dtype=np.dtype([("a", "<i2"), ("b", "<f4")])),
}


def _store(keys: dict[str, bytes], chunk_key: str, chunk: bytes) -> MemoryStore:
    store = MemoryStore()
    proto = default_buffer_prototype()

    async def fill() -> None:
        for k, v in {**keys, chunk_key: chunk}.items():
            await store.set(k, proto.buffer.from_bytes(v))

    asyncio.run(fill())
    return store


@pytest.mark.parametrize(
    ("zarr_format", "render", "chunk_key"),
    [
        (3, render_v3, "g/a/c/0/0"),
        (2, render_v2, "g/a/0.0"),
    ],
)
def test_hierarchy_opens_consolidated(zarr_format, render, chunk_key) -> None:
    data = np.arange(8, dtype=">i4").reshape(2, 4)
    store = _store(render(NODES), chunk_key, data.tobytes())
    root = zarr.open_consolidated(store, mode="r", zarr_format=zarr_format)
    assert root.attrs["title"] == "t"
    assert np.isnan(root.attrs["nan"])
    a = root["g/a"]
    expected = np.full((5, 4), -1, dtype=">i4")
    expected[:2] = data
    np.testing.assert_array_equal(a[:], expected)
    assert a.attrs["units"] == "m"
    assert root["s"][:].tolist() == [b"", b"", b""]
    assert root["c"].dtype.names == ("a", "b")


def test_xarray_sees_dimension_names() -> None:
    xr = pytest.importorskip("xarray")
    for render in (render_v3, render_v2):
        store = _store(render(NODES), "unused", b"")
        ds = xr.open_zarr(store, group="g", consolidated=True)
        assert ds["a"].dims == ("y", "x")


def test_v3_consolidated_inline_in_every_group() -> None:
    keys = render_v3(NODES)
    root = json.loads(keys["zarr.json"])
    assert set(root["consolidated_metadata"]["metadata"]) == {"g", "g/a", "s", "c"}
    sub = json.loads(keys["g/zarr.json"])
    assert set(sub["consolidated_metadata"]["metadata"]) == {"a"}


def test_bytes_codec_endianness() -> None:
    assert bytes_codec(np.dtype(">f8")) == {"name": "bytes", "configuration": {"endian": "big"}}
    assert bytes_codec(np.dtype("<u2"))["configuration"]["endian"] == "little"
    assert bytes_codec(np.dtype("u1")) == {"name": "bytes"}


def test_mismatched_chunks_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Expected chunks with 2 dimensions"):
        ArrayMeta(shape=(2, 3), chunks=(2,), dtype=np.dtype("u1"))
