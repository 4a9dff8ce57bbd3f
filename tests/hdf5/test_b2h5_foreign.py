"""Every dataset of every file in ``tests/data/foreign`` (HDF5 files from other projects' test
suites, see its README) reads like h5py through b2h5's Zarr v3 and v2 views, with zarr and with
xarray - or is unsupported as ``expectations.tsv`` says, with that detail in b2store's message.

The same checks as the ``../shared/corpus`` test, on files that ship with b2store, so a user's
clone runs them too.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import hashlib
import warnings
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
from h5view_helpers import assert_same, dataset_names, h5_values, open_root, xr_group

from b2store.errors import UnsupportedHDF5FeatureError
from b2store.hdf5.filesystem import HDF5FileSystem
from b2store.hdf5.metadata import NON_COORD_PREFIX, is_pure_dimension

xr = pytest.importorskip("xarray")

FOREIGN = Path(__file__).resolve().parents[1] / "data" / "foreign"


def _rows(name: str) -> list[dict[str, str]]:
    with open(FOREIGN / name, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


MANIFEST = _rows("MANIFEST.tsv")
EXPECT = _rows("expectations.tsv")


def _expect(file: str, dataset: str) -> dict[str, str]:
    for row in EXPECT:
        if row["file"] == file and fnmatch.fnmatchcase(dataset, row["dataset"]):
            return row
    return {"expect": "equal"}


def _cases() -> list[Any]:
    out = []
    for row in MANIFEST:
        file = row["file"]
        if _expect(file, "*")["expect"] == "not-hdf5":
            continue
        with h5py.File(FOREIGN / file, "r") as f:
            out += [pytest.param(file, n, id=f"{file}:{n}") for n in dataset_names(f)]
    return out


@functools.lru_cache(maxsize=16)
def _fs(file: str, fmt: int) -> HDF5FileSystem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HDF5FileSystem(
            str(FOREIGN / file), unsupported="skip", zarr_format=fmt, skip_instance_cache=True
        )


def _view_name(dataset: str) -> str:
    """Where a dataset appears in the view (netCDF's ``_nc4_non_coord_x`` is variable ``x``)."""
    group, _, name = dataset.rpartition("/")
    if name.startswith(NON_COORD_PREFIX):
        name = name[len(NON_COORD_PREFIX) :]
    return f"{group}/{name}" if group else name


def _same_fields(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Structured arrays compared field by field, by name (b2h5 orders fields by offset)."""
    assert got.shape == want.shape and set(got.dtype.names) == set(want.dtype.names), what
    for name in want.dtype.names:
        assert_same(got[name], want[name], f"{what}.{name}")


def test_manifest_files_unchanged() -> None:
    for row in MANIFEST:
        digest = hashlib.sha256((FOREIGN / row["file"]).read_bytes()).hexdigest()
        assert digest[:16] == row["sha256"], row["file"]


@pytest.mark.parametrize(("file", "dataset"), _cases())
def test_foreign_dataset(file: str, dataset: str) -> None:
    exp = _expect(file, dataset)
    with h5py.File(FOREIGN / file, "r") as f:
        h = f[dataset]
        if exp["expect"] == "unsupported":
            for fmt in (3, 2):
                fs = _fs(file, fmt)
                assert _view_name(dataset) not in fs.index.tables
                notes = [n for n in fs.notes if f":/{dataset}:" in n]
                assert notes and exp["detail"] in notes[0], (notes, exp)
            return
        if is_pure_dimension(h):  # hidden, unless a variable of its name takes its place
            group, _, name = dataset.rpartition("/")
            renamed = f"{group}/{NON_COORD_PREFIX}{name}".lstrip("/")
            assert dataset not in _fs(file, 3).index.tables or renamed in f
            return
        want = h5_values(h)
    name = _view_name(dataset)
    for fmt in (3, 2):
        got = np.asarray(open_root(_fs(file, fmt))[name][...])
        if want.dtype.fields:
            _same_fields(got, want, f"zarr v{fmt} {file}:{dataset}")
        else:
            assert_same(got, np.asarray(want), f"zarr v{fmt} {file}:{dataset}")
    if want.dtype.fields:
        return  # xarray turns structured arrays into void; zarr's comparison covers them
    group, _, var = name.rpartition("/")
    values = xr_group(str(FOREIGN / file), group)[var].values
    assert_same(values.reshape(want.shape), np.asarray(want), f"xarray {file}:{dataset}")


@pytest.mark.parametrize(
    "file", sorted({r["file"] for r in EXPECT if r["expect"] == "unsupported"})
)
def test_foreign_unsupported_raise_by_default(file: str) -> None:
    with pytest.raises(UnsupportedHDF5FeatureError) as err:
        HDF5FileSystem(str(FOREIGN / file), skip_instance_cache=True)
    assert file in str(err.value) and "unsupported='skip'" in str(err.value)


@pytest.mark.parametrize("file", [r["file"] for r in EXPECT if r["expect"] == "not-hdf5"])
def test_foreign_not_hdf5(file: str) -> None:
    with pytest.raises(OSError, match=f"{file}.*{_expect(file, '*')['detail']}"):
        HDF5FileSystem(str(FOREIGN / file), skip_instance_cache=True)
