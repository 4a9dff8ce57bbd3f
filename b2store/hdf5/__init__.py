"""HDF5 files as read-only Zarr stores: the ``b2h5`` fsspec filesystem.

The errors its users catch are importable from here too (and from ``b2store``); importing this
package imports neither h5py nor the filesystem (fsspec loads that through its entry point).
"""

from b2store.errors import DamagedHDF5FileError, UnsupportedHDF5FeatureError

__all__ = ["DamagedHDF5FileError", "UnsupportedHDF5FeatureError"]
