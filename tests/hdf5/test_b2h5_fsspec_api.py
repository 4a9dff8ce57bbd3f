"""b2h5 through fsspec's own API: ``info``/``find``/``du`` sizes equal the bytes served,
``get`` copies a readable store, ``cat`` expands glob patterns, only canonical chunk keys exist,
writes raise PermissionError, and a URL without a file says how to name one.

Every value read through ``b2h5`` is compared with what h5py reads from the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from b2store.hdf5.filesystem import HDF5FileSystem


def _masked_and_filled_file(path: Path) -> Path:
    """``masked``: gzip chunks, every other one stored raw (filter mask 1); ``filled``: fill
    value 9, one chunk written (the v2 view serves the others as encoded fill chunks)."""
    import zlib

    with h5py.File(path, "w", libver="latest") as f:
        d = f.create_dataset("masked", shape=(8, 6), chunks=(4, 3), dtype="i4", compression="gzip")
        full = np.arange(48, dtype="i4").reshape(8, 6)
        for i in range(2):
            for j in range(2):
                block = full[4 * i : 4 * i + 4, 3 * j : 3 * j + 3].tobytes()
                if (i + j) % 2:
                    d.id.write_direct_chunk((4 * i, 3 * j), block, filter_mask=1)
                else:
                    d.id.write_direct_chunk((4 * i, 3 * j), zlib.compress(block), filter_mask=0)
        f.create_dataset("filled", shape=(6, 6), chunks=(3, 3), dtype="i4", fillvalue=9)
        f["filled"][0:3, 0:3] = 1
        f["scalar"] = np.float32(2.5)
        f["contiguous"] = np.arange(5, dtype="u2")
    return path


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_listed_sizes_match_served_bytes(tmp_path: Path, zarr_format: int) -> None:
    """A chunk of a dataset with filter-masked chunks had size None in info()/find(): du()
    raised TypeError, and size() did not match len(cat_file())."""
    path = _masked_and_filled_file(tmp_path / "m.h5")
    fs = HDF5FileSystem(str(path), zarr_format=zarr_format, skip_instance_cache=True)
    found = fs.find("", detail=True)
    assert found and all(info["size"] == len(fs.cat_file(p)) for p, info in found.items())
    assert fs.du("") == sum(info["size"] for info in found.values())
    assert fs.du("masked") > 0


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_get_copies_a_readable_store(tmp_path: Path, zarr_format: int) -> None:
    """``fs.get(..., recursive=True)`` raised a bare NotImplementedError, and the v3 view did
    not list a scalar's chunk key ``<name>/c``, so a copy read zeros where h5py reads the scalar.
    The v2 view lists the fill chunks it serves for unallocated chunks (fill value 9, not the
    published null): its copy read zeros there."""
    import zarr

    path = _masked_and_filled_file(tmp_path / "m.h5")
    fs = HDF5FileSystem(str(path), zarr_format=zarr_format, skip_instance_cache=True)
    out = tmp_path / "copy"
    fs.get("", f"{out}/", recursive=True)
    root = zarr.open_group(str(out), mode="r", zarr_format=zarr_format)
    with h5py.File(path, "r") as f:
        for name in ("masked", "filled", "scalar", "contiguous"):
            got, want = root[name][...], f[name][()]
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    chunk_keys = [k for k in fs.find("filled") if not k.rpartition("/")[2].startswith((".", "z"))]
    # v3: allocated chunks only (fill_value 9); v2: every chunk, 3 of them fill chunks
    assert len(chunk_keys) == (1 if zarr_format == 3 else 4)


def _fill_file(path: Path) -> Path:
    """Datasets whose v2 view (``fill_value`` null) serves fill chunks: non-zero fill values with
    unallocated chunks, never-written ones; and a sparse fill-0 one (nothing to serve)."""
    with h5py.File(path, "w") as f:
        d = f.create_dataset("sevens", shape=(10,), chunks=(5,), dtype="i4", fillvalue=7)
        d[:5] = np.arange(5)
        d = f.create_dataset("nans", shape=(5, 7), chunks=(2, 3), dtype="f4", fillvalue=np.nan,
                              compression="gzip")  # fmt: skip
        d[2:4, 3:6] = 1.5
        f.create_dataset("never", shape=(4, 6), chunks=(2, 2), dtype="i2", fillvalue=-9)
        f.create_dataset("never0d", shape=(), dtype="i4", fillvalue=-2147483647)
        f.create_dataset("zeros", shape=(100,), chunks=(10,), dtype="u1")[20:30] = 3
    return path


def test_v2_copy_reads_the_fill_chunks_it_serves(tmp_path: Path) -> None:
    """``fs.get`` of the v2 view copied only the listed keys, and the fill chunks served for
    unallocated chunks of datasets with a non-zero fill value were not listed: the copy read 0
    (its ``fill_value`` is null) where h5py reads 7, NaN, -9 or -2147483647."""
    import xarray as xr
    import zarr

    from b2store.refs import hdf5_refs

    path = _fill_file(tmp_path / "fill.h5")
    fs = HDF5FileSystem(str(path), zarr_format=2, skip_instance_cache=True)
    out = tmp_path / "copy.zarr"
    fs.get("", str(out), recursive=True)
    root = zarr.open_group(str(out), mode="r", zarr_format=2)
    ds = xr.open_zarr(str(out), zarr_format=2, consolidated=False)
    with h5py.File(path, "r") as f:
        for name in ("sevens", "nans", "never", "never0d", "zeros"):
            want = f[name][()]
            for got in (root[name][...], ds[name].values):
                assert got.dtype == want.dtype and got.shape == want.shape, name
                np.testing.assert_array_equal(got, want, err_msg=name)
    chunks = {
        k: v for k, v in fs.find("", detail=True).items() if k.rpartition("/")[2][0] not in ".z"
    }
    per = {n: sorted(k.rpartition("/")[2] for k in chunks if k.startswith(n + "/")) for n in
           ("sevens", "nans", "never", "never0d", "zeros")}  # fmt: skip
    assert per["sevens"] == ["0", "1"] and per["never0d"] == ["0"] and len(per["nans"]) == 9
    assert len(per["never"]) == 6 and per["zeros"] == ["2"]  # fill 0: allocated chunks only
    assert all(info["size"] == len(fs.cat_file(k)) for k, info in chunks.items())
    assert fs.du("") == sum(i["size"] for i in fs.find("", detail=True).values())
    assert fs.ls("never", detail=False)[:2] == ["never/.zarray", "never/.zattrs"]
    # the references (built from the chunk tables) hold the same keys, as before, but for the
    # NaN-filled dataset: its fill becomes the references' fill_value, its fill chunks are left out
    refs = hdf5_refs(path)["refs"]
    keys = {k for k in refs if k.rpartition("/")[2][0] not in ".z"}
    assert {k for k in keys if not k.startswith("nans/")} == {
        k for k in chunks if not k.startswith("nans/")
    }
    assert {k for k in keys if k.startswith("nans/")} < {k for k in chunks if k.startswith("nans/")}
    assert json.loads(refs["nans/.zarray"])["fill_value"] == "NaN"


def test_cat_expands_glob_patterns_but_keeps_literal_keys(tmp_path: Path) -> None:
    """``fs.cat("x/c/*")`` raised FileNotFoundError (the pattern was looked up as a key);
    fsspec expands it and returns a dict. Keys whose HDF5 names hold ``[`` stay literal."""
    path = tmp_path / "glob.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10, dtype="i2"), chunks=(3,))
        f.create_dataset("br[ack]", data=np.arange(4, dtype="i2"), chunks=(2,))
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    got = fs.cat("x/c/*")
    assert sorted(got) == [f"x/c/{i}" for i in range(4)]
    assert all(got[k] == fs.cat_file(k) for k in got)
    assert list(fs.cat("x/c/[1]")) == ["x/c/1"]
    assert fs.cat("br[ack]/c/1") == np.arange(2, 4, dtype="i2").tobytes()
    assert fs.get_mapper()["br[ack]/zarr.json"] == fs.cat_file("br[ack]/zarr.json")


@pytest.mark.parametrize(
    ("zarr_format", "key", "aliases"),
    [
        (3, "masked/c/1/0", ["masked/c/01/0", "masked/c/+1/0", "masked/c/ 1/0", "masked/c/1/0 "]),
        (2, "masked/1.0", ["masked/01.0", "masked/1.00", "masked/+1.0", "masked/1 .0"]),
    ],
)
def test_only_canonical_chunk_keys_exist(
    tmp_path: Path, zarr_format: int, key: str, aliases: list[str]
) -> None:
    """Chunk coordinates were parsed with ``int()``: ``01``, ``+1``, `` 1`` (and ``1_0`` for
    chunk 10) were served as aliases of listed keys that ls()/find() never show."""
    path = _masked_and_filled_file(tmp_path / "m.h5")
    fs = HDF5FileSystem(str(path), zarr_format=zarr_format, skip_instance_cache=True)
    assert fs.exists(key) and key in fs.find("masked")
    for alias in aliases:
        assert not fs.exists(alias)
        with pytest.raises(FileNotFoundError):
            fs.cat_file(alias)


@pytest.mark.parametrize(
    ("call", "names"),
    [
        pytest.param(lambda fs: fs.pipe_file("x/zarr.json", b"{}"), r"m\.h5", id="pipe"),
        pytest.param(lambda fs: fs.rm("zarr.json"), r"m\.h5", id="rm"),
        pytest.param(lambda fs: fs.mkdir("new"), r"m\.h5", id="mkdir"),
        pytest.param(lambda fs: fs.makedirs("new"), r"m\.h5", id="makedirs"),
        pytest.param(lambda fs: fs.mv("zarr.json", "moved.json"), r"m\.h5", id="mv"),
        pytest.param(lambda fs: fs.copy("zarr.json", "copy.json"), r"m\.h5", id="copy"),
        pytest.param(lambda fs: fs.put_file(__file__, "up.py"), r"m\.h5", id="put"),
        pytest.param(lambda fs: fs.open("masked/zarr.json", "wb"), r"'wb'.*m\.h5", id="open-wb"),
    ],
)
def test_writes_raise_a_clear_permission_error(tmp_path: Path, call: object, names: str) -> None:
    """Writes raised fsspec's bare NotImplementedError (mkdir silently did nothing); after a
    refusal the store still reads."""
    path = _masked_and_filled_file(tmp_path / "m.h5")
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    with pytest.raises(PermissionError, match=rf"b2h5 is read-only.*{names}"):
        call(fs)  # type: ignore[operator]
    fs.makedirs("masked", exist_ok=True)  # an existing directory: nothing to do
    assert fs.ls("", detail=False) == ["contiguous", "filled", "masked", "scalar", "zarr.json"]
    with fs.open("masked/zarr.json", "rb") as fh:
        assert b'"node_type": "array"' in fh.read()


def test_url_without_a_file_says_how_to_name_one() -> None:
    """``b2h5:///data/f.h5`` (a path in the store, no file after ``::``) said only "Got ''"."""
    import fsspec

    with pytest.raises(TypeError, match=r"b2h5::/data/f\.h5"):
        fsspec.core.url_to_fs("b2h5:///data/f.h5")


def test_blockcache_over_a_local_file(tmp_path: Path) -> None:
    """``b2h5::blockcache::file://`` (a stand-in for a remote file in tests and examples) failed
    at open with ``AttributeError: property 'closed' of 'LocalFileOpener' object has no
    setter``: fsspec's blockcache closes the file, then sets that read-only attribute."""
    import pickle

    import zarr

    path = tmp_path / "b.h5"
    want = np.arange(60, dtype="f4").reshape(6, 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=want, chunks=(2, 5), compression="gzip")
    fs = HDF5FileSystem(
        f"blockcache::file://{path}",
        target_options={"cache_storage": str(tmp_path / "blocks")},
    )
    arr = zarr.open_array(fs.get_mapper("x"), mode="r")
    np.testing.assert_array_equal(arr[...], want)
    copy = pickle.loads(pickle.dumps(arr))
    np.testing.assert_array_equal(copy[...], want)


def test_cat_of_a_replaced_file_raises(tmp_path: Path) -> None:
    """``fs.cat([...])`` (and fsspec's mapper ``getitems``) read a local file by its path, so
    after the file was replaced by another one they served the other file's bytes at the old
    offsets, silently, where ``cat_file`` raised. Both now read the indexed file or raise."""
    import os

    path = tmp_path / "r.h5"

    def write(value: int, target: Path) -> None:
        with h5py.File(target, "w") as f:
            f.create_dataset("x", data=np.full((4, 8), value, dtype="i4"), chunks=(1, 8))

    write(1, path)
    write(1, tmp_path / "read.h5")
    keys = [f"x/c/{i}/0" for i in range(4)]
    fs = HDF5FileSystem(str(path))
    read_before = HDF5FileSystem(str(tmp_path / "read.h5"))
    assert np.frombuffer(read_before.cat_file(keys[0]), dtype="i4")[0] == 1
    for target in (path, tmp_path / "read.h5"):
        write(2, tmp_path / "new.h5")
        os.replace(tmp_path / "new.h5", target)
    with pytest.raises(OSError, match="replaced by another file"):
        fs.cat(keys)
    with pytest.raises(OSError, match="replaced by another file"):
        fs.get_mapper().getitems(keys)
    assert all(isinstance(v, OSError) for v in fs.cat(keys, on_error="return").values())
    # a filesystem that had its file open goes on reading the file it indexed
    got = read_before.cat(keys)
    assert [np.frombuffer(v, dtype="i4")[0] for v in got.values()] == [1] * 4


def test_file_urls_as_rfc_8089_writes_them(tmp_path: Path) -> None:
    """``Path.as_uri()`` percent-encodes spaces and non-ASCII names and ``file://localhost/``
    names the local host: fsspec took both literally ("HDF5 file not found:
    .../a%20dir/f%20%C3%A9.h5", ".../localhost/tmp/..."). A name that really holds ``%20``
    stays literal."""
    import pickle

    import fsspec
    import zarr

    want = np.arange(12, dtype="i2").reshape(3, 4)
    (tmp_path / "a dir").mkdir()
    path = tmp_path / "a dir" / "f é.h5"
    literal = tmp_path / "lit%20eral.h5"
    for p in (path, literal):
        with h5py.File(p, "w") as f:
            f.create_dataset("x", data=want, chunks=(2, 2))
    urls = [
        path.as_uri(),
        "file://localhost" + path.as_uri()[len("file://") :],
        f"file://localhost{path}",
        f"file://{literal}",
    ]
    for url in urls:
        for fs in (
            HDF5FileSystem(url, skip_instance_cache=True),
            HDF5FileSystem(url, target_protocol="file", skip_instance_cache=True),
            fsspec.core.url_to_fs(f"b2h5::{url}")[0],
        ):
            arr = zarr.open_array(fs.get_mapper("x"), mode="r")
            np.testing.assert_array_equal(arr[...], want)
            np.testing.assert_array_equal(pickle.loads(pickle.dumps(arr))[...], want)
    with pytest.raises(FileNotFoundError, match="HDF5 file not found"):
        HDF5FileSystem(f"file://{tmp_path}/a%20dir/nope.h5", skip_instance_cache=True)


@pytest.mark.parametrize("suffix", ["tar", "tar.gz"])
def test_tar_member_read_by_many_threads_matches_h5py(tmp_path: Path, suffix: str) -> None:
    """fsspec's tar:: files of one archive share its file object (each read seeks it, then
    reads): zarr reading big chunks in several threads got other chunks' bytes, so arrays came
    back wrong with no error (2 of 5 reads of a plain .tar, most of a .tar.gz) or failed with
    tarfile's "unexpected end of data"."""
    import tarfile
    from concurrent.futures import ThreadPoolExecutor

    import zarr

    want = np.arange(16 * 70_001, dtype="f4")
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("big", data=want, chunks=(70_001,))  # 280 KB chunks: ranged reads
    archive = tmp_path / f"m.{suffix}"
    with tarfile.open(archive, "w:gz" if suffix == "tar.gz" else "w") as t:
        t.add(tmp_path / "m.h5", "m.h5")
    arr = zarr.open_array(f"b2h5::tar://m.h5::{archive}", path="big", mode="r")
    with ThreadPoolExecutor(4) as pool:
        for got in pool.map(lambda _: arr[...], range(8)):
            np.testing.assert_array_equal(got, want)


_PERMISSION_PROBE = r"""
import sys
import fsspec
url = sys.argv[1]
try:
    fsspec.url_to_fs(url)
except Exception as exc:
    print(type(exc).__name__, isinstance(exc, PermissionError), "HTTP" in str(exc), str(exc)[:300])
else:
    print("opened")
"""


@pytest.mark.parametrize("layer", ["", "simplecache::"])
def test_unreadable_local_file_is_a_permission_error_not_http(tmp_path: Path, layer: str) -> None:
    """A local file the user may not read: through a caching layer (simplecache::, so no
    "local" target) the OS's PermissionError became "the server refused access to the HDF5 file
    (HTTP 403)... credentials... expired"; read directly it became "not a readable HDF5 file
    ... check that it is complete (not truncated) and really HDF5"."""
    import os
    import shutil
    import subprocess
    import sys

    path = tmp_path / "locked.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    path.chmod(0)
    cmd = [sys.executable, "-c", _PERMISSION_PROBE, f"b2h5::{layer}{path}"]
    if os.access(path, os.R_OK):  # root: drop the capabilities that bypass file permissions
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: cannot make a file unreadable")
        caps = "-dac_override,-dac_read_search"
        cmd = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if "Operation not permitted" in res.stderr:
        pytest.skip("cannot drop capabilities here")
    assert res.stdout.startswith("PermissionError True False"), res.stdout + res.stderr[-2000:]


def test_plain_paths_are_not_read_as_file_urls(tmp_path: Path, monkeypatch) -> None:
    """The RFC 8089 reading of ``file:`` URLs (``%20``, ``file://localhost/``) was applied to
    plain paths too: a missing ``a%20b.h5`` opened the file ``a b.h5``, a missing relative
    ``localhost/<abs path>`` opened ``/<abs path>``, and ``%2F`` in a URL (a "/" inside a name,
    which no POSIX file has) opened a file one folder down."""
    (tmp_path / "a").mkdir()
    for name in ("a b.h5", "a/b.h5"):
        with h5py.File(tmp_path / name, "w") as f:
            f["x"] = np.arange(3)
    monkeypatch.chdir(tmp_path)
    for fo in (
        f"{tmp_path}/a%20b.h5",
        f"localhost{tmp_path}/a b.h5",
        f"file://{tmp_path}/a%2Fb.h5",
    ):
        with pytest.raises(FileNotFoundError, match="HDF5 file not found"):
            HDF5FileSystem(fo, skip_instance_cache=True)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_node_named_like_the_protocol_reads_its_own_chunks(
    tmp_path: Path, zarr_format: int
) -> None:
    """Every key starting with ``b2h5::`` lost that prefix (taken for the protocol): a dataset
    named ``b2h5::x`` read the chunks of ``x``, or zarr's fill value when there is none,
    silently, and the unconsolidated listing left it out. fsspec splits ``::`` chains before any key
    reaches the filesystem, so only ``b2h5://`` is a protocol prefix."""
    import xarray as xr

    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("b2h5::x", data=np.arange(6, dtype="i4") + 1, chunks=(2,))
        f.create_dataset("x", data=np.arange(6, dtype="i4") + 100, chunks=(2,))
        f.create_dataset("b2h5::y", data=np.arange(6, dtype="i4") + 7, chunks=(3,))
    so = {"zarr_format": zarr_format}
    for consolidated in (True, False):
        ds = xr.open_zarr(f"b2h5::{path}", storage_options=so, consolidated=consolidated)
        with h5py.File(path) as f:
            for name in f:
                np.testing.assert_array_equal(ds[name].values, f[name][()])
    fs = HDF5FileSystem(str(path), zarr_format=zarr_format, skip_instance_cache=True)
    assert "b2h5::x" in fs.ls("", detail=False)
    assert fs.cat("b2h5://zarr.json" if zarr_format == 3 else "b2h5://.zgroup").startswith(b"{")


def test_open_without_mode_of_a_missing_node_says_so(tmp_path: Path) -> None:
    """``zarr.open(url, path="entry/dta")`` (a misspelt path, no ``mode=``: zarr's default mode
    "a" creates it) said only "b2h5 is read-only: cannot write 'entry/dta/zarr.json'", about a
    write the user never asked for."""
    import zarr

    path = _masked_and_filled_file(tmp_path / "m.h5")
    with pytest.raises(PermissionError, match=r"no node 'mased' in the file.*mode='r'"):
        zarr.open(f"b2h5::{path}", path="mased")
    assert zarr.open(f"b2h5::{path}", path="masked").shape == (8, 6)  # an existing node opens
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    with pytest.raises(PermissionError) as info:
        fs.pipe_file("masked/zarr.json", b"{}")  # a write over an existing node: no such hint
    assert "no node" not in str(info.value)
    # what the message advises works (zarr 3's zarr.copy_store, advised before, raises
    # NotImplementedError)
    assert "zarr.copy_store" not in str(info.value) and "fs.get('', 'copy.zarr'" in str(info.value)
    fs.get("", str(tmp_path / "copy.zarr"), recursive=True)
    assert zarr.open_array(str(tmp_path / "copy.zarr"), path="masked", mode="r").shape == (8, 6)


def test_open_of_a_group_or_missing_key_names_the_file(tmp_path: Path) -> None:
    """``fsspec.open("b2h5::f.h5").open()`` (the store's root) and ``fs.open`` of a missing
    key raised a bare ``FileNotFoundError('')`` / ``FileNotFoundError('x')``."""
    import fsspec

    path = _masked_and_filled_file(tmp_path / "m.h5")
    with pytest.raises(IsADirectoryError, match=r"'/' is a group or array .*m\.h5"):
        fsspec.open(f"b2h5::{path}").open()
    fs = HDF5FileSystem(str(path), skip_instance_cache=True)
    with pytest.raises(IsADirectoryError, match=r"'masked' is a group or array"):
        fs.open("masked")
    with pytest.raises(FileNotFoundError, match=r"No key 'masked/nope' in the Zarr view of .*m"):
        fs.open("masked/nope")
    with fs.open("masked/zarr.json") as fh:
        assert fh.read().startswith(b"{")


def test_v2_listing_too_many_fill_chunks_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    """A v2 array serving more fill chunks than can be listed raises (naming the file, the
    dataset and the v3 view) instead of listing its allocated chunks only or running out of
    memory; the v3 view lists it."""
    from b2store.errors import UnsupportedHDF5FeatureError
    from b2store.hdf5 import filesystem

    path = _fill_file(tmp_path / "fill.h5")
    monkeypatch.setattr(filesystem, "MAX_LISTED_FILL_KEYS", 8)
    fs = HDF5FileSystem(str(path), zarr_format=2, skip_instance_cache=True)
    assert fs.ls("sevens", detail=False) == [
        f"sevens/{k}" for k in (".zarray", ".zattrs", "0", "1")
    ]
    with pytest.raises(NotImplementedError, match=r"fill.h5: dataset '/nans'.*zarr_format=3") as e:
        fs.find("")
    assert isinstance(e.value, UnsupportedHDF5FeatureError)
    v3 = HDF5FileSystem(str(path), zarr_format=3, skip_instance_cache=True)
    assert "nans/c/1/1" in v3.find("nans")
