"""Codecs for Blosc2 data in Zarr: numcodecs codecs and native Zarr v3 codecs.

Classes are named by their module in ``b2store.codecs``:

==================  ==================  ============================  ============================
numcodecs id        Zarr v3 name        numcodecs codec               Zarr v3 codec
==================  ==================  ============================  ============================
``b2store_b2nd``    ``b2store.b2nd``    b2nd.B2nd                     zarr3.B2ndCodec
``b2store_itrunc``  ``b2store.itrunc``  itrunc.ITrunc                 zarr3.ITruncCodec
``b2store_grok``    ``b2store.grok``    grok.Grok                     zarr3.GrokCodec
``b2store_hdf5``    ``b2store.hdf5``    hdf5_pipeline.HDF5Pipeline    hdf5_zarr3.HDF5PipelineCodec
==================  ==================  ============================  ============================

Shared helpers: :mod:`b2store.codecs._blosc2frame` (pure-Python parsing and validation of
Blosc2 frames and chunks) and :mod:`b2store.codecs._common` (config validators).

They are registered through the ``numcodecs.codecs`` and ``zarr.codecs`` entry points; importing
this package registers nothing.
"""
