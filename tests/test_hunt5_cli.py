"""Regression tests for the fifth session's hunt over ``b2store convert``, ``refs`` and ``info``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import has, requires_h5py, requires_hdf5plugin

pytestmark = [requires_h5py, requires_hdf5plugin]


def _convert(src: Path, dst: Path, **kw: object) -> tuple[object, list[str]]:
    """Run :func:`b2store.convert.convert` and return its report and log lines."""
    from b2store.convert import ConvertOptions, convert

    lines: list[str] = []
    report = convert(src, dst, options=ConvertOptions(nthreads=1, **kw), log=lines.append)  # type: ignore[arg-type]
    return report, lines


def test_convert_copies_datasets_of_more_than_8_dimensions(tmp_path: Path) -> None:
    """HDF5 allows 32 dimensions, b2nd 8: a 9-D dataset made the whole convert fail
    ("b2nd supports at most 8 dimensions, got 9"); it is now copied as it is."""
    import h5py
    import hdf5plugin  # noqa: F401

    src, dst = tmp_path / "nine.h5", tmp_path / "nine_out.h5"
    shape = (2, 3, 2, 3, 2, 2, 3, 2, 5)
    data = np.arange(np.prod(shape), dtype="i4").reshape(shape)
    with h5py.File(src, "w") as f:
        f.create_dataset("nine", data=data, chunks=(1, 2, 2, 2, 1, 2, 2, 1, 3), fillvalue=-1)
        f.create_dataset("two", data=np.arange(20.0).reshape(4, 5), chunks=(2, 5))
    report, _ = _convert(src, dst)
    actions = {d.path: (d.action, d.note) for d in report.datasets}  # type: ignore[attr-defined]
    assert actions["/nine"][0] == "copied" and "9 dimensions" in actions["/nine"][1]
    assert actions["/two"][0] == "converted"
    with h5py.File(dst) as f:
        np.testing.assert_array_equal(f["nine"][()], data)
        assert f["nine"].fillvalue == -1
        np.testing.assert_array_equal(f["two"][()], np.arange(20.0).reshape(4, 5))


def test_convert_keeps_committed_datatypes(tmp_path: Path) -> None:
    """Named (committed) datatypes were left out ("hard link … which was not copied"): netCDF-4
    user types then read back as ``_AnonymousCompound1`` / ``_AnonymousEnum1``."""
    import h5py

    src, dst = tmp_path / "types.h5", tmp_path / "types_out.h5"
    pair = np.dtype([("a", "<i4"), ("b", "<f8")])
    with h5py.File(src, "w") as f:
        f["pair_t"] = pair
        f["pair_t"].attrs["doc"] = "a pair"
        g = f.create_group("g")
        g["enum_t"] = h5py.enum_dtype({"clear": 0, "cloudy": 1}, basetype="u1")
        f.create_dataset("pairs", data=np.zeros(3, pair))
    _, lines = _convert(src, dst)
    assert not [line for line in lines if "not copied" in line]
    with h5py.File(dst) as f:
        assert isinstance(f.get("pair_t"), h5py.Datatype)
        assert f["pair_t"].dtype == pair and f["pair_t"].attrs["doc"] == "a pair"
        assert h5py.check_enum_dtype(f["g/enum_t"].dtype) == {"clear": 0, "cloudy": 1}


@pytest.mark.skipif(not has("netCDF4"), reason="needs netCDF4")
def test_convert_keeps_netcdf_type_names_and_variable_order(tmp_path: Path) -> None:
    """netCDF-4 variables, user types and attributes keep their names and creation order (the
    output listed variables alphabetically, and its types were anonymous)."""
    import netCDF4

    src, dst = tmp_path / "in.nc", tmp_path / "out.nc"
    with netCDF4.Dataset(src, "w") as nc:
        nc.createDimension("n", 3)
        ctype = nc.createCompoundType(np.dtype([("a", "<i4"), ("b", "<f8")], align=True), "pair")
        etype = nc.createEnumType(np.uint8, "cloud_t", {"clear": 0, "cloudy": 1})
        nc.createVariable("zeta", "f4", ("n",))[:] = [1, 2, 3]
        nc.createVariable("alpha", "i2", ("n",))[:] = [4, 5, 6]
        v = nc.createVariable("compound", ctype, ("n",))
        v.zz_units, v.aa_note = "m", "first after units"
        nc.createVariable("cloud", etype, ("n",), fill_value=0)
    _convert(src, dst)
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(dst) as b:  # metadata only: no filter needed
        assert list(b.variables) == list(a.variables) == ["zeta", "alpha", "compound", "cloud"]
        assert b["compound"].datatype.name == "pair"
        assert b["cloud"].datatype.name == "cloud_t"
        assert b["compound"].ncattrs() == ["zz_units", "aa_note"]


def test_convert_keeps_link_creation_order(tmp_path: Path) -> None:
    """Groups that track creation order keep it, links included (``visit`` sorted by name, and
    soft/external links were appended at the end)."""
    import h5py

    src, dst = tmp_path / "order.h5", tmp_path / "order_out.h5"
    with h5py.File(src, "w", track_order=True) as f:
        f.create_dataset("z", data=np.arange(6), chunks=(3,), track_order=True)
        f["b_soft"] = h5py.SoftLink("/z")
        g = f.create_group("m", track_order=True)
        g.create_dataset("y", data=np.arange(4.0), chunks=(2,))
        g["x_ext"] = h5py.ExternalLink("other.h5", "/d")
        g.create_dataset("a", data=np.arange(3))
        f["a_hard"] = f["z"]
        d = f["z"]
        d.attrs["zz"], d.attrs["aa"] = 1, 2
    _convert(src, dst)
    with h5py.File(src) as a, h5py.File(dst) as b:
        assert list(b) == list(a) == ["z", "b_soft", "m", "a_hard"]
        assert list(b["m"]) == list(a["m"]) == ["y", "x_ext", "a"]
        assert list(b["z"].attrs) == list(a["z"].attrs) == ["zz", "aa"]
        assert isinstance(b.get("b_soft", getlink=True), h5py.SoftLink)
        assert b["a_hard"] == b["z"]
        np.testing.assert_array_equal(b["a_hard"][()], np.arange(6))


def test_convert_names_reference_attributes_it_leaves_out(tmp_path: Path) -> None:
    """An attribute holding an object reference cannot be copied; it was dropped silently."""
    import h5py

    src, dst = tmp_path / "ref.h5", tmp_path / "ref_out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("d", data=np.arange(4), chunks=(2,))
        d.attrs["target"] = f.ref
        d.attrs["plain"] = 3
    _, lines = _convert(src, dst)
    assert any("/d: attributes target not copied" in line for line in lines)
    with h5py.File(dst) as f:
        assert f["d"].attrs["plain"] == 3


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


def _read_json_refs(refs: object, name: str) -> np.ndarray:
    """Read ``name`` through fsspec's reference filesystem + zarr (Zarr v2)."""
    import fsspec
    import zarr

    fs = fsspec.filesystem("reference", fo=refs)
    return np.asarray(zarr.open_group(fs.get_mapper(), mode="r", zarr_format=2)[name][...])


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


def test_refs_command_names_its_own_option_for_unsupported_datasets(tmp_path: Path) -> None:
    """The error told command-line users to "pass unsupported='skip'", a Python argument."""
    import subprocess
    import sys

    import h5py

    src = tmp_path / "null.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("null", data=h5py.Empty("f4"))
        f.create_dataset("d", data=np.arange(3))
    res = subprocess.run(
        [sys.executable, "-m", "b2store", "refs", str(src), "-o", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert "--unsupported skip" in res.stderr and "unsupported='skip'" not in res.stderr


def test_convert_to_another_folder_keeps_virtual_sources_and_external_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative source names of virtual datasets and external links resolve from the file's own
    folder: copied unchanged into an output elsewhere, the virtual dataset read the fill value
    (silently) and the link failed. They are rewritten relative to the output's folder."""
    import h5py

    indir, outdir, elsewhere = tmp_path / "in", tmp_path / "out" / "deep", tmp_path / "cwd"
    for d in (indir, outdir, elsewhere):
        d.mkdir(parents=True)
    with h5py.File(indir / "src.h5", "w") as f:
        f.create_dataset("d", data=np.arange(1, 13).reshape(3, 4), chunks=(3, 4))
    src = indir / "main.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("local", data=np.arange(100, 112).reshape(3, 4), chunks=(3, 4))
        layout = h5py.VirtualLayout(shape=(6, 4), dtype="i8")
        layout[:3] = h5py.VirtualSource("src.h5", "d", shape=(3, 4))
        layout[3:] = h5py.VirtualSource(".", "local", shape=(3, 4))
        f.create_virtual_dataset("v", layout, fillvalue=-1)
        f["v"].attrs["units"] = "counts"
        f["ext"] = h5py.ExternalLink("src.h5", "/d")
        expected = f["v"][()]
    assert (expected != -1).all()
    dst = outdir / "main_b2.h5"
    _convert(src, dst)
    monkeypatch.chdir(elsewhere)  # HDF5 also tries the working folder: keep it out of the test
    with h5py.File(dst) as f:
        assert f["v"].is_virtual and f["v"].fillvalue == -1 and f["v"].attrs["units"] == "counts"
        np.testing.assert_array_equal(f["v"][()], expected)
        np.testing.assert_array_equal(f["ext"][()], np.arange(1, 13).reshape(3, 4))
    dst2 = indir / "same_folder.h5"  # same folder: names stay as they were
    _convert(src, dst2)
    with h5py.File(dst2) as f:
        assert f.get("ext", getlink=True).filename == "src.h5"
        assert [s.file_name for s in f["v"].virtual_sources()] == ["src.h5", "."]


def test_convert_keeps_a_virtual_dataset_that_names_its_own_file(tmp_path: Path) -> None:
    """A VDS whose source names the file itself by its base name (C tools write that) pointed
    at the input after a convert into another folder: moving the input made it read the fill
    value (review, fifth session). It now names the output itself (".")."""
    import h5py

    from b2store.convert import convert

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    src, dst = tmp_path / "in" / "self.h5", tmp_path / "out" / "self.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("own", data=np.arange(1000).reshape(1, 1000) + 7, chunks=(1, 100))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_fill_value(np.array(-1, "i8"))
        space = h5py.h5s.create_simple((1, 1000))
        dcpl.set_virtual(space, b"self.h5", b"own", h5py.h5s.create_simple((1, 1000)))
        h5py.h5d.create(f.id, b"v", h5py.h5t.NATIVE_INT64, space, dcpl=dcpl)
    convert(src, dst, log=lambda s: None)
    src.rename(tmp_path / "moved.h5")
    with h5py.File(dst) as f:
        assert f["v"].virtual_sources()[0].file_name == "."
        np.testing.assert_array_equal(f["v"][0, :3], [7, 8, 9])


def test_convert_walks_groups_nested_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    """1,100 nested groups raised RecursionError once the walk recursed in Python."""
    import h5py

    from b2store.convert import convert

    src, dst = tmp_path / "deep.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        g = f
        for _ in range(1100):
            g = g.create_group("g")
        g["x"] = 1
    convert(src, dst, log=lambda s: None)
    with h5py.File(dst) as f:
        assert f["/".join(["g"] * 1100) + "/x"][()] == 1
