"""A ``b2store_b2nd`` filter list takes at most one truncation filter.

Two ``itrunc``/``trunc_prec`` entries both ran, so the coarser one silently broke the error
bound the other stated (``max_abs_error`` 1 and 1000 together gave errors up to 511). Such a
config is now refused with a :class:`~b2store.errors.CodecError` naming the key; one filter
setting both ``max_abs_error`` and ``max_rel_error`` (for mixed datasets) still works.
"""

from __future__ import annotations

from typing import Any

import numcodecs
import numpy as np
import pytest

from b2store.codecs.zarr3 import B2ndCodec
from b2store.errors import CodecError

TWO = [
    [{"id": "itrunc", "max_abs_error": 1}, {"id": "itrunc", "max_abs_error": 1000}],
    [{"id": "itrunc", "bits": 2}, "bitshuffle", {"id": "trunc_prec", "max_rel_error": 0.01}],
]


@pytest.mark.parametrize("filters", TWO)
def test_two_truncation_filters_are_refused(filters: list[Any]) -> None:
    with pytest.raises(CodecError, match=r"b2store_b2nd: filters: .*at most one truncation"):
        numcodecs.get_codec({"id": "b2store_b2nd", "filters": filters})
    with pytest.raises(CodecError, match="at most one truncation"):
        B2ndCodec(filters=filters)


def test_one_filter_for_mixed_datasets_keeps_both_bounds() -> None:
    codec = numcodecs.get_codec(
        {
            "id": "b2store_b2nd",
            "filters": [{"id": "itrunc", "max_abs_error": 7, "max_rel_error": 1e-3}, "shuffle"],
        }
    )
    ints = (np.arange(4000, dtype="u2") * 37).reshape(40, 100)
    got = np.asarray(codec.decode(codec.encode(ints)))
    assert np.abs(got.astype(int) - ints.astype(int)).max() <= 7
    floats = np.linspace(1, 1000, 4000, dtype="f4").reshape(40, 100)
    gotf = np.asarray(codec.decode(codec.encode(floats)))
    assert (np.abs(gotf - floats) / floats).max() <= 1e-3
