"""Rewrite an HDF5 file with Blosc2 b2nd chunks, written by HDF5 direct chunk writes.

Contract: :func:`convert` reads every dataset of ``src`` through h5py (+ hdf5plugin, so any filter
HDF5 can read is accepted) and writes ``dst`` where each converted dataset is created with
``hdf5plugin.Blosc2()`` and every allocated chunk is a one-chunk Blosc2 cframe holding a b2nd array
whose shape equals the HDF5 chunk shape (edge chunks padded with the fill value), compressed by
python-blosc2 with the chosen codec, level, filters and block shape (the b2h5py approach). Plain
h5py + hdf5plugin reads the output; so does b2store's ``b2h5`` filesystem.

* Groups, attributes, dimension scales (re-attached with ``h5py.dims``) and datasets that are not
  converted (scalars, strings, vlen, compact, virtual, types numpy cannot represent such as
  128-bit floats and HDF5 time types; contiguous unless asked) are kept.
* A fill value the input leaves *undefined* is written as the dtype's zero: h5py reads the
  never-written elements of such a dataset as zeros.
* Unallocated chunks stay unallocated (sparse data stays sparse) and read as in the input:
  the fill value and fill time are kept (with fill time "never", HDF5 reads them as zeros).
* Parallel: chunks whose filters b2store decodes are read raw and decoded on a thread pool; the
  others are read through h5py. python-blosc2's b2nd encoder (``blosc2.asarray``) holds the GIL,
  so each chunk is compressed with Blosc2's own ``nthreads`` threads while the pool overlaps
  reading, decoding and writing. h5py calls stay on the calling thread.
* The output is written to a temporary file in the destination folder and renamed at the end, so
  an interrupted run never leaves a half-written file under the final name.
* ``auto=True`` picks codec, level and filters per dataset with a small sampling tuner
  (:func:`tune`): the score is ``(size/min_size)**t * (time/min_time)**(1-t)`` over a grid of
  candidates compressing a few real chunks, ``t`` being the ratio/speed trade-off (1 = best ratio).

Lossy options:

* ``itrunc_max_error`` (integers): zero the low bits with the ``b2store_b2nd`` codec's itrunc
  filter (Blosc2's INT_TRUNC), so that ``0 <= x - y <= max_error``. A dataset's missing-data
  markers (its ``_FillValue`` and ``missing_value`` attributes, else a non-zero HDF5 fill value)
  go to the filter's ``keep`` key: items equal to a marker, or that truncation would turn into
  one, keep their values. So does the bin of each CF valid-range bound (``valid_min``,
  ``valid_max``, ``valid_range``), so no item crosses it. More values than ``keep`` takes (16):
  that dataset stays lossless.
* ``j2k_ratio``/``j2k_psnr``: lossy JPEG 2000 via blosc2-j2k (``b2store_grok``), one 2-D image
  per block, for the datasets that codec can code (little-endian uint8 or uint16 images of at
  least :data:`~b2store.codecs.grok.MIN_IMAGE_SIDE` pixels a side) and have no missing-data
  markers or valid range inside the dtype's range; the others stay lossless.
* Neither touches values that are meanings, not measurements (:func:`_exact_reason`):
  dimension scales, coordinates, bounds, counts and indices other variables name, CF flags,
  enumerated types and categorical CF standard names are stored lossless, with a message. So
  are NeXus-style categorical fields by name (:data:`_CATEGORICAL_FIELDS`: ``image_key``,
  masks, flags, ``scan_finished``), datasets smaller than :data:`TINY_ITEMS` items (or one
  ``--blocks`` block), and integer datasets of at most :data:`FEW_VALUES` distinct values that
  the option would merge or move (:func:`_few_values_reason`): most likely categories.

Layout (private modules, one concern each): ``_options`` (options, reports, errors), ``_driver``
(the :func:`convert` driver), ``_chunks`` (reading chunks, :func:`encode_chunk`), ``_copy``
(attributes, links, named types and datasets kept as they are), ``_exact`` (what must stay exact
under lossy options), ``_tune`` (the sampling tuner), ``_hdf5`` (Blosc2 writable, opening the
input), ``_progress`` (progress bars); disk-full errors: :func:`b2store._diskspace.out_of_room`.
Importing this package loads numpy only: blosc2, numcodecs, h5py and hdf5plugin are imported
where they are used.
"""

from __future__ import annotations

from b2store._diskspace import out_of_room
from b2store.convert._chunks import encode_chunk
from b2store.convert._driver import convert
from b2store.convert._exact import FEW_VALUES as FEW_VALUES
from b2store.convert._exact import TINY_ITEMS as TINY_ITEMS
from b2store.convert._hdf5 import ensure_blosc2_writable as ensure_blosc2_writable
from b2store.convert._options import B2ND_MAX_DIM as B2ND_MAX_DIM
from b2store.convert._options import (
    CNAMES,
    FILTERS,
    MAX_FILTERS,
    CodecChoice,
    ConvertError,
    ConvertOptions,
    ConvertReport,
    DatasetReport,
)
from b2store.convert._tune import TUNE_GRID as TUNE_GRID
from b2store.convert._tune import TuneResult as TuneResult
from b2store.convert._tune import tune

__all__ = [
    "CNAMES",
    "FILTERS",
    "MAX_FILTERS",
    "CodecChoice",
    "ConvertError",
    "ConvertOptions",
    "ConvertReport",
    "DatasetReport",
    "convert",
    "encode_chunk",
    "out_of_room",
    "tune",
]
