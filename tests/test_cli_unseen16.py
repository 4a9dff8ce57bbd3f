"""Regressions found by the sixteenth session's sweep of ``b2store info / convert / refs`` over
HDF5 files other software wrote (PyTables, pyfive, hdf5plugin, netCDF4-python and h5py test
files). Each feature is rebuilt here with h5py (and ctypes on h5py's own libhdf5 where h5py has no
API for it), so the tests need none of those files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._cli_files import run_b2store as run
from tests._h5_oddities import create_undefined_fill, quad_float_type
from tests.conftest import requires_h5py, requires_hdf5plugin

pytest.importorskip("click")

pytestmark = [requires_h5py, requires_hdf5plugin]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``b2store ARGS`` in this process (what :func:`run` gives, faster)."""
    import contextlib
    import io

    from b2store.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    return res.stdout + res.stderr


def raw_values(obj: Any) -> bytes:
    """The stored bytes of a dataset or attribute, read in its own HDF5 type."""
    import h5py

    tid = obj.get_type()
    raw = np.empty(obj.shape, dtype=f"V{tid.get_size()}")
    if isinstance(obj, h5py.h5d.DatasetID):
        obj.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=tid)
    else:
        obj.read(raw, mtype=tid)
    return raw.tobytes()


# ------------------------------------------------------------------ undefined HDF5 fill value


def write_undefined_fill(path: Path) -> Path:
    """A chunked int32 dataset whose fill value is *undefined* (``H5Pset_fill_value(dcpl, type,
    NULL)``, as PyTables' ``attr-u16.h5`` and ``ex-noattr.h5``): h5py's ``fillvalue`` raises."""
    import h5py

    with h5py.File(path, "w") as f:
        ds = create_undefined_fill(f, "u", (10,), (4,), "<i4")
        ds[0:4] = np.arange(1, 5, dtype="i4")  # chunks 1 and 2 stay unallocated
        ds.attrs["units"] = "m"
        with pytest.raises(RuntimeError, match="undefined"):
            ds.fillvalue  # noqa: B018
    return path


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
@pytest.mark.parametrize("opts", [[], ["--auto"], ["--itrunc-max-error", "1"]])
def test_convert_undefined_fill_value(tmp_path: Path, opts: list[str]) -> None:
    """``convert`` failed on the whole file ("RuntimeError: /u: Can't get fill value (fill value
    is undefined)"); now the dataset is converted and reads as h5py reads the input (the
    never-written chunks as zeros)."""
    import h5py
    import hdf5plugin  # noqa: F401

    src = write_undefined_fill(tmp_path / "undef.h5")
    dst = tmp_path / "out.h5"
    ok(cli("convert", "-q", *opts, str(src), str(dst)))
    with h5py.File(src) as fin, h5py.File(dst) as fout:
        want = fin["u"][()]
        np.testing.assert_array_equal(fout["u"][()], want)
        np.testing.assert_array_equal(want, [1, 2, 3, 4, 0, 0, 0, 0, 0, 0])
        assert fout["u"].attrs["units"] == "m"
        assert 32026 in [fout["u"].id.get_create_plist().get_filter(0)[0]]


# -------------------------------------------------------------- a type numpy cannot represent


def write_quad(path: Path) -> Path:
    """Chunked and contiguous binary128 datasets and attribute (PyTables ``float.h5``), a time
    dataset, beside a plain dataset."""
    import h5py

    t = quad_float_type()
    with h5py.File(path, "w") as f:
        for name, chunked in ((b"q", True), (b"qc", False)):
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            if chunked:
                dcpl.set_chunk((2,))
            d = h5py.h5d.create(f.id, name, t, h5py.h5s.create_simple((4,)), dcpl=dcpl)
            d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.frombuffer(bytes(range(64)), "V16").copy(), t)
        # an HDF5 time type (PyTables' Time32Col, times-nested-be.h5): h5py raises TypeError
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4,))
        tt = h5py.h5t.UNIX_D32LE.copy()
        d = h5py.h5d.create(f.id, b"t", tt, h5py.h5s.create_simple((8,)), dcpl=dcpl)
        d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(8, dtype="<i4").view("V4").copy(), tt)
        a = h5py.h5a.create(f.id, b"quad", t, h5py.h5s.create_simple((2,)))
        a.write(np.frombuffer(bytes(range(100, 132)), "V16").copy(), mtype=t)
        f.attrs["title"] = "quad"
        f.create_dataset("ok", data=np.arange(100, dtype="i4"), chunks=(30,), compression="gzip")
        with pytest.raises(ValueError, match="Insufficient precision"):
            f["q"].dtype  # noqa: B018
    return path


def test_info_lists_a_type_numpy_cannot_represent(tmp_path: Path) -> None:
    """``info`` failed on the whole file with "Error: Insufficient precision in available types
    to represent (127, 112, 15, 0, 112)" (no file, no dataset named); now each such dataset is
    listed as not direct, with the reason, and the other datasets as before."""
    import json

    src = write_quad(tmp_path / "quad.h5")
    out = ok(run("info", str(src)))
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    for name, layout in (("q", "chunks=(2,)"), ("qc", "contiguous")):
        assert "float128 (HDF5 type)" in lines[name] and layout in lines[name], out
        assert "NOT direct: an HDF5 type numpy cannot represent" in lines[name], out
    assert "time32 (HDF5 type)" in lines["t"] and "NOT direct: an HDF5 type" in lines["t"], out
    assert "[direct]" in lines["ok"], out
    nodes = {n["path"]: n for n in json.loads(ok(cli("info", "--json", str(src))))}
    assert nodes["/q"]["nbytes"] == 64 and nodes["/q"]["direct"] is False
    assert nodes["/ok"]["direct"] is True


def test_convert_copies_a_type_numpy_cannot_represent(tmp_path: Path) -> None:
    """``convert`` failed on the whole file (same message); now such datasets are copied as they
    are (byte for byte, in their own type), said so, attributes of that type too, and the rest
    converted."""
    import h5py
    import hdf5plugin  # noqa: F401

    src = write_quad(tmp_path / "quad.h5")
    dst = tmp_path / "out.h5"
    res = run("convert", str(src), str(dst))
    out = ok(res)
    assert "/q: copied (an HDF5 type numpy cannot represent: " in out, out
    assert "/qc: copied (an HDF5 type numpy cannot represent: " in out, out
    assert "/t: copied (an HDF5 type numpy cannot represent: " in out, out
    assert "not copied" not in out, out
    assert "1 datasets converted, 3 copied" in res.stdout
    with h5py.File(src) as fin, h5py.File(dst) as fout:
        for name in ("q", "qc", "t"):
            assert fout[name].id.get_type() == fin[name].id.get_type()
            assert raw_values(fout[name].id) == raw_values(fin[name].id)
        assert raw_values(fout.attrs.get_id("quad")) == raw_values(fin.attrs.get_id("quad"))
        assert fout.attrs["title"] == "quad"
        np.testing.assert_array_equal(fout["ok"][()], fin["ok"][()])
        assert fout["ok"].id.get_create_plist().get_filter(0)[0] == 32026


# ----------------------------------------------------------- big-endian variable-length data


def write_big_endian_vlen(path: Path) -> Path:
    """Sequences of big-endian integers as an attribute and datasets (pyfive's
    ``attr_datatypes.hdf5``: its ``vlen_uint64`` attribute)."""
    import h5py

    val = np.empty(3, dtype=object)
    val[0], val[1], val[2] = [np.array(v, dtype=">u8") for v in ([1, 2], [3, 4, 5], [42])]
    with h5py.File(path, "w") as f:
        f.attrs.create("vlen_uint64", val, dtype=h5py.vlen_dtype(np.dtype(">u8")))
        f.create_dataset("d", data=val, dtype=h5py.vlen_dtype(np.dtype(">u8")))
        i4 = np.empty(2, dtype=object)
        i4[0], i4[1] = np.array([-1, 2], ">i4"), np.array([3], ">i4")
        f.create_dataset("c", data=i4, dtype=h5py.vlen_dtype(np.dtype(">i4")), chunks=(1,))
    return path


def test_convert_keeps_big_endian_sequences(tmp_path: Path) -> None:
    """h5py reads big-endian sequences as native arrays holding the file's bytes and converts
    them again on writing: ``convert`` stored other values (what h5py read as [2**56, 2**57]
    came out as [1, 2], and the other way round for readers that read the input right, such as
    pyfive). Now the copy holds the input's values, so every reader reads both files alike."""
    import h5py
    import hdf5plugin  # noqa: F401

    src = write_big_endian_vlen(tmp_path / "be.h5")
    dst = tmp_path / "out.h5"
    ok(cli("convert", str(src), str(dst)))

    def seqs(value: Any) -> list[list[int]]:
        return [np.asarray(x).tolist() for x in value]

    with h5py.File(src) as fin, h5py.File(dst) as fout:
        assert seqs(fout.attrs["vlen_uint64"]) == seqs(fin.attrs["vlen_uint64"])
        for name in ("d", "c"):
            assert seqs(fout[name][()]) == seqs(fin[name][()]), name
            want = h5py.check_vlen_dtype(fin[name].dtype)
            assert h5py.check_vlen_dtype(fout[name].dtype) == want


# ------------------------------------------------------------ a dimension scale without NAME


def test_convert_keeps_a_scale_without_name(tmp_path: Path) -> None:
    """A dataset attached as a dimension scale without being made one first is a scale without
    a NAME attribute (``H5DSattach_scale`` calls ``H5DSset_scale(id, NULL)``; pyfive's
    ``dim_scales.hdf5``); ``convert`` gave it ``NAME=''``. Now it has no NAME, as in the input,
    and named scales keep theirs."""
    import h5py

    src, dst = tmp_path / "dims.h5", tmp_path / "out.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("d", data=np.ones((3, 2)), chunks=(3, 1))
        f["x1"], f["x2"] = [1, 2], [9, 8]
        f["x1"].make_scale("x1_name")
        d.dims[1].attach_scale(f["x1"])
        d.dims[1].attach_scale(f["x2"])
        assert "NAME" not in f["x2"].attrs and h5py.h5ds.is_scale(f["x2"].id)
    ok(cli("convert", str(src), str(dst)))
    with h5py.File(dst) as f:
        assert h5py.h5ds.is_scale(f["x2"].id)
        assert "NAME" not in f["x2"].attrs
        assert f["x1"].attrs["NAME"] == b"x1_name"
        assert [s.name for s in f["d"].dims[1].values()] == ["/x1", "/x2"]


# ------------------------------------------------------------------------ info's verdict text


def test_info_file_verdict_names_no_python_argument(tmp_path: Path) -> None:
    """``info FILE`` gave each dataset b2store cannot read from raw chunks (the LZO, SZ, ZFP,
    JPEG-LS and HTJ2K datasets of the sweep) the library's advice, "or open it with
    unsupported='skip'", a Python argument, after repeating the dataset's path; ``info
    b2h5::FILE`` already dropped both. Now both say the same."""
    import json

    import h5py

    p = tmp_path / "mixed.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("ok", data=np.arange(100, dtype="i4"), chunks=(10,))
        f.create_dataset("g/so", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0)
    nodes = {n["path"]: n for n in json.loads(ok(cli("info", "--json", str(p))))}
    why = nodes["/g/so"]["reason"]
    assert nodes["/g/so"]["direct"] is False and "scaleoffset" in why, why
    assert "unsupported=" not in why and not why.startswith("/g/so"), why
    via = {n["path"]: n for n in json.loads(ok(cli("info", "--json", f"b2h5::{p}")))}
    assert via["/g/so"]["reason"] == why


# ------------------------------------------------------- the foreign corpus (tests/data/foreign)

FOREIGN = Path(__file__).parent / "data" / "foreign"
FOREIGN_FILES = sorted(p.name for p in FOREIGN.iterdir() if p.suffix not in (".tsv", ".md"))


@pytest.mark.parametrize("name", FOREIGN_FILES)
def test_info_and_refs_over_foreign_files(tmp_path: Path, name: str) -> None:
    """``info`` and ``refs --unsupported skip`` on every file of other projects' test suites:
    exit 0 (a netCDF-3 file: exit 1 naming it), and every numeric array of the references
    reads as h5py reads the dataset."""
    import fsspec
    import h5py
    import hdf5plugin  # noqa: F401
    import zarr

    src = FOREIGN / name
    if src.read_bytes()[:3] == b"CDF":  # netCDF-3 classic
        res = cli("info", str(src))
        assert res.returncode == 1 and "not an HDF5 file" in res.stderr and name in res.stderr
        return
    ok(cli("info", str(src)))
    out = tmp_path / "refs.json"
    ok(cli("refs", "-o", str(out), "--unsupported", "skip", str(src)))
    fs = fsspec.filesystem("reference", fo=str(out))
    group = zarr.open_group(fs.get_mapper(""), mode="r", zarr_format=2)
    with h5py.File(src) as f:
        for path, array in group.members(max_depth=None):
            if not isinstance(array, zarr.Array) or path not in f:
                continue
            ds = f[path]
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "biuf":
                continue
            np.testing.assert_array_equal(array[...], ds[()], err_msg=f"{name}:{path}")


@requires_h5py
@pytest.mark.parametrize("command", ["info", "convert", "refs"])
def test_damaged_file_is_named_with_what_to_do(tmp_path: Path, command: str) -> None:
    """A file whose metadata is damaged (session 17): ``info`` and ``convert`` printed h5py's
    bare "RuntimeError: Unable to get group info (wrong B-tree signature)", naming no file;
    ``refs`` advised a Python argument."""
    from tests._h5_damage import damaged_group_file

    src = damaged_group_file(tmp_path / "damaged.h5")
    args = {"info": [str(src)], "convert": [str(src), str(tmp_path / "out.h5")]}
    got = run(command, *args.get(command, [str(src), "-o", str(tmp_path / "r.json")]))
    assert got.returncode == 1, got
    err = got.stderr
    assert str(src) in err and "looks damaged" in err and "wrong B-tree signature" in err, err
    assert "RuntimeError" not in err and "unsupported='skip'" not in err, err
    if command == "refs":
        assert "--unsupported skip" in err, err
