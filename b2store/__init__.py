"""b2store: Blosc2-compressed scientific data (HDF5 files, Caterva2 repositories) as Zarr stores.

Importing ``b2store`` registers nothing and imports none of the optional extras: numcodecs, zarr and
fsspec find the codecs (``b2store_b2nd``, ``b2store.b2nd``, ...) and the filesystems (``b2h5``,
``caterva2``, ``caterva2s``) through entry points when a config or URL names them.
"""

from __future__ import annotations

from b2store.errors import (
    B2StoreError,
    Caterva2HTTPError,
    CodecError,
    DamagedHDF5FileError,
    UnsupportedHDF5FeatureError,
)

__version__ = "0.1.0"

__all__ = [
    "B2StoreError",
    "Caterva2HTTPError",
    "CodecError",
    "DamagedHDF5FileError",
    "UnsupportedHDF5FeatureError",
    "__version__",
]
