"""HDF5 set-up for the writers: Blosc2 datasets that h5py can create, and a clear error when
the input cannot be opened.

Contract: :func:`ensure_blosc2_writable` (once per process) leaves h5py able to create datasets
with hdf5plugin's Blosc2 filter, whatever ``HDF5_PLUGIN_PATH`` says; :func:`open_input` opens an
input file, turning HDF5's bare ``OSError`` into one naming the file and what to check;
:func:`recorded_fill` and :func:`numpy_dtype` read what h5py's ``fillvalue``/``dtype`` raise on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any


@functools.cache
def ensure_blosc2_writable() -> None:
    """Make sure h5py can create Blosc2 datasets, re-registering hdf5plugin's own filter if not.

    With ``HDF5_PLUGIN_PATH`` set to ``hdf5plugin.PLUGIN_PATH`` (what netCDF-C needs to read the
    output), HDF5 loads the filter from that folder and hdf5plugin leaves it be; that copy reads
    chunks but fails to create a dataset ("error during user callback"). A Blosc2 filter that
    works, from wherever it came, is kept.

    The other filters HDF5 loads from hdf5plugin's own folder fail too (ZFP reads: "filter
    returned failure during read", so convert could not read its input): when
    ``HDF5_PLUGIN_PATH`` names that folder, all of hdf5plugin's filters are registered again
    from hdf5plugin itself (the same libraries, set up to call this process's HDF5).
    """
    import h5py
    import hdf5plugin

    own = os.path.realpath(hdf5plugin.PLUGIN_PATH)
    paths = os.environ.get("HDF5_PLUGIN_PATH", "").split(os.pathsep)
    if any(p and os.path.realpath(p) == own for p in paths):
        hdf5plugin.register(force=True)

    def probe() -> None:
        with h5py.File(
            f"b2store-probe-{os.getpid()}", "w", driver="core", backing_store=False
        ) as f:
            f.create_dataset("p", shape=(1,), dtype="u1", chunks=(1,), **hdf5plugin.Blosc2())

    try:
        probe()
    except Exception:
        hdf5plugin.register("blosc2", force=True)
        probe()  # still failing: let h5py's own error out


def open_input(src: str, opener: Callable[[str], Any]) -> Any:
    """``opener(src)``, with an error naming ``src`` when HDF5 cannot open it (truncated,
    damaged)."""
    try:
        return opener(src)
    except OSError as exc:
        if src in str(exc):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = (
            f"{src} is not a readable HDF5 file ({first}); check that it is complete (not "
            "truncated) and really HDF5"
        )
        raise (OSError(exc.errno, msg) if exc.errno is not None else OSError(msg)) from exc


def recorded_fill(ds: Any) -> Any:
    """``ds.fillvalue``, or the dtype's zero where the file marks the fill value *undefined*
    (``H5Pset_fill_value(dcpl, type, NULL)``, as PyTables 1.x wrote): h5py's ``fillvalue`` raises
    ``RuntimeError`` then (``convert`` failed on the whole file), and HDF5 leaves never-written
    elements as the reader's buffer was, which h5py allocates zeroed: h5py reads zeros there."""
    import h5py
    import numpy as np

    try:
        return ds.fillvalue
    except RuntimeError:
        dcpl = ds.id.get_create_plist()
        if dcpl.fill_value_defined() != h5py.h5d.FILL_VALUE_UNDEFINED:
            raise
        return np.zeros((), dtype=ds.dtype)[()]


def numpy_dtype(ds: Any) -> Any:
    """``ds.dtype``, or the reason h5py has none for its HDF5 type (a 128-bit float, an HDF5 time
    type: h5py raises ``ValueError``/``TypeError``) as a string."""
    try:
        return ds.dtype
    except (TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"an HDF5 type numpy cannot represent: {first}"
