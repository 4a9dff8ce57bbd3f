"""Exceptions raised by b2store.

Every error subclasses :class:`B2StoreError` *and* the builtin a caller would naturally catch
(zarr's pattern), so ``except ValueError`` or ``except FileNotFoundError`` works without importing
b2store.
"""

from __future__ import annotations

import re
from typing import Any


class B2StoreError(Exception):
    """Base class of every b2store error."""


class CodecError(B2StoreError, ValueError):
    """Bytes a codec cannot decode (empty, truncated, corrupt) or an invalid codec setting.

    The message names the codec id and says what was wrong.
    """


class UnsupportedHDF5FeatureError(B2StoreError, NotImplementedError):
    """An HDF5 feature (filter, layout, dtype) that b2store cannot present as Zarr.

    The message names the file, the dataset and the feature, and says what to do (for instance
    open the file with ``unsupported="skip"``).
    """


#: The ways the hdf5 layer words its advice to open a file with ``unsupported="skip"``.
_API_HINT = re.compile(r"[\s,.]*(?:Pass|(?:or )?[Oo]pen (?:it|the file) with) unsupported=.*$")


def without_api_hint(message: str) -> str:
    """``message`` without its closing advice to pass ``unsupported='skip'`` (a Python argument,
    which command-line tools name otherwise), ending with one period."""
    text = _API_HINT.sub("", message).rstrip(" .,")
    return text + "." if text else ""


class Caterva2HTTPError(B2StoreError, OSError):
    """A Caterva2 server answered with an error status that maps to no more specific builtin."""

    def __init__(self, url: str, status: int, detail: str = "") -> None:
        self.url = url
        self.status = status
        self.detail = detail
        msg = f"Caterva2 server error {status} for {url}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable with its own arguments (dask ships errors from worker processes)
        return (type(self), (self.url, self.status, self.detail))
