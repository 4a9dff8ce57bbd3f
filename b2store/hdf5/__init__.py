"""HDF5 files as read-only Zarr stores: the ``b2h5`` fsspec filesystem."""
