"""Codecs for Blosc2 data in Zarr: numcodecs codecs and native Zarr v3 codecs.

==================  =====================  ==========================================
numcodecs id        Zarr v3 name           module
==================  =====================  ==========================================
``b2store_b2nd``    ``b2store.b2nd``       :mod:`b2store.codecs.b2nd`
``b2store_itrunc``  ``b2store.itrunc``     :mod:`b2store.codecs.itrunc`
``b2store_grok``    ``b2store.grok``       :mod:`b2store.codecs.grok`
``b2store_hdf5``    ``b2store.hdf5``       :mod:`b2store.codecs.hdf5_pipeline`
==================  =====================  ==========================================

They are registered through the ``numcodecs.codecs`` and ``zarr.codecs`` entry points; importing
this package registers nothing.
"""
