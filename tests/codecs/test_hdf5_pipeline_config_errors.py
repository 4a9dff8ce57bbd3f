"""Bad ``b2store_hdf5`` configs raise errors naming the codec and the key, and are never
silently coerced.

Before: an id or cd_value that was not an integer raised Python's bare ``invalid literal for
int()`` (no codec, no key), a float cd_value was truncated (``1.7`` -> ``1``), an object
dtype was accepted (decoding then failed inside numpy), and encoding with cd_values the filter
library refuses raised that library's bare error (``zlib.error``, not a ``ValueError``).
"""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np
import pytest

from b2store.codecs.hdf5_pipeline import HDF5Pipeline
from b2store.codecs.hdf5_zarr3 import HDF5PipelineCodec

F1 = [{"id": 1}]
BAD_CONFIGS = [
    ({"filters": [{"id": "abc"}]}, TypeError, r"b2store_hdf5: filters\[0\]\.id: Expected an int"),
    ({"filters": [*F1, {"id": True}]}, TypeError, r"filters\[1\]\.id: Expected an integer"),
    ({"filters": [{"id": 1, "cd_values": "x"}]}, TypeError, r"\[0\]\.cd_values: Expected a list"),
    ({"filters": [{"id": 1, "cd_values": [1.7]}]}, TypeError, r"cd_values\[0\]: .* Got 1\.7"),
    ({"filters": F1, "chunkshape": "ab"}, TypeError, r"b2store_hdf5: chunkshape: Expected a list"),
    ({"filters": F1, "chunkshape": [4.5]}, TypeError, r"chunkshape\[0\]: Expected an integer"),
    ({"filters": F1, "chunkshape": [-1]}, ValueError, r"b2store_hdf5: chunkshape: .*non-negative"),
    ({"filters": F1, "dtype": "O"}, ValueError, r"b2store_hdf5: dtype: .*fixed-size"),
    ({"filters": F1, "dtype": "zz"}, ValueError, r"b2store_hdf5: dtype: Expected a numpy dtype"),
    ({"filters": F1, "masked": 1}, TypeError, r"b2store_hdf5: masked: Expected a bool"),
    ({"filters": {"id": 1}}, TypeError, r"b2store_hdf5: filters: Expected a list"),
]


@pytest.mark.parametrize(("config", "exc", "match"), BAD_CONFIGS)
def test_bad_config_names_codec_and_key(
    config: dict[str, Any], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        numcodecs.get_codec({"id": "b2store_hdf5", **config})
    with pytest.raises(exc, match=match):  # the Zarr v3 twin checks the same way
        HDF5PipelineCodec.from_dict({"name": "b2store.hdf5", "configuration": config})


def test_numpy_integers_are_accepted() -> None:
    codec = HDF5Pipeline(
        filters=[{"id": np.int64(1), "cd_values": np.array([4], dtype=np.uint32)}],
        dtype="<u2",
        chunkshape=(np.int64(3), 4),
    )
    assert codec.get_config()["filters"][0]["cd_values"] == [4]
    x = np.arange(12, dtype="<u2").reshape(3, 4)
    np.testing.assert_array_equal(codec.decode(codec.encode(x)), x)


@pytest.mark.parametrize(
    ("filt", "name"),
    [
        ({"id": 1, "cd_values": [99]}, "deflate"),
        ({"id": 32001, "cd_values": [2, 2, 2, 0, 5, 9, 9]}, "blosc"),
        ({"id": 32026, "cd_values": [0, 0, 0, 0, 5, 9, 9]}, "blosc2"),
    ],
)
def test_encode_with_cd_values_the_library_refuses(filt: dict[str, Any], name: str) -> None:
    codec = HDF5Pipeline(filters=[filt], dtype="<u2", chunkshape=[100])
    with pytest.raises(ValueError, match=f"b2store_hdf5: cannot encode HDF5 {name} data"):
        codec.encode(np.arange(100, dtype="<u2"))
