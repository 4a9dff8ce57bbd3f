"""Zarr v3 arrays ``b2store.grok`` can never write are refused when they are created.

``b2store.grok`` refuses dtypes and ranks the JPEG 2000 plugin cannot read back (floats,
uint32, bool, big-endian, 1-D, lossy signed); it used to do so only on the first write, after
``zarr.json`` had been written, leaving an array nobody could fill. ``GrokCodec.validate`` now
raises :class:`~b2store.errors.CodecError` before anything is stored, and arrays that work are
still created and reopened.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr

from b2store.codecs.zarr3 import B2ndCodec, GrokCodec
from b2store.errors import CodecError


@pytest.mark.parametrize(
    ("dtype", "shape", "serializer", "match"),
    [
        ("f4", (32, 32), {"name": "b2store.grok"}, "uint8, uint16, int8 and int16"),
        ("u4", (32, 32), {"name": "b2store.grok"}, "uint8, uint16, int8 and int16"),
        ("bool", (32, 32), {"name": "b2store.grok"}, "uint8, uint16, int8 and int16"),
        (">u2", (32, 32), {"name": "b2store.grok"}, "big-endian"),
        ("u2", (32,), {"name": "b2store.grok"}, "2-D images"),
        ("i2", (32, 32), {"name": "b2store.grok", "configuration": {"ratio": 5}}, "signed"),
    ],
)
def test_unwritable_grok_arrays_are_refused_at_creation(
    dtype: str, shape: tuple[int, ...], serializer: dict[str, Any], match: str
) -> None:
    store: dict[str, Any] = {}
    with pytest.raises(CodecError, match=match):
        zarr.create_array(
            store=store,
            shape=shape,
            chunks=tuple(16 for _ in shape),
            dtype=dtype,
            serializer=serializer,
            compressors=None,
        )
    assert not store  # no zarr.json left behind


@pytest.mark.parametrize(
    ("dtype", "serializer"),
    [("<u2", B2ndCodec()), ("f8", B2ndCodec()), ("u2", GrokCodec()), ("i2", GrokCodec())],
)
def test_writable_arrays_are_created_and_reopened(dtype: str, serializer: Any) -> None:
    store: dict[str, Any] = {}
    z = zarr.create_array(
        store=store, shape=(40, 37), chunks=(32, 32), dtype=dtype, serializer=serializer,
        compressors=None,
    )  # fmt: skip
    data = (np.arange(40 * 37).reshape(40, 37) % 200).astype(dtype)
    z[...] = data
    np.testing.assert_array_equal(zarr.open_array(store=store)[...], data)
