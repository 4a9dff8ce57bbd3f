"""Caterva2 repositories as Zarr stores: the ``caterva2`` and ``caterva2s`` fsspec filesystems."""
