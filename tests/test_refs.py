"""``b2store refs``: kerchunk/fsspec references (version 1) that zarr reads like h5py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests._cli_files import write_sample
from tests.conftest import requires_h5py, requires_hdf5plugin

pytestmark = [requires_h5py, requires_hdf5plugin]

NUMERIC = ("entry/data/data", "x", "sparse", "contig", "scalar")


def _open(fo: object) -> object:
    import fsspec
    import zarr

    fs = fsspec.filesystem("reference", fo=fo)
    return zarr.open_group(fs.get_mapper(), mode="r", zarr_format=2)


def _check_equal(group: object, h5path: Path, names: tuple[str, ...] = NUMERIC) -> None:
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(h5path) as f:
        for k in names:
            np.testing.assert_array_equal(group[k][...], f[k][()], err_msg=k)  # type: ignore[index]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.h5")


def test_json_refs_read_like_h5py(sample: Path, tmp_path: Path) -> None:
    from b2store.refs import write_refs

    out = tmp_path / "refs.json"
    n = write_refs(sample, out)
    doc = json.loads(out.read_text())
    assert doc["version"] == 1 and len(doc["refs"]) == n
    zarray = json.loads(doc["refs"]["entry/data/data/.zarray"])
    codecs = json.dumps([zarray["compressor"], zarray["filters"]])
    assert "b2store_b2nd" in codecs
    # big chunks are byte ranges into the file, not inlined copies
    ranged = [v for v in doc["refs"].values() if isinstance(v, list)]
    assert ranged and all(v[0] == str(sample.resolve()) for v in ranged)
    # unallocated chunks of a non-zero-fill dataset are inline fill chunks (the v2 fill policy)
    assert isinstance(doc["refs"]["sparse/1.1"], str)
    assert "x/5" not in doc["refs"]
    _check_equal(_open(str(out)), sample)
    g = _open(str(out))
    assert [str(s) for s in g["names"][...]] == ["a", "bb"]  # type: ignore[index]


def test_refs_of_converted_file_and_itrunc(sample: Path, tmp_path: Path) -> None:
    from b2store.convert import CodecChoice, ConvertOptions, convert
    from b2store.refs import hdf5_refs

    out = tmp_path / "c.h5"
    convert(sample, out, options=ConvertOptions(codec=CodecChoice(itrunc_max_error=7)))
    refs = hdf5_refs(out)
    _check_equal(_open(refs), out)


def test_masked_chunks_are_inlined(tmp_path: Path) -> None:
    import h5py

    from b2store.refs import hdf5_refs

    rng = np.random.default_rng(0)
    p = tmp_path / "lzf.h5"
    with h5py.File(p, "w") as f:  # LZF stores incompressible chunks raw with filter mask 1
        f.create_dataset(
            "noise",
            data=rng.integers(0, 2**32, (64, 64), dtype="u4"),
            chunks=(32, 32),
            compression="lzf",
        )
        f.create_dataset("zeros", data=np.zeros((64, 64), "u4"), chunks=(32, 32), compression="lzf")
    with h5py.File(p) as f:
        masks: list[int] = []
        f["noise"].id.chunk_iter(lambda i: masks.append(i.filter_mask))
    assert any(masks)
    refs = hdf5_refs(p, inline_threshold=0)["refs"]
    _check_equal(_open({"version": 1, "refs": refs}), p, ("noise", "zeros"))


def test_parquet_refs(sample: Path, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import zarr
    from zarr.storage import FsspecStore

    from b2store.refs import open_parquet_refs, write_refs

    out = tmp_path / "refs.parq"
    write_refs(sample, out, record_size=3)
    assert (out / ".zmetadata").is_file()
    fs = open_parquet_refs(out, asynchronous=True)
    g = zarr.open_group(FsspecStore(fs, read_only=True), mode="r", zarr_format=2)
    _check_equal(g, sample)


def test_xarray_over_refs(sample: Path, tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    from b2store.refs import write_refs

    out = tmp_path / "refs.json"
    write_refs(sample, out)
    ds = xr.open_zarr("reference://", storage_options={"fo": str(out)}, group="entry/data")
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(sample) as f:
        np.testing.assert_array_equal(ds["data"].values, f["entry/data/data"][()])


def test_errors(tmp_path: Path) -> None:
    from b2store.refs import hdf5_refs, write_refs

    with pytest.raises(FileNotFoundError):
        hdf5_refs(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="not an HDF5 file"):
        hdf5_refs(junk)
    with pytest.raises(FileNotFoundError, match="output folder"):
        write_refs(junk, tmp_path / "nodir" / "r.json")


def test_remote_source_keeps_protocol(sample: Path) -> None:
    """References to a file on another fsspec filesystem keep its protocol and read back."""
    import fsspec

    from b2store.refs import hdf5_refs

    mem = fsspec.filesystem("memory")
    mem.pipe("/b2store-refs-test/sample.h5", sample.read_bytes())
    try:
        refs = hdf5_refs("memory://b2store-refs-test/sample.h5")
        ranged = [v for v in refs["refs"].values() if isinstance(v, list)]
        assert ranged and all(v[0].startswith("memory://") for v in ranged)
        _check_equal(_open(refs), sample)
    finally:
        mem.rm("/b2store-refs-test", recursive=True)


def test_sparse_zero_chunks(tmp_path: Path) -> None:
    """All-zero Blosc2 chunks (served as missing keys by b2h5) are left out and read as 0."""
    from b2store.demo import SIZES, write_tomography
    from b2store.refs import hdf5_refs

    p = tmp_path / "tomo.h5"
    write_tomography(p, SIZES["small"], progress=False)
    refs = hdf5_refs(p)["refs"]
    chunk_keys = [k for k in refs if k.startswith("entry/data/data/") and "/." not in k]
    assert 0 < len(chunk_keys) < 96  # 32 of the 96 chunks are all zeros
    _check_equal(_open({"version": 1, "refs": refs}), p, ("entry/data/data",))


@requires_h5py
def test_outputs_that_would_destroy_data_are_refused(sample: Path, tmp_path: Path) -> None:
    """The source itself (was: replaced by the JSON), a folder for JSON output (was: an errno
    message and a stray .part file), a folder that is not a parquet reference folder (was:
    deleted recursively)."""
    from b2store.refs import write_refs

    before = sample.read_bytes()
    with pytest.raises(ValueError, match="overwrite the source"):
        write_refs(sample, sample)
    assert sample.read_bytes() == before
    folder = tmp_path / "outdir"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        write_refs(sample, folder)
    assert not list(tmp_path.glob("*.part"))
    keep = tmp_path / "mine.parq"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a parquet reference folder"):
        write_refs(sample, keep)
    assert (keep / "notes.txt").read_text() == "mine"


@requires_h5py
def test_output_names_ending_in_a_slash(sample: Path, tmp_path: Path) -> None:
    """``-o refs.parq/`` (a shell's completion of a folder) was taken for a JSON file name and
    failed with "[Errno 20] Not a directory: '.../..x1y2.part' -> 'refs.parq/'". Now it names
    the parquet folder; a JSON name ending in a slash says to give a file name."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from b2store.refs import write_refs

    out = tmp_path / "refs.parq"
    for _ in range(2):  # a new folder, then replacing it
        assert write_refs(sample, f"{out}/") > 0
        assert (out / ".zmetadata").is_file()
    with pytest.raises(ValueError, match="give the JSON output a file name"):
        write_refs(sample, f"{tmp_path / 'refs.json'}/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs.parq", "sample.h5"]


def _read_json_refs(refs: object, name: str) -> np.ndarray:
    """Read ``name`` through fsspec's reference filesystem + zarr (Zarr v2)."""
    return np.asarray(_open(refs)[name][...])  # type: ignore[index]


def test_refs_of_a_virtual_dataset_point_into_its_source_files(tmp_path: Path) -> None:
    """Chunks of a mapped virtual dataset were referenced into the virtual file itself (its
    table's main URL), so every chunk above ``inline_threshold`` read garbage or failed."""
    import h5py

    from b2store.refs import hdf5_refs

    rng = np.random.default_rng(5)
    parts = [rng.random((32, 40)) for _ in range(2)]
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f.create_dataset("d", data=parts[0], chunks=(16, 20), compression="gzip")
    path = tmp_path / "vds.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("local", data=parts[1], chunks=(16, 20), compression="gzip")
        layout = h5py.VirtualLayout(shape=(64, 40), dtype="f8")
        layout[:32] = h5py.VirtualSource("src.h5", "d", shape=(32, 40))
        layout[32:] = h5py.VirtualSource(".", "local", shape=(32, 40))
        f.create_virtual_dataset("v", layout, fillvalue=0)
    for threshold in (0, 500):
        refs = hdf5_refs(path, inline_threshold=threshold)
        assert refs["refs"]["v/0.0"][0] == str(tmp_path / "src.h5")
        np.testing.assert_array_equal(_read_json_refs(refs, "v"), np.concatenate(parts))


def test_parquet_refs_of_sparse_data_read_the_fill_value(tmp_path: Path) -> None:
    """In a parquet record holding both file references and unallocated chunks, pandas gives
    NaN (not None) for the missing paths, and fsspec failed on every unallocated chunk with
    "argument of type 'float' is not iterable"."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import h5py
    import zarr

    from b2store.refs import open_parquet_refs, write_refs

    src = tmp_path / "sparse.h5"
    data = np.random.default_rng(1).integers(0, 2**30, (8, 400)).astype("i4")
    with h5py.File(src, "w") as f:
        d = f.create_dataset("s", shape=(8, 400), dtype="i4", chunks=(1, 400))
        d[2] = data[2]  # 1600 bytes: referenced, not inlined
        d[5] = data[5]
        expected = d[()]
    write_refs(src, tmp_path / "refs.parq")
    fs = open_parquet_refs(tmp_path / "refs.parq", asynchronous=True)
    store = zarr.storage.FsspecStore(fs, read_only=True)
    got = zarr.open_group(store, mode="r", zarr_format=2)["s"][...]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.filterwarnings("ignore:The 'fastparquet' engine is deprecated")
def test_parquet_refs_read_with_fsspecs_default_engine(tmp_path: Path) -> None:
    """``fsspec.filesystem("reference", fo="refs.parq")`` reads with fastparquet. pyarrow had
    inferred a ``null``-typed ``raw`` column for records with no inline chunk (and ``path`` for
    records of inline chunks only), which fastparquet reads as NaN: "object of type
    'numpy.float64' has no len()" on the one allocated chunk of a sparse dataset; and nullable
    offsets, read as floats. Records now have kerchunk's column types, for both engines."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pytest.importorskip("fastparquet")
    import fsspec
    import h5py
    import pyarrow.parquet as pq
    import zarr

    from b2store.refs import open_parquet_refs, write_refs

    src = tmp_path / "sparse.h5"
    with h5py.File(src, "w") as f:
        big = f.create_dataset("big", shape=(2**20, 2**20), dtype="u1", chunks=(1, 2**12))
        big[70_000, : 2**12] = np.arange(2**12) % 251  # one chunk, in a record of its own
        f.create_dataset("fill", shape=(60, 60), dtype="f4", chunks=(30, 30), fillvalue=np.nan)
        f["fill"][:30, :30] = 1  # inline fill chunks beside one small inline chunk
        f.create_dataset("many", data=np.arange(40_000, dtype="i4"), chunks=(500,))
        expected = {"fill": f["fill"][()], "many": f["many"][()]}
        expected["big"] = big[69_999:70_001, : 2**13]
    out = tmp_path / "refs.parq"
    write_refs(src, out)
    for record in out.rglob("refs.*.parq"):
        schema = pq.read_schema(record)
        assert [str(t) for t in schema.types] == ["string", "int64", "int64", "binary"]
    fs = fsspec.filesystem("reference", fo=str(out), remote_protocol="file")
    default = zarr.open_group(fs.get_mapper(""), mode="r", zarr_format=2)
    store = zarr.storage.FsspecStore(open_parquet_refs(out, asynchronous=True), read_only=True)
    with_pyarrow = zarr.open_group(store, mode="r", zarr_format=2)
    for group in (default, with_pyarrow):
        np.testing.assert_array_equal(group["big"][69_999:70_001, : 2**13], expected["big"])
        np.testing.assert_array_equal(group["fill"][...], expected["fill"])
        np.testing.assert_array_equal(group["many"][...], expected["many"])


def test_contiguous_data_is_referenced_not_inlined(tmp_path: Path) -> None:
    """Full virtual chunks of a contiguous dataset are [url, offset, size] references; only the
    short edge chunk (zero-padded by b2h5) is inlined. Every chunk used to be inlined: the
    references of a 1 GB dataset held 1.3 GB of base64."""
    import h5py

    from b2store.refs import hdf5_refs

    path = tmp_path / "contiguous.h5"
    data = np.arange(3_000_000, dtype="f8")  # 24 MB: five full 4 MiB chunks and a short one
    rows = np.arange(3 * 1_048_577, dtype="f4").reshape(3, -1)  # rows a little over 4 MiB
    with h5py.File(path, "w") as f:
        f["x"] = data
        f["rows"] = rows
        f["zeros"] = np.zeros(50, "u2")  # inlined: small
    refs = hdf5_refs(path)
    assert refs["refs"]["zeros/0"].startswith("base64:")  # not 100 JSON escapes of 6 bytes
    chunks = {k: v for k, v in refs["refs"].items() if k.startswith("x/") and k[2:].isdigit()}
    assert [k for k, v in chunks.items() if not isinstance(v, list)] == [f"x/{len(chunks) - 1}"]
    # the inlined edge chunk is base64 (its zero padding as JSON text took 6 bytes per byte)
    assert sum(len(json.dumps(v)) for v in chunks.values()) < data.nbytes // 4
    assert all(isinstance(v, list) for k, v in refs["refs"].items() if k.startswith("rows/0"))
    group = _open(refs)
    np.testing.assert_array_equal(group["x"][...], data)  # type: ignore[index]
    np.testing.assert_array_equal(group["rows"][...], rows)  # type: ignore[index]


def test_interrupted_parquet_write_keeps_the_previous_output(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parquet folder was deleted first and then filled in place: Ctrl-C (or a full disk)
    destroyed the earlier references and left a folder zarr read as "No group found"."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import os

    import zarr
    from fsspec.implementations.reference import LazyReferenceMapper
    from zarr.storage import FsspecStore

    from b2store.refs import open_parquet_refs, write_refs

    out = tmp_path / "refs.parq"
    write_refs(sample, out, record_size=3)
    setitem = LazyReferenceMapper.__setitem__
    calls = []

    def interrupted(self: LazyReferenceMapper, key: str, value: object) -> None:
        calls.append(key)
        if len(calls) == 20:
            raise KeyboardInterrupt
        setitem(self, key, value)

    monkeypatch.setattr(LazyReferenceMapper, "__setitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_refs(sample, out, record_size=3)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["refs.parq", "sample.h5"]  # no temporary left
    fs = open_parquet_refs(out, asynchronous=True)
    g = zarr.open_group(FsspecStore(fs, read_only=True), mode="r", zarr_format=2)
    _check_equal(g, sample)  # the earlier, complete references
    write_refs(sample, out, record_size=3)  # and a later run replaces them
    fs = open_parquet_refs(out, asynchronous=True)
    _check_equal(zarr.open_group(FsspecStore(fs, read_only=True), mode="r", zarr_format=2), sample)


def test_parquet_refs_refuse_a_path_fsspec_takes_for_metadata(tmp_path: Path) -> None:
    """fsspec's parquet mapper treats any key with a part starting ".z" as Zarr metadata and
    parsed the chunk bytes of a dataset named so as JSON: "Expected object or value"."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import h5py

    from b2store.refs import RefsError, write_refs

    src = tmp_path / "z.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("ok", data=np.arange(4), chunks=(2,))
        f.create_dataset("g/.zscore", data=np.arange(4.0), chunks=(2,))
    with pytest.raises(RefsError, match=r"g/\.zscore: .*write JSON references"):
        write_refs(src, tmp_path / "r.parq")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.h5"]
    write_refs(src, tmp_path / "r.json")  # JSON holds it
    g = _open(str(tmp_path / "r.json"))
    np.testing.assert_array_equal(g["g/.zscore"][...], np.arange(4.0))  # type: ignore[index]


def test_parquet_output_never_replaces_a_zarr_store(sample: Path, tmp_path: Path) -> None:
    """Any folder with a .zmetadata passed for a parquet reference folder and was deleted: a
    consolidated Zarr v2 store named ``*.parq`` was destroyed by ``b2store refs -o``."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    import zarr

    from b2store.refs import RefsError, write_refs

    store = tmp_path / "data.parq"
    store.mkdir()
    group = zarr.open_group(zarr.storage.LocalStore(store), mode="w", zarr_format=2)
    group.create_array("a", shape=(4,), dtype="i4")[:] = np.arange(4)
    zarr.consolidate_metadata(zarr.storage.LocalStore(store), zarr_format=2)
    assert (store / ".zmetadata").is_file()
    with pytest.raises(RefsError, match="not a parquet reference folder"):
        write_refs(sample, store)
    kept = zarr.open_group(zarr.storage.LocalStore(store), mode="r", zarr_format=2)
    np.testing.assert_array_equal(kept["a"][:], np.arange(4))
    refs = tmp_path / "refs.parq"
    write_refs(sample, refs)
    write_refs(sample, refs)  # an earlier parquet reference folder is replaced
