"""Differential test: ``b2store refs`` references read exactly as h5py reads (property-based).

The Hypothesis strategy of ``tests/hdf5/test_b2h5_differential.py`` (dtype, shape, layout,
chunks, filter pipeline, fill values with allocation/fill times, partially written chunks,
growth, chunks written with ``write_direct_chunk`` that skip filters through their filter
mask) writes a random HDF5 file with h5py + hdf5plugin; :func:`b2store.refs.hdf5_refs` exports
its references (random ``inline_threshold``, ``url=`` as given or left out), which are read
through fsspec's reference filesystem + zarr (Zarr v2, the only format the export writes) from
the in-memory dict, from JSON written by :func:`b2store.refs.write_refs` and, for some
examples, from parquet (fsspec's default fastparquet reader and
:func:`b2store.refs.open_parquet_refs`), and compared with h5py value for value (NaN-aware),
whole and through random basic selections. Every ``[url, offset, size]`` reference must lie
inside its file and hold the bytes HDF5 stores for that chunk; exporting twice must give the
same references. Features the HDF5 view documents as unsupported must raise
``UnsupportedHDF5FeatureError`` naming the file and the dataset.

Regression tests for what the property tests found sit at the end of the file.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")
zarr = pytest.importorskip("zarr")

sys.path.insert(0, str(Path(__file__).parent / "hdf5"))
import fsspec  # noqa: E402
import test_b2h5_differential as diff  # noqa: E402  (the Desc strategy and writer)
from h5view_helpers import assert_same  # noqa: E402

from b2store.errors import UnsupportedHDF5FeatureError  # noqa: E402
from b2store.refs import hdf5_refs, open_parquet_refs, write_refs  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:The 'fastparquet' engine is deprecated"),
    pytest.mark.filterwarnings("ignore:The 'future.infer_string' option is deprecated"),
]


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


PARQUET = _has("pandas") and _has("pyarrow") and _has("kerchunk")
FASTPARQUET = PARQUET and _has("fastparquet")


# --- reading the references ---------------------------------------------------------------------


def open_json(fo: Any) -> Any:
    """The root group over JSON references (a dict or a file name), as docs/cli.md shows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs = fsspec.filesystem("reference", fo=fo)
        return zarr.open_group(fs.get_mapper(), mode="r", zarr_format=2)


def open_parquet(folder: Path, engine: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if engine == "pyarrow":
            fs = open_parquet_refs(folder, asynchronous=True)
            store = zarr.storage.FsspecStore(fs, read_only=True)
            return zarr.open_group(store, mode="r", zarr_format=2)
        fs = fsspec.filesystem(
            "reference", fo=str(folder), remote_protocol="file", skip_instance_cache=True
        )
        return zarr.open_group(fs.get_mapper(""), mode="r", zarr_format=2)


def export(path: Path, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hdf5_refs(path, **kwargs)


# --- checks on the references themselves --------------------------------------------------------


def chunk_coords(key: str, name: str = "x") -> tuple[int, ...] | None:
    """Chunk grid coordinates of a chunk key of dataset ``name`` (None: a metadata key)."""
    prefix = f"{name}/"
    if not key.startswith(prefix) or key.rsplit("/", 1)[-1].startswith("."):
        return None
    return tuple(int(c) for c in key[len(prefix) :].split("."))


def check_ranges(refs: dict[str, Any], path: Path, target: str) -> None:
    """Every ``[url, offset, size]`` reference points at ``target`` (the url written), lies inside
    the file and holds the bytes HDF5 stores for that chunk (raw, as ``read_direct_chunk``)."""
    blob = path.read_bytes()
    ranged = {k: v for k, v in refs.items() if isinstance(v, list)}
    if not ranged:
        return
    with h5py.File(path, "r") as f:
        ds = f["x"]
        layout = ds.id.get_create_plist().get_layout()
        for key, ref in ranged.items():
            assert len(ref) == 3 and ref[0] == target, (key, ref)
            _, offset, size = ref
            assert isinstance(offset, int) and isinstance(size, int), (key, ref)
            assert offset >= 0 and size > 0 and offset + size <= len(blob), (key, ref, len(blob))
            coords = chunk_coords(key)
            assert coords is not None, key
            got = blob[offset : offset + size]
            if layout == h5py.h5d.CHUNKED:
                start = tuple(c * n for c, n in zip(coords, ds.chunks, strict=True))
                _, raw = ds.id.read_direct_chunk(start)
                assert got == raw, key
            else:  # contiguous: a slice of the dataset's one block
                begin = ds.id.get_offset()
                assert begin is not None and begin <= offset, (key, ref, begin)
                assert offset + size <= begin + ds.id.get_storage_size(), (key, ref)


def target_and_url(path: Path, form: str) -> tuple[str | None, str]:
    """The ``url=`` argument for a form, and the reference target it must produce."""
    if form == "default":
        return None, str(path.resolve())
    if form == "file-url":
        return f"file://{path.resolve()}", f"file://{path.resolve()}"
    if form == "relative":
        return path.name, path.name
    raise AssertionError(form)


# --- the property -------------------------------------------------------------------------------


def check(desc: diff.Desc, tmp: Path, data: Any) -> None:
    path = tmp / "d.h5"
    unsupported = diff.expect_unsupported(desc)
    try:
        diff.write(desc, path)
    except (OSError, ValueError):
        if unsupported is None:
            raise
        reject()
    threshold = data.draw(st.sampled_from([0, 1, 64, 500, 1 << 30]), label="inline_threshold")
    form = data.draw(st.sampled_from(["default", "default", "file-url", "relative"]), label="url")
    url, target = target_and_url(path, form)
    try:
        refs = export(path, inline_threshold=threshold, url=url)
    except UnsupportedHDF5FeatureError as e:
        assert unsupported is not None and re.search(unsupported, str(e)), (desc, e)
        assert "d.h5" in str(e) and "x" in str(e), e  # names the file and the dataset
        return
    assert refs["version"] == 1
    again = export(path, inline_threshold=threshold, url=url)
    assert json.dumps(again, sort_keys=True) == json.dumps(refs, sort_keys=True), "not stable"
    json.dumps(refs)  # JSON-serialisable as it is
    check_ranges(refs["refs"], path, target)

    with h5py.File(path, "r") as f:
        ds = f["x"]
        want = np.asarray(ds[...], dtype=ds.dtype)
        shape = ds.shape
        sels = [diff.selection(data.draw, shape) for _ in range(3)]
        wants = [np.asarray(ds[s], dtype=ds.dtype) for s in sels]

    groups: dict[str, Any] = {"dict": lambda: open_json(refs)}
    out = tmp / "refs.json"
    if url is None:  # write_refs takes no url=
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = write_refs(path, out, inline_threshold=threshold)
        assert n == len(refs["refs"])
        assert json.loads(out.read_text()) == refs
        groups["json"] = lambda: open_json(str(out))
        if PARQUET and data.draw(st.integers(0, 3), label="parquet") == 0:
            record = data.draw(st.sampled_from([1, 3, 10_000]), label="record_size")
            parq = tmp / "refs.parq"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_refs(path, parq, inline_threshold=threshold, record_size=record)
            groups["parquet-pyarrow"] = lambda: open_parquet(parq, "pyarrow")
            if FASTPARQUET:
                groups["parquet-fastparquet"] = lambda: open_parquet(parq, "fastparquet")
    cwd = os.getcwd()
    os.chdir(tmp)  # a relative url resolves against the reader's working directory
    try:
        for name, opener in groups.items():
            z = opener()["x"]
            where = f"{name} {desc} threshold={threshold} url={form}"
            assert z.shape == shape, where
            assert_same(diff.as_read(z[...], want), want, f"{where} [...]")
            for s, w in zip(sels, wants, strict=True):
                assert_same(diff.as_read(z[s], w), w, f"{where} {s}")
    finally:
        os.chdir(cwd)


SETTINGS = settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(SETTINGS, max_examples=80)
@given(desc=diff.descriptions(filtered=True), data=st.data())
def test_filtered_chunked_refs_read_like_h5py(tmp_path_factory, desc: Any, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("refs"), data)


@settings(SETTINGS, max_examples=60)
@given(desc=diff.descriptions(), data=st.data())
def test_any_dataset_refs_read_like_h5py(tmp_path_factory, desc: Any, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("refs"), data)


@settings(SETTINGS, max_examples=30)
@given(desc=diff.descriptions(unsupported=True), data=st.data())
def test_unsupported_features_refuse_loudly(tmp_path_factory, desc: Any, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("refs"), data)


XARRAY_DTYPES = {*diff.SIMPLE, *diff.BIG, "?", "c8", "S5"}


def check_xarray(desc: diff.Desc, tmp: Path, data: Any) -> None:
    xr = pytest.importorskip("xarray")
    if desc.dtype not in XARRAY_DTYPES:  # xarray decodes S1 as characters, compounds as void
        reject()
    path = tmp / "d.h5"
    try:
        diff.write(desc, path)
    except (OSError, ValueError):
        reject()
    refs = export(path)
    with h5py.File(path, "r") as f:
        want = np.asarray(f["x"][...], dtype=f["x"].dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opened = {
            "open_zarr": xr.open_zarr("reference://", storage_options={"fo": refs}),
            "kerchunk": xr.open_dataset(refs, engine="kerchunk"),
        }
    for name, ds in opened.items():
        assert_same(diff.as_read(ds["x"].values, want), want, f"{name} {desc}")


@settings(SETTINGS, max_examples=25)
@given(desc=diff.descriptions(), data=st.data())
def test_xarray_over_refs_reads_like_h5py(tmp_path_factory, desc: Any, data: Any) -> None:
    """``xr.open_zarr`` and ``xr.open_dataset(engine="kerchunk")`` over the references."""
    check_xarray(desc, tmp_path_factory.mktemp("refs"), data)


@settings(SETTINGS, max_examples=8)
@given(desc=diff.big_blosc2(), data=st.data())
def test_big_blosc2_refs_read_like_h5py(tmp_path_factory, desc: Any, data: Any) -> None:
    check(desc, tmp_path_factory.mktemp("refs"), data)


# --- regressions found by the property tests ----------------------------------------------------


def test_sparse_nan_filled_data_is_not_inlined_chunk_by_chunk(tmp_path: Path) -> None:
    """Every unallocated chunk of a dataset with a non-zero HDF5 fill value was inlined as an
    encoded fill chunk: the references of a 44 kB file with a sparse NaN-filled (2000, 2000)
    float32 dataset took 21 MB of JSON, growing with the chunk grid (2 GiB for 20000²). A NaN
    fill is now the array's ``fill_value``: NaN masks nothing in xarray, so zarr fills them."""
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        a = f.create_dataset("a", shape=(400, 300), dtype=">f4", chunks=(20, 30), fillvalue=np.nan)
        a[:20, :30] = np.arange(600, dtype="f4").reshape(20, 30)
        a[-1, -1] = -0.0
        # not NaN: keeps its inline fill chunks (xarray would mask a fill_value of -1)
        f.create_dataset("b", shape=(40, 30), dtype="i2", chunks=(20, 30), fillvalue=-1)
        f.create_dataset("c", shape=(40, 30), dtype="f8", chunks=(20, 30), fillvalue=-np.nan)
        want = {k: f[k][()] for k in "abc"}
    refs = export(path)
    for k in "ac":
        assert json.loads(refs["refs"][f"{k}/.zarray"])["fill_value"] == "NaN", k
        meta = json.loads(refs["refs"][".zmetadata"])["metadata"]
        assert meta[f"{k}/.zarray"]["fill_value"] == "NaN", k
    assert len(json.dumps({k: v for k, v in refs["refs"].items() if k[0] in "ac"})) < 10_000
    assert isinstance(refs["refs"]["b/1.0"], str)  # an encoded chunk full of -1
    group = open_json(refs)
    for k, w in want.items():
        assert_same(group[k][...], w, k)
    xr = pytest.importorskip("xarray")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr("reference://", storage_options={"fo": refs})
    for k, w in want.items():
        assert_same(ds[k].values, w, f"xarray {k}")


def test_fill_chunks_beyond_the_budget_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-NaN fill cannot be a v2 ``fill_value`` (xarray would mask real values equal to it):
    when its inline fill chunks would exceed ``MAX_FILL_TEXT`` the export says so instead of
    building gigabytes of JSON."""
    import b2store.refs

    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("g/b", shape=(400, 300), dtype="i2", chunks=(20, 30), fillvalue=-1)
    monkeypatch.setattr(b2store.refs, "MAX_FILL_TEXT", 100_000)
    with pytest.raises(ValueError, match=r"fill\.h5:/g/b: has 200 unallocated chunks .*b2h5"):
        export(path)
    monkeypatch.setattr(b2store.refs, "MAX_FILL_TEXT", 1_000_000)
    with h5py.File(path, "r") as f:
        assert_same(open_json(export(path))["g/b"][...], f["g/b"][()], "g/b")


def test_parquet_folder_names_with_braces(tmp_path: Path) -> None:
    """fsspec ``str.format()``s the parquet folder's path into each record's path: in a folder
    named ``run{{1}}`` every record was "missing", and both fsspec's reader and
    ``open_parquet_refs`` read every chunk as the fill value (zeros) without a word."""
    if not PARQUET:
        pytest.skip("needs pandas, pyarrow and kerchunk")
    import shutil

    from b2store.refs import RefsError

    path = tmp_path / "d.h5"
    want = np.arange(4000, dtype="i4").reshape(40, 100)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=want, chunks=(20, 50))
    odd = tmp_path / "run{{1}}"
    odd.mkdir()
    for name in ("r.parq", "r{.parq"):
        with pytest.raises(RefsError, match="braces"):
            write_refs(path, odd / name)
    assert list(odd.iterdir()) == []
    write_refs(path, tmp_path / "r.parq")
    shutil.move(tmp_path / "r.parq", odd / "r.parq")  # moved there later: our reader copes
    group = open_parquet(odd / "r.parq", "pyarrow")
    assert_same(group["x"][...], want, "moved parquet")


def test_local_file_name_with_a_double_colon(tmp_path: Path) -> None:
    """A local file name holding "::" was split as a chained fsspec URL: "HDF5 file not found:
    .../a" for a file that exists (h5py opens it)."""
    folder = tmp_path / "a::b"
    folder.mkdir()
    path = folder / "d.h5"
    want = np.arange(4000, dtype="i4").reshape(40, 100)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=want, chunks=(20, 50))
    refs = export(path)
    assert {v[0] for v in refs["refs"].values() if isinstance(v, list)} == {str(path)}
    assert_same(open_json(refs)["x"][...], want, "a::b")
