"""Exceptions raised by b2store.

Every exception class b2store defines subclasses :class:`B2StoreError` *and* the builtin a caller
would naturally catch (zarr's pattern), so ``except ValueError`` or ``except FileNotFoundError``
works without importing b2store. The classes shared by several modules live here; a few that
belong to one backend live in its module (``Caterva2MissingError`` in
:mod:`b2store.caterva2.client`, ``UnsupportedCaterva2DatasetError`` in
:mod:`b2store.caterva2.metadata`, ...) and follow the same rule.

Some failures are raised as the builtin alone, with a message naming the file and what to do:
the b2h5 filesystem raises a plain ``OSError`` for an HDF5 file deleted, moved or replaced
after it was indexed, and for a server that ignores HTTP range requests; a plain
``FileNotFoundError`` for a missing key (zarr reads it as a missing chunk) and a plain
``PermissionError`` for writes to a read-only store.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "AccessRefusedError",
    "B2StoreError",
    "Caterva2HTTPError",
    "CodecError",
    "DamagedHDF5FileError",
    "NotRandomAccessError",
    "TransferError",
    "UnsupportedHDF5FeatureError",
    "without_api_hint",
]


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


class DamagedHDF5FileError(B2StoreError, OSError):
    """Part of an HDF5 file HDF5 itself cannot read (a bad B-tree, symbol-table or object-header
    signature: bytes overwritten or lost). The message names the file and the node, and says
    what to do (check the file, restore it, or open the rest with ``unsupported="skip"``)."""


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


class AccessRefusedError(B2StoreError, PermissionError):
    """A remote file's server refused access (HTTP 401/403): the message names the file and
    what to do (credentials in the target's options, a new signed URL)."""


class TransferError(B2StoreError, OSError):
    """A transfer of a remote file failed (timeout, cut connection, HTTP error status): the
    message names the file and what to do."""


class NotRandomAccessError(B2StoreError, OSError):
    """A remote file that can only be streamed (no size, no range requests), which HDF5 cannot
    read at its offsets: the message names the file and says to download it first."""
