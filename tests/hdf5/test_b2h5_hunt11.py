"""Eleventh-session hunt: virtual datasets mapped whole (``layout[...] = source``), warnings at
each open with ``unsupported="warn"``, option errors naming the file, chunk-row helper."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from h5view_helpers import assert_same

from b2store.hdf5._chunk_rows import chunk_rows
from b2store.hdf5.filesystem import HDF5FileSystem

xr = pytest.importorskip("xarray")


def _open(path: Path, name: str, fmt: int, **opts: object) -> np.ndarray:
    so = {"zarr_format": fmt, "unsupported": "raise", **opts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return zarr.open_array(f"b2h5::{path}", path=name, mode="r", storage_options=so)[...]


@pytest.fixture
def vds_whole(tmp_path: Path) -> Path:
    """Virtual datasets whose one mapping covers the whole layout (an H5S_ALL selection)."""
    src = tmp_path / "src.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("d", data=np.arange(40, dtype="i4").reshape(4, 10), chunks=(2, 5))
        f.create_dataset("c", data=np.arange(40, dtype="i4").reshape(4, 10))  # contiguous
    path = tmp_path / "vds.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "own", data=np.arange(24, dtype=">f8").reshape(6, 4), chunks=(4, 3), compression="gzip"
        )
        lay = h5py.VirtualLayout(shape=(6, 4), dtype=">f8")
        lay[...] = h5py.VirtualSource(".", "/own", shape=(6, 4))
        f.create_virtual_dataset("same_file", lay)
        lay = h5py.VirtualLayout(shape=(4, 10), dtype="i4")
        lay[...] = h5py.VirtualSource(src.name, "d", shape=(4, 10))
        f.create_virtual_dataset("other_file", lay, fillvalue=-1)
        lay = h5py.VirtualLayout(shape=(4, 10), dtype="i4")
        lay[...] = h5py.VirtualSource(src.name, "c", shape=(4, 10))
        f.create_virtual_dataset("contiguous_source", lay)
        lay = h5py.VirtualLayout(shape=(4, 10), dtype="i4")
        lay[...] = h5py.VirtualSource(str(tmp_path / "missing.h5"), "d", shape=(4, 10))
        f.create_virtual_dataset("missing_source", lay, fillvalue=3)
    return path


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("name", ["same_file", "other_file", "contiguous_source"])
def test_vds_whole_layout_mapping_is_served(vds_whole: Path, name: str, fmt: int) -> None:
    """``layout[...] = source`` (a whole chunked source on the whole layout) was refused as
    "a mapping is not one regular block" (an H5S_ALL selection, not a hyperslab)."""
    with h5py.File(vds_whole) as f:
        want = f[name][...]
    got = _open(vds_whole, name, fmt, unsupported="skip")
    assert_same(got, want, name)
    ds = xr.open_dataset(
        vds_whole, engine="b2h5", storage_options={"zarr_format": fmt, "unsupported": "skip"}
    )
    assert_same(ds[name].values, want, name)


def test_vds_whole_layout_unmappable_sources_say_why(vds_whole: Path) -> None:
    """The same selection on a source b2store cannot map names the real reason."""
    fs = HDF5FileSystem(str(vds_whole), unsupported="skip")
    notes = "\n".join(fs.notes)
    assert "not one regular block" not in notes
    assert "contiguous_source" not in notes  # a contiguous source is served (session 17)
    assert "missing.h5:d does not resolve" in notes


def test_vds_unlimited_mapping_says_so(tmp_path: Path) -> None:
    """An unlimited mapping (h5py ``UNLIMITED`` slices) was refused as "a mapping repeats a
    block" (its count is H5S_UNLIMITED)."""
    src = tmp_path / "src.h5"
    with h5py.File(src, "w", libver="latest") as f:
        f.create_dataset("d", data=np.arange(40).reshape(4, 10), chunks=(2, 5), maxshape=(None, 10))
    path = tmp_path / "unlim.h5"
    with h5py.File(path, "w", libver="latest") as f:
        vs = h5py.VirtualSource(src.name, "d", shape=(4, 10), maxshape=(None, 10))
        lay = h5py.VirtualLayout(shape=(4, 10), maxshape=(None, 10), dtype="i8")
        lay[0 : h5py.h5s.UNLIMITED, :] = vs[0 : h5py.h5s.UNLIMITED, :]
        f.create_virtual_dataset("unlim", lay)
    with pytest.raises(NotImplementedError, match=r"unlim: .*a mapping is unlimited"):
        HDF5FileSystem(str(path))


@pytest.fixture
def scaleoffset_file(tmp_path: Path) -> Path:
    path = tmp_path / "so.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("so", data=np.arange(25.0).reshape(5, 5), chunks=(3, 3), scaleoffset=2)
        f.create_dataset("ok", data=np.arange(5))
    return path


def _warned(path: Path, opener: str, index_cache: str | None = None) -> list[str]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        opts = {"unsupported": "warn", "index_cache": index_cache}
        if opener == "open_zarr":
            xr.open_zarr(f"b2h5::{path}", storage_options=opts)
        else:
            xr.open_dataset(path, engine="b2h5", storage_options=opts)
    return [str(w.message) for w in got if "scaleoffset" in str(w.message)]


@pytest.mark.parametrize("opener", ["open_zarr", "engine"])
def test_unsupported_warn_warns_at_every_open(scaleoffset_file: Path, opener: str) -> None:
    """The second open of a file in a process reused the cached index and warned nothing:
    the skipped dataset was a silent gap. Each open (a new filesystem instance: b2h5 is not
    in fsspec's instance cache) warns once per skipped dataset."""
    for _ in range(3):
        msgs = _warned(scaleoffset_file, opener)
        assert len(msgs) == 1, msgs
        assert "/so:" in msgs[0] and str(scaleoffset_file) in msgs[0]


def test_unsupported_warn_warns_with_sidecar_index(scaleoffset_file: Path, tmp_path: Path) -> None:
    """An index loaded from a sidecar file (another process's) warns too."""
    from b2store.hdf5 import filesystem

    cache = str(tmp_path / "cache")
    assert len(_warned(scaleoffset_file, "open_zarr", cache)) == 1
    filesystem._MEMORY.clear()  # as a new process: only the sidecar is left
    assert len(_warned(scaleoffset_file, "open_zarr", cache)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "skip" stays silent, also from a cache
        fs = HDF5FileSystem(str(scaleoffset_file), unsupported="skip")
    assert any("/so:" in n for n in fs.notes)


@pytest.mark.parametrize(
    ("opts", "exc", "what"),
    [
        ({"zarr_format": 4}, ValueError, "Expected zarr_format 2 or 3. Got 4 instead."),
        ({"unsupported": "ignore"}, ValueError, "Got 'ignore' instead."),
        ({"follow_external_links": "yes"}, TypeError, "Got 'yes' instead."),
        ({"index_cache": ""}, ValueError, "Got an empty string instead"),
        ({"index_cache": 1}, TypeError, "Got 1 instead."),
    ],
)
def test_option_errors_name_the_file(
    scaleoffset_file: Path, opts: dict[str, object], exc: type, what: str
) -> None:
    with pytest.raises(exc) as info:
        HDF5FileSystem(str(scaleoffset_file), **opts)
    assert str(scaleoffset_file) in str(info.value) and what in str(info.value)
    with pytest.raises(exc, match=r"so\.h5"):
        xr.open_dataset(scaleoffset_file, engine="b2h5", storage_options=opts)


def test_unknown_option_lists_the_constructor_keywords(scaleoffset_file: Path) -> None:
    """The accepted keywords come from the constructor's signature, not a hand-kept list."""
    with pytest.raises(TypeError) as info:
        HDF5FileSystem(str(scaleoffset_file), zarr_fromat=2)
    msg = str(info.value)
    assert "'zarr_fromat'" in msg and str(scaleoffset_file) in msg
    params = inspect.signature(HDF5FileSystem.__init__).parameters
    for name in params:
        if name in ("self", "fo", "kwargs", "file_version"):
            assert f" {name}," not in msg
        else:
            assert name in msg, name


def test_chunk_rows_matches_hdf5_chunk_grid(tmp_path: Path) -> None:
    """The shared chunk_iter -> rows helper: C-order linear indices on the grid, padded
    trailing axes (array dtypes) and a virtual block's start."""
    path = tmp_path / "rows.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", shape=(7, 9, 4), chunks=(3, 4, 4), dtype="u1", fillvalue=1)
        d[0:3, 4:8] = 2
        d[6, 8, 3] = 3
        infos: list[object] = []
        d.id.chunk_iter(infos.append)
    grid = (3, 3, 1)
    lin, offsets, sizes, masks = chunk_rows(infos, (3, 4, 4), grid)
    want = sorted(
        np.ravel_multi_index((i.chunk_offset[0] // 3, i.chunk_offset[1] // 4, 0), grid)
        for i in infos
    )
    assert sorted(lin.tolist()) == want == [1, 8]
    assert sizes.tolist() == [48, 48] and masks.tolist() == [0, 0] and offsets.dtype == np.uint64
    lin2 = chunk_rows(infos, (3, 4, 4, 2), (*grid, 1))[0]
    assert sorted(lin2.tolist()) == want
    lin3 = chunk_rows(infos, (3, 4, 4), (6, 3, 1), start=(9, 0, 0))[0]
    assert sorted(lin3.tolist()) == [10, 17]
    empty = chunk_rows([], (3, 4), (3, 3))
    assert [a.size for a in empty] == [0, 0, 0, 0]
