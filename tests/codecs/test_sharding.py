"""b2store's Zarr v3 codecs inside shards (``shards=``): round trips, small reads, edge shards,
fill values, a fresh interpreter, and arrays refused at creation on every zarr version."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import codec_checks as common  # tests/codecs is on sys.path (see codec_checks)
import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.codecs import ShardingCodec

from b2store.codecs.zarr3 import B2ndCodec, GrokCodec, ITruncCodec
from b2store.errors import CodecError

requires_blosc2_j2k = common.requires_blosc2_j2k

DATA = (np.add.outer(np.arange(37), np.arange(53)) * 37 % 1000).astype("u2")
SELECTIONS: list[Any] = [
    (slice(3, 7), slice(12, 15)),
    (36, slice(None)),
    (slice(None), 52),
    (slice(19, 21), slice(29, 31)),  # across four inner chunks of two shards
    (slice(None, None, 3), slice(1, None, 7)),
]


def sharded(serializer: Any, filters: Any = (), **kwargs: Any) -> tuple[Any, zarr.Array]:
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store, shape=DATA.shape, chunks=(10, 10), shards=(20, 30), dtype="u2",
        serializer=serializer, filters=list(filters), compressors=None, **kwargs,
    )  # fmt: skip
    z[...] = DATA
    return store, zarr.open_array(store, mode="r")


@pytest.mark.parametrize(
    "serializer",
    [
        B2ndCodec(blocks=(4, 4)),
        {"name": "b2store.b2nd", "configuration": {"blocks": [4, 4], "clevel": 3}},
        {"name": "b2store.b2nd"},
    ],
    ids=["object", "dict", "name-only"],
)
def test_b2nd_inside_shards_reads_small_selections_and_edges(serializer: Any) -> None:
    _, z = sharded(serializer)
    np.testing.assert_array_equal(z[...], DATA)
    for sel in SELECTIONS:
        np.testing.assert_array_equal(z[sel], DATA[sel])
    np.testing.assert_array_equal(z.oindex[[0, 5, 36], [1, 52]], DATA[np.ix_([0, 5, 36], [1, 52])])


@pytest.mark.parametrize("write_empty", [True, False])
def test_fill_value_and_write_empty_chunks_inside_shards(write_empty: bool) -> None:
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store, shape=DATA.shape, chunks=(10, 10), shards=(20, 30), dtype="u2",
        serializer=B2ndCodec(), compressors=None, fill_value=3,
        config={"write_empty_chunks": write_empty},
    )  # fmt: skip
    z[0:5, 0:5] = 9
    expected = np.full(DATA.shape, 3, "u2")
    expected[0:5, 0:5] = 9
    reopened = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(reopened[...], expected)
    np.testing.assert_array_equal(reopened[2:12, 3:13], expected[2:12, 3:13])


def test_itrunc_filter_inside_shards_keeps_its_bound() -> None:
    as_dict = {"name": "b2store.itrunc", "configuration": {"max_abs_error": 15}}
    for filt in (ITruncCodec(max_abs_error=15), as_dict):
        _, z = sharded({"name": "b2store.b2nd"}, [filt])
        err = DATA.astype(int) - z[...]
        assert err.min() >= 0
        assert err.max() <= 15


@requires_blosc2_j2k
def test_grok_inside_shards_lossless() -> None:
    img = (np.add.outer(np.arange(40), np.arange(70)) * 50).astype("u2")
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store, shape=img.shape, chunks=(20, 35), shards=(40, 70), dtype="u2",
        serializer=GrokCodec(), compressors=None,
    )  # fmt: skip
    z[...] = img
    np.testing.assert_array_equal(zarr.open_array(store, mode="r")[3:25, 30:40], img[3:25, 30:40])


def test_sharded_array_reopens_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """The entry points resolve the inner codec in a process that never imported b2store."""
    path = tmp_path / "s.zarr"
    z = zarr.create_array(
        str(path), shape=DATA.shape, chunks=(10, 10), shards=(20, 30), dtype="u2",
        serializer=B2ndCodec(blocks=(4, 4)), filters=[ITruncCodec(bits=0)], compressors=None,
    )  # fmt: skip
    z[...] = DATA
    code = f"""
        import sys, zarr
        assert "b2store" not in sys.modules
        z = zarr.open_array({str(path)!r}, mode="r")
        print(int(z[...].astype("u8").sum()), int(z[19:21, 29:31].astype("u8").sum()))
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    full, part = map(int, out.stdout.split())
    assert full == int(DATA.astype("u8").sum())
    assert part == int(DATA[19:21, 29:31].astype("u8").sum())


@pytest.mark.parametrize(
    ("dtype", "serializer", "filters", "match"),
    [
        (">u2", B2ndCodec(), [], "big-endian"),
        ("u2", B2ndCodec(blocks=(2,)), [], r"blocks: Expected 2 dimensions.*has 1"),
        ("bool", B2ndCodec(filters=[{"id": "itrunc", "bits": 1}]), [], "not bool"),
        ("bool", B2ndCodec(), [ITruncCodec(bits=1)], "not bool"),
        pytest.param("i4", "grok", [], "uint8, uint16", marks=requires_blosc2_j2k),
        pytest.param("i2", "grok-lossy", [], "signed", marks=requires_blosc2_j2k),
    ],
)
def test_unwritable_inner_codecs_are_refused_before_zarr_json(
    dtype: str, serializer: Any, filters: list[Any], match: str
) -> None:
    """zarr < 3.2 never validates the codecs inside a shard: these arrays were created (their
    zarr.json written) and refused only at the first write."""
    if serializer == "grok":
        serializer = GrokCodec()
    elif serializer == "grok-lossy":
        serializer = GrokCodec(ratio=5)
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match=match):
        zarr.create_array(
            store, shape=(32, 32), chunks=(16, 16), shards=(32, 32), dtype=dtype,
            serializer=serializer, filters=filters, compressors=None,
        )  # fmt: skip
    assert not store


@requires_blosc2_j2k
def test_grok_needs_2d_inner_chunks_at_creation() -> None:
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match="2-D images"):
        zarr.create_array(
            store, shape=(64,), chunks=(32,), shards=(64,), dtype="u2",
            serializer=GrokCodec(), compressors=None,
        )  # fmt: skip
    assert not store


def test_b2nd_as_a_sharding_index_codec_is_a_clear_error() -> None:
    """zarr 3.1 asked for the encoded size and showed a bare NotImplementedError."""
    with pytest.raises((NotImplementedError, ValueError), match="index"):  # 3.2+: ValueError
        codec = ShardingCodec(chunk_shape=(5, 5), codecs=[B2ndCodec()], index_codecs=[B2ndCodec()])
        z = zarr.create_array(
            {}, shape=(10, 10), chunks=(10, 10), dtype="u2", serializer=codec, compressors=None
        )
        z[...] = 1
        z[...]  # reading a shard locates its index by the index's encoded size


def test_nested_shards_with_b2nd_inside() -> None:
    inner = ShardingCodec(chunk_shape=(5, 5), codecs=[B2ndCodec(blocks=(2, 2))])
    outer = ShardingCodec(chunk_shape=(10, 10), codecs=[inner], index_location="start")
    data = (np.arange(1600).reshape(40, 40) * 7 % 301).astype("u2")
    store = zarr.storage.MemoryStore()
    z = zarr.create_array(
        store, shape=data.shape, chunks=(20, 20), dtype="u2", serializer=outer, compressors=None
    )
    z[...] = data
    reopened = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(reopened[3:17, 11], data[3:17, 11])
    meta = json.loads(store._store_dict["zarr.json"].to_bytes())
    assert meta["codecs"][0]["configuration"]["codecs"][0]["configuration"]["codecs"][0][
        "name"
    ] == ("b2store.b2nd")
