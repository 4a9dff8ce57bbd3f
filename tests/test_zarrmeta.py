"""The shared metadata model renders Zarr v2 and v3 hierarchies that zarr and xarray open as-is."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from b2store._zarrmeta import (
    ArrayMeta,
    GroupMeta,
    bytes_codec,
    is_big_endian,
    packed_dtype,
    render_v2,
    render_v3,
)

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
    mixed = np.dtype([("s", "S3"), ("a", "<i2"), ("b", ">f4")])  # any big-endian part counts
    assert bytes_codec(mixed)["configuration"]["endian"] == "big"
    assert bytes_codec(np.dtype([("s", "S3"), ("u", "u1")])) == {"name": "bytes"}


def test_is_big_endian_looks_into_fields_and_subarrays() -> None:
    """One test for caterva2 (transcoding), the hdf5 index (v3 refusal) and bytes_codec."""
    assert is_big_endian(np.dtype(">f8"))
    assert not is_big_endian(np.dtype("<f8")) and not is_big_endian(np.dtype("u1"))
    assert is_big_endian(np.dtype([("a", "<i4"), ("b", ">i2")]))
    assert is_big_endian(np.dtype([("a", [("x", ">u2")])]))
    assert is_big_endian(np.dtype((">i4", (2,))))
    assert not is_big_endian(np.dtype([("a", "<i4"), ("s", "S4")]))
    assert is_big_endian(np.dtype("=f8")) is (not np.little_endian)


def test_byte_order_checks_agree_on_nested_dtypes() -> None:
    """is_big_endian and bytes_codec walk the same fields and sub-arrays, at any depth."""
    nested = np.dtype([("a", "u1"), ("b", [("c", ("S2", (3,))), ("d", (">u2", (2,)))])])
    assert is_big_endian(nested)
    assert bytes_codec(nested) == {"name": "bytes", "configuration": {"endian": "big"}}
    little = np.dtype([("a", "u1"), ("b", [("c", ("S2", (3,))), ("d", ("<u2", (2,)))])])
    assert not is_big_endian(little)
    assert bytes_codec(little) == {"name": "bytes", "configuration": {"endian": "little"}}
    single_bytes = np.dtype([("a", "u1"), ("b", [("c", ("S2", (3,))), ("d", ("i1", (2,)))])])
    assert not is_big_endian(single_bytes) and bytes_codec(single_bytes) == {"name": "bytes"}


def test_packed_dtype() -> None:
    """Zarr's structured types list fields back to back: padding and offset order removed."""
    padded = np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 8]})
    assert padded.itemsize == 16
    assert packed_dtype(padded) == np.dtype([("a", "u1"), ("b", "<f8")])
    shuffled = np.dtype({"names": ["b", "a"], "formats": ["<i4", "<i2"], "offsets": [2, 0]})
    assert packed_dtype(shuffled) == np.dtype([("a", "<i2"), ("b", "<i4")])
    assert packed_dtype(shuffled) != shuffled  # same size, other layout: not Zarr-describable
    plain = np.dtype([("a", "<i2"), ("b", "<i4")])
    assert packed_dtype(plain) == plain
    assert packed_dtype(np.dtype(">f4")) == np.dtype(">f4")


def test_mismatched_chunks_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Expected chunks with 2 dimensions"):
        ArrayMeta(shape=(2, 3), chunks=(2,), dtype=np.dtype("u1"))


def test_consolidated_children_of_a_group_stay_adjacent() -> None:
    """Nodes given in an interleaved order (as a concurrent listing returns them) still give
    consolidated metadata zarr can rebuild: it groups keys with itertools.groupby, which loses
    the children of a group whose keys are not adjacent (KeyError on open)."""
    arr = ArrayMeta(shape=(2,), chunks=(2,), dtype=np.dtype("u1"), fill_value=0)
    nodes = {
        "read/h.h5/grp": GroupMeta(),
        "ra": GroupMeta(),
        "read/h.h5/grp/gz": arr,
        "ra/r": arr,
        "read": GroupMeta(),
        "read/h.h5": GroupMeta(),
        "sub/p": arr,
        "read/d1": arr,
        "sub": GroupMeta(),
        "read/h.h5/b2": arr,
    }
    keys = render_v3(nodes)
    doc = json.loads(keys["zarr.json"])
    g = zarr.open_group(_store(keys, "read/d1/c/0", b"\x07\x08"), mode="r")
    assert doc["consolidated_metadata"]["metadata"].keys() == {k for k in nodes}
    assert isinstance(g["read/h.h5/grp/gz"], zarr.Array)
    assert sorted(k for k, _ in g["read"].members(max_depth=None)) == [
        "d1",
        "h.h5",
        "h.h5/b2",
        "h.h5/grp",
        "h.h5/grp/gz",
    ]
    np.testing.assert_array_equal(g["read/d1"][...], [7, 8])
