"""Every dataset of every file of ../shared/corpus reads like h5py through zarr and xarray
(``xr.open_zarr("b2h5::...")``, and ``engine="b2h5"`` with and without dask chunks: zarr's
pipeline for most datasets, whole-chunk reads for those stored as ``b2store.b2nd`` chunks,
checked to take that path).

One parametrised test per (file, dataset) of MANIFEST.tsv. What is expected to be unsupported or
read as a slice only is data in ``corpus_expectations.tsv`` (columns: file, dataset path or glob,
expect = ``unsupported`` | ``slice``, detail = the feature named in the error or the slice along
dimension 0, reason). Pure netCDF dimensions (``NAME`` = "This is a netCDF dimension but not a
netCDF variable...") are not variables and must be absent from the view.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
import xarray as xr
from h5view_helpers import assert_same, dataset_names, h5_values, open_root, xr_group

from b2store._whole_chunks import WholeChunkArrayWrapper
from b2store.codecs.zarr3 import B2ndCodec
from b2store.errors import UnsupportedHDF5FeatureError
from b2store.hdf5.filesystem import HDF5FileSystem
from b2store.hdf5.metadata import is_pure_dimension
from tests._engines import innermost_array

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("B2STORE_CORPUS", ROOT.parent / "shared" / "corpus"))
HERE = Path(__file__).parent

pytestmark = pytest.mark.corpus


def _expectations() -> dict[tuple[str, str], dict[str, str]]:
    with open(HERE / "corpus_expectations.tsv", newline="") as fh:
        return {(r["file"], r["dataset"]): r for r in csv.DictReader(fh, delimiter="\t")}


EXPECT = _expectations()


def _cases() -> list[Any]:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        return [pytest.param("", "", id="corpus-absent")]
    out = []
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for row in rows:
        with h5py.File(CORPUS / row["file"], "r") as f:
            names = dataset_names(f)
        out += [pytest.param(row["file"], n, id=f"{row['file']}:{n}") for n in names]
    return out


def _expect(file: str, dataset: str) -> dict[str, str]:
    """The expectation row of a dataset: exact path first, then the first matching glob."""
    if (file, dataset) in EXPECT:
        return EXPECT[(file, dataset)]
    for (f, pattern), row in EXPECT.items():
        if f == file and fnmatch.fnmatchcase(dataset, pattern):
            return row
    return {"expect": "equal"}


@functools.lru_cache(maxsize=8)
def _fs(file: str) -> HDF5FileSystem:
    return HDF5FileSystem(str(CORPUS / file), unsupported="skip")


@functools.lru_cache(maxsize=32)
def _engine_group(file: str, group: str, chunked: bool) -> xr.Dataset:
    """``xr.open_dataset(file, engine="b2h5")`` of one group: raw values (no CF decoding),
    dask chunks equal to the stored ones when *chunked*, else lazily indexed numpy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_dataset(
            CORPUS / file,
            engine="b2h5",
            group=group or None,
            unsupported="skip",
            decode_cf=False,
            chunks={} if chunked else None,
        )


@functools.lru_cache(maxsize=8)
def _root(file: str) -> Any:
    return open_root(_fs(file))


def _selection(spec: str, ndim: int) -> tuple[slice, ...]:
    a, _, b = spec.partition(":")
    return (slice(int(a) if a else None, int(b) if b else None),) + (slice(None),) * (ndim - 1)


@pytest.mark.parametrize(("file", "dataset"), _cases())
def test_corpus_dataset(corpus: Path, file: str, dataset: str) -> None:
    exp = _expect(file, dataset)
    fs = _fs(file)
    with h5py.File(corpus / file, "r") as f:
        h = f[dataset]
        if exp["expect"] == "unsupported":
            assert dataset not in fs.index.tables
            notes = [n for n in fs.notes if f":/{dataset}:" in n]
            assert notes and exp["detail"] in notes[0], (notes, exp)
            return
        if is_pure_dimension(h):
            assert dataset not in fs.index.tables
            return
        sel = _selection(exp["detail"], h.ndim) if exp["expect"] == "slice" else ()
        want = h5_values(h, sel)
    z = _root(file)[dataset]
    assert_same(z[sel] if sel else z[...], want, f"zarr {file}:{dataset}")
    group, _, name = dataset.rpartition("/")
    var = xr_group(str(CORPUS / file), group)[name]
    got = var[sel].values if sel else var.values
    if want.dtype.fields:
        return  # xarray turns structured arrays into void; zarr's comparison above covers them
    assert_same(got.reshape(want.shape), want, f"xarray {file}:{dataset}")
    codecs = getattr(z.metadata, "codecs", ())
    b2nd = len(codecs) == 1 and isinstance(codecs[0], B2ndCodec) and want.dtype.kind in "biufc"
    lazy = _engine_group(file, group, False)
    whole = isinstance(innermost_array(lazy, name), WholeChunkArrayWrapper)
    assert whole == (b2nd and want.ndim > 0), f"whole-chunk path {whole} for {file}:{dataset}"
    for chunked in (False, True):
        var = _engine_group(file, group, chunked)[name]
        got = var[sel].values if sel else var.values
        assert_same(got.reshape(want.shape), want, f"engine chunked={chunked} {file}:{dataset}")


def test_corpus_unsupported_raise_by_default(corpus: Path) -> None:
    files = sorted({f for (f, _), e in EXPECT.items() if e["expect"] == "unsupported"})
    for file in files:
        with pytest.raises(UnsupportedHDF5FeatureError) as err:
            HDF5FileSystem(str(corpus / file), skip_instance_cache=True)
        assert file in str(err.value) and "unsupported='skip'" in str(err.value)


@pytest.mark.parametrize(
    "file",
    ["nexus_APS_NXsas_example.hdf5", "goes16_cloud_top_height.nc", "tomopy_tooth.h5"],
)
def test_corpus_open_datatree(corpus: Path, file: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = xr.open_datatree(f"b2h5::{corpus / file}", engine="zarr", chunks=None)
    with h5py.File(corpus / file, "r") as f:
        for node in tree.subtree:
            for name, var in node.ds.data_vars.items():
                path = f"{node.path.strip('/')}/{name}".strip("/")
                if path in f and np.asarray(var.values).dtype.kind in "iuf":
                    assert var.shape == f[path].shape, path
