"""``b2store.inspect``, behind ``b2store info``: its verdict on each dataset (direct or not, and
why) agrees with what b2h5 and ``b2store refs`` present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_h5py, requires_hdf5plugin

pytestmark = [requires_h5py, requires_hdf5plugin]


def _vds_file(folder: Path) -> Path:
    """A file with a virtual dataset that b2h5 maps (two aligned chunked sources in the file)."""
    import h5py

    path = folder / "vds.h5"
    with h5py.File(path, "w") as f:
        for i in range(2):
            f.create_dataset(f"s{i}", data=np.full((4, 6), i, "i4"), chunks=(2, 3))
        layout = h5py.VirtualLayout(shape=(8, 6), dtype="i4")
        for i in range(2):
            layout[4 * i : 4 * i + 4] = h5py.VirtualSource(".", f"s{i}", shape=(4, 6))
        f.create_virtual_dataset("v", layout, fillvalue=0)
        bad = h5py.VirtualLayout(shape=(7, 6), dtype="i4")
        bad[3:7] = h5py.VirtualSource(".", "s0", shape=(4, 6))  # not on a chunk boundary
        f.create_virtual_dataset("unaligned", bad, fillvalue=0)
    return path


def test_info_verdict_on_virtual_datasets_matches_b2h5(tmp_path: Path) -> None:
    """``info`` said NOT direct for every virtual dataset, although b2h5 (and ``b2store refs``)
    map those whose sources line up with their chunks."""
    from b2store.inspect import inspect_path
    from b2store.refs import hdf5_refs

    path = _vds_file(tmp_path)
    nodes = {n.path: n for n in inspect_path(str(path))}
    refs = hdf5_refs(path, unsupported="skip")["refs"]
    assert "v/.zarray" in refs and "unaligned/.zarray" not in refs
    assert nodes["/v"].direct, nodes["/v"].reason
    assert not nodes["/unaligned"].direct
    assert "not aligned" in nodes["/unaligned"].reason


def test_info_and_refs_on_a_soft_link_through_an_external_link(tmp_path: Path) -> None:
    """``/soft_d -> /ext/d`` with ``/ext`` an external link: b2h5 presents it only when
    following external links (session 17); ``info`` said plain "direct" and ``refs`` did not
    count it among the links left out."""
    import h5py

    from b2store.inspect import inspect_path
    from b2store.refs import hdf5_refs

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("g/d", data=np.arange(12).reshape(3, 4), chunks=(2, 2))
    path = tmp_path / "main.h5"
    with h5py.File(path, "w") as f:
        f["ext"] = h5py.ExternalLink("other.h5", "/g")
        f["soft_d"] = h5py.SoftLink("/ext/d")
    nodes = {n.path: n for n in inspect_path(str(path))}
    assert "soft link to /ext/d through an external link" in nodes["/soft_d"].reason
    assert "follow_external_links=True" in nodes["/soft_d"].reason
    with pytest.warns(UserWarning, match="2 links left out .* 2 of them external"):
        refs = hdf5_refs(path)["refs"]
    assert "soft_d/.zarray" not in refs
    refs = hdf5_refs(path, follow_external_links=True)["refs"]  # no warning: both followed
    assert "soft_d/.zarray" in refs and "ext/d/.zarray" in refs


def test_info_netcdf_dimension_is_not_shown(tmp_path: Path) -> None:
    """A netCDF dimension without a variable is hidden by b2h5; ``info`` called it direct."""
    h5netcdf = pytest.importorskip("h5netcdf")
    from b2store.inspect import inspect_path
    from b2store.refs import hdf5_refs

    path = tmp_path / "dims.nc"
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"n": 3, "m": 2}
        f.create_variable("v", ("n",), "f4", data=np.arange(3.0))
    nodes = {n.path: n for n in inspect_path(str(path))}
    refs = hdf5_refs(path)["refs"]
    assert "m/.zarray" not in refs and "v/.zarray" in refs
    assert nodes["/v"].direct
    assert not nodes["/m"].direct and "netCDF dimension" in nodes["/m"].reason


def test_info_and_convert_read_a_file_left_marked_open_by_an_swmr_writer(tmp_path: Path) -> None:
    """A copy taken while an SWMR writer held the file (or a file whose writer died) is marked
    "open for write"; h5py opens it only with ``swmr=True``."""
    import shutil

    import h5py

    from b2store.convert import convert
    from b2store.inspect import inspect_hdf5

    live, copy = tmp_path / "live.h5", tmp_path / "copy.h5"
    with h5py.File(live, "w", libver="latest") as f:
        f.create_dataset(
            "x", data=np.arange(60.0).reshape(6, 10), chunks=(4, 10), maxshape=(None, 10)
        )
        f.swmr_mode = True
        f.flush()
        shutil.copy(live, copy)
    with pytest.raises(OSError, match="already open for write"):
        h5py.File(copy, "r")
    assert [n.path for n in inspect_hdf5(copy)] == ["/", "/x"]
    convert(copy, tmp_path / "out.h5")
    with h5py.File(tmp_path / "out.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][...], np.arange(60.0).reshape(6, 10))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_info_of_a_url_counts_chunk_bytes_only(tmp_path: Path, zarr_format: int) -> None:
    """zarr's nbytes_stored counts the array's metadata document too: a 300-byte dataset seen
    through b2h5 showed 854 bytes stored (ratio 0.35) where ``info FILE`` said 327."""
    import h5py
    import hdf5plugin

    from b2store.inspect import inspect_hdf5, inspect_zarr_url

    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("z", data=np.arange(300, dtype="u1"), chunks=(100,), **hdf5plugin.Zstd())
        f.create_dataset("g/raw", data=np.arange(50, dtype="i4"), chunks=(10,))
    on_disk = {n.path: n.stored for n in inspect_hdf5(path) if n.kind == "dataset"}
    url = f"b2h5::{path}"
    viewed = {
        n.path: n.stored
        for n in inspect_zarr_url(url, {"zarr_format": zarr_format})
        if n.kind == "dataset"
    }
    assert viewed == on_disk


def test_info_of_an_hdf5_url_with_a_query(tmp_path: Path) -> None:
    """A remote HDF5 file was recognised by its URL ending in .h5, so a presigned URL
    (``…/scan.h5?X-Amz-Signature=…``) was opened as a Zarr group and failed ("No group found",
    or a UTF-8 error when the server answered "scan.h5?…/zarr.json" with the HDF5 file)."""
    import fsspec
    import h5py

    from b2store.inspect import inspect_path

    path = tmp_path / "q.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=np.arange(12, dtype="i4"), chunks=(4,))
    mem = fsspec.filesystem("memory")
    key = "/b2store-info-query/q.h5?signature=abc"  # the memory filesystem keeps "?…" in names
    mem.pipe(key, path.read_bytes())
    try:
        nodes = inspect_path("memory:/" + key)
    finally:
        mem.rm("/b2store-info-query", recursive=True)
    (node,) = [n for n in nodes if n.kind == "dataset"]
    assert node.path == "/d" and node.shape == (12,) and node.direct


def test_info_describes_blosc2_chunks_without_python_blosc2_parsing_them(tmp_path: Path) -> None:
    """Blocks and codec come from b2store's own frame parser (python-blosc2's C frame parser
    never sees the file's bytes): zstd/lz4 with filters as blosc2 names them, a plugin codec
    (JPEG 2000) by its plugin id, and a damaged first chunk leaves the fields empty."""
    import h5py
    import hdf5plugin
    import numcodecs

    from b2store.inspect import inspect_path

    path = tmp_path / "b.h5"
    data = np.arange(20 * 30 * 40, dtype="u2").reshape(20, 30, 40)
    with h5py.File(path, "w") as f:
        f.create_dataset("zstd", data=data, chunks=(10, 30, 40),
                         **hdf5plugin.Blosc2(cname="zstd", clevel=3,
                                             filters=hdf5plugin.Blosc2.BITSHUFFLE))  # fmt: skip
        f.create_dataset("lz4_1d", data=data.ravel(), chunks=(6000,),
                         **hdf5plugin.Blosc2(cname="lz4", clevel=5))  # fmt: skip
        j2k = f.create_dataset("j2k", shape=(2, 64, 64), dtype="u2", chunks=(2, 64, 64),
                               **hdf5plugin.Blosc2())  # fmt: skip
        image = np.random.default_rng(0).integers(0, 4000, (2, 64, 64), dtype="u2")
        grok = numcodecs.get_codec({"id": "b2store_grok"})
        j2k.id.write_direct_chunk((0, 0, 0), grok.encode(image))
        bad = f.create_dataset("bad", shape=(10, 30, 40), dtype="u2", chunks=(10, 30, 40),
                               **hdf5plugin.Blosc2())  # fmt: skip
        frame = bytearray(f["zstd"].id.read_direct_chunk((0, 0, 0))[1])
        frame[24:64] = b"\xff" * 40  # a frame header python-blosc2 would have to trust
        bad.id.write_direct_chunk((0, 0, 0), bytes(frame))
    nodes = {n.path: n for n in inspect_path(str(path))}
    assert nodes["/zstd"].blosc2 == "zstd-3+bitshuffle"
    assert nodes["/zstd"].blocks is not None and len(nodes["/zstd"].blocks) == 3
    assert nodes["/lz4_1d"].blosc2.startswith("lz4-5")
    assert nodes["/j2k"].blosc2.startswith("j2k-") and nodes["/j2k"].blocks == (1, 64, 64)
    assert nodes["/bad"].blosc2 == "" and nodes["/bad"].blocks is None


def test_info_reports_the_first_chunk_of_a_dataset_with_many_chunks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``info`` reads the first allocated chunk's frame (it stops h5py's chunk iteration there
    instead of visiting all of them): still the first one, not a later chunk's. Its frame
    differs from the 4999 others (lz4-9 among zstd-1), and chunks before it are unallocated."""
    import json

    import h5py
    import hdf5plugin

    from b2store.cli import main

    path = tmp_path / "many.h5"
    data = np.arange(5000 * 8, dtype="i4")
    with h5py.File(path, "w") as f:
        f.create_dataset("zstd", data=data, chunks=(8,),
                         **hdf5plugin.Blosc2(cname="zstd", clevel=1))  # fmt: skip
        f.create_dataset("lz4", data=data[:8], chunks=(8,),
                         **hdf5plugin.Blosc2(cname="lz4", clevel=9))  # fmt: skip
        many = f.create_dataset("many", shape=(5002 * 8,), dtype="i4", chunks=(8,),
                                **hdf5plugin.Blosc2(cname="zstd", clevel=1))  # fmt: skip
        lz4 = f["lz4"].id.read_direct_chunk((0,))[1]
        many.id.write_direct_chunk((16,), lz4)  # chunks 0 and 1 stay unallocated
        for i in range(1, 5000):
            mask, raw = f["zstd"].id.read_direct_chunk((8 * i,))
            many.id.write_direct_chunk((8 * i + 16,), raw, mask)
        assert many.id.get_num_chunks() == 5000
    assert main(["info", str(path), "--json"]) == 0
    nodes = {n["path"]: n for n in json.loads(capsys.readouterr().out)}
    assert nodes["/zstd"]["blosc2"].startswith("zstd-1")
    assert nodes["/lz4"]["blosc2"].startswith("lz4-9")
    assert nodes["/many"]["blosc2"] == nodes["/lz4"]["blosc2"]
    assert nodes["/many"]["blocks"] == nodes["/lz4"]["blocks"]
