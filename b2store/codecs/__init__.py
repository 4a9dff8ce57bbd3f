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
Blosc2 frames and chunks), :mod:`b2store.codecs._common` (config validators) and
:mod:`b2store.codecs._zarr3_common` (Zarr v3 configuration checks). The b2nd codec's work is
split by concern into private modules behind :mod:`b2store.codecs.b2nd`: ``_b2nd_filters``
(filter specs), ``_b2nd_encode`` (the encode pipeline), ``_b2nd_decode`` (the input forms),
``_b2nd_chunk`` (one raw Blosc2 chunk), ``_b2nd_blocks`` (block order) and ``_scratch``
(scratch buffers); its Zarr v3 codec's partial decoding is in ``_b2nd_partial`` and its decode
thread policy in ``_b2nd_threads``.

They are registered through the ``numcodecs.codecs`` and ``zarr.codecs`` entry points; importing
this package registers nothing.
"""
